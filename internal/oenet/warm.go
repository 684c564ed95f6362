package oenet

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// RelayTransports returns the two transports of the proxy: Transport() for requests and WebSocketTransport()
// for WebSocket handshakes, linked so that a page navigation (a GET the browser marks as a document) opens a
// TLS connection to the relay ahead of the WebSocket the page is about to open. A printer UI (Mainsail,
// Fluidd, OctoPrint) connects its WebSocket right after its assets; without a connection ready, that costs a
// TCP and a TLS handshake (two round trips to the relay) at the end of every page load, since WebSocket
// connections are never pooled. nginx hides the same cost by reusing an idle keep-alive connection for the
// upgrade (bench/RESULTS.md, the WAN tables).
func (o Options) RelayTransports() (http.RoundTripper, http.RoundTripper) {
	ws := o.WebSocketTransport()
	w := &warmer{
		dial:    o.DialContext(),
		tlsConf: o.TLSConfig(),
		timeout: orDefault(o.TLSHandshakeTimeout, 10*time.Second),
		spares:  map[string]*spare{},
	}
	w.tlsConf.NextProtos = []string{"http/1.1"} // an Upgrade needs HTTP/1.1
	ws.DialTLSContext = w.dialTLS
	tr := o.Transport()
	sb := newStandby(w.handshake, w.timeout)
	tr.DialTLSContext = sb.dialTLS
	return &navigationHook{Transport: tr, warm: w.warm, standby: sb}, ws
}

// spareTTL is how long a connection opened ahead waits for its WebSocket: a page's WebSocket follows its
// navigation within seconds, and the relay closes idle connections after a minute or more.
const spareTTL = 30 * time.Second

// warmer holds at most one TLS connection per relay address, opened ahead of demand.
type warmer struct {
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsConf *tls.Config
	timeout time.Duration

	mu     sync.Mutex
	spares map[string]*spare // "host:port" → the connection waiting, or one being opened (conn nil)
}

type spare struct {
	ready chan struct{} // closed when the handshake has ended (conn set, or the spare dropped)
	conn  *tls.Conn
	timer *time.Timer
}

// warm opens a connection to addr in the background unless one is waiting or being opened.
func (w *warmer) warm(addr string) {
	w.mu.Lock()
	if w.spares[addr] != nil {
		w.mu.Unlock()
		return
	}
	s := &spare{ready: make(chan struct{})}
	w.spares[addr] = s
	w.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		defer cancel()
		c, err := w.handshake(ctx, "tcp", addr)
		w.mu.Lock()
		defer w.mu.Unlock()
		defer close(s.ready)
		if err != nil || w.spares[addr] != s {
			delete(w.spares, addr) // the next WebSocket dials as it always did
			if c != nil {
				c.Close()
			}
			return
		}
		s.conn = c
		s.timer = time.AfterFunc(spareTTL, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.spares[addr] == s {
				delete(w.spares, addr)
				c.Close()
			}
		})
	}()
}

// dialTLS is the WebSocket transport's dial: the connection opened ahead for addr if it is still open (waiting
// for its handshake to end if it is under way: it started earlier than a new one would), else a new one.
func (w *warmer) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	w.mu.Lock()
	s := w.spares[addr]
	w.mu.Unlock()
	if s != nil {
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		w.mu.Lock()
		taken := w.spares[addr] == s && s.conn != nil
		if taken {
			delete(w.spares, addr)
			s.timer.Stop()
		}
		w.mu.Unlock()
		if taken {
			if alive(s.conn) {
				return s.conn, nil
			}
			s.conn.Close()
		}
	}
	return w.handshake(ctx, network, addr)
}

func (w *warmer) handshake(ctx context.Context, network, addr string) (*tls.Conn, error) {
	raw, err := w.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := w.tlsConf.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		cfg.ServerName = host
	}
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// alive reports whether the relay has not closed c while it waited: a read that would block times out after a
// millisecond (an expired deadline would fail before looking at the socket). A timed-out read leaves a TLS
// connection usable; any byte or EOF means it is not a fresh connection.
func alive(c *tls.Conn) bool {
	if c.SetReadDeadline(time.Now().Add(time.Millisecond)) != nil {
		return false
	}
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	ok := err != nil && errors.As(err, &ne) && ne.Timeout()
	return ok && c.SetReadDeadline(time.Time{}) == nil
}

// navigationHook is Transport, telling the warmer when a browser starts loading a page and the standby that a
// relay host is in use.
type navigationHook struct {
	*http.Transport
	warm    func(addr string)
	standby *standby
}

func (n *navigationHook) RoundTrip(req *http.Request) (*http.Response, error) {
	n.standby.used(req.URL.Host) // on every request: no address is built for it
	if req.Method == http.MethodGet && isNavigation(req.Header) {
		n.warm(relayAddr(req))
	}
	return n.Transport.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections and the ones kept ready, and keeps none ready afterwards:
// it is the end of the transport's use (a test's, or the process's).
func (n *navigationHook) CloseIdleConnections() {
	n.standby.stop()
	n.Transport.CloseIdleConnections()
	n.standby.close()
}

// isNavigation: browsers mark a page load with Sec-Fetch-Dest: document (Fetch Metadata); older ones, and some
// apps' web views, only by asking for HTML first.
func isNavigation(h http.Header) bool {
	if d := h.Get("Sec-Fetch-Dest"); d != "" {
		return d == "document"
	}
	return strings.HasPrefix(h.Get("Accept"), "text/html")
}

// relayAddr is the address the transport dials for req: host:port, the port from the scheme when absent.
func relayAddr(req *http.Request) string {
	host := req.URL.Host
	if req.URL.Port() != "" {
		return host
	}
	if req.URL.Scheme == "http" {
		return net.JoinHostPort(req.URL.Hostname(), "80")
	}
	return net.JoinHostPort(req.URL.Hostname(), "443")
}

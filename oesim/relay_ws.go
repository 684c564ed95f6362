package oesim

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// wsRelay is one relayed WebSocket: the client's side on the app host and the plugin's side to the printer.
type wsRelay struct {
	client, backend *websocket.Conn
	once            sync.Once
	stopped         chan struct{}
	goingAway       atomic.Bool
}

// stop ends the relay: with 1001 "plugin disconnected" on both sides, or abruptly (no close frame).
func (r *wsRelay) stop(goingAway bool) {
	r.once.Do(func() {
		r.goingAway.Store(goingAway)
		close(r.stopped)
	})
}

// relayWebSocket relays a WebSocket the way the plugin does: the handshake is checked like any request (a 6xx
// instead of 101), the printer is dialed with only X-Api-Key*, Cookie and the subprotocols, the client is
// accepted with the subprotocol the printer chose, and text, binary and close frames (code and reason) pass both
// ways. Messages stream frame by frame, so their size is bounded only by the read limit (256 MiB).
func (s *Sim) relayWebSocket(w http.ResponseWriter, r *http.Request, c *Connection, rec *Request, drop bool) {
	if drop {
		abortResponse(w) // FaultDrop on a handshake: the TCP connection closes with no answer
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	target := c.printer.target(r.URL.Path)
	u := url.URL{Scheme: "ws", Host: target.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	backend, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: s.backend},
		HTTPHeader:      pluginWebSocketHeader(r.Header),
		Subprotocols:    subprotocols(r.Header),
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			// The printer refused the upgrade (401, 404, ...): pass its answer on so the client learns why.
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			if ct := resp.Header.Get("Content-Type"); ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			c.setStatus(rec, resp.StatusCode)
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(body)
			return
		}
		s.log.Debug("relay: printer WebSocket unreachable", zap.String("printer", c.printer.Name), zap.Error(err))
		c.setStatus(rec, http.StatusBadGateway)
		http.Error(w, "oesim: the printer's WebSocket did not answer the plugin", http.StatusBadGateway)
		return
	}
	backend.SetReadLimit(websocketReadLimit)

	opts := &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled}
	if p := backend.Subprotocol(); p != "" {
		opts.Subprotocols = []string{p}
	}
	if s.opts.IgnoreWebSocketPings {
		opts.OnPingReceived = func(context.Context, []byte) bool { return false }
	}
	// Registered before the 101 goes out: a client that saw the 101 may at once expect DropWebSockets to reach
	// this socket (a stop before the pumps start is seen by the select below).
	relay := &wsRelay{backend: backend, stopped: make(chan struct{})}
	c.mu.Lock()
	c.sockets[relay] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.sockets, relay)
		c.mu.Unlock()
	}()
	client, err := websocket.Accept(&gatedWriter{ResponseWriter: w, silence: c.silence}, r, opts)
	if err != nil {
		_ = backend.CloseNow()
		c.setStatus(rec, http.StatusBadRequest) // Accept already answered the bad handshake
		return
	}
	client.SetReadLimit(websocketReadLimit)
	c.setStatus(rec, http.StatusSwitchingProtocols)
	relay.client = client

	done := make(chan struct{}, 2)
	go func() { pumpWebSocket(ctx, client, backend); done <- struct{}{} }()
	go func() { pumpWebSocket(ctx, backend, client); done <- struct{}{} }()
	pending := 2
	select {
	case <-done:
		pending--
	case <-relay.stopped:
		if relay.goingAway.Load() {
			var wg sync.WaitGroup
			for _, conn := range []*websocket.Conn{client, backend} {
				wg.Add(1)
				go func() { defer wg.Done(); _ = conn.Close(websocket.StatusGoingAway, "plugin disconnected") }()
			}
			wg.Wait()
		}
	}
	_ = client.CloseNow()
	_ = backend.CloseNow()
	for ; pending > 0; pending-- {
		<-done
	}
}

// pumpWebSocket copies messages from src to dst until src ends, then passes src's close code and reason to dst
// (or closes dst abruptly when src died without a close frame).
func pumpWebSocket(ctx context.Context, src, dst *websocket.Conn) {
	for {
		typ, rd, err := src.Reader(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				_ = dst.Close(ce.Code, ce.Reason)
			} else {
				_ = dst.CloseNow()
			}
			return
		}
		wr, err := dst.Writer(ctx, typ)
		if err != nil {
			_ = src.CloseNow()
			return
		}
		if _, err := io.Copy(wr, rd); err != nil {
			_ = wr.Close()
			_ = src.CloseNow()
			_ = dst.CloseNow()
			return
		}
		if err := wr.Close(); err != nil {
			_ = src.CloseNow()
			return
		}
	}
}

func subprotocols(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// gatedWriter hands coder/websocket a connection whose reads pause while the connection is silenced
// (SetSilentWebSockets): the relay then reads nothing, so pings go unanswered and frames pile up in TCP buffers.
type gatedWriter struct {
	http.ResponseWriter
	silence func() (bool, <-chan struct{})
}

func (g *gatedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(g.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &gatedConn{Conn: conn, silence: g.silence, closed: make(chan struct{})}, brw, nil
}

type gatedConn struct {
	net.Conn
	silence   func() (bool, <-chan struct{})
	closed    chan struct{}
	closeOnce sync.Once
	held      []byte // bytes that arrived while silence began: delivered only once the relay listens again
}

// Read blocks while the connection is silenced. coder/websocket has one reader at a time, so held needs no lock.
func (g *gatedConn) Read(p []byte) (int, error) {
	for {
		silent, changed := g.silence()
		if silent {
			select {
			case <-changed:
				continue
			case <-g.closed:
				return 0, net.ErrClosed
			}
		}
		if len(g.held) > 0 {
			n := copy(p, g.held)
			g.held = g.held[n:]
			return n, nil
		}
		// A read already waiting must not deliver (say) a ping that arrives after silence began: interrupt it
		// with a deadline when the state changes, hold whatever it got, and look again.
		stop, watcherDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watcherDone)
			select {
			case <-changed:
				_ = g.Conn.SetReadDeadline(time.Now())
			case <-stop:
			}
		}()
		n, err := g.Conn.Read(p)
		close(stop)
		<-watcherDone
		select {
		case <-changed:
			_ = g.Conn.SetReadDeadline(time.Time{})
			g.held = append(g.held, p[:n]...)
			var ne net.Error
			if n == 0 && err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				return 0, err
			}
		default:
			return n, err
		}
	}
}

func (g *gatedConn) Close() error {
	g.closeOnce.Do(func() { close(g.closed) })
	return g.Conn.Close()
}

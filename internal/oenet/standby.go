package oenet

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"time"
)

// standbyWindow is how long after a request to a relay host oeproxy keeps a connection to it ready. The relay
// closes idle connections (oesim after 2 minutes; OctoEverywhere's timeout is not documented), and a request
// that finds none pays a TCP and a TLS handshake before its own round trip: three round trips instead of one,
// half a second on a 150 ms link. A user who just used the printer is likely to come back within minutes (a
// slicer's next upload, a glance at the webcam), so for this long after the last request, when the relay has
// closed the last connection, one new connection is opened and kept. After the window nothing is reopened.
const standbyWindow = 10 * time.Minute

// standby counts the request transport's connections to each relay host and keeps one open while the host was
// used within the window. It is the transport's DialTLSContext: a dial takes the connection kept ready, if the
// relay has not closed it meanwhile, before opening a new one.
type standby struct {
	handshake func(ctx context.Context, network, addr string) (*tls.Conn, error)
	timeout   time.Duration
	window    time.Duration
	now       func() time.Time

	mu     sync.Mutex
	hosts  map[string]*relayHost
	closed bool
	wg     sync.WaitGroup
}

type relayHost struct {
	live    int // connections open: the transport's and the one kept ready
	lastUse time.Time
	opening bool
	ready   *readyConn // kept ready, not yet used
}

// readyConn is a connection kept ready and the goroutine that watches it: its read returns when the relay
// closes it, or when a dial takes it (take sets an expired read deadline to end the read).
type readyConn struct {
	conn   *tls.Conn
	taken  chan struct{}
	usable chan bool // the watch's verdict once it ends: true when taken and still open
}

func newStandby(handshake func(ctx context.Context, network, addr string) (*tls.Conn, error), timeout time.Duration) *standby {
	return &standby{handshake: handshake, timeout: timeout, window: standbyWindow, now: time.Now, hosts: map[string]*relayHost{}}
}

// host is the state of a relay host, named by the address the transport dials ("host:443") or by a request URL's
// host ("host", or "host:443"): both name the same entry, so that a request needs no address built for it.
func (s *standby) host(addr string) *relayHost {
	key := strings.TrimSuffix(addr, ":443")
	h := s.hosts[key]
	if h == nil {
		h = &relayHost{}
		s.hosts[key] = h
	}
	return h
}

// used notes a request to host (its URL's host): the window starts again.
func (s *standby) used(host string) {
	s.mu.Lock()
	s.host(host).lastUse = s.now()
	s.mu.Unlock()
}

// dialTLS hands out the connection kept ready for addr when the relay has not closed it, else a new one.
func (s *standby) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	h := s.host(addr)
	r := h.ready
	h.ready = nil
	s.mu.Unlock()
	if r != nil {
		close(r.taken)
		_ = r.conn.SetReadDeadline(time.Now())
		if <-r.usable {
			return s.counted(addr, r.conn), nil // counted when it was opened
		}
	}
	c, err := s.handshake(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.host(addr).live++
	s.mu.Unlock()
	return s.counted(addr, c), nil
}

// counted wraps c so that its end (the relay closed it, or the transport did) is counted once.
func (s *standby) counted(addr string, c *tls.Conn) net.Conn {
	rc := &relayConn{Conn: c}
	rc.gone = func() { s.gone(addr) }
	return rc
}

// gone counts a connection's end and, when it was the last one and addr was used within the window, opens the
// next one to keep ready.
func (s *standby) gone(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.host(addr)
	h.live--
	if s.closed || h.live > 0 || h.opening || h.ready != nil || s.now().Sub(h.lastUse) >= s.window {
		return
	}
	h.opening = true
	s.wg.Add(1)
	go s.open(addr)
}

func (s *standby) open(addr string) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	c, err := s.handshake(ctx, "tcp", addr)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.host(addr)
	h.opening = false
	if err != nil {
		return // the next request dials as it always did
	}
	if s.closed || h.ready != nil {
		c.Close()
		return
	}
	h.live++
	r := &readyConn{conn: c, taken: make(chan struct{}), usable: make(chan bool, 1)}
	h.ready = r
	s.wg.Add(1)
	go s.watch(addr, r)
}

// watch blocks on a read of the connection kept ready. The relay sends nothing unasked, so the read ends only
// when the relay closes the connection (then it is counted gone, which may open the next) or when a dial takes
// it (an expired deadline: the connection stays usable for TLS, as alive explains).
func (s *standby) watch(addr string, r *readyConn) {
	defer s.wg.Done()
	var b [1]byte
	_, err := r.conn.Read(b[:])
	var ne net.Error
	select {
	case <-r.taken:
		if err != nil && errors.As(err, &ne) && ne.Timeout() && r.conn.SetReadDeadline(time.Time{}) == nil {
			r.usable <- true
			return
		}
	default:
	}
	r.conn.Close()
	s.mu.Lock()
	h := s.host(addr)
	if h.ready == r {
		h.ready = nil
	}
	s.mu.Unlock()
	r.usable <- false
	s.gone(addr)
}

// stop keeps anything from being opened from now on.
func (s *standby) stop() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// close stops, ends the connections kept ready and waits for their watches.
func (s *standby) close() {
	s.mu.Lock()
	s.closed = true
	var ready []*readyConn
	for _, h := range s.hosts {
		if h.ready != nil {
			ready = append(ready, h.ready)
		}
	}
	s.mu.Unlock()
	for _, r := range ready {
		r.conn.Close()
	}
	s.wg.Wait()
}

// relayConn is a transport connection whose end is reported once, whether the relay ended it (a read fails)
// or the transport closed it.
type relayConn struct {
	*tls.Conn
	once sync.Once
	gone func()
}

func (c *relayConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		c.once.Do(c.gone)
	}
	return n, err
}

func (c *relayConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.gone)
	return err
}

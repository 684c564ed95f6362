package daemon

import (
	"net"
	"sync"

	"go.uber.org/zap"
)

// fdReserve is how many file descriptors the printer listeners leave for everything else: the control socket,
// the admin listener and its clients, the store, the log, health checks to the App API.
const fdReserve = 128

// connBudget is how many client connections all printer listeners may hold together: each can hold a relay
// connection as well, so two descriptors per connection out of what the reserve leaves. Without it, one port
// flooded with connections under a low FD limit left none for the other printers, the admin page or the control
// socket. 0: no limit known.
func connBudget(fdLimit uint64) int {
	if fdLimit == 0 {
		return 0
	}
	if fdLimit <= 2*fdReserve {
		return max(int(fdLimit/4), 8)
	}
	return int(min((fdLimit-fdReserve)/2, 1<<20))
}

// newConnBudget is the shared budget of every printer listener of this process (nil: no limit).
func newConnBudget(log *zap.Logger) chan struct{} {
	lim := fdLimit()
	n := connBudget(lim)
	if n == 0 {
		return nil
	}
	log.Debug("printer connections budget", zap.Uint64("fd_limit", lim), zap.Int("connections", n))
	return make(chan struct{}, n)
}

// limitListener accepts at most cap(own) connections at once, and takes a slot of the shared budget for each:
// beyond either, Accept waits (new clients wait in the kernel's backlog) until a connection closes, as
// golang.org/x/net/netutil.LimitListener does.
type limitListener struct {
	net.Listener
	own, shared chan struct{} // shared may be nil
	done        chan struct{}
	closeOnce   sync.Once
}

func newLimitListener(l net.Listener, n int, shared chan struct{}) net.Listener {
	if n <= 0 && shared == nil {
		return l
	}
	ll := &limitListener{Listener: l, shared: shared, done: make(chan struct{})}
	if n > 0 {
		ll.own = make(chan struct{}, n)
	}
	return ll
}

func (l *limitListener) acquire() bool {
	if l.own != nil {
		select {
		case l.own <- struct{}{}:
		case <-l.done:
			return false
		}
	}
	if l.shared != nil {
		select {
		case l.shared <- struct{}{}:
		case <-l.done:
			l.releaseOwn()
			return false
		}
	}
	return true
}

func (l *limitListener) releaseOwn() {
	if l.own != nil {
		<-l.own
	}
}

func (l *limitListener) release() {
	if l.shared != nil {
		<-l.shared
	}
	l.releaseOwn()
}

func (l *limitListener) Accept() (net.Conn, error) {
	if !l.acquire() {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	return &limitConn{Conn: c, release: l.release}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// limitConn gives its slots back once, however often it is closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

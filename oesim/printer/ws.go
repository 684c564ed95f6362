package printer

import (
	"context"
	"time"

	"github.com/coder/websocket"
)

// writeTimeout bounds one WebSocket write, so a client that stops reading cannot hold a
// handler (and Close) forever.
const writeTimeout = 10 * time.Second

// wsSession is the common shape of the printers' WebSockets: a reader goroutine owned by the
// handler and a push loop in the handler itself.
type wsSession struct {
	c        *websocket.Conn
	peerGone chan struct{} // closed when the reader stops (client closed, or the conn broke)
}

// startReader reads every client message and passes it to onMessage (which may be nil, to
// discard). The reader runs on its own context so that a server-side shutdown can still
// complete the close handshake; stop waits for it.
func startReader(c *websocket.Conn, onMessage func(*wsSession, websocket.MessageType, []byte)) (s *wsSession, stop func()) {
	s = &wsSession{c: c, peerGone: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(s.peerGone)
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if onMessage != nil {
				onMessage(s, typ, b)
			}
		}
	}()
	return s, func() { cancel(); _ = c.CloseNow(); <-s.peerGone }
}

// write sends one text message. It deliberately ignores the handler's life context: coder/websocket closes the
// connection outright when a write's context is cancelled, which would turn a clean shutdown (1001) into an
// abrupt EOF whenever Close lands during a push. Shutdown is signalled by the push loops instead.
func (s *wsSession) write(_ context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return s.c.Write(ctx, websocket.MessageText, b)
}

// shutdown closes the socket with 1001 when the printer is closing, as a server going away does.
func (s *wsSession) shutdown() {
	_ = s.c.Close(websocket.StatusGoingAway, "printer shutting down")
}

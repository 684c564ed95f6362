package printer

import (
	"context"
	"sync"
)

// life tracks the long-lived handlers (streams, WebSockets) of one printer so that Close can
// end them and wait for them: tests run goleak, and oesim must be able to stop cleanly.
type life struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newLife() *life {
	ctx, cancel := context.WithCancel(context.Background())
	return &life{ctx: ctx, cancel: cancel}
}

// begin registers a long-lived handler. The returned context ends when the request's does or
// when close is called; done must be called when the handler returns. ok is false after close.
func (l *life) begin(parent context.Context) (ctx context.Context, done func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, false
	}
	l.wg.Add(1)
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(l.ctx, cancel)
	return ctx, func() { stop(); cancel(); l.wg.Done() }, true
}

// close ends every registered handler and waits until they have returned.
func (l *life) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
}

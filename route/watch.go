package route

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Watcher tells routers that the machine's network changed: an address came or went, or the default route
// moved (on Linux from netlink events, elsewhere by polling the interface addresses). One Watcher serves every
// printer; each Router gets its own channel from Subscribe.
type Watcher struct {
	log    *zap.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	subs []chan struct{}
}

// pollInterval is how often the addresses are compared where there are no events (and, on Linux, how long a
// netlink subscription waits before it is renewed, which is also when missed changes are caught).
// Short, since Close waits for it: a netlink renewal is two sockets and an address dump, cheap at this rate.
const pollInterval = 500 * time.Millisecond

// Watch starts watching until ctx ends or Close.
func Watch(ctx context.Context, log *zap.Logger) *Watcher {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{log: log, cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.watch(ctx) // per platform: watch_linux.go, watch_other.go
	}()
	return w
}

// Subscribe returns a channel that receives a value after each change (coalesced: a reader that is busy sees one
// value for a burst of changes, which is what a re-check needs).
func (w *Watcher) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.subs = append(w.subs, ch)
	w.mu.Unlock()
	return ch
}

// Close stops watching and waits for it to end.
func (w *Watcher) Close() {
	w.cancel()
	w.wg.Wait()
}

func (w *Watcher) notify(what string) {
	w.log.Debug("network changed", zap.String("what", what))
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// addrFingerprint lists the machine's non-loopback addresses; two differing fingerprints are a change.
func addrFingerprint() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsLoopback() {
			continue
		}
		out = append(out, a.String())
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// poll compares the address fingerprint every interval.
func (w *Watcher) poll(ctx context.Context, interval time.Duration) {
	prev := addrFingerprint()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if cur := addrFingerprint(); cur != prev {
			prev = cur
			w.notify("addresses")
		}
	}
}

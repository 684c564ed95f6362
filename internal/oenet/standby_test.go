package oenet

import (
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/internal/testutil"
)

// After the relay closes the last connection of a host used within the window, one connection is opened and
// kept, and the next request takes it instead of dialling; after the window nothing is reopened.
func TestStandbyKeepsOneConnectionReady(t *testing.T) {
	r := newRelay(t, 0)
	tr, _ := r.options(0).RelayTransports()
	hook := tr.(*navigationHook)
	defer hook.CloseIdleConnections()
	sb := hook.standby
	state := func() (live int, ready, opening bool) {
		sb.mu.Lock()
		defer sb.mu.Unlock()
		for _, h := range sb.hosts {
			return h.live, h.ready != nil, h.opening
		}
		return 0, false, false
	}

	roundTrip(t, tr, "")
	if n := r.nb.Load(); n != 1 {
		t.Fatalf("%d connections after one request, want 1", n)
	}
	// The relay's idle timeout: it closes the connection; one is opened to be ready.
	r.srv.CloseClientConnections()
	testutil.WaitFor(t, "a connection kept ready", func() bool { _, ready, _ := state(); return ready })
	if n := r.nb.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the first, then the one kept ready)", n)
	}
	roundTrip(t, tr, "")
	if n := r.nb.Load(); n != 2 {
		t.Errorf("the request dialled (%d connections) instead of taking the one kept ready", n)
	}
	if live, ready, _ := state(); live != 1 || ready {
		t.Errorf("after taking it: %d live, ready %v; want 1 live, none ready", live, ready)
	}

	// Once the window has passed since the last request, a closed connection is not replaced.
	sb.mu.Lock()
	sb.now = func() time.Time { return time.Now().Add(standbyWindow + time.Minute) }
	sb.mu.Unlock()
	r.srv.CloseClientConnections()
	testutil.WaitFor(t, "the relay's connections closed and counted", func() bool {
		live, _, _ := state()
		return live == 0 && r.open.Load() == 0
	})
	if _, ready, opening := state(); ready || opening {
		t.Errorf("a connection was reopened after the window (ready %v, opening %v)", ready, opening)
	}
	if n := r.nb.Load(); n != 2 {
		t.Errorf("%d connections, want still 2", n)
	}
}

// A connection kept ready that the relay closed is not handed out: the watch notices and, within the window,
// opens the next, which the request then takes.
func TestStandbyDropsAReadyConnectionTheRelayClosed(t *testing.T) {
	r := newRelay(t, 0)
	tr, _ := r.options(0).RelayTransports()
	hook := tr.(*navigationHook)
	defer hook.CloseIdleConnections()
	sb := hook.standby
	ready := func() *readyConn {
		sb.mu.Lock()
		defer sb.mu.Unlock()
		for _, h := range sb.hosts {
			return h.ready
		}
		return nil
	}
	roundTrip(t, tr, "")
	r.srv.CloseClientConnections()
	testutil.WaitFor(t, "a connection kept ready", func() bool { return ready() != nil })
	first := ready()
	r.srv.CloseClientConnections()
	testutil.WaitFor(t, "the next connection kept ready", func() bool { c := ready(); return c != nil && c != first })
	if n := r.nb.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
	roundTrip(t, tr, "")
	if n := r.nb.Load(); n != 3 {
		t.Errorf("%d connections, want 3: the request takes the live one", n)
	}
}

package daemon

import (
	"net"
	"testing"
	"time"
)

func TestConnBudget(t *testing.T) {
	for lim, want := range map[uint64]int{0: 0, 64: 16, 256: 64, 1024: 448, 4096: 1984, 1 << 30: 1 << 20} {
		if got := connBudget(lim); got != want {
			t.Errorf("connBudget(%d) = %d, want %d", lim, got, want)
		}
	}
}

// The shared budget holds across listeners: with one slot, a second listener's connection waits until the first
// closes; Close ends an Accept that waits for a slot.
func TestLimitListenerSharedBudget(t *testing.T) {
	shared := make(chan struct{}, 1)
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return newLimitListener(l, 8, shared)
	}
	a, b := listen(), listen()
	defer a.Close()
	ca, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	sa, err := a.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cb, err := net.Dial("tcp", b.Addr().String()) // waits in b's backlog
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := b.Accept()
		if err != nil {
			close(got)
			return
		}
		got <- c
	}()
	select {
	case <-got:
		t.Fatal("b accepted beyond the shared budget")
	case <-time.After(200 * time.Millisecond):
	}
	sa.Close()
	sa.Close() // twice: the slot is given back once
	select {
	case c, ok := <-got:
		if !ok {
			t.Fatal("Accept failed")
		}
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("b never accepted after a's connection closed")
	}
	if len(shared) != 0 {
		t.Errorf("%d slots still taken", len(shared))
	}
	// Close ends an Accept waiting for a slot.
	shared <- struct{}{}
	done := make(chan error, 1)
	go func() { _, err := b.Accept(); done <- err }()
	b.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Accept after Close returned a connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a waiting Accept")
	}
}

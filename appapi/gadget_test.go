package appapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestGadgetInterval(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, wrap(`{"State":2,"Status":"","StatusColor":"w","Rating":0}`))
	})
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := f.client(Options{Now: clock.Now}) // default 10 s interval
	ctx := context.Background()

	if _, err := c.GadgetStatus(ctx, "conn-a", testToken); err != nil {
		t.Fatal(err)
	}
	clock.Add(4 * time.Second)
	_, err := c.GadgetStatus(ctx, "conn-a", testToken)
	var rl *RateLimitError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) || rl.Server || rl.Wait != 6*time.Second {
		t.Fatalf("second call within 10 s: %v (%+v)", err, rl)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("the held-back call was sent (%d requests)", n)
	}
	if _, err := c.GadgetStatus(ctx, "conn-b", testToken); err != nil {
		t.Fatalf("another connection is limited separately: %v", err)
	}
	clock.Add(6 * time.Second)
	if _, err := c.GadgetStatus(ctx, "conn-a", testToken); err != nil {
		t.Fatalf("after 10 s: %v", err)
	}
	// The empty key falls back to the token.
	if _, err := c.GadgetStatus(ctx, "", "other-token"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GadgetStatus(ctx, "", "other-token"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("same token twice: %v", err)
	}
	if n := len(f.requests()); n != 4 {
		t.Fatalf("%d requests sent, want 4", n)
	}
}

func TestGadgetIntervalConcurrent(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{"State":2}`) })
	c := f.client(Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := c.GadgetStatus(context.Background(), "same", testToken)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrRateLimited) {
			t.Error(err)
		}
	}
	if ok != 1 || len(f.requests()) != 1 {
		t.Fatalf("%d calls went through (%d sent), want exactly 1", ok, len(f.requests()))
	}
}

func TestGadgetServer429(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "7")
		reply(w, 429, `{"Status":429,"Error":"slow down","Result":null}`)
	})
	_, err := f.client(Options{MinGadgetInterval: -1}).GadgetStatus(context.Background(), "k", testToken)
	var rl *RateLimitError
	if !errors.As(err, &rl) || !rl.Server || rl.Wait != 7*time.Second {
		t.Fatalf("err %v (%+v)", err, rl)
	}
}

func TestGadgetNames(t *testing.T) {
	states := map[GadgetState]string{0: "Disabled", 1: "DisabledForCurrentPrint", 2: "Idle", 3: "Active", 4: "PausedDueToFailure", 9: "GadgetState(9)", -1: "GadgetState(-1)"}
	for s, want := range states {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), want)
		}
		var back GadgetState
		if err := back.UnmarshalText([]byte(want)); err != nil || back != s {
			t.Errorf("UnmarshalText(%q) = %d, %v", want, back, err)
		}
	}
	colors := map[StatusColor]string{"g": "green", "y": "yellow", "r": "red", "w": "white", "G": "green", "x": "x", "": ""}
	for c, want := range colors {
		if c.String() != want {
			t.Errorf("%q.String() = %q, want %q", string(c), c.String(), want)
		}
	}
	ratings := map[Rating]string{0: "no rating", 1: "failure", 2: "probable failure", 3: "possible failure",
		4: "monitoring a possible failure", 5: "monitoring a possible failure", 6: "looking good", 7: "looking good",
		8: "great", 9: "great", 10: "perfect", 11: "Rating(11)"}
	for r, want := range ratings {
		if r.String() != want {
			t.Errorf("Rating(%d).String() = %q, want %q", int(r), r.String(), want)
		}
	}
}

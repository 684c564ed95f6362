package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/oesim"
)

// TestStatusAsksPrintersConcurrently: without a daemon, status asks OctoEverywhere about every printer at once
// (bounded), so an unreachable OctoEverywhere costs one timeout, not one per printer. The fake App API holds
// each request until as many as the bound are in flight (or a generous time passed), then fails them.
func TestStatusAsksPrintersConcurrently(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	const printers = 2*statusConcurrency + 1
	for i := range printers {
		e.Add(t, fmt.Sprintf("p%d", i), nil)
	}
	var (
		mu             sync.Mutex
		inFlight, most int
		full           = make(chan struct{})
		fullOnce       sync.Once
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight >= statusConcurrency {
			fullOnce.Do(func() { close(full) })
		}
		mu.Unlock()
		select {
		case <-full:
		case <-time.After(5 * time.Second): // only reached when requests come one at a time
		case <-r.Context().Done():
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	api, err := appapi.New(appapi.Options{BaseURL: srv.URL, RetryBase: time.Millisecond, RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	p := &Printers{Store: e.Store, API: api, RelayDomain: e.Sim.Domain}
	start := time.Now()
	st, err := p.Status(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d printers with OctoEverywhere failing took %v; at most %d asked at once", printers, time.Since(start), most)
	if len(st) != printers {
		t.Fatalf("%d statuses, want %d", len(st), printers)
	}
	for i, s := range st {
		if want := fmt.Sprintf("p%d", i); s.Name != want { // the store's order (by name) is kept
			t.Errorf("status %d is %s, want %s", i, s.Name, want)
		}
		if s.State != health.StateUnknown {
			t.Errorf("%s: state %s, want unknown", s.Name, s.State)
		}
	}
	if most < 2 || most > statusConcurrency {
		t.Errorf("at most %d requests in flight; want between 2 and %d", most, statusConcurrency)
	}
}

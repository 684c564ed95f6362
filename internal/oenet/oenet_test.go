package oenet

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// relay is a TLS server that counts the connections open at once, answering each request after hold.
type relay struct {
	srv            *httptest.Server
	open, peak, nb atomic.Int64
	hosts          sync.Map // SNI names seen
}

func newRelay(t *testing.T, hold time.Duration) *relay {
	t.Helper()
	r := &relay{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hosts.Store(req.TLS.ServerName, true)
		time.Sleep(hold)
		_, _ = io.WriteString(w, "ok")
	}))
	r.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			r.nb.Add(1)
			n := r.open.Add(1)
			for p := r.peak.Load(); n > p && !r.peak.CompareAndSwap(p, n); p = r.peak.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			r.open.Add(-1)
		}
	}
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *relay) options(maxConns int) Options {
	pool := x509.NewCertPool()
	pool.AddCert(r.srv.Certificate())
	return Options{ConnectTo: r.srv.Listener.Addr().String(), RootCAs: pool, MaxConnsPerHost: maxConns}
}

// get runs n GETs at once and fails on any error or unexpected body.
func get(t *testing.T, tr http.RoundTripper, url string, n int) {
	t.Helper()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(url)
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != "ok" {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed: %v", err)
	}
}

// The httptest certificate is for example.com: the request names that host (SNI and verification), while the
// connection goes to ConnectTo.
const relayURL = "https://example.com/"

func TestConnectToKeepsSNI(t *testing.T) {
	r := newRelay(t, 0)
	tr := r.options(0).Transport()
	defer tr.CloseIdleConnections()
	get(t, tr, relayURL, 1)
	if _, ok := r.hosts.Load("example.com"); !ok {
		t.Errorf("SNI was not the URL's host")
	}
}

func TestMaxConnsPerHostQueuesRequests(t *testing.T) {
	for _, tc := range []struct {
		cap, requests int
		wantMax       int64 // most connections open at once
	}{
		{cap: 2, requests: 20, wantMax: 2},
		{cap: 8, requests: 40, wantMax: 8},
		{cap: 0, requests: 20, wantMax: 20}, // no cap: one connection per concurrent request
	} {
		// Each answer is held long enough that every request of the batch is in flight at once, even on a loaded
		// machine: the uncapped case must see one connection per request.
		r := newRelay(t, 300*time.Millisecond)
		tr := r.options(tc.cap).Transport()
		get(t, tr, relayURL, tc.requests)
		tr.CloseIdleConnections()
		if got := r.peak.Load(); got != tc.wantMax {
			t.Errorf("cap %d, %d requests at once: %d connections open at once, want %d", tc.cap, tc.requests, got, tc.wantMax)
		}
		if tc.cap > 0 && tr.MaxIdleConnsPerHost > tc.cap {
			t.Errorf("cap %d keeps %d idle: more idle than can ever be open", tc.cap, tr.MaxIdleConnsPerHost)
		}
	}
}

// A WebSocket-like upgrade holds its connection; on the WebSocket transport it does not count against the cap.
func TestWebSocketTransportIgnoresCap(t *testing.T) {
	r := newRelay(t, 0)
	upgrades := make(chan struct{})
	r.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Upgrade") == "" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		<-upgrades
	})
	o := r.options(1)
	tr, wst := o.Transport(), o.WebSocketTransport()
	defer tr.CloseIdleConnections()
	defer wst.CloseIdleConnections()
	if wst.MaxConnsPerHost != 0 {
		t.Errorf("WebSocket transport capped at %d", wst.MaxConnsPerHost)
	}
	var bodies []io.Closer
	for range 3 {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, relayURL, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "test")
		resp, err := wst.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		bodies = append(bodies, resp.Body)
	}
	// Three upgraded connections are open; the capped transport still has its one connection for requests.
	get(t, tr, relayURL, 3)
	close(upgrades)
	for _, b := range bodies {
		b.Close()
	}
}

func TestLoadRoots(t *testing.T) {
	if _, err := LoadRoots(""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err := LoadRoots(dir + "/missing.pem")
	if err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("missing file: %v", err)
	}
}

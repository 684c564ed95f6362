package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// gateFunc is a Gate made of a function.
type gateFunc func(*http.Request) *Refusal

func (f gateFunc) Admit(r *http.Request) *Refusal { return f(r) }

// uploadLimitGate refuses bodies over limit the way the daemon's gate does; relink makes it refuse everything.
func uploadLimitGate(limit int64, relink *atomic.Bool) Gate {
	return gateFunc(func(r *http.Request) *Refusal {
		if relink != nil && relink.Load() {
			return &Refusal{Status: 604, Code: 604, Meaning: "revoked", Action: "oeproxy remove mk4 && oeproxy connect --name mk4"}
		}
		if r.ContentLength > limit {
			return &Refusal{Status: http.StatusRequestEntityTooLarge, Code: 608, Meaning: "over the upload limit"}
		}
		return nil
	})
}

func TestGateUnit(t *testing.T) {
	var relink atomic.Bool
	rr := &recordingRelay{}
	var codes, done atomic.Int32
	h, _ := newUnitHandler(t, rr, func(o *Options) {
		o.Gate = uploadLimitGate(10, &relink)
		o.Hooks = Hooks{RelayCode: func(int) { codes.Add(1) }, RequestDone: func(RequestStats) { done.Add(1) }}
	})

	cases := []struct {
		name        string
		body        string
		relink      bool
		accept      string
		status      int
		code        string
		relayed     bool
		contentType string
	}{
		{"small upload passes", "0123456789", false, "", 200, "", true, ""},
		{"upload over the limit", "0123456789A", false, "", 413, "608", false, "application/json"},
		{"html for browsers", "0123456789A", false, "text/html", 413, "608", false, "text/html; charset=utf-8"},
		{"needs re-link refuses a GET", "", true, "", 604, "604", false, "application/json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			relink.Store(c.relink)
			rr.mu.Lock()
			before := len(rr.reqs)
			rr.mu.Unlock()
			method := http.MethodGet
			var body io.Reader
			if c.body != "" {
				method, body = http.MethodPost, strings.NewReader(c.body)
			}
			r := httptest.NewRequest(method, "http://127.0.0.1:5001/api/files/local", body)
			if c.accept != "" {
				r.Header.Set("Accept", c.accept)
			}
			w := serve(h, r)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			rr.mu.Lock()
			relayed := len(rr.reqs) > before
			rr.mu.Unlock()
			if relayed != c.relayed {
				t.Fatalf("relayed=%v, want %v", relayed, c.relayed)
			}
			if c.relayed {
				return
			}
			if got := w.Header().Get(ErrorHeader); got != c.code {
				t.Errorf("%s = %q, want %q", ErrorHeader, got, c.code)
			}
			if w.Header().Get(GateHeader) != "refused" {
				t.Errorf("no %s header", GateHeader)
			}
			if got := w.Header().Get("Content-Type"); got != c.contentType {
				t.Errorf("Content-Type %q, want %q", got, c.contentType)
			}
			if c.contentType == "application/json" {
				var e explanation
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code == 0 || e.Meaning == "" {
					t.Errorf("body %q is not an explanation: %v", w.Body, err)
				}
			}
		})
	}
	if codes.Load() != 0 {
		t.Errorf("RelayCode called %d times for refusals that never reached the relay", codes.Load())
	}
	if done.Load() != 1 {
		t.Errorf("RequestDone called %d times, want 1 (the relayed request only)", done.Load())
	}
}

// TestGateSim proves that a refused request never reaches the (simulated) relay: not an upload over the limit, not
// any request of a printer that needs re-linking, WebSocket handshakes included.
func TestGateSim(t *testing.T) {
	var relink atomic.Bool
	e := startSim(t, nil, func(o *Options, _ *Printer) { o.Gate = uploadLimitGate(1000, &relink) })

	resp, err := http.Post(e.url("/api/files/local"), "application/octet-stream", strings.NewReader(strings.Repeat("x", 1001)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "608") {
		t.Fatalf("upload over the limit: %d %s", resp.StatusCode, body)
	}
	if n := len(e.conn.Requests()); n != 0 {
		t.Fatalf("the relay received %d request(s) for a refused upload", n)
	}

	relink.Store(true)
	for _, path := range []string{"/api/version", "/sockjs/websocket"} {
		req, _ := http.NewRequest(http.MethodGet, e.url(path), nil)
		if path == "/sockjs/websocket" {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 604 || !strings.Contains(string(b), "oeproxy connect --name mk4") {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	if n := len(e.conn.Requests()); n != 0 {
		t.Fatalf("the relay received %d request(s) while the gate refused everything", n)
	}

	relink.Store(false)
	status, _ := getStatus(t, e.url("/api/version"))
	if status != http.StatusOK || len(e.conn.Requests()) != 1 {
		t.Fatalf("after the gate opened: status %d, relay saw %d request(s)", status, len(e.conn.Requests()))
	}
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHostAllowed(t *testing.T) {
	rr := &recordingRelay{}
	h, _ := newUnitHandler(t, rr, func(o *Options) {
		o.ListenAddr = "192.168.1.10:5001"
		o.AllowedHosts = []string{"printer.lan", "octopi.local:5001"}
	})
	tests := map[string]bool{
		"localhost":               true,
		"localhost:5001":          true,
		"LOCALHOST:5001":          true,
		"mk4.localhost:5001":      true,
		"127.0.0.1:5001":          true,
		"127.5.6.7":               true,
		"[::1]:5001":              true,
		"::1":                     true,
		"192.168.1.10:5001":       true,
		"192.168.1.10:5002":       false,
		"printer.lan:9999":        true,
		"octopi.local:5001":       true,
		"octopi.local:5002":       false,
		"attacker.example:5001":   false,
		"localhost.attacker.com":  false,
		"127.0.0.1.nip.io:5001":   false,
		"":                        false,
		"2130706433:5001":         false,
		"[::ffff:7f00:1]:5001":    true,
		"0.0.0.0:5001":            false,
		"evil.com@localhost:5001": false,
	}
	for host, want := range tests {
		if got := h.hostAllowed(host); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestLocalAttacks sends what a hostile web page could make a browser send, and checks none reaches the relay.
func TestLocalAttacks(t *testing.T) {
	tests := []struct {
		name   string
		method string
		host   string
		header http.Header
		want   int
	}{
		{"DNS rebinding GET", "GET", "rebind.attacker.example:5001", nil, http.StatusMisdirectedRequest},
		{"DNS rebinding POST", "POST", "rebind.attacker.example:5001", http.Header{"Origin": {"http://rebind.attacker.example:5001"}}, http.StatusMisdirectedRequest},
		{"cross-site POST", "POST", "127.0.0.1:5001", http.Header{"Origin": {"https://attacker.example"}}, http.StatusForbidden},
		{"another local port", "POST", "127.0.0.1:5001", http.Header{"Origin": {"http://127.0.0.1:8080"}}, http.StatusForbidden},
		{"null origin POST", "DELETE", "localhost:5001", http.Header{"Origin": {"null"}}, http.StatusForbidden},
		{"two origins", "PUT", "localhost:5001", http.Header{"Origin": {"http://localhost:5001", "https://attacker.example"}}, http.StatusForbidden},
		{"cross-site WebSocket", "GET", "localhost:5001", http.Header{"Origin": {"https://attacker.example"},
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}, http.StatusForbidden},
		{"null-origin WebSocket", "GET", "localhost:5001", http.Header{"Origin": {"null"},
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}, http.StatusForbidden},
		{"cross-site GET passes (safe method)", "GET", "localhost:5001", http.Header{"Origin": {"https://attacker.example"}}, http.StatusOK},
		{"same-origin POST passes", "POST", "localhost:5001", http.Header{"Origin": {"http://localhost:5001"}}, http.StatusOK},
		{"no Origin POST passes (slicer)", "POST", "127.0.0.1:5001", nil, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := &recordingRelay{}
			h, logs := newUnitHandler(t, rr, nil)
			r := httptest.NewRequest(tt.method, "http://x/api/job", strings.NewReader("{}"))
			r.Host = tt.host
			for k, v := range tt.header {
				r.Header[k] = v
			}
			r.Header.Set("Accept", "application/json")
			w := serve(h, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			rr.mu.Lock()
			reached := len(rr.reqs)
			rr.mu.Unlock()
			if tt.want != http.StatusOK {
				if reached != 0 {
					t.Errorf("a refused request reached the relay")
				}
				if !strings.Contains(w.Body.String(), `"action"`) {
					t.Errorf("refusal has no explanation: %s", w.Body)
				}
				if logs.FilterMessage("refused a local request").Len() != 1 {
					t.Errorf("refusal not logged")
				}
			} else if reached != 1 {
				t.Errorf("%d requests reached the relay, want 1", reached)
			}
		})
	}
}

func TestHeaderHasToken(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   bool
	}{
		{[]string{"Upgrade"}, true},
		{[]string{"keep-alive, Upgrade"}, true},
		{[]string{" keep-alive ,UPGRADE ,"}, true},
		{[]string{"keep-alive", "upgrade"}, true},
		{[]string{"keep-alive"}, false},
		{[]string{"upgraded, xupgrade"}, false},
		{[]string{",,"}, false},
		{nil, false},
	} {
		h := http.Header{"Connection": c.values}
		if got := headerHasToken(h, "Connection", "upgrade"); got != c.want {
			t.Errorf("headerHasToken(%q) = %v, want %v", c.values, got, c.want)
		}
	}
}

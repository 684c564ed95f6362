package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRewriteRelayURL(t *testing.T) {
	const local = "127.0.0.1:5001"
	tests := []struct{ in, want string }{
		{"https://" + testRelay + "/api/files/local/a.gcode", "http://127.0.0.1:5001/api/files/local/a.gcode"},
		{"https://APP-ABCDEF0123456789.octoeverywhere.com:443/x?y=1#f", "http://127.0.0.1:5001/x?y=1#f"},
		{"http://" + testRelay + "/", "http://127.0.0.1:5001/"},
		{"//" + testRelay + "/p%20q", "http://127.0.0.1:5001/p%20q"},
		{"wss://" + testRelay + "/websocket", "ws://127.0.0.1:5001/websocket"},
		{"/relative/path", "/relative/path"},
		{"https://octoeverywhere.com/login", "https://octoeverywhere.com/login"},
		{"https://" + testRelay + ".evil.com/", "https://" + testRelay + ".evil.com/"},
		{"https://" + testRelay + ":8443/", "https://" + testRelay + ":8443/"},
	}
	for _, tt := range tests {
		got, _ := rewriteRelayURL(tt.in, testRelay, local)
		if got != tt.want {
			t.Errorf("rewriteRelayURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := rewriteRefresh("5; url=https://"+testRelay+"/done", testRelay, local); got != "5; url=http://127.0.0.1:5001/done" {
		t.Errorf("Refresh = %q", got)
	}
	if got := rewriteRefresh("5", testRelay, local); got != "5" {
		t.Errorf("Refresh = %q", got)
	}
}

func TestRewriteSetCookie(t *testing.T) {
	tests := []struct{ in, want string }{
		{"session=abc; Path=/; Domain=" + testRelay + "; Secure; HttpOnly", "session=abc; Path=/; HttpOnly"},
		{"s=1; domain=.octoeverywhere.com; secure; SameSite=None", "s=1"},
		{"s=1; Domain=other.example; Secure", "s=1; Domain=other.example"},
		{"csrf_token_P80=x; Path=/; SameSite=Lax", "csrf_token_P80=x; Path=/; SameSite=Lax"},
		{"a=b; Partitioned; Secure; Max-Age=10", "a=b; Max-Age=10"},
	}
	for _, tt := range tests {
		if got := rewriteSetCookie(tt.in, testRelay); got != tt.want {
			t.Errorf("rewriteSetCookie(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestResponseRewritesThroughHandler checks the ModifyResponse hook on a real response: the Location points back
// at the Host the client used, cookies lose the relay domain and Secure, and the body is untouched.
func TestResponseRewritesThroughHandler(t *testing.T) {
	rr := &recordingRelay{status: 201, body: `{"done":true}`, header: http.Header{
		"Location":         {"https://" + testRelay + "/api/files/local/x.gcode"},
		"Content-Location": {"https://" + testRelay + "/api/files/local"},
		"Set-Cookie":       {"session=abc; Domain=" + testRelay + "; Secure; Path=/", "remember=1; Secure"},
		"Content-Type":     {"application/json"},
	}}
	h, _ := newUnitHandler(t, rr, nil)
	r := httptest.NewRequest("POST", "http://localhost:5001/api/files/local", strings.NewReader("body"))
	w := serve(h, r)
	if w.Code != 201 {
		t.Fatalf("status %d", w.Code)
	}
	if got := w.Header().Get("Location"); got != "http://localhost:5001/api/files/local/x.gcode" {
		t.Errorf("Location = %q", got)
	}
	if got := w.Header().Get("Content-Location"); got != "http://localhost:5001/api/files/local" {
		t.Errorf("Content-Location = %q", got)
	}
	if got := w.Header().Values("Set-Cookie"); len(got) != 2 || got[0] != "session=abc; Path=/" || got[1] != "remember=1" {
		t.Errorf("Set-Cookie = %q", got)
	}
	if b, _ := io.ReadAll(w.Body); string(b) != `{"done":true}` {
		t.Errorf("body changed: %q", b)
	}
	if w.Header().Get(ErrorHeader) != "" {
		t.Errorf("%s set on a 201", ErrorHeader)
	}
}

func TestNonOEErrorBodiesUntouched(t *testing.T) {
	for _, code := range []int{404, 418, 500, 502, 599, 700} {
		rr := &recordingRelay{status: code, body: "printer says no"}
		h, _ := newUnitHandler(t, rr, nil)
		w := serve(h, httptest.NewRequest("GET", "http://localhost:5001/x", nil))
		if w.Code != code || w.Body.String() != "printer says no" || w.Header().Get(ErrorHeader) != "" {
			t.Errorf("code %d: got %d %q %q", code, w.Code, w.Body.String(), w.Header().Get(ErrorHeader))
		}
	}
}

func TestStreamHook(t *testing.T) {
	rr := &recordingRelay{body: "--frame\r\n", header: http.Header{"Content-Type": {"multipart/x-mixed-replace; boundary=frame"}}}
	var opened, closed int
	h, _ := newUnitHandler(t, rr, func(o *Options) {
		o.Hooks.Stream = func(open bool) {
			if open {
				opened++
			} else {
				closed++
			}
		}
	})
	serve(h, httptest.NewRequest("GET", "http://localhost:5001/webcam/?action=stream", nil))
	if opened != 1 || closed != 1 {
		t.Errorf("stream hook: %d opened, %d closed; want 1 and 1", opened, closed)
	}
}

func TestRequestDoneHook(t *testing.T) {
	rr := &recordingRelay{status: 201, body: "created!"}
	var got []RequestStats
	h, _ := newUnitHandler(t, rr, func(o *Options) { o.Hooks.RequestDone = func(s RequestStats) { got = append(got, s) } })
	serve(h, httptest.NewRequest("POST", "http://localhost:5001/api/files/local", strings.NewReader("0123456789")))
	if len(got) != 1 || got[0].Status != 201 || got[0].BytesIn != 10 || got[0].BytesOut != 8 || got[0].Route != "relay" {
		t.Errorf("RequestDone saw %+v", got)
	}
}

package proxy

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/oeproxy/oeproxy/internal/oe"
	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/oesim"
)

// TestRelayRecorded checks what reached the simulated relay for plain requests, a WebSocket and a webcam stream
// of the built-in OctoPrint: the credential on every one, no client Authorization, no forwarding headers.
func TestRelayRecorded(t *testing.T) {
	e := startSim(t, nil, nil)
	key := e.creds.OctoPrintAPIKey
	c := localClient()
	hostile := func(r *http.Request) {
		r.Header.Set("Authorization", "Basic Y3VyYTpDVVJBUEFTUw==") // cura:CURAPASS
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		r.Header.Set("X-Real-IP", "203.0.113.9")
		r.Header.Set("Forwarded", "for=203.0.113.9")
		r.Header.Set("X-Forwarded-Host", "evil.example")
		r.Header.Set("Connection", "Authorization")
		if key != "" {
			r.Header.Set("X-Api-Key", key)
		}
	}
	r := newReq(t, "GET", e.url("/api/version"), nil)
	hostile(r)
	if resp, b := do(t, c, r); resp.StatusCode != 200 {
		t.Fatalf("GET /api/version: %d %s", resp.StatusCode, b)
	}
	r = newReq(t, "POST", e.url("/api/job"), strings.NewReader(`{"command":"pause","action":"toggle"}`))
	r.Header.Set("Content-Type", "application/json")
	hostile(r)
	do(t, c, r)

	// A webcam stream: read the first part, then leave.
	r = newReq(t, "GET", e.url("/webcam/?action=stream"), nil)
	hostile(r)
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/x-mixed-replace") {
		t.Fatalf("webcam: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// A WebSocket.
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+key)
	ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(e.url("/sockjs/websocket"), "http"), &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(t.Context()); err != nil {
		t.Fatalf("no SockJS message: %v", err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")

	reqs := e.conn.Requests()
	var sawWS, sawWebcam bool
	for _, rq := range reqs {
		sawWS = sawWS || rq.WebSocket
		sawWebcam = sawWebcam || strings.HasPrefix(rq.Path, "/webcam")
		if got := rq.Header.Values("Authorization"); len(got) != 1 || got[0] != e.basicCredential() {
			t.Errorf("%s %s: Authorization %d values, want exactly the credential", rq.Method, rq.Path, len(got))
		}
		for k := range rq.Header {
			n := normalizedHeaderName(k)
			if strings.HasPrefix(n, "x-forwarded") || n == "x-real-ip" || n == "forwarded" {
				t.Errorf("%s %s: %s reached the relay", rq.Method, rq.Path, k)
			}
		}
		if oe.IsCode(rq.Status) || rq.Status == 0 {
			t.Errorf("%s %s: relay answered %d", rq.Method, rq.Path, rq.Status)
		}
	}
	if len(reqs) < 4 || !sawWS || !sawWebcam {
		t.Errorf("relay recorded %d requests (WebSocket %v, webcam %v)", len(reqs), sawWS, sawWebcam)
	}
	assertNoSecrets(t, e.logs, "CURAPASS", "Y3VyYTpDVVJBUEFTUw==")
}

// TestBearerBecomesAPIKey: a client's "Authorization: Bearer K" reaches the printer as X-Api-Key (or as
// X-Access-Token when K is a JWT), while the relay gets the credential.
func TestBearerBecomesAPIKey(t *testing.T) {
	e := startSim(t, newTestBackend(), nil)
	for token, header := range map[string]string{"PRINTERKEY123": "X-Api-Key", testJWT: "X-Access-Token"} {
		r := newReq(t, "GET", e.url("/echo"), nil)
		r.Header.Set("Authorization", "Bearer "+token)
		resp, b := do(t, localClient(), r)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var seen struct{ Header http.Header }
		if err := json.Unmarshal(b, &seen); err != nil {
			t.Fatal(err)
		}
		if got := seen.Header.Get(header); got != token {
			t.Errorf("printer saw %s = %q, want the client's bearer token", header, got)
		}
	}
}

// TestLocationAndCookiesThroughRelay: the printer redirects and sets a cookie for the public host; the client
// sees both on its local origin.
func TestLocationAndCookiesThroughRelay(t *testing.T) {
	e := startSim(t, newTestBackend(), nil)
	resp, _ := do(t, localClient(), newReq(t, "GET", e.url("/cookies"), nil))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Location"), e.url("/after?x=1"); got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	cookies := resp.Header.Values("Set-Cookie")
	if len(cookies) != 2 || cookies[0] != "session=s1; Path=/; HttpOnly" || cookies[1] != "plain=p1; Path=/" {
		t.Errorf("Set-Cookie = %q", cookies)
	}
}

// TestEveryOEErrorThroughRelay provokes each 6xx of the research file in oesim and checks the client's answer.
func TestEveryOEErrorThroughRelay(t *testing.T) {
	tests := []struct {
		code  int
		path  string
		setup func(e *simEnv)
		mod   func(*Options, *Printer)
		body  string
	}{
		{code: 603, setup: func(e *simEnv) { e.conn.Delete() }},
		{code: 604, setup: func(e *simEnv) { e.conn.Revoke() }},
		{code: 605, setup: func(e *simEnv) { e.conn.SetSupporter(false) }},
		{code: 606, mod: func(_ *Options, p *Printer) { p.BasicPassword = "wrong-password" }},
		{code: 601, setup: func(e *simEnv) { e.printer.SetOnline(false) }},
		{code: 602, setup: func(e *simEnv) { e.conn.SetFault(oesim.FaultTimeout) }},
		{code: 600, setup: func(e *simEnv) { e.conn.SetFault(oesim.FaultServerError) }},
		{code: 607, path: "/bytes", setup: func(e *simEnv) { e.conn.SetLimits(oesim.Limits{MaxDownloadFileSizeBytes: 10}) }},
		{code: 608, path: "/upload", body: strings.Repeat("x", 100), setup: func(e *simEnv) { e.conn.SetLimits(oesim.Limits{MaxUploadFileSizeBytes: 10}) }},
		{code: 609, path: "/mjpeg", setup: func(e *simEnv) {
			e.conn.SetLimits(oesim.Limits{WebcamStartsPerWindow: 1, WebcamWindow: time.Hour, MaxSingleWebcamStreamLength: 50 * time.Millisecond})
		}},
	}
	for _, tt := range tests {
		t.Run(itoa(tt.code), func(t *testing.T) {
			b := newTestBackend()
			b.mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, 1000)) })
			e := startSim(t, b, tt.mod)
			if tt.setup != nil {
				tt.setup(e)
			}
			path := tt.path
			if path == "" {
				path = "/echo"
			}
			if tt.code == 609 { // use up the window: the first stream is allowed, then cut by the relay
				close(b.frameNext)
				do(t, localClient(), newReq(t, "GET", e.url(path), nil))
			}
			for _, accept := range []string{"application/json", "text/html"} {
				method := "GET"
				var body *strings.Reader
				if tt.body != "" {
					method, body = "POST", strings.NewReader(tt.body)
				}
				var r *http.Request
				if body != nil {
					r = newReq(t, method, e.url(path), body)
				} else {
					r = newReq(t, method, e.url(path), nil)
				}
				r.Header.Set("Accept", accept)
				resp, got := do(t, localClient(), r)
				if resp.StatusCode != tt.code || resp.Header.Get(ErrorHeader) != itoa(tt.code) {
					t.Fatalf("%s: got %d %q, want %d", accept, resp.StatusCode, resp.Header.Get(ErrorHeader), tt.code)
				}
				if accept == "text/html" {
					if !strings.Contains(string(got), "<h1>"+itoa(tt.code)+"</h1>") {
						t.Errorf("HTML: %s", got)
					}
					continue
				}
				var ex explanation
				if err := json.Unmarshal(got, &ex); err != nil || ex.Code != tt.code || ex.Action == "" {
					t.Errorf("JSON %s (%v)", got, err)
				}
				if tt.code == 605 && !strings.HasPrefix(ex.Link, "https://"+e.sim.Domain+"/appportal/v1/nosupporterperks?appid=testapp") {
					t.Errorf("605 link %q", ex.Link)
				}
			}
			if n := e.logs.FilterMessage("OctoEverywhere answered with an error code").Len(); n != 1 {
				t.Errorf("%d log lines for one code, want 1", n)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestRelayCertificateRefused: a relay whose certificate is not trusted gets a 502 that says so, over HTTP and
// WebSocket alike, and nothing is sent to it.
func TestRelayCertificateRefused(t *testing.T) {
	var addr string
	e := startSim(t, newTestBackend(), func(o *Options, _ *Printer) {
		untrusted := x509.NewCertPool() // trusts nothing
		tr := oenet.Options{RootCAs: untrusted}.Transport()
		// The sim address is known only after startSim; dial it late.
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		t.Cleanup(tr.CloseIdleConnections)
		o.Transport = tr
	})
	addr = e.sim.Addr
	resp, body := do(t, localClient(), newReq(t, "GET", e.url("/echo"), nil))
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "certificate") {
		t.Errorf("HTTP: %d %s", resp.StatusCode, body)
	}
	_, wsResp, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(e.url("/ws"), "http"), nil)
	if err == nil || wsResp == nil || wsResp.StatusCode != http.StatusBadGateway {
		t.Errorf("WebSocket: %v %v", err, wsResp)
	}
	if n := len(e.conn.Requests()); n != 0 {
		t.Errorf("the relay recorded %d requests over an untrusted connection", n)
	}
}

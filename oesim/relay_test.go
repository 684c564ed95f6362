package oesim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestRelayCheckOrder drives each OctoEverywhere status in the documented check order: every case also breaks
// every later check, so an implementation that checks in another order answers a different code.
func TestRelayCheckOrder(t *testing.T) {
	s, tp := newSim(t, Options{Limits: Limits{MaxUploadFileSizeBytes: 100}})
	client := s.HTTPClient()
	cases := []struct {
		name  string
		setup func(c *Connection)
		auth  string
		body  string
		want  int
	}{
		{"deleted", func(c *Connection) { c.Delete(); c.Revoke(); c.SetSupporter(false); c.Printer().SetOnline(false) }, "none", "", 603},
		{"revoked", func(c *Connection) { c.Revoke(); c.SetSupporter(false); c.SetFault(FaultServerError) }, "none", "", 604},
		{"no supporter", func(c *Connection) { c.SetSupporter(false); c.SetFault(FaultTimeout) }, "none", "", 605},
		{"no credentials", func(c *Connection) { c.Printer().SetOnline(false) }, "none", "", 606},
		{"wrong basic", func(c *Connection) { c.Printer().SetOnline(false) }, "Basic " + base64.StdEncoding.EncodeToString([]byte("user:wrong")), "", 606},
		{"wrong bearer", func(c *Connection) {}, "Bearer nope", "", 606},
		{"offline", func(c *Connection) { c.Printer().SetOnline(false); c.SetFault(FaultTimeout) }, "basic", strings.Repeat("x", 200), 601},
		{"timeout", func(c *Connection) { c.SetFault(FaultTimeout) }, "bearer", strings.Repeat("x", 200), 602},
		{"server error", func(c *Connection) { c.SetFault(FaultServerError) }, "basic", strings.Repeat("x", 200), 600},
		{"upload too large", func(c *Connection) {}, "basic", strings.Repeat("x", 101), 608},
		{"ok", func(c *Connection) {}, "basic", strings.Repeat("x", 100), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := s.Printers()[0]
			p.SetOnline(true)
			c := s.Connect(p)
			tc.setup(c)
			before := len(tp.requests())
			for _, ws := range []bool{false, true} {
				var body io.Reader
				if tc.body != "" && !ws {
					body = strings.NewReader(tc.body)
				}
				path := "/upload"
				if ws {
					path = "/ws"
				}
				req := relayRequest(t, s, c, http.MethodPost, path, body, tc.auth)
				if ws {
					if tc.want == 608 || tc.want == 200 {
						continue // a handshake has no body; the WebSocket tests cover success
					}
					req.Method = http.MethodGet
					req.Header.Set("Connection", "Upgrade")
					req.Header.Set("Upgrade", "websocket")
					req.Header.Set("Sec-WebSocket-Version", "13")
					req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")))
				}
				resp, got := do(t, client, req)
				if resp.StatusCode != tc.want {
					t.Fatalf("websocket=%v: status %d (%s), want %d", ws, resp.StatusCode, got, tc.want)
				}
				if tc.want >= 600 {
					var e relayError
					if err := json.Unmarshal(got, &e); err != nil || e.Status != tc.want || e.Error == "" {
						t.Errorf("6xx body %q: want {\"Status\":%d,\"Error\":...}", got, tc.want)
					}
				}
			}
			reqs := c.Requests()
			if len(reqs) == 0 || reqs[0].Status != tc.want {
				t.Errorf("recorded %+v, want status %d", reqs, tc.want)
			}
			if forwarded := len(tp.requests()) - before; (tc.want == 200) != (forwarded > 0) {
				t.Errorf("printer saw %d requests for a %d", forwarded, tc.want)
			}
		})
	}

	t.Run("unknown host", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "https://app-"+strings.Repeat("z", 32)+"."+s.Domain+"/", nil)
		if resp, _ := do(t, client, req); resp.StatusCode != 603 {
			t.Fatalf("status %d, want 603", resp.StatusCode)
		}
	})
}

func TestRelayAuth(t *testing.T) {
	s, _ := newSim(t, Options{})
	client := s.HTTPClient()
	c, other := s.Connect(nil), s.Connect(nil)
	cr, ocr := c.Credentials(), other.Credentials()
	basic := base64.StdEncoding.EncodeToString([]byte(cr.BasicUser + ":" + cr.BasicPassword))
	cases := []struct {
		name, path, auth string
		want             int
	}{
		{"basic", "/x", "basic", 200},
		{"bearer", "/x", "bearer", 200},
		{"bearer lower-case scheme", "/x", "bearer " + cr.BearerToken, 200},
		{"basic of another connection", "/x", "Basic " + base64.StdEncoding.EncodeToString([]byte(ocr.BasicUser+":"+ocr.BasicPassword)), 606},
		{"bearer of another connection", "/x", "Bearer " + ocr.BearerToken, 606},
		{"user without password", "/x", "Basic " + base64.StdEncoding.EncodeToString([]byte(cr.BasicUser+":")), 606},
		{"app api token is not a relay credential", "/x", "Bearer " + cr.AppAPIToken, 606},
		{"oe_api_key basic on mqtt", mqttProxyPath + "?oe_api_key=" + basic, "none", 200},
		{"oe_api_key bearer on mqtt", mqttProxyPath + "?oe_api_key=" + cr.BearerToken, "none", 200},
		{"oe_api_key elsewhere", "/x?oe_api_key=" + cr.BearerToken, "none", 606},
		{"oe_api_key wrong", mqttProxyPath + "?oe_api_key=nope", "none", 606},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, client, relayRequest(t, s, c, http.MethodGet, tc.path, nil, tc.auth))
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.want)
			}
		})
	}
}

func TestRelayHeaderRewrites(t *testing.T) {
	s, tp := newSim(t, Options{})
	c := s.Connect(nil)
	client := s.HTTPClient()
	backendHost := strings.TrimPrefix(c.Printer().BackendURL, "http://")

	req := relayRequest(t, s, c, http.MethodGet, "/headers?a=1&b=%2F", nil, "basic")
	for k, v := range map[string]string{
		"Accept-Encoding": "gzip, br", "X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9",
		"Upgrade-Insecure-Requests": "1", "X-Original-Proto": "http", "Origin": "https://evil.example",
		"Referer": "https://" + c.Credentials().Host + "/some/page?q=1", "X-Api-Key": "printer-key",
		"User-Agent": "PrusaSlicer/2.8.0", "X-Custom": "kept", "Connection": "X-Hop", "X-Hop": "dropped",
	} {
		req.Header.Set(k, v)
	}
	resp, _ := do(t, client, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := tp.requests()[0]
	want := map[string]string{
		"Accept-Encoding": "identity", "X-Forwarded-For": "", "X-Real-Ip": "", "Upgrade-Insecure-Requests": "",
		"X-Original-Proto": "", "Authorization": "", "X-Hop": "",
		"Origin": "http://" + backendHost, "Referer": "http://" + backendHost,
		"X-Forwarded-Host": c.Credentials().Host, "X-Forwarded-Proto": "https",
		"X-Api-Key": "printer-key", "User-Agent": "PrusaSlicer/2.8.0", "X-Custom": "kept",
	}
	for k, v := range want {
		if g := got.Header.Get(k); g != v {
			t.Errorf("printer saw %s = %q, want %q", k, g, v)
		}
	}
	if got.Host != backendHost || got.Path != "/headers" || got.RawQuery != "a=1&b=%2F" {
		t.Errorf("printer saw host %q path %q query %q", got.Host, got.Path, got.RawQuery)
	}
	rec := c.Requests()[0]
	if rec.Header.Get("Authorization") == "" || rec.Header.Get("X-Forwarded-For") != "203.0.113.9" || rec.Status != 200 {
		t.Errorf("the relay must record the request as received: %+v", rec)
	}

	t.Run("redirect not followed, Location corrected", func(t *testing.T) {
		resp, _ := do(t, client, relayRequest(t, s, c, http.MethodGet, "/redirect", nil, "basic"))
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("status %d, want 302 passed through", resp.StatusCode)
		}
		if loc, want := resp.Header.Get("Location"), "https://"+c.Credentials().Host+"/target/path?x=1&y=2"; loc != want {
			t.Errorf("Location %q, want %q", loc, want)
		}
		if og := resp.Header.Get("X-Og-Location"); og != "http://"+backendHost+"/target/path?x=1&y=2" {
			t.Errorf("x-og-location %q", og)
		}
		if resp.Header.Get("X-Clacks-Overhead") != "" {
			t.Error("X-Clacks-Overhead passed")
		}
	})
	t.Run("201 Location corrected", func(t *testing.T) {
		resp, _ := do(t, client, relayRequest(t, s, c, http.MethodPost, "/created", strings.NewReader("x"), "basic"))
		if loc := resp.Header.Get("Location"); resp.StatusCode != 201 || loc != "https://"+c.Credentials().Host+"/api/files/local/benchy.gcode" {
			t.Errorf("status %d Location %q", resp.StatusCode, loc)
		}
	})
	t.Run("ForwardAuthorization", func(t *testing.T) {
		s2, tp2 := newSim(t, Options{ForwardAuthorization: true})
		c2 := s2.Connect(nil)
		do(t, s2.HTTPClient(), relayRequest(t, s2, c2, http.MethodGet, "/", nil, "bearer"))
		if a := tp2.requests()[0].Header.Get("Authorization"); a != "Bearer "+c2.Credentials().BearerToken {
			t.Errorf("Authorization %q not forwarded", a)
		}
	})
}

func TestCorrectLocation(t *testing.T) {
	const host = "app-x.octoeverywhere.com"
	cases := []struct{ in, reqPath, want string }{
		{"http://127.0.0.1:5000/api/files/local/a.gcode", "/api/files/local", "https://" + host + "/api/files/local/a.gcode"},
		{"http://192.168.1.5", "/", "https://" + host},
		{"/login?next=%2F", "/", "https://" + host + "/login?next=%2F"},
		{"https://elsewhere.example/x?y", "/", "https://" + host + "/x?y"},
		{"ws://127.0.0.1/websocket", "/", "ws://127.0.0.1/websocket"},
		{"./sub?x=1", "/hello/world", "https://" + host + "/hello/worldsub?x=1"}, // the plugin's own quirk
	}
	for _, tc := range cases {
		if got := correctLocation(tc.in, "https", host, tc.reqPath); got != tc.want {
			t.Errorf("correctLocation(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestStoreAndForward: the printer sees an upload only after the client sent its last byte, with a
// Content-Length even though the client sent the body chunked; a large body goes through a temp file, byte-exact.
func TestStoreAndForward(t *testing.T) {
	dir := t.TempDir()
	s, tp := newSim(t, Options{TempDir: dir})
	c := s.Connect(nil)
	var allSent, sentWhenSeen atomic.Bool
	tp.onRequest = func(r *http.Request) { sentWhenSeen.Store(allSent.Load()) }

	const size = 3<<20 + 123 // above the in-memory threshold
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	sum := sha256.Sum256(payload)
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < size; off += 64 << 10 {
			if _, err := pw.Write(payload[off:min(off+64<<10, size)]); err != nil {
				return
			}
		}
		allSent.Store(true)
		pw.Close()
	}()
	req := relayRequest(t, s, c, http.MethodPost, "/api/files/local", pr, "basic")
	req.ContentLength = -1 // chunked from the client
	resp, _ := do(t, s.HTTPClient(), req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := tp.requests()[0]
	if !sentWhenSeen.Load() {
		t.Error("the printer saw the request before the client had sent the whole body")
	}
	if got.ContentLength != size || len(got.TransferEncoding) != 0 {
		t.Errorf("printer saw Content-Length %d, Transfer-Encoding %v; want %d and none", got.ContentLength, got.TransferEncoding, size)
	}
	if got.BodySize != size || got.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("printer got %d bytes (sha %s), want %d byte-exact", got.BodySize, got.SHA256, size)
	}
	if rec := c.Requests()[0]; rec.BodySize != size {
		t.Errorf("recorded BodySize %d", rec.BodySize)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("spool files left behind: %v", left)
	}
}

func TestUploadLimit(t *testing.T) {
	s, tp := newSim(t, Options{Limits: Limits{MaxUploadFileSizeBytes: 1000}})
	c := s.Connect(nil)
	client := s.HTTPClient()
	for _, chunked := range []bool{false, true} {
		req := relayRequest(t, s, c, http.MethodPost, "/upload", bytes.NewReader(make([]byte, 5000)), "basic")
		if chunked {
			req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(make([]byte, 5000))), -1
		}
		if resp, body := do(t, client, req); resp.StatusCode != 608 {
			t.Errorf("chunked=%v: status %d (%s), want 608", chunked, resp.StatusCode, body)
		}
	}
	c.SetLimits(Limits{MaxUploadFileSizeBytes: 5000})
	if resp, _ := do(t, client, relayRequest(t, s, c, http.MethodPost, "/upload", bytes.NewReader(make([]byte, 5000)), "basic")); resp.StatusCode != 200 {
		t.Errorf("at the limit: status %d, want 200", resp.StatusCode)
	}
	if n := len(tp.requests()); n != 1 {
		t.Errorf("printer saw %d requests, want only the one within the limit", n)
	}
}

func TestDownloadLimit(t *testing.T) {
	s, _ := newSim(t, Options{Limits: Limits{MaxDownloadFileSizeBytes: 100 << 10}})
	c := s.Connect(nil)
	client := s.HTTPClient()
	if resp, _ := do(t, client, relayRequest(t, s, c, http.MethodGet, "/bytes?n=102400", nil, "basic")); resp.StatusCode != 200 {
		t.Errorf("at the limit: %d", resp.StatusCode)
	}
	if resp, _ := do(t, client, relayRequest(t, s, c, http.MethodGet, "/bytes?n=102401", nil, "basic")); resp.StatusCode != 607 {
		t.Errorf("Content-Length over the limit: %d, want 607", resp.StatusCode)
	}
	// Unknown length: the headers are out before the size is known, so the relay can only cut the body.
	resp, err := client.Do(relayRequest(t, s, c, http.MethodGet, "/chunked?n=1048576", nil, "basic"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || n > 100<<10 {
		t.Errorf("stream past the limit: read %d bytes, err %v; want a cut at or below %d", n, err, 100<<10)
	}
	reqs := c.Requests()
	if last := reqs[len(reqs)-1]; !last.Cut || last.Status != 200 {
		t.Errorf("recorded %+v, want Cut with the 200 that was sent", last)
	}
}

// TestWebcamStream: frames pass one by one (the second is produced only after the first arrived), the stream
// ends cleanly after MaxSingleWebcamStreamLength, and the third start within the window gets 609.
func TestWebcamStream(t *testing.T) {
	s, tp := newSim(t, Options{Limits: Limits{MaxSingleWebcamStreamLength: 700 * time.Millisecond, WebcamStartsPerWindow: 2, WebcamWindow: time.Hour}})
	c := s.Connect(nil)
	client := s.HTTPClient()
	tp.frameGate = make(chan struct{})

	resp, err := client.Do(relayRequest(t, s, c, http.MethodGet, "/mjpeg", nil, "basic"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var got []byte
	for !bytes.Contains(got, []byte("frame-0")) {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("first frame did not arrive before the second was produced: %v", err)
		}
		got = append(got, buf[:n]...)
	}
	close(tp.frameGate) // now let the printer stream freely until the relay cuts it
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("the time limit must end the stream cleanly, got %v", err)
	}
	if !bytes.Contains(rest, []byte("frame-2")) {
		t.Errorf("stream ended too early: %q", rest)
	}
	if r := c.Requests()[0]; !r.Cut || r.Status != 200 {
		t.Errorf("recorded %+v, want a cut 200", r)
	}

	resp2, err := client.Do(relayRequest(t, s, c, http.MethodGet, "/mjpeg", nil, "basic"))
	if err != nil {
		t.Fatal(err)
	}
	if resp2.StatusCode != 200 {
		t.Errorf("second start: %d", resp2.StatusCode)
	}
	resp2.Body.Close()
	if resp, _ := do(t, client, relayRequest(t, s, c, http.MethodGet, "/mjpeg", nil, "basic")); resp.StatusCode != 609 {
		t.Errorf("third start within the window: %d, want 609", resp.StatusCode)
	}
	if resp, _ := do(t, client, relayRequest(t, s, c, http.MethodGet, "/bytes?n=10", nil, "basic")); resp.StatusCode != 200 {
		t.Errorf("a non-stream request is not a webcam start: %d", resp.StatusCode)
	}
}

func TestFaults(t *testing.T) {
	s, _ := newSim(t, Options{})
	client := s.HTTPClient()

	t.Run("stall", func(t *testing.T) {
		c := s.Connect(nil)
		c.SetFault(FaultStall)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req := relayRequest(t, s, c, http.MethodGet, "/", nil, "basic").WithContext(ctx)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a stalled relay answered %d", resp.StatusCode)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v, want the client's deadline", err)
		}
	})
	t.Run("drop", func(t *testing.T) {
		c := s.Connect(nil)
		c.SetFault(FaultDrop)
		for _, path := range []string{"/bytes?n=100000", "/chunked?n=100000", "/bytes?n=0"} {
			resp, err := client.Do(relayRequest(t, s, c, http.MethodGet, path, nil, "basic"))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Errorf("%s: a dropped connection read cleanly", path)
			}
		}
		c.SetFault(FaultNone)
		if resp, _ := do(t, client, relayRequest(t, s, c, http.MethodGet, "/bytes?n=100000", nil, "basic")); resp.StatusCode != 200 {
			t.Errorf("after clearing the fault: %d", resp.StatusCode)
		}
	})
}

func TestMoonrakerRouting(t *testing.T) {
	api, front := &testPrinter{name: "api"}, &testPrinter{name: "frontend"}
	s, _ := newSim(t, Options{Printers: []PrinterOptions{{Name: "Voron", Kind: KindMoonraker, Handler: api, Frontend: front}}})
	c := s.Connect(nil)
	client := s.HTTPClient()
	cases := map[string]string{
		"/server/info": "api", "/printer/objects/query": "api", "/api/version": "api", "/access/info": "api",
		"/machine/system_info": "api", "/debug/x": "api", "/websocket": "api",
		"/": "frontend", "/index.html": "frontend", "/webcam/?action=snapshot": "frontend", "/serverx": "frontend",
		"/assets/app.js": "frontend", "/server": "frontend",
	}
	for path, want := range cases {
		_, body := do(t, client, relayRequest(t, s, c, http.MethodGet, path, nil, "basic"))
		if !strings.HasSuffix(string(body), "from "+want) {
			t.Errorf("%s went to %q, want %s", path, body, want)
		}
	}
	if p := s.Printers()[0]; p.BackendURL == "" || p.FrontendURL == "" || p.BackendURL == p.FrontendURL {
		t.Errorf("BackendURL %q FrontendURL %q", p.BackendURL, p.FrontendURL)
	}
}

func TestWebSocketRelay(t *testing.T) {
	s, tp := newSim(t, Options{})
	c := s.Connect(nil)
	cr := c.Credentials()
	dial := func(t *testing.T, h http.Header, protos ...string) *websocket.Conn {
		t.Helper()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Authorization", "Bearer "+cr.BearerToken)
		ws, resp, err := websocket.Dial(context.Background(), "wss://"+cr.Host+"/ws?x=1", &websocket.DialOptions{
			HTTPClient: s.HTTPClient(), HTTPHeader: h, Subprotocols: protos,
		})
		if err != nil {
			t.Fatalf("dial: %v (%v)", err, resp)
		}
		ws.SetReadLimit(-1)
		t.Cleanup(func() { ws.CloseNow() })
		return ws
	}
	ctx := context.Background()

	t.Run("messages, subprotocol and headers", func(t *testing.T) {
		ws := dial(t, http.Header{"X-Api-Key": {"k1"}, "X-Api-Key-Extra": {"k2"}, "Cookie": {"session=1"},
			"Origin": {"https://elsewhere.example"}, "X-Other": {"dropped"}}, "v1", "v2")
		if ws.Subprotocol() != "v2" {
			t.Errorf("subprotocol %q, want the printer's choice v2", ws.Subprotocol())
		}
		for _, m := range []struct {
			typ  websocket.MessageType
			data []byte
		}{{websocket.MessageText, []byte("hello")}, {websocket.MessageBinary, []byte{0, 1, 2, 255}}} {
			if err := ws.Write(ctx, m.typ, m.data); err != nil {
				t.Fatal(err)
			}
			typ, data, err := ws.Read(ctx)
			if err != nil || typ != m.typ || !bytes.Equal(data, m.data) {
				t.Fatalf("echo: %v %q %v", typ, data, err)
			}
		}
		var hs seen
		for _, r := range tp.requests() {
			if r.Path == "/ws" {
				hs = r
			}
		}
		if hs.RawQuery != "x=1" || hs.Header.Get("X-Api-Key") != "k1" || hs.Header.Get("X-Api-Key-Extra") != "k2" || hs.Header.Get("Cookie") != "session=1" {
			t.Errorf("handshake at the printer: %+v", hs)
		}
		for _, h := range []string{"Authorization", "Origin", "X-Other", "X-Forwarded-For"} {
			if hs.Header.Get(h) != "" {
				t.Errorf("%s reached the printer on a WebSocket", h)
			}
		}
		if recs := c.Requests(); !recs[len(recs)-1].WebSocket || recs[len(recs)-1].Status != 101 {
			t.Errorf("recorded %+v", recs[len(recs)-1])
		}
	})
	t.Run("large message", func(t *testing.T) {
		ws := dial(t, nil)
		size := 65 << 20 // above the 64 MiB oeproxy promises to carry
		if raceEnabled || testing.Short() {
			size = 4 << 20 // still far above coder/websocket's 32 KiB default read limit
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		if err := ws.Write(ctx, websocket.MessageBinary, big); err != nil {
			t.Fatal(err)
		}
		_, data, err := ws.Read(ctx)
		if err != nil || !bytes.Equal(data, big) {
			t.Fatalf("%d-byte echo: got %d bytes, %v", size, len(data), err)
		}
	})
	t.Run("close from the printer", func(t *testing.T) {
		ws := dial(t, nil)
		if err := ws.Write(ctx, websocket.MessageText, []byte("close 4001 printer says bye")); err != nil {
			t.Fatal(err)
		}
		_, _, err := ws.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "printer says bye" {
			t.Fatalf("got %v, want close 4001 with the reason", err)
		}
	})
	t.Run("close from the client", func(t *testing.T) {
		ws := dial(t, nil)
		if err := ws.Close(4002, "client says bye"); err != nil {
			t.Logf("close: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			var found bool
			for _, r := range tp.requests() {
				found = found || (r.Method == "WSCLOSE" && r.Path == "4002 client says bye")
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the printer never saw close 4002: %+v", tp.requests())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("6xx on handshake", func(t *testing.T) {
		_, resp, err := websocket.Dial(ctx, "wss://"+cr.Host+"/ws", &websocket.DialOptions{
			HTTPClient: s.HTTPClient(), HTTPHeader: http.Header{"Authorization": {"Bearer wrong"}},
		})
		if err == nil || resp == nil || resp.StatusCode != 606 {
			t.Fatalf("err %v resp %v, want a 606 handshake answer", err, resp)
		}
	})
	t.Run("drop", func(t *testing.T) {
		ws := dial(t, nil)
		if err := ws.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ws.Read(ctx); err != nil {
			t.Fatal(err)
		}
		c.DropWebSockets()
		_, _, err := ws.Read(ctx)
		if websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("got %v, want 1001", err)
		}
	})
	t.Run("silent", func(t *testing.T) {
		ws := dial(t, nil)
		msgs := make(chan string, 4)
		go func() { // a reader is needed for pongs to be seen
			for {
				_, data, err := ws.Read(ctx)
				if err != nil {
					close(msgs)
					return
				}
				msgs <- string(data)
			}
		}()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := ws.Ping(pctx); err != nil {
			t.Fatalf("ping while not silent: %v", err)
		}
		cancel()
		c.SetSilentWebSockets(true)
		pctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := ws.Ping(pctx); err == nil {
			t.Fatal("a silent relay answered a ping")
		}
		if err := ws.Write(ctx, websocket.MessageText, []byte("held")); err != nil {
			t.Fatal(err)
		}
		c.SetSilentWebSockets(false)
		select {
		case m := <-msgs:
			if m != "held" {
				t.Errorf("after silence: %q", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a message sent during silence never arrived after it")
		}
	})
}

func TestCloseEndsStreamsAndWebSockets(t *testing.T) {
	tp := &testPrinter{name: "api"}
	s, err := Start(context.Background(), Options{Printers: []PrinterOptions{{Kind: KindGeneric, Handler: tp}}})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Connect(nil)
	cr := c.Credentials()
	client := s.HTTPClient()
	resp, err := client.Do(relayRequest(t, s, c, http.MethodGet, "/mjpeg", nil, "basic"))
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.Dial(context.Background(), "wss://"+cr.Host+"/ws", &websocket.DialOptions{
		HTTPClient: s.HTTPClient(), HTTPHeader: http.Header{"Authorization": {"Bearer " + cr.BearerToken}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetFault(FaultStall)
	stalled := make(chan error, 1)
	go func() {
		r, err := client.Do(relayRequest(t, s, c, http.MethodGet, "/", nil, "basic"))
		if err == nil {
			r.Body.Close()
		}
		stalled <- err
	}()
	for len(c.Requests()) < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("the MJPEG stream survived Close")
	}
	resp.Body.Close()
	if _, _, err := ws.Read(context.Background()); err == nil {
		t.Error("the WebSocket survived Close")
	}
	ws.CloseNow()
	if err := <-stalled; err == nil {
		t.Error("the stalled request got an answer")
	}
}

// TestPrinterLinkRate: with the printer's link modelled, the stored body still reaches the printer whole and with
// its Content-Length, and a pass-on that would have to wait for the link gives up when the client's request ends
// (the plugin's fetch is cancelled) instead of running on. How long it takes is a bench figure.
func TestPrinterLinkRate(t *testing.T) {
	s, tp := newSim(t, Options{TempDir: t.TempDir(), PrinterLinkRate: 64 << 20})
	c := s.Connect(nil)
	const size = 2<<20 + 5
	payload := bytes.Repeat([]byte("G1 X1 Y2\n"), size/9+1)[:size]
	sum := sha256.Sum256(payload)
	resp, _ := do(t, s.HTTPClient(), relayRequest(t, s, c, http.MethodPost, "/api/files/local", bytes.NewReader(payload), "basic"))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := tp.requests()[0]
	if got.ContentLength != size || got.BodySize != size || got.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("printer got Content-Length %d, %d bytes (sha %s); want %d byte-exact", got.ContentLength, got.BodySize, got.SHA256, size)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := &pacedReader{r: io.NopCloser(bytes.NewReader(payload)), rate: 1000, ctx: ctx, start: time.Now()}
	buf := make([]byte, 64<<10)
	n, err := p.Read(buf)
	if n != 100 || !errors.Is(err, context.Canceled) {
		t.Errorf("first read of a 1000 B/s link after the request ended = %d, %v; want 100 bytes (a tenth of a second's worth) and context.Canceled", n, err)
	}
}

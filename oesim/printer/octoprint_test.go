package printer

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

func TestOctoPrintAPIKey(t *testing.T) {
	t.Parallel()
	_, srv := newOctoPrint(t, OctoPrintOptions{APIKey: "SECRETKEY", PrinterID: testID})
	tests := []struct {
		name   string
		path   string
		hdr    map[string]string
		status int
	}{
		{"version without key", "/api/version", nil, http.StatusForbidden},
		{"version wrong key", "/api/version", map[string]string{"X-Api-Key": "nope"}, http.StatusForbidden},
		{"version header key", "/api/version", map[string]string{"X-Api-Key": "SECRETKEY"}, http.StatusOK},
		{"version query key", "/api/version?apikey=SECRETKEY", nil, http.StatusOK},
		{"version wrong query key", "/api/version?apikey=SECRET", nil, http.StatusForbidden},
		{"version bearer key", "/api/version", map[string]string{"Authorization": "Bearer SECRETKEY"}, http.StatusOK},
		{"job without key", "/api/job", nil, http.StatusForbidden},
		{"job with key", "/api/job", map[string]string{"X-Api-Key": "SECRETKEY"}, http.StatusOK},
		{"printer without key", "/api/printer", nil, http.StatusForbidden},
		{"printer with key", "/api/printer", map[string]string{"X-Api-Key": "SECRETKEY"}, http.StatusOK},
		{"plugin endpoint is open", "/api/plugin/octoeverywhere", nil, http.StatusOK},
		{"page is open", "/", nil, http.StatusOK},
		{"snapshot is open", "/webcam/?action=snapshot", nil, http.StatusOK},
		{"sockjs info is open", "/sockjs/info", nil, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, srv.URL+tc.path, tc.hdr, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusForbidden {
				if got := decodeJSON(t, body)["error"]; got != octoPrintForbidden {
					t.Fatalf("403 body %q, want OctoPrint's wording", body)
				}
			}
		})
	}
}

func TestOctoPrintVersionAndPlugin(t *testing.T) {
	t.Parallel()
	_, srv := newOctoPrint(t, OctoPrintOptions{PrinterID: testID})
	_, body := do(t, http.MethodGet, srv.URL+"/api/version", nil, nil)
	v := decodeJSON(t, body)
	// PrusaSlicer checks that "api" is present and "text" starts with "OctoPrint".
	if text, _ := v["text"].(string); !strings.HasPrefix(text, "OctoPrint") || v["api"] == nil || v["server"] == nil {
		t.Fatalf("version %s", body)
	}
	resp, body := do(t, http.MethodGet, srv.URL+"/api/plugin/octoeverywhere", nil, nil)
	p := decodeJSON(t, body)
	if resp.StatusCode != http.StatusOK || p["PrinterId"] != testID || p["PluginVersion"] != DefaultPluginVersion {
		t.Fatalf("plugin %d %s", resp.StatusCode, body)
	}

	_, bare := newOctoPrint(t, OctoPrintOptions{})
	if resp, body := do(t, http.MethodGet, bare.URL+"/api/plugin/octoeverywhere", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("plugin without printer id: %d %s, want 404", resp.StatusCode, body)
	}
}

func TestOctoPrintUpload(t *testing.T) {
	t.Parallel()
	p, srv := newOctoPrint(t, OctoPrintOptions{APIKey: "K"})
	key := map[string]string{"X-Api-Key": "K", "X-Forwarded-Host": "app-abc.example.com", "X-Forwarded-Proto": "https"}
	const size = 3<<20 + 7
	fields := [][2]string{{"print", "true"}, {"path", "/sub/dir/"}} // PrusaSlicer's order and shape
	resp, body, sum := postUpload(t, srv.URL+"/api/files/local", key, fields, "cube.gcode", size, false)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	wantLoc := "https://app-abc.example.com/api/files/local/sub/dir/cube.gcode"
	if loc := resp.Header.Get("Location"); loc != wantLoc {
		t.Fatalf("Location %q, want %q", loc, wantLoc)
	}
	v := decodeJSON(t, body)
	if dig(v, "done") != true || dig(v, "files", "local", "name") != "cube.gcode" ||
		dig(v, "files", "local", "origin") != "local" || dig(v, "files", "local", "refs", "resource") != wantLoc {
		t.Fatalf("body %s", body)
	}
	ups := p.Uploads()
	if len(ups) != 1 {
		t.Fatalf("uploads %+v", ups)
	}
	u := ups[0]
	if u.Size != size || u.SHA256 != sum() || u.Filename != "cube.gcode" || u.Path != "sub/dir" || !u.Print ||
		u.Root != "local" || u.ContentLength <= size {
		t.Fatalf("upload %+v, want size %d sha %s", u, size, sum())
	}
	if !p.Printing() {
		t.Fatal("print=true did not start the print")
	}
	_, body = do(t, http.MethodGet, srv.URL+"/api/job", key, nil)
	if j := decodeJSON(t, body); j["state"] != "Printing" || dig(j, "job", "file", "path") != "sub/dir/cube.gcode" {
		t.Fatalf("job %s", body)
	}
}

func TestOctoPrintUploadRefusals(t *testing.T) {
	t.Parallel()
	p, srv := newOctoPrint(t, OctoPrintOptions{APIKey: "K"})
	tests := []struct {
		name     string
		hdr      map[string]string
		filename string
		chunked  bool
		status   int
	}{
		{"no content-length", map[string]string{"X-Api-Key": "K"}, "a.gcode", true, http.StatusLengthRequired},
		{"no key", nil, "a.gcode", false, http.StatusForbidden},
		{"wrong type", map[string]string{"X-Api-Key": "K"}, "a.exe", false, http.StatusUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, _ := postUpload(t, srv.URL+"/api/files/local", tc.hdr, nil, tc.filename, 1000, tc.chunked)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
		})
	}
	if ups := p.Uploads(); len(ups) != 0 {
		t.Fatalf("refused uploads were recorded: %+v", ups)
	}
}

func TestOctoPrintJobCommands(t *testing.T) {
	t.Parallel()
	p, srv := newOctoPrint(t, OctoPrintOptions{})
	jsonHdr := map[string]string{"Content-Type": "application/json"}
	steps := []struct {
		cmd      string
		status   int
		printing bool
		state    string
	}{
		{`{"command":"start"}`, http.StatusConflict, false, "Operational"}, // no file selected
		{`{"command":"cancel"}`, http.StatusConflict, false, "Operational"},
	}
	for _, s := range steps {
		resp, body := do(t, http.MethodPost, srv.URL+"/api/job", jsonHdr, strings.NewReader(s.cmd))
		if resp.StatusCode != s.status || p.Printing() != s.printing {
			t.Fatalf("%s: status %d printing %v: %s", s.cmd, resp.StatusCode, p.Printing(), body)
		}
	}
	p.machine.selectFile("x.gcode", 10)
	steps = []struct {
		cmd      string
		status   int
		printing bool
		state    string
	}{
		{`{"command":"start"}`, http.StatusNoContent, true, "Printing"},
		{`{"command":"pause","action":"pause"}`, http.StatusNoContent, true, "Paused"},
		{`{"command":"pause","action":"resume"}`, http.StatusNoContent, true, "Printing"},
		{`{"command":"cancel"}`, http.StatusNoContent, false, "Operational"},
		{`{"command":"explode"}`, http.StatusBadRequest, false, "Operational"},
	}
	for _, s := range steps {
		resp, body := do(t, http.MethodPost, srv.URL+"/api/job", jsonHdr, strings.NewReader(s.cmd))
		if resp.StatusCode != s.status || p.Printing() != s.printing {
			t.Fatalf("%s: status %d printing %v: %s", s.cmd, resp.StatusCode, p.Printing(), body)
		}
		_, body = do(t, http.MethodGet, srv.URL+"/api/job", nil, nil)
		if st := decodeJSON(t, body)["state"]; st != s.state {
			t.Fatalf("%s: state %v, want %s", s.cmd, st, s.state)
		}
	}
	_, body := do(t, http.MethodGet, srv.URL+"/api/printer", nil, nil)
	if dig(decodeJSON(t, body), "temperature", "tool0", "actual") == nil {
		t.Fatalf("printer %s", body)
	}
}

func TestOctoPrintLogin(t *testing.T) {
	t.Parallel()
	_, srv := newOctoPrint(t, OctoPrintOptions{APIKey: "K"})
	body := strings.NewReader(`{"passive":true}`)
	if resp, b := do(t, http.MethodPost, srv.URL+"/api/login", map[string]string{"Content-Type": "application/json"}, body); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without key: %d %s", resp.StatusCode, b)
	}
	resp, b := do(t, http.MethodPost, srv.URL+"/api/login", map[string]string{"X-Api-Key": "K"}, strings.NewReader(`{"passive":true}`))
	if resp.StatusCode != http.StatusOK || decodeJSON(t, b)["session"] == "" {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
}

// counterOf extracts oesim.counter from a decoded "current" message.
func counterOf(t *testing.T, msg map[string]any) int {
	t.Helper()
	c, ok := dig(msg, "current", "oesim", "counter").(float64)
	if !ok {
		t.Fatalf("no current.oesim.counter in %v", msg)
	}
	return int(c)
}

func TestSockJSRaw(t *testing.T) {
	t.Parallel()
	_, srv := newOctoPrint(t, OctoPrintOptions{})
	c := dialWS(t, wsURL(srv, "/sockjs/websocket"), nil)
	first := decodeJSON(t, []byte(readText(t, c)))
	if dig(first, "connected", "version") != octoPrintVersion {
		t.Fatalf("first message %v, want connected", first)
	}
	// A client auth message must not disturb the socket.
	if err := c.Write(testCtx(t), websocket.MessageText, []byte(`{"auth":"_api:session"}`)); err != nil {
		t.Fatal(err)
	}
	prev := 0
	for range 2 {
		msg := decodeJSON(t, []byte(readText(t, c)))
		if dig(msg, "current", "state", "text") != "Operational" {
			t.Fatalf("current %v", msg)
		}
		if n := counterOf(t, msg); n <= prev {
			t.Fatalf("counter %d after %d", n, prev)
		} else {
			prev = n
		}
	}
}

func TestSockJSFramed(t *testing.T) {
	t.Parallel()
	_, srv := newOctoPrint(t, OctoPrintOptions{})
	c := dialWS(t, wsURL(srv, "/sockjs/123/abcdefgh/websocket"), nil)
	if f := readText(t, c); f != "o" {
		t.Fatalf("first frame %q, want o", f)
	}
	frame := func() map[string]any {
		f := readText(t, c)
		if !strings.HasPrefix(f, "a[") {
			t.Fatalf("frame %q, want a[...]", f)
		}
		var msgs []map[string]any
		if err := json.Unmarshal([]byte(f[1:]), &msgs); err != nil || len(msgs) != 1 {
			t.Fatalf("frame %q: %v", f, err)
		}
		return msgs[0]
	}
	if m := frame(); dig(m, "connected") == nil {
		t.Fatalf("want connected, got %v", m)
	}
	if err := c.Write(testCtx(t), websocket.MessageText, []byte(`["{\"auth\":\"_api:x\"}"]`)); err != nil {
		t.Fatal(err)
	}
	a, b := counterOf(t, frame()), counterOf(t, frame())
	if b <= a {
		t.Fatalf("counter did not increase: %d then %d", a, b)
	}
}

func TestPages(t *testing.T) {
	t.Parallel()
	_, op := newOctoPrint(t, OctoPrintOptions{Name: "Prusa MK4"})
	_, _, fe := newMoonraker(t, MoonrakerOptions{Name: "Voron 2.4"})
	tests := []struct {
		name, url, title, ws string
	}{
		{"octoprint", op.URL + "/", "Prusa MK4", "/sockjs/"},
		{"moonraker", fe.URL + "/", "Voron 2.4", "/websocket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, tc.url, nil, nil)
			s := string(body)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			for _, want := range []string{`<img id="webcam" src="/webcam/?action=stream"`, `id="ws-value"`, `id="ws-status"`,
				"location.host", `"wss:"`, tc.title, tc.ws} {
				if !strings.Contains(s, want) {
					t.Errorf("page lacks %q", want)
				}
			}
		})
	}
}

func TestCompanionAPI(t *testing.T) {
	t.Parallel()
	srv := serve(t, NewCompanionAPI(testID), nil)
	for _, path := range []string{"/", "/anything/at/all?x=1"} {
		resp, body := do(t, http.MethodGet, srv.URL+path, nil, nil)
		v := decodeJSON(t, body)
		if resp.StatusCode != http.StatusOK || v["PluginId"] != testID || v["IsConnectedToOctoEverywhere"] != true ||
			v["IsConnectedToPrinter"] != true || v["IsAccountLinked"] != true {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}

// The upload is hashed as it streams: allocating far less than the file size proves the
// printer never holds the body. Not parallel, so that other tests' allocations stay out of
// the measurement.
func TestUploadDoesNotBuffer(t *testing.T) {
	p, srv := newOctoPrint(t, OctoPrintOptions{})
	const size = 32 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, body, sum := postUpload(t, srv.URL+"/api/files/local", nil, nil, "big.gcode", size, false)
	runtime.ReadMemStats(&after)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if u := p.Uploads(); len(u) != 1 || u[0].Size != size || u[0].SHA256 != sum() {
		t.Fatalf("uploads %+v", u)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Fatalf("a %d-byte upload allocated %d bytes: the body is being buffered", size, alloc)
	}
}

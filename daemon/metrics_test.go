package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/oesim"
)

// series returns the value of the sample of metric name whose labels include want, if any.
func series(text, name string, want map[string]string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		ok := true
		for k, v := range want {
			if !strings.Contains(m[1], k+`="`+v+`"`) {
				ok = false
				break
			}
		}
		if ok {
			f, err := strconv.ParseFloat(m[2], 64)
			return f, err == nil
		}
	}
	return 0, false
}

// openStream starts a webcam stream through oeproxy and reads its first bytes; the caller closes it.
func openStream(t *testing.T, url string) io.ReadCloser {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("stream %s: %s", url, resp.Status)
	}
	if _, err := io.ReadAtLeast(resp.Body, make([]byte, 512), 512); err != nil {
		resp.Body.Close()
		t.Fatalf("stream %s: %v", url, err)
	}
	return resp.Body
}

// rpc sends one Moonraker JSON-RPC request on c and returns the result's raw JSON.
func rpc(t *testing.T, c *websocket.Conn, id int, method string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "id": id})
	if err := c.Write(ctx, websocket.MessageText, req); err != nil {
		t.Fatalf("write %s: %v", method, err)
	}
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read %s: %v", method, err)
		}
		var m struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(msg, &m) == nil && m.ID == id {
			return string(m.Result)
		}
	}
}

func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	return c
}

func TestMetricsAfterTraffic(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	mk4, voron := e.Sim.Printers()[0], e.Sim.Printers()[1]
	mk4Conn := addServed(t, e, "mk4", mk4)
	addServed(t, e, "voron", voron)
	d, _ := serviceDaemon(t, e, nil, nil)
	waitState(t, d.healthOf("mk4"), health.StateOnline)
	mk4URL, voronURL := "http://"+d.PrinterAddr("mk4"), "http://"+d.PrinterAddr("voron")

	for range 3 {
		if a := send(t, http.MethodGet, mk4URL+"/api/version", ""); a.status != 200 {
			t.Fatalf("GET: %d", a.status)
		}
	}
	if a := send(t, http.MethodGet, mk4URL+"/no/such/path", ""); a.status != 404 {
		t.Fatalf("GET missing: %d", a.status)
	}
	mk4Conn.SetFault(oesim.FaultServerError)
	if a := send(t, http.MethodGet, mk4URL+"/api/version", ""); a.status != 600 {
		t.Fatalf("GET with fault: %d", a.status)
	}
	mk4Conn.SetFault(oesim.FaultNone)

	stream := openStream(t, mk4URL+"/webcam/?action=stream")
	defer stream.Close()
	ws := dialWS(t, "ws"+strings.TrimPrefix(voronURL, "http")+"/websocket")
	defer ws.CloseNow()
	rpc(t, ws, 1, "server.info")

	// An upload in progress: the body is held open until the gauge has been seen.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, mk4URL+"/api/files/local", pr)
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	upDone := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			upDone <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		upDone <- resp.StatusCode
	}()
	if _, err := pw.Write(make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, d)
	scrape := func() string {
		r := b.do(http.MethodGet, "/metrics", nil, nil)
		if r.status != 200 {
			t.Fatalf("/metrics: %d", r.status)
		}
		return r.body
	}
	waitFor(t, "the open upload", func() bool {
		v, _ := series(scrape(), "oeproxy_open_uploads", map[string]string{"printer": "mk4"})
		return v == 1
	})
	text := scrape()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"oeproxy_requests_total", map[string]string{"printer": "mk4", "route": "relay", "class": "2xx"}, 3},
		{"oeproxy_requests_total", map[string]string{"printer": "mk4", "class": "4xx"}, 1},
		{"oeproxy_requests_total", map[string]string{"printer": "mk4", "class": "6xx"}, 1},
		{"oeproxy_octoeverywhere_errors_total", map[string]string{"printer": "mk4", "code": "600"}, 1},
		{"oeproxy_open_websockets", map[string]string{"printer": "voron"}, 1},
		{"oeproxy_open_websockets", map[string]string{"printer": "mk4"}, 0},
		{"oeproxy_open_streams", map[string]string{"printer": "mk4"}, 1},
		{"oeproxy_open_uploads", map[string]string{"printer": "mk4"}, 1},
		{"oeproxy_printer_listener_up", map[string]string{"printer": "voron"}, 1},
		{"oeproxy_printer_state", map[string]string{"printer": "mk4", "state": "online"}, 1},
		{"oeproxy_printer_state", map[string]string{"printer": "mk4", "state": "needs_relink"}, 0},
		{"oeproxy_response_header_seconds_count", map[string]string{"printer": "mk4"}, 6}, // 5 requests and the stream; not the open upload
	} {
		got, ok := series(text, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if out, _ := series(text, "oeproxy_response_body_bytes_total", map[string]string{"printer": "mk4"}); out <= 0 {
		t.Errorf("response bytes of mk4: %v", out)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "oeproxy_response_header_seconds_bucket"} {
		if _, ok := series(text, name, nil); !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	assertNoSecret(t, e, "/metrics", text)
	if strings.Contains(text, mk4Conn.Credentials().ID) {
		t.Error("/metrics names the relay host or connection ID")
	}

	// The page shows the same numbers.
	body, _ := b.page()
	for _, want := range []string{"1 WebSocket(s)", "1 webcam/event stream(s)", "1 upload(s)"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	// Ending the upload, the stream and the WebSocket brings the gauges back to zero.
	pw.Close()
	if st := <-upDone; st == 0 {
		t.Error("upload failed")
	}
	stream.Close()
	ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "gauges back to zero", func() bool {
		text := scrape()
		a, _ := series(text, "oeproxy_open_uploads", map[string]string{"printer": "mk4"})
		s, _ := series(text, "oeproxy_open_streams", map[string]string{"printer": "mk4"})
		w, _ := series(text, "oeproxy_open_websockets", map[string]string{"printer": "voron"})
		return a == 0 && s == 0 && w == 0
	})
	if in, _ := series(scrape(), "oeproxy_request_body_bytes_total", map[string]string{"printer": "mk4"}); in < 32<<10 {
		t.Errorf("request bytes of mk4: %v, want at least the upload", in)
	}
}

func TestMetricsPrivateRegistryPerDaemon(t *testing.T) {
	// Two daemons in one process: each registers its own collectors without a duplicate-registration panic.
	e1 := newTestEnv(t, oesim.Options{})
	e2 := newTestEnv(t, oesim.Options{})
	d1, _ := serviceDaemon(t, e1, nil, nil)
	d2, _ := serviceDaemon(t, e2, nil, nil)
	if d1.metrics.Registry() == d2.metrics.Registry() {
		t.Fatal("daemons share a registry")
	}
}

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/internal/testutil"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/webcam"
)

const frontKey = "FRONTKEY0123456789abcdef"

// startFrontSim runs oesim with one Bambu printer and a Handler with the front on for it.
func startFrontSim(t *testing.T, mod func(*Options)) (*simEnv, *oesim.Printer) {
	t.Helper()
	sim, err := oesim.Start(context.Background(), oesim.Options{TempDir: t.TempDir(), Printers: []oesim.PrinterOptions{
		{Name: "X1C", Kind: oesim.KindBambu, WebcamTransform: "fliph"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := &simEnv{sim: sim, printer: sim.Printers()[0]}
	e.conn = sim.Connect(e.printer)
	e.creds = e.conn.Credentials()
	relayURL, _ := url.Parse(e.creds.URL)
	e.transport = oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	log, logs := observed()
	e.logs = logs
	e.local = httptest.NewUnstartedServer(nil)
	o := Options{Transport: e.transport, Logger: log, ListenAddr: e.local.Listener.Addr().String()}
	if mod != nil {
		mod(&o)
	}
	e.h, err = New(Printer{Name: "x1c", RelayURL: relayURL, BasicUser: e.creds.BasicUser,
		BasicPassword: e.creds.BasicPassword, FrontAPIKey: frontKey}, o)
	if err != nil {
		t.Fatal(err)
	}
	e.local.Config.Handler = e.h
	// net/http lingers half a second before closing a connection whose request body was left unread (the early
	// 403 and 413); the cleanup waits for those connections so that goleak sees none.
	var open atomic.Int32
	e.local.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	e.local.Start()
	t.Cleanup(func() {
		e.h.Close()
		e.local.Close()
		testutil.WaitFor(t, "the front server's connections to close", func() bool { return open.Load() == 0 })
		_ = sim.Close()
		e.transport.CloseIdleConnections()
		assertNoSecrets(t, e.logs, append(e.secrets(), frontKey)...)
	})
	return e, e.printer
}

// prusaSlicerUpload builds the request PrusaSlicer's OctoPrint host sends: print and path before the file,
// multipart/form-data with a Content-Length, X-Api-Key.
func prusaSlicerUpload(t *testing.T, base, key string, file []byte, print bool) *http.Request {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("print", map[bool]string{true: "true", false: "false"}[print])
	_ = mw.WriteField("path", "")
	fw, _ := mw.CreateFormFile("file", "benchy_PLA_0.2mm.3mf")
	_, _ = fw.Write(file)
	_ = mw.Close()
	req, err := http.NewRequest("POST", base+"/api/files/local", bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("User-Agent", "PrusaSlicer/2.8.1")
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	return req
}

func TestFrontPrusaSlicerUploadAndPrint(t *testing.T) {
	e, p := startFrontSim(t, nil)
	base := e.local.URL

	// What PrusaSlicer's "Test" does first.
	req, _ := http.NewRequest("GET", base+"/api/version", nil)
	req.Header.Set("X-Api-Key", frontKey)
	resp, body := doBody(t, req)
	var v struct{ API, Text string }
	if err := json.Unmarshal(body, &v); resp.StatusCode != 200 || err != nil || v.API == "" || !strings.HasPrefix(v.Text, "OctoPrint") {
		t.Fatalf("/api/version: %d %s", resp.StatusCode, body)
	}

	file := make([]byte, 3<<20+17)
	_, _ = rand.Read(file)
	sum := sha256.Sum256(file)

	// Without the key nothing reaches the printer.
	for _, key := range []string{"", "wrong-key"} {
		resp, body = doBody(t, prusaSlicerUpload(t, base, key, file, true))
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("key %q: %d %s, want 403", key, resp.StatusCode, body)
		}
	}
	if _, ok := p.Plugin().File("gcode/benchy_PLA_0.2mm.3mf"); ok || len(p.Plugin().Commands()) != 0 {
		t.Fatalf("a refused upload reached the printer: %v", p.Plugin().Commands())
	}

	resp, body = doBody(t, prusaSlicerUpload(t, base, frontKey, file, true))
	if resp.StatusCode != http.StatusCreated || !strings.HasSuffix(resp.Header.Get("Location"), "/api/files/local/benchy_PLA_0.2mm.3mf") {
		t.Fatalf("upload: %d %s (Location %q)", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	u, ok := p.Plugin().File("gcode/benchy_PLA_0.2mm.3mf")
	if !ok || u.Size != int64(len(file)) || u.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("on the printer: %+v %v, want %d bytes %x", u, ok, len(file), sum)
	}
	if got := p.Plugin().Starts(); len(got) != 1 || got[0] != "gcode/benchy_PLA_0.2mm.3mf" || p.Plugin().State() != "printing" {
		t.Fatalf("print not started: starts %v state %q", got, p.Plugin().State())
	}
	// Every relay request carried the credential, never the front's key.
	for _, rq := range e.conn.Requests() {
		if rq.Header.Get("Authorization") == "" || rq.Header.Get("X-Api-Key") != "" {
			t.Fatalf("relay request %s %s: Authorization %q X-Api-Key %q", rq.Method, rq.Path, rq.Header.Get("Authorization"), rq.Header.Get("X-Api-Key"))
		}
	}

	// The job and the printer as OctoPrint clients read them; then pause, resume and cancel.
	get := func(path string) map[string]any {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("X-Api-Key", frontKey)
		resp, body := doBody(t, req)
		var m map[string]any
		if err := json.Unmarshal(body, &m); resp.StatusCode != 200 || err != nil {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		return m
	}
	if st := get("/api/job")["state"]; st != "Printing" {
		t.Fatalf("/api/job state %v", st)
	}
	if flags := get("/api/printer")["state"].(map[string]any)["flags"].(map[string]any); flags["printing"] != true {
		t.Fatalf("/api/printer flags %v", flags)
	}
	if files := get("/api/files")["files"].([]any); len(files) != 1 {
		t.Fatalf("/api/files: %v", files)
	}
	if cam := get("/api/settings")["webcam"].(map[string]any); cam["flipH"] != true || cam["streamUrl"] != "/webcam/?action=stream" {
		t.Fatalf("/api/settings webcam %v", cam)
	}
	job := func(body string) int {
		req, _ := http.NewRequest("POST", base+"/api/job", strings.NewReader(body))
		req.Header.Set("X-Api-Key", frontKey)
		req.Header.Set("Content-Type", "application/json")
		resp, _ := doBody(t, req)
		return resp.StatusCode
	}
	for _, step := range []struct {
		body  string
		want  int
		state string
	}{
		{`{"command":"pause","action":"pause"}`, 204, "paused"},
		{`{"command":"pause","action":"toggle"}`, 204, "printing"},
		{`{"command":"start"}`, 409, "printing"}, // 786 → 409, as OctoPrint answers a start while printing
		{`{"command":"cancel"}`, 204, "cancelled"},
		{`{"command":"pause","action":"resume"}`, 409, "cancelled"},
	} {
		if got := job(step.body); got != step.want || p.Plugin().State() != step.state {
			t.Fatalf("%s: %d state %q, want %d %q", step.body, got, p.Plugin().State(), step.want, step.state)
		}
	}

	// The webcam needs no key (as OctoPi's) and keeps the plugin's transform header.
	req, _ = http.NewRequest("GET", base+"/webcam/?action=snapshot", nil)
	resp, body = doBody(t, req)
	if resp.StatusCode != 200 || resp.Header.Get("X-Oe-Webcam-Transform") != "fliph" || !bytes.HasPrefix(body, []byte{0xff, 0xd8}) {
		t.Fatalf("snapshot: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestFrontUploadLimitAndRelayCodes(t *testing.T) {
	e, p := startFrontSim(t, func(o *Options) { o.UploadLimit = func() int64 { return 1 << 20 } })
	// A raw connection that sends the headers and the start of the body, as a slicer does before it hears back: the
	// answer must come without the rest (an http.Client would race its own body writes against the early close).
	big := prusaSlicerUpload(t, e.local.URL, frontKey, make([]byte, 2<<20), false)
	c, err := net.Dial("tcp", e.local.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/files/local HTTP/1.1\r\nHost: %s\r\nX-Api-Key: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		e.local.Listener.Addr(), frontKey, big.Header.Get("Content-Type"), big.ContentLength)
	head := make([]byte, 4096)
	n, _ := big.Body.Read(head)
	_, _ = c.Write(head[:n])
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit: %d, want 413", resp.StatusCode)
	}
	c.Close()
	if n := len(e.conn.Requests()); n != 0 {
		t.Fatalf("%d requests reached the relay for an upload refused at once", n)
	}

	// A print with print=false is stored only; then the printer goes offline: 601 passes with its meaning.
	resp, body := doBody(t, prusaSlicerUpload(t, e.local.URL, frontKey, []byte("G28\n"), false))
	if resp.StatusCode != http.StatusCreated || len(p.Plugin().Starts()) != 0 {
		t.Fatalf("print=false: %d %s, starts %v", resp.StatusCode, body, p.Plugin().Starts())
	}
	p.SetOnline(false)
	req, _ := http.NewRequest("GET", e.local.URL+"/api/job", nil)
	req.Header.Set("X-Api-Key", frontKey)
	resp, body = doBody(t, req)
	if resp.StatusCode != oesim.StatusPrinterOffline || resp.Header.Get(ErrorHeader) != "601" || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("offline: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

func doBody(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// Without a known limit the upload goes out, the relay stops it with 608, and the slicer gets 413 with the reason.
func TestFrontUploadRefusedByTheRelay(t *testing.T) {
	e, p := startFrontSim(t, nil)
	lim := e.conn.Limits()
	lim.MaxUploadFileSizeBytes = 1 << 20
	e.conn.SetLimits(lim)
	resp, body := doBody(t, prusaSlicerUpload(t, e.local.URL, frontKey, make([]byte, 2<<20), true))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "upload limit") {
		t.Fatalf("%d %s, want 413 naming the upload limit", resp.StatusCode, body)
	}
	if len(p.Plugin().Starts()) != 0 {
		t.Fatal("a refused upload started a print")
	}
}

// TestFrontWebcamShared: the front's webcam (the plugin's webcam/stream, for a printer without an HTTP webcam
// of its own) is shared like any other: three viewers cost one plugin stream per relay cut, the viewers' streams
// go on across the cuts, and a snapshot comes from the stream, not from webcam/snapshot.
func TestFrontWebcamShared(t *testing.T) {
	var continued atomic.Int64
	hub := webcam.New(webcam.Options{Continue: true, Linger: 100 * time.Millisecond,
		Hooks: webcam.Hooks{Continued: func() { continued.Add(1) }}})
	defer hub.Close()
	e, p := startFrontSim(t, func(o *Options) { o.Webcams = hub })
	e.conn.SetLimits(oesim.Limits{MaxSingleWebcamStreamLength: 700 * time.Millisecond})
	watchAcrossCuts(t, e, &continued, 1)
	streams, snapshots := 0, 0
	for _, c := range p.Plugin().Commands() {
		switch c {
		case "GET webcam/stream":
			streams++
		case "GET webcam/snapshot":
			snapshots++
		}
	}
	if c := int(continued.Load()); streams > c+1 {
		t.Errorf("%d plugin streams for 3 viewers and %d cuts: want %d", streams, c, c+1)
	}
	if snapshots != 0 {
		t.Error("the snapshot went to the plugin")
	}
}

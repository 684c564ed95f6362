package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/oesim"
)

// serveInBackground runs `oeproxy serve` until the returned stop is called; stop returns serve's exit code.
func (e *env) serveInBackground() (stop func() int) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _, _ := e.run(ctx, "", "serve")
		done <- code
	}()
	sock := filepath.Join(e.dataDir, control.SocketName)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := control.Dial(context.Background(), sock); err == nil {
			c.Close()
			break
		}
		select {
		case code := <-done:
			cancel()
			e.t.Fatalf("serve exited early with %d: %s", code, e.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			e.t.Fatal("serve did not open its control socket within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	var code int
	stop = func() int {
		once.Do(func() {
			cancel()
			code = <-done
		})
		return code
	}
	e.t.Cleanup(func() { stop() })
	return stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeHotAddRemoveThroughControlSocket(t *testing.T) {
	e := newEnv(t, oesim.Options{AutoApprove: true})
	mk4, voron := e.sim.Printers()[0], e.sim.Printers()[1]
	// One printer stored before the daemon starts.
	e.mustRun("", "connect", "--completion-url", completionURL(e.sim.Connect(mk4).Credentials(), mk4.Name, nil), "--name", "mk4")
	stop := e.serveInBackground()

	l := e.list() // through the socket
	if len(l) != 1 {
		t.Fatalf("list through the daemon: %+v", l)
	}
	if code, body := get(t, l[0].LocalURL+"/api/version"); code != 200 || !strings.Contains(body, "OctoPrint") {
		t.Fatalf("GET through the daemon: %d %s", code, body)
	}

	// A second daemon on the same data dir fails on the store lock, fast, naming the pid.
	start := time.Now()
	code, _, errOut := e.run(context.Background(), "", "serve")
	if code != 1 || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "pid") {
		t.Errorf("second serve: exit %d, %q", code, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second serve took %v to fail", d)
	}

	// Hot add through the real callback while a webcam stream runs on the first printer.
	stream, err := http.Get(l[0].LocalURL + "/webcam/?action=stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	e.mustRun("", "connect", "--name", "voron", "--printer-url", voron.BackendURL, "--timeout", "20s")
	l = e.list()
	if len(l) != 2 {
		t.Fatalf("after hot add: %+v", l)
	}
	var voronURL string
	for _, p := range l {
		if p.Name == "voron" {
			voronURL = p.LocalURL
		}
	}
	if code, body := get(t, voronURL+"/server/info"); code != 200 || !strings.Contains(body, "moonraker_version") {
		t.Fatalf("hot-added printer not served: %d %s", code, body)
	}
	e.mustRun("", "remove", "voron", "--yes")
	if code, _ := get(t, voronURL+"/server/info"); code != 0 {
		t.Errorf("removed printer still answers: %d", code)
	}
	// The first printer's stream was not touched.
	buf := make([]byte, 4096)
	if _, err := io.ReadAtLeast(stream.Body, buf, 1024); err != nil {
		t.Errorf("webcam stream of the other printer broke: %v", err)
	}
	stream.Body.Close()
	if code := stop(); code != 0 {
		t.Errorf("serve exit %d after SIGTERM-equivalent, want 0", code)
	}
	e.assertNoSecrets()
}

// slowReader yields n bytes in small pieces, pausing, so an upload is in flight when shutdown starts.
type slowReader struct {
	n       int64
	started chan struct{}
	once    bool
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	if !s.once {
		s.once = true
		close(s.started)
	}
	time.Sleep(5 * time.Millisecond)
	k := min(int64(len(p)), s.n, 64<<10)
	for i := range p[:k] {
		p[i] = 'G'
	}
	s.n -= k
	return int(k), nil
}

func TestShutdownDrainsAnUpload(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	mk4 := e.sim.Printers()[0]
	conn := e.sim.Connect(mk4)
	e.mustRun("", "connect", "--completion-url", completionURL(conn.Credentials(), mk4.Name, nil), "--name", "mk4")
	stop := e.serveInBackground()
	local := e.list()[0].LocalURL

	// A PrusaSlicer-shaped multipart upload with a Content-Length, sent slowly.
	const size = 4 << 20
	boundary := "oeproxytestboundary"
	head := fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"print\"\r\n\r\nfalse\r\n--%s\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n\r\n--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"drain.gcode\"\r\nContent-Type: application/octet-stream\r\n\r\n", boundary, boundary, boundary)
	tail := fmt.Sprintf("\r\n--%s--\r\n", boundary)
	body := &slowReader{n: size, started: make(chan struct{})}
	req, _ := http.NewRequest(http.MethodPost, local+"/api/files/local", io.MultiReader(strings.NewReader(head), body, strings.NewReader(tail)))
	req.ContentLength = int64(len(head) + size + len(tail))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	req.Header.Set("X-Api-Key", "anything")
	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{0, err}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, nil}
	}()
	<-body.started
	// Shut down only once the relay sees the upload arriving: before that the connection may still sit in the
	// listener's accept queue, which closing the listener resets (no server can drain what it never accepted).
	for deadline := time.Now().Add(10 * time.Second); ; {
		if reqs := conn.Requests(); len(reqs) > 0 && reqs[len(reqs)-1].Path == "/api/files/local" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upload never reached the relay")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopCode := make(chan int, 1)
	go func() { stopCode <- stop() }() // shutdown starts while the upload is in flight
	r := <-res
	if r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("upload during shutdown: %d %v\nlogs: %s", r.status, r.err, e.stderr.String())
	}
	if code := <-stopCode; code != 0 {
		t.Errorf("serve exit %d, want 0", code)
	}
	ups := mk4.OctoPrint().Uploads()
	if len(ups) != 1 || ups[0].Size != size {
		t.Fatalf("printer uploads: %+v", ups)
	}
	want := sha256.Sum256([]byte(strings.Repeat("G", size)))
	if ups[0].SHA256 != hex.EncodeToString(want[:]) {
		t.Errorf("upload not byte-exact")
	}
	_ = multipart.NewWriter // the body above is built by hand to control Content-Length exactly
}

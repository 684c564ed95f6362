package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"go.uber.org/zap/zaptest/observer"

	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/oesim"
)

// simEnv is one printer behind the simulated OctoEverywhere relay, and oeproxy's handler for it on a local port.
type simEnv struct {
	sim       *oesim.Sim
	printer   *oesim.Printer
	conn      *oesim.Connection
	creds     oesim.Credentials
	h         *Handler
	local     *httptest.Server
	logs      *observer.ObservedLogs
	transport *http.Transport
}

// startSim starts oesim with one printer (backend as its HTTP server, or a built-in kind when backend is nil)
// and serves a Handler for it on 127.0.0.1.
func startSim(t *testing.T, backend http.Handler, mod func(*Options, *Printer)) *simEnv {
	t.Helper()
	return startSimWith(t, oesim.Options{}, backend, mod)
}

// startSimWith is startSim with the sim's options (its printers and TempDir are set here).
func startSimWith(t *testing.T, so oesim.Options, backend http.Handler, mod func(*Options, *Printer)) *simEnv {
	t.Helper()
	po := oesim.PrinterOptions{Name: "test printer", Kind: oesim.KindGeneric, Handler: backend}
	if backend == nil {
		po = oesim.PrinterOptions{Name: "Prusa MK4", Kind: oesim.KindOctoPrint}
	}
	so.Printers, so.TempDir = []oesim.PrinterOptions{po}, t.TempDir()
	sim, err := oesim.Start(context.Background(), so)
	if err != nil {
		t.Fatal(err)
	}
	e := &simEnv{sim: sim, printer: sim.Printers()[0]}
	e.conn = sim.Connect(e.printer)
	e.creds = e.conn.Credentials()
	relayURL, err := url.Parse(e.creds.URL)
	if err != nil {
		t.Fatal(err)
	}
	e.transport = oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	log, logs := observed()
	e.logs = logs
	e.local = httptest.NewUnstartedServer(nil)
	o := Options{Transport: e.transport, Logger: log, ListenAddr: e.local.Listener.Addr().String(), AppID: "testapp",
		PortalURL: sim.PortalURL}
	p := Printer{Name: "mk4", RelayURL: relayURL, Auth: "basic", BasicUser: e.creds.BasicUser,
		BasicPassword: e.creds.BasicPassword, BearerToken: e.creds.BearerToken}
	if mod != nil {
		mod(&o, &p)
	}
	e.h, err = New(p, o)
	if err != nil {
		t.Fatal(err)
	}
	e.local.Config.Handler = e.h
	e.local.Start()
	t.Cleanup(func() {
		e.h.Close()
		e.local.Close()
		_ = sim.Close()
		e.transport.CloseIdleConnections()
		assertNoSecrets(t, e.logs, e.secrets()...)
	})
	return e
}

// secrets are every credential the sim issued for the connection, in every form that could leak.
func (e *simEnv) secrets() []string {
	c := e.creds
	return []string{c.BasicPassword, c.BearerToken, c.AppAPIToken, c.OctoPrintAPIKey,
		base64.StdEncoding.EncodeToString([]byte(c.BasicUser + ":" + c.BasicPassword))}
}

func (e *simEnv) basicCredential() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(e.creds.BasicUser+":"+e.creds.BasicPassword))
}

// url is the local oeproxy URL of path.
func (e *simEnv) url(path string) string { return e.local.URL + path }

// directClient talks to the relay directly, the credential set by the test (the "direct" side of differential tests).
func (e *simEnv) direct(t *testing.T, method, path string, body io.Reader, hdr http.Header) *http.Response {
	t.Helper()
	r, err := http.NewRequest(method, e.creds.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		r.Header[k] = v
	}
	r.Header.Set("Authorization", e.basicCredential())
	resp, err := (&http.Client{Transport: e.transport, CheckRedirect: noRedirect}).Do(r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// localClient talks to oeproxy and does not follow redirects.
func localClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableCompression: true}, CheckRedirect: noRedirect}
}

func do(t *testing.T, c *http.Client, r *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	return resp, b
}

func newReq(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testBackend is the printer of most integration tests: it reports what it saw and serves streams and
// WebSockets the tests control.
type testBackend struct {
	mux *http.ServeMux

	mu      sync.Mutex
	uploads []seenUpload
	closes  []websocket.CloseError // close frames the printer received on /ws

	frameNext  chan struct{} // the MJPEG handler waits on this before each further frame
	streamGone chan struct{} // closed when an MJPEG request's context ends
}

type seenUpload struct {
	ContentLength int64
	Size          int64
	SHA256        string
}

func newTestBackend() *testBackend {
	b := &testBackend{mux: http.NewServeMux(), frameNext: make(chan struct{}), streamGone: make(chan struct{})}
	b.mux.HandleFunc("/echo", b.echo)
	b.mux.HandleFunc("/upload", b.upload)
	b.mux.HandleFunc("/mjpeg", b.mjpeg)
	b.mux.HandleFunc("/ws", b.ws)
	b.mux.HandleFunc("/cookies", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "session=s1; Path=/; Domain="+r.Header.Get("X-Forwarded-Host")+"; Secure; HttpOnly")
		w.Header().Add("Set-Cookie", "plain=p1; Path=/")
		http.Redirect(w, r, "/after?x=1", http.StatusFound)
	})
	return b
}

func (b *testBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.mux.ServeHTTP(w, r) }

// echo answers with the method, query and headers the printer received.
func (b *testBackend) echo(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "query": r.URL.RawQuery, "header": r.Header, "body": n})
}

func (b *testBackend) upload(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.uploads = append(b.uploads, seenUpload{ContentLength: r.ContentLength, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	b.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

// mjpeg sends a frame, then waits for the test to allow each next one; it reports when the request ends.
func (b *testBackend) mjpeg(w http.ResponseWriter, r *http.Request) {
	defer close(b.streamGone)
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
	rc := http.NewResponseController(w)
	for i := 1; ; i++ {
		frame := fmt.Sprintf("frame %d", i)
		if _, err := fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n", len(frame), frame); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-b.frameNext:
		case <-r.Context().Done():
			return
		}
	}
}

// ws echoes every message with its type; "close <code> <reason>" makes the printer close with that code.
func (b *testBackend) ws(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"v2.proto", "v1.proto"}, InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	ctx := context.Background()
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errorsAs(err, &ce) {
				b.mu.Lock()
				b.closes = append(b.closes, ce)
				b.mu.Unlock()
			}
			return
		}
		if typ == websocket.MessageText {
			msg, _ := io.ReadAll(rd)
			var code int
			var reason string
			if n, _ := fmt.Sscanf(string(msg), "close %d %s", &code, &reason); n == 2 {
				_ = c.Close(websocket.StatusCode(code), strings.ReplaceAll(reason, "_", " "))
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
			continue
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return
		}
		if _, err := io.Copy(wr, rd); err != nil {
			return
		}
		if wr.Close() != nil {
			return
		}
	}
}

func (b *testBackend) seenUploads() []seenUpload {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seenUpload(nil), b.uploads...)
}

func (b *testBackend) seenCloses() []websocket.CloseError {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]websocket.CloseError(nil), b.closes...)
}

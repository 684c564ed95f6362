package oesim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seen is one request as the test backend (the "printer") received it.
type seen struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	ContentLength                int64
	TransferEncoding             []string
	BodySize                     int64
	SHA256                       string
	Server                       string // which backend: "api" or "frontend"
}

// testPrinter is a scriptable printer backend that records what arrives.
type testPrinter struct {
	name string
	mu   sync.Mutex
	reqs []seen
	// onRequest, when set, runs when a request arrives (before the body is read).
	onRequest func(r *http.Request)
	// frameGate, when set, is waited on before every MJPEG frame after the first.
	frameGate chan struct{}
}

func (tp *testPrinter) requests() []seen {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]seen(nil), tp.reqs...)
}

func (tp *testPrinter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if tp.onRequest != nil {
		tp.onRequest(r)
	}
	if isWebSocketUpgrade(r) {
		tp.record(r, 0, "")
		tp.serveWS(w, r)
		return
	}
	h := sha256.New()
	n, _ := io.Copy(h, r.Body)
	tp.record(r, n, hex.EncodeToString(h.Sum(nil)))
	q := r.URL.Query()
	switch r.URL.Path {
	case "/redirect":
		w.Header().Set("Location", "http://"+r.Host+"/target/path?x=1&y=2")
		w.Header().Set("X-Clacks-Overhead", "GNU Terry Pratchett")
		w.WriteHeader(http.StatusFound)
	case "/created":
		w.Header().Set("Location", "http://127.0.0.1:5000/api/files/local/benchy.gcode")
		w.WriteHeader(http.StatusCreated)
	case "/bytes":
		size, _ := strconv.Atoi(q.Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = w.Write(make([]byte, size))
	case "/chunked":
		size, _ := strconv.Atoi(q.Get("n"))
		chunk := make([]byte, 16<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
				return
			}
			http.NewResponseController(w).Flush()
		}
	case "/mjpeg":
		tp.serveMJPEG(w, r)
	default:
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s from %s", r.Method, r.URL.Path, tp.name)
	}
}

func (tp *testPrinter) record(r *http.Request, n int64, sum string) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.reqs = append(tp.reqs, seen{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone(),
		ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding, BodySize: n, SHA256: sum, Server: tp.name,
	})
}

const mjpegBoundary = "oesimframe"

func (tp *testPrinter) serveMJPEG(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+mjpegBoundary)
	w.WriteHeader(http.StatusOK)
	for i := 0; ; i++ {
		if i > 0 {
			if tp.frameGate != nil {
				select {
				case <-tp.frameGate:
				case <-r.Context().Done():
					return
				}
			} else if !sleep(r.Context(), 20*time.Millisecond) {
				return
			}
		}
		frame := fmt.Sprintf("frame-%d", i)
		if _, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n", mjpegBoundary, len(frame), frame); err != nil {
			return
		}
		http.NewResponseController(w).Flush()
	}
}

// serveWS echoes messages; "close <code> <reason>" makes it close with that code; it prefers subprotocol v2.
func (tp *testPrinter) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"v2", "v1"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	for {
		typ, data, err := c.Read(r.Context())
		if err != nil {
			tp.mu.Lock()
			tp.reqs = append(tp.reqs, seen{Method: "WSCLOSE", Path: fmt.Sprintf("%d %s", websocket.CloseStatus(err), closeReason(err)), Server: tp.name})
			tp.mu.Unlock()
			return
		}
		if typ == websocket.MessageText && strings.HasPrefix(string(data), "close ") {
			parts := strings.SplitN(string(data), " ", 3)
			code, _ := strconv.Atoi(parts[1])
			_ = c.Close(websocket.StatusCode(code), parts[2])
			return
		}
		if err := c.Write(r.Context(), typ, data); err != nil {
			return
		}
	}
}

func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

// newSim starts a sim with one generic test printer (unless o.Printers is set) and closes it at cleanup.
func newSim(t *testing.T, o Options) (*Sim, *testPrinter) {
	t.Helper()
	tp := &testPrinter{name: "api"}
	if o.Printers == nil {
		o.Printers = []PrinterOptions{{Name: "Test Printer", Kind: KindGeneric, Handler: tp}}
	}
	s, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, tp
}

// get sends method to the connection's relay host with Basic auth (unless auth is "none" or a full header).
func relayRequest(t *testing.T, s *Sim, c *Connection, method, path string, body io.Reader, auth string) *http.Request {
	t.Helper()
	cr := c.Credentials()
	req, err := http.NewRequest(method, cr.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch auth {
	case "", "basic":
		req.SetBasicAuth(cr.BasicUser, cr.BasicPassword)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+cr.BearerToken)
	case "none":
	default:
		req.Header.Set("Authorization", auth)
	}
	return req
}

func do(t *testing.T, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

package reliability

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/proxy"
)

// The relay drops mid-download: the client must see a broken body, never a short one passed off as complete.
func TestFaultDropMidDownload(t *testing.T) {
	track(t)
	r := newRig(t, rigOptions{})
	r.env.Conn.SetFault(oesim.FaultDrop)
	const size = 1 << 20
	resp, body, err := r.get(fmt.Sprintf("/bytes?n=%d", size), nil)
	switch {
	case err == nil && len(body) == size:
		t.Fatalf("the whole body arrived although the relay dropped the connection (status %s)", resp.Status)
	case err == nil && resp.StatusCode == http.StatusOK:
		t.Fatalf("a short body (%d of %d bytes) ended cleanly: the client cannot tell it is broken", len(body), size)
	}
	t.Logf("client saw: %v (%d bytes)", err, len(body))
	r.env.Conn.SetFault(oesim.FaultNone)
	waitIdle(t)
	r.mustOK(t)
}

// The relay drops mid-upload (the connection is reset after 2 MiB of a 16 MiB body): the client gets an
// answer or an error within the deadline, the printer never sees a partial file, and the next upload works.
func TestFaultDropMidUpload(t *testing.T) {
	track(t)
	r := newRig(t, rigOptions{})
	const size = 16 << 20
	r.chaos.CutAfter(2 << 20)
	start := time.Now()
	resp, body, err := r.do(http.MethodPost, "/upload", nil, io.LimitReader(zeros{}, size))
	if err == nil && resp.StatusCode == http.StatusOK {
		t.Fatalf("upload succeeded although the relay dropped mid-body: %s", body)
	}
	if err == nil && resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %s, want 502 (relay unreachable) or a broken connection", resp.Status)
	}
	t.Logf("client saw %v / %v after %s", statusOf(resp), err, time.Since(start).Round(time.Millisecond))
	if n := r.env.Origin.UploadBytes.Load(); n != 0 {
		t.Errorf("the printer received %d bytes of a broken upload", n)
	}
	waitIdle(t)
	resp, body, err = r.do(http.MethodPost, "/upload", nil, io.LimitReader(zeros{}, size))
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != fmt.Sprintf(`{"bytes":%d}`, size) {
		t.Fatalf("the next upload: %v %v %s", statusOf(resp), err, body)
	}
}

// The relay drops WebSockets: as a plugin disconnect (close 1001 passed on) and as a reset TCP connection
// (the client gets 1011 from oeproxy).
func TestFaultDropMidWebSocket(t *testing.T) {
	cases := []struct {
		name string
		drop func(*rig)
		want websocket.StatusCode
	}{
		{"plugin disconnect", func(r *rig) { r.env.Conn.DropWebSockets() }, websocket.StatusGoingAway},
		{"connection reset", func(r *rig) { r.chaos.CutAll() }, websocket.StatusInternalError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			track(t)
			r := newRig(t, rigOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ws, _, err := r.dialWS(ctx, "/ws/echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			echo(ctx, t, ws, "before")
			c.drop(r)
			_, _, err = ws.Read(ctx)
			if got := websocket.CloseStatus(err); got != c.want {
				t.Fatalf("client read after the drop: %v (close status %d), want close %d", err, got, c.want)
			}
			waitIdle(t)
			r.mustOK(t)
		})
	}
}

// The relay drops a webcam stream: the viewer's read ends with an error within the deadline (no hang, no
// clean end that would look like a finished stream).
func TestFaultDropMidMJPEG(t *testing.T) {
	cases := []struct {
		name   string
		before func(*rig)
		during func(*rig)
	}{
		{"relay cuts the stream", func(r *rig) { r.env.Conn.SetFault(oesim.FaultDrop) }, func(*rig) {}},
		{"connection reset", func(*rig) {}, func(r *rig) { r.chaos.CutAll() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			track(t)
			r := newRig(t, rigOptions{})
			c.before(r)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url("/mjpeg?ms=20&size=8192"), nil)
			resp, err := r.client.Do(req)
			if err != nil {
				t.Logf("stream refused at once: %v", err)
			} else {
				defer resp.Body.Close()
				buf := make([]byte, 4096)
				if _, err := io.ReadFull(resp.Body, buf); err == nil {
					c.during(r)
				}
				_, err = io.Copy(io.Discard, resp.Body)
				if err == nil {
					t.Fatal("the stream ended cleanly although the relay dropped it")
				}
				if ctx.Err() != nil {
					t.Fatal("the viewer hung until the deadline")
				}
				t.Logf("viewer saw: %v", err)
			}
			r.env.Conn.SetFault(oesim.FaultNone)
			waitIdle(t)
			r.mustOK(t)
		})
	}
}

// The relay stalls: an HTTP request waits until the client gives up, and then the upstream request is
// cancelled; a stalled TCP link mid-download likewise; a WebSocket whose relay stops answering pings is closed
// with 1011 within two ping intervals.
func TestFaultRelayStall(t *testing.T) {
	t.Run("no answer", func(t *testing.T) {
		track(t)
		r := newRig(t, rigOptions{})
		r.env.Conn.SetFault(oesim.FaultStall)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url("/small"), nil)
		if resp, err := r.client.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("a stalled relay answered %s", resp.Status)
		}
		waitIdle(t)
		r.env.Conn.SetFault(oesim.FaultNone)
		r.mustOK(t)
	})
	t.Run("stuck link mid-download", func(t *testing.T) {
		track(t)
		r := newRig(t, rigOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url("/bytes?n=1073741824"), nil)
		resp, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
			t.Fatal(err)
		}
		r.chaos.Stall(true)
		time.Sleep(300 * time.Millisecond)
		cancel()
		resp.Body.Close()
		r.chaos.Stall(false)
		r.chaos.CutAll() // the relay side of the stuck link goes too, as it would time out
		waitIdle(t)
		r.mustOK(t)
	})
	t.Run("WebSocket relay silent", func(t *testing.T) {
		track(t)
		r := newRig(t, rigOptions{pingInterval: 200 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ws, _, err := r.dialWS(ctx, "/ws/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		echo(ctx, t, ws, "before")
		r.env.Conn.SetSilentWebSockets(true)
		start := time.Now()
		_, _, err = ws.Read(ctx)
		if got := websocket.CloseStatus(err); got != websocket.StatusInternalError {
			t.Fatalf("client read: %v (status %d), want 1011", err, got)
		}
		t.Logf("closed with 1011 after %s", time.Since(start).Round(time.Millisecond))
		r.env.Conn.SetSilentWebSockets(false)
		waitNone(t, "proxy handler", proxySide)
		r.mustOK(t)
	})
}

// Each 6xx mid-session: a printer that worked answers with the code, which passes unchanged with an
// explanation (JSON for scripts, the code in X-Oeproxy-Error), one log line names it, open WebSockets end where
// OctoEverywhere ends them, and the proxy recovers when the cause goes away.
func TestFault6xxMidSession(t *testing.T) {
	type step struct {
		code    int
		set     func(*rig)
		undo    func(*rig)
		req     func(*rig) (*http.Response, []byte, error)
		closeWS bool
	}
	get := func(path string) func(*rig) (*http.Response, []byte, error) {
		return func(r *rig) (*http.Response, []byte, error) {
			return r.get(path, http.Header{"Accept": {"application/json"}})
		}
	}
	small := get("/small")
	cases := []step{
		{600, func(r *rig) { r.env.Conn.SetFault(oesim.FaultServerError) }, func(r *rig) { r.env.Conn.SetFault(oesim.FaultNone) }, small, false},
		{601, func(r *rig) { r.env.Conn.Printer().SetOnline(false) }, func(r *rig) { r.env.Conn.Printer().SetOnline(true) }, small, true},
		{602, func(r *rig) { r.env.Conn.SetFault(oesim.FaultTimeout) }, func(r *rig) { r.env.Conn.SetFault(oesim.FaultNone) }, small, false},
		{603, func(r *rig) { r.env.Conn.Delete() }, nil, small, true},
		{604, func(r *rig) { r.env.Conn.Revoke() }, nil, small, true},
		{605, func(r *rig) { r.env.Conn.SetSupporter(false) }, func(r *rig) { r.env.Conn.SetSupporter(true) }, small, false},
		{607, func(r *rig) { r.env.Conn.SetLimits(oesim.Limits{MaxDownloadFileSizeBytes: 1024}) },
			func(r *rig) { r.env.Conn.SetLimits(oesim.Limits{MaxDownloadFileSizeBytes: 1 << 40}) }, get("/bytes?n=4096"), false},
		{608, func(r *rig) { r.env.Conn.SetLimits(oesim.Limits{MaxUploadFileSizeBytes: 1024}) },
			func(r *rig) { r.env.Conn.SetLimits(oesim.Limits{MaxUploadFileSizeBytes: 1 << 40}) },
			func(r *rig) (*http.Response, []byte, error) {
				return r.do(http.MethodPost, "/upload", http.Header{"Accept": {"application/json"}}, bytes.NewReader(make([]byte, 4096)))
			}, false},
		{609, func(r *rig) {
			r.env.Conn.SetLimits(oesim.Limits{WebcamStartsPerWindow: 1, WebcamWindow: time.Hour})
			resp, _, _ := r.getStream("/mjpeg?ms=50&size=1024") // the one start allowed
			_ = resp
		}, func(r *rig) { r.env.Conn.SetLimits(oesim.Limits{WebcamStartsPerWindow: -1, WebcamWindow: -1}) },
			func(r *rig) (*http.Response, []byte, error) { return r.getStream("/mjpeg?ms=50&size=1024") }, false},
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.code), func(t *testing.T) {
			track(t)
			r := newRig(t, rigOptions{})
			r.mustOK(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ws, _, err := r.dialWS(ctx, "/ws/echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			echo(ctx, t, ws, "before")

			c.set(r)
			resp, body, err := c.req(r)
			if err != nil {
				t.Fatal(err)
			}
			checkExplained(t, resp, body, c.code)
			if !logged(r, c.code) {
				t.Errorf("no log line names code %d", c.code)
			}
			if c.closeWS {
				_, _, err := ws.Read(ctx)
				if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
					t.Errorf("open WebSocket after %d: %v (status %d), want 1001", c.code, err, got)
				}
			} else {
				echo(ctx, t, ws, "during")
			}
			// A new WebSocket handshake gets the same code instead of 101, where OctoEverywhere refuses it.
			if c.code <= 606 {
				_, hresp, err := r.dialWS(ctx, "/ws/echo", nil)
				if err == nil || hresp == nil || hresp.StatusCode != c.code {
					t.Errorf("WebSocket handshake during %d: %v (%v)", c.code, statusOf(hresp), err)
				}
			}
			if c.undo != nil {
				c.undo(r)
				r.mustOK(t)
			}
			ws.CloseNow()
			waitIdle(t)
		})
	}
	t.Run("606", func(t *testing.T) {
		track(t)
		r := newRig(t, rigOptions{password: "not-the-password-0123456789abcdef"})
		resp, body, err := r.get("/small", http.Header{"Accept": {"application/json"}})
		if err != nil {
			t.Fatal(err)
		}
		checkExplained(t, resp, body, 606)
		if !logged(r, 606) {
			t.Error("no log line names code 606")
		}
	})
}

func (r *rig) getStream(path string) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url(path), nil)
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	return resp, b, nil
}

// checkExplained checks a 6xx answer: status unchanged, X-Oeproxy-Error, a JSON explanation naming the code.
func checkExplained(t *testing.T, resp *http.Response, body []byte, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("status %d, want %d (body %.200s)", resp.StatusCode, code, body)
	}
	if got := resp.Header.Get(proxy.ErrorHeader); got != strconv.Itoa(code) {
		t.Errorf("%s: %q, want %d", proxy.ErrorHeader, got, code)
	}
	var e struct {
		Code            int
		Meaning, Action string
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code != code || e.Meaning == "" || e.Action == "" {
		t.Errorf("explanation body %q: %v", body, err)
	}
}

func logged(r *rig, code int) bool {
	for _, e := range r.logs.All() {
		if c, ok := e.ContextMap()["code"]; ok && fmt.Sprint(c) == strconv.Itoa(code) {
			return true
		}
	}
	return false
}

// A relay presenting a certificate oeproxy does not trust: refused with a clear 502, and the credential never
// leaves (the relay records no request).
func TestFaultWrongRelayCertificate(t *testing.T) {
	track(t)
	r := newRig(t, rigOptions{roots: x509.NewCertPool()})
	resp, body, err := r.get("/small", http.Header{"Accept": {"application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "certificate") {
		t.Errorf("answer %s %q, want 502 explaining the certificate", resp.Status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, hresp, err := r.dialWS(ctx, "/ws/echo", nil); err == nil || hresp == nil || hresp.StatusCode != http.StatusBadGateway {
		t.Errorf("WebSocket through an untrusted relay: %v (%v), want 502", statusOf(hresp), err)
	}
	if n := r.relayRequests(); n != 0 {
		t.Errorf("the relay received %d request(s) over a connection oeproxy should not trust", n)
	}
	waitIdle(t)
}

// --- small helpers ---

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func statusOf(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	return resp.Status
}

func echo(ctx context.Context, t testing.TB, ws *websocket.Conn, msg string) {
	t.Helper()
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("WebSocket write: %v", err)
	}
	_, got, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("WebSocket read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

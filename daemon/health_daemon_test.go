package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/proxy"
)

// runDaemon serves the store of e with a real Daemon whose health trackers use clock and poll only when kicked
// (Interval 1 h). It returns the daemon and its logs; the daemon stops at the end of the test.
func runDaemon(t *testing.T, e *testEnv, clock *fakeClock) (*Daemon, *observer.ObservedLogs) {
	t.Helper()
	return startTestDaemon(t, e, nil, nil, clock.Now)
}

// freePort gives the record a port that is free now.
func freePort(t *testing.T, e *testEnv, name string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := e.Store.Update(name, func(r *credstore.Record) error { r.Port = port; return nil }); err != nil {
		t.Fatal(err)
	}
}

type answer struct {
	status int
	gate   string
	body   string
}

func send(t *testing.T, method, url string, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get(proxy.GateHeader), string(b)}
}

func jsonString(t *testing.T, body, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	s, _ := m[key].(string)
	return s
}

func waitState(t *testing.T, h *health.Health, want health.State) {
	t.Helper()
	waitFor(t, "state "+string(want), func() bool { return h.Snapshot().State == want })
}

// TestDaemonRevokedConnection: the relay answers 604, the daemon checks Info at once, which confirms it; from then
// on the printer's requests are answered by oeproxy with the re-link command and never reach the relay. Status
// through the control socket shows the daemon's state.
func TestDaemonRevokedConnection(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	conn, _ := e.Add(t, "mk4", nil)
	freePort(t, e, "mk4")
	d, logs := runDaemon(t, e, newClock())
	h := d.healthOf("mk4")
	waitState(t, h, health.StateOnline)
	base := "http://" + d.PrinterAddr("mk4")

	if a := send(t, http.MethodGet, base+"/api/version", ""); a.status != http.StatusOK {
		t.Fatalf("before revoke: %+v", a)
	}
	conn.Revoke()
	if a := send(t, http.MethodGet, base+"/api/version", ""); a.status != 604 || a.gate != "" {
		t.Fatalf("the relay's own 604: %+v", a)
	}
	waitState(t, h, health.StateNeedsRelink)
	n := len(conn.Requests())
	for _, path := range []string{"/api/version", "/", "/webcam/?action=stream"} {
		a := send(t, http.MethodGet, base+path, "")
		var body struct{ Code int }
		if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Code != 604 {
			t.Errorf("%s: body is not the explanation: %q", path, a.body)
		}
		// JSON escapes & as \u0026; decoded, the action holds the command.
		if a.status != 604 || a.gate != "refused" || !strings.Contains(jsonString(t, a.body, "action"), "oeproxy remove mk4 && oeproxy connect --name mk4") {
			t.Errorf("%s: %+v", path, a)
		}
	}
	if got := len(conn.Requests()); got != n {
		t.Fatalf("the relay received %d request(s) after the connection was confirmed revoked", got-n)
	}

	cl, err := control.Dial(context.Background(), d.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	st, err := cl.Status(context.Background(), "mk4")
	if err != nil || len(st) != 1 {
		t.Fatalf("status: %v %v", st, err)
	}
	if s := st[0]; s.State != health.StateNeedsRelink || !s.Daemon || s.StateSince == nil || s.LastError == nil || s.LastError.Code != 604 {
		t.Errorf("status %+v (last error %+v)", s, s.LastError)
	}
	if n := logs.FilterMessageSnippet("the App Connection must be linked again").Len(); n != 1 {
		t.Errorf("%d needs_relink log lines, want 1", n)
	}
}

// TestDaemonRefused606: a stored credential the relay refuses (606) while Info succeeds is condemned only after
// the 606 persisted past ConfirmAfter; then the relay is no longer called. A transient 606 (OctoPod #696) on a
// printer whose requests are accepted afterwards changes nothing.
func TestDaemonRefused606(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	e.Add(t, "good", nil)
	freePort(t, e, "good")
	conn, _ := e.Add(t, "bad", nil)
	if err := e.Store.Update("bad", func(r *credstore.Record) error { r.BasicPassword = "not-the-password"; return nil }); err != nil {
		t.Fatal(err)
	}
	freePort(t, e, "bad")
	clock := newClock()
	d, _ := runDaemon(t, e, clock)
	bad, good := d.healthOf("bad"), d.healthOf("good")
	waitState(t, bad, health.StateOnline)
	waitState(t, good, health.StateOnline)

	// The transient case: one 606 from the relay, then normal traffic.
	good.NoteRelayCode(606)
	if a := send(t, http.MethodGet, "http://"+d.PrinterAddr("good")+"/api/version", ""); a.status != http.StatusOK {
		t.Fatalf("good printer: %+v", a)
	}
	clock.Add(2 * time.Minute)
	good.NoteRelayCode(606)
	if s := good.Snapshot().State; s != health.StateOnline {
		t.Fatalf("a transient 606 condemned the good printer: %q", s)
	}

	base := "http://" + d.PrinterAddr("bad")
	before := bad.Snapshot().Checks
	if a := send(t, http.MethodGet, base+"/api/version", ""); a.status != 606 || a.gate != "" {
		t.Fatalf("first 606: %+v", a)
	}
	waitFor(t, "the Info check the 606 asked for", func() bool { return bad.Snapshot().Checks > before })
	if s := bad.Snapshot().State; s != health.StateOnline {
		t.Fatalf("condemned on the first 606: %q", s)
	}
	clock.Add(2 * time.Hour) // past ConfirmAfter (the Interval, 1 h here)
	if a := send(t, http.MethodGet, base+"/api/version", ""); a.status != 606 || a.gate != "" {
		t.Fatalf("second 606: %+v", a)
	}
	waitState(t, bad, health.StateNeedsRelink)
	n := len(conn.Requests())
	if a := send(t, http.MethodGet, base+"/api/version", ""); a.status != 606 || a.gate != "refused" || !strings.Contains(a.body, "oeproxy connect --name bad") {
		t.Fatalf("after condemnation: %+v", a)
	}
	if got := len(conn.Requests()); got != n {
		t.Fatalf("the relay received %d request(s) after condemnation", got-n)
	}
}

// TestDaemonUploadLimit: an upload over the account's upload limit is refused with 413 before any byte reaches
// the relay; a smaller one is relayed.
func TestDaemonUploadLimit(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	conn, _ := e.Add(t, "mk4", nil)
	conn.SetLimits(oesim.Limits{MaxUploadFileSizeBytes: 1000})
	freePort(t, e, "mk4")
	d, _ := runDaemon(t, e, newClock())
	waitState(t, d.healthOf("mk4"), health.StateOnline)
	base := "http://" + d.PrinterAddr("mk4")

	a := send(t, http.MethodPost, base+"/api/files/local", strings.Repeat("x", 2000))
	if a.status != http.StatusRequestEntityTooLarge || a.gate != "refused" || !strings.Contains(a.body, "608") || !strings.Contains(a.body, "1000 bytes") {
		t.Fatalf("upload over the limit: %+v", a)
	}
	if n := len(conn.Requests()); n != 0 {
		t.Fatalf("the relay received %d request(s)", n)
	}
	if a := send(t, http.MethodPost, base+"/api/files/local", strings.Repeat("x", 500)); a.gate != "" {
		t.Fatalf("small upload refused: %+v", a)
	}
	if n := len(conn.Requests()); n != 1 {
		t.Fatalf("the relay received %d request(s), want 1", n)
	}
}

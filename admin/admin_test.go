package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/proxy"
	"github.com/oeproxy/oeproxy/route"
)

// The tests here drive the page alone, on fakes of its two interfaces; the tests that need a running daemon
// (portal flow, reloads, real traffic) are in package daemon.

// fakeControl answers List and StatusNow; the page's other calls are not made by these tests (the embedded nil
// interface would panic, failing the test).
type fakeControl struct {
	control.Control
	list     []credstore.PublicRecord
	statuses []control.PrinterStatus
}

func (f *fakeControl) List(context.Context) ([]credstore.PublicRecord, error) { return f.list, nil }

func (f *fakeControl) StatusNow(_ context.Context, name string) ([]control.PrinterStatus, error) {
	if name == "" {
		return f.statuses, nil
	}
	for _, s := range f.statuses {
		if s.Name == name {
			return []control.PrinterStatus{s}, nil
		}
	}
	return nil, credstore.ErrNotFound
}

type fakeLive struct {
	cfg     config.Config
	routes  map[string]route.Status
	traffic map[string]Traffic
	uploads []proxy.UploadRecord
}

func (f *fakeLive) Config() config.Config { return f.cfg }
func (f *fakeLive) RouteStatus(name string) (route.Status, bool) {
	s, ok := f.routes[name]
	return s, ok
}
func (f *fakeLive) Traffic(name string) Traffic   { return f.traffic[name] }
func (f *fakeLive) Uploads() []proxy.UploadRecord { return f.uploads }

const testAddr = "127.0.0.1:8099"

func newTestPage(t *testing.T, c *fakeControl, l *fakeLive) *Page {
	t.Helper()
	l.cfg.DataDir = t.TempDir()
	l.cfg.Admin.Listen = testAddr
	p := New(Options{Control: c, Live: l, Addr: testAddr,
		Ready: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ready\n")) })})
	t.Cleanup(p.Close)
	return p
}

func get(p *Page, path string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Host = testAddr
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w
}

// login follows the page's login URL and returns the session cookie.
func login(t *testing.T, p *Page) *http.Cookie {
	t.Helper()
	u, err := url.Parse(p.LoginURL())
	if err != nil || u.Host != testAddr {
		t.Fatalf("login URL %q (%v)", p.LoginURL(), err)
	}
	w := get(p, u.RequestURI())
	if w.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	t.Fatalf("login set no %s cookie", SessionCookie)
	return nil
}

// The page answers only a logged-in browser; the login URL in the login file works once, and the file then holds
// the next one; probes need no login; another Host is refused before anything else.
func TestLoginAndHostCheck(t *testing.T) {
	p := newTestPage(t, &fakeControl{}, &fakeLive{})
	if w := get(p, "/"); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "oeproxy admin") {
		t.Errorf("without a session: %d %s", w.Code, w.Body)
	}
	if w := get(p, "/readyz"); w.Code != http.StatusOK {
		t.Errorf("/readyz without a session: %d", w.Code)
	}
	file := filepath.Join(p.live.Config().DataDir, LoginFile)
	raw, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(raw)) != p.LoginURL() {
		t.Fatalf("login file %q (%v), page says %q", raw, err, p.LoginURL())
	}
	first := p.LoginURL()
	sess := login(t, p)
	if w := get(p, "/", sess); w.Code != http.StatusOK {
		t.Errorf("with a session: %d %s", w.Code, w.Body)
	}
	u, _ := url.Parse(first)
	if w := get(p, u.RequestURI()); w.Code != http.StatusForbidden {
		t.Errorf("the used login URL again: %d", w.Code)
	}
	if raw, _ := os.ReadFile(file); strings.TrimSpace(string(raw)) == first {
		t.Error("the login file still holds the used URL")
	}

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Host = "evil.example"
	r.AddCookie(sess)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	if w.Code != http.StatusMisdirectedRequest {
		t.Errorf("another Host: %d", w.Code)
	}
	p.Close()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("login file after Close: %v", err)
	}
}

// The printers page shows what Control and Live say of each printer: the listing, the health the daemon knows,
// the route line, the traffic and the spooled uploads; a damaged record is listed with what to do.
func TestIndexShowsControlAndLiveViews(t *testing.T) {
	proof := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &fakeControl{
		list: []credstore.PublicRecord{
			{Name: "mk4", PrinterName: "Prusa MK4", Port: 5001, LocalURL: "http://127.0.0.1:5001", Route: "auto", RelayHost: "app-x.octoeverywhere.com"},
			{Name: "voron", PrinterName: "Voron", Port: 5002, LocalURL: "http://127.0.0.1:5002", Route: "relay"},
			{Name: "broken", Damaged: "record broken cannot be read: run oeproxy remove broken"},
		},
		statuses: []control.PrinterStatus{
			{Name: "mk4", State: health.StateNoSupporterPerks, Daemon: true, Action: "renew the perks"},
		},
	}
	l := &fakeLive{
		routes:  map[string]route.Status{"mk4": {Mode: route.ModeAuto, Active: route.LAN, LastProof: proof, Strength: "printer id", Reason: "proven"}},
		traffic: map[string]Traffic{"mk4": {Requests: 42, BytesOut: 3 << 20}},
		uploads: []proxy.UploadRecord{
			{Printer: "mk4", File: "old.gcode", State: proxy.UploadDelivered, Stored: proof},
			{Printer: "mk4", File: "new.gcode", State: proxy.UploadFailed, Stored: proof.Add(time.Minute), Error: "refused"},
		},
	}
	p := newTestPage(t, c, l)
	w := get(p, "/", login(t, p))
	if w.Code != http.StatusOK {
		t.Fatalf("index: %d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	for _, want := range []string{"mk4", "Prusa MK4", "voron", "http://127.0.0.1:5001", "no_supporter_perks", "renew the perks",
		"auto, now lan, last proof", "(printer id): proven", "relay (not served)", "42", "3 MiB",
		"record broken cannot be read", "old.gcode", "new.gcode", "refused"} {
		if !strings.Contains(body, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	if strings.Index(body, "new.gcode") > strings.Index(body, "old.gcode") {
		t.Error("uploads not newest first")
	}
}

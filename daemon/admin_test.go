package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/oeproxy/oeproxy/admin"
	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/oesim"
)

// serviceDaemon runs a Daemon over e's store with the admin listener, the portal of the sim and an optional
// change of the configuration. It stops at the end of the test, checking that no secret reached the log.
func serviceDaemon(t *testing.T, e *testEnv, mod func(*config.Config), level *zap.AtomicLevel) (*Daemon, *observer.ObservedLogs) {
	t.Helper()
	return startTestDaemon(t, e, mod, level, nil)
}

// startTestDaemon runs a real Daemon on e's store until the test ends (config changed by mod; logs observed at
// level, default debug; health trackers poll only when kicked and use now when given) and checks its logs for
// secrets at the end.
func startTestDaemon(t *testing.T, e *testEnv, mod func(*config.Config), level *zap.AtomicLevel, now func() time.Time) (*Daemon, *observer.ObservedLogs) {
	t.Helper()
	dataDir, err := os.MkdirTemp("", "oea") // short: the control socket lives here
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	loaded, err := config.Load(config.LoadOptions{File: os.DevNull, LookupEnv: func(string) (string, bool) { return "", false },
		Environ: func() []string { return nil }, Home: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	c := loaded.Config
	c.DataDir = dataDir
	c.Admin.Listen = "127.0.0.1:0"
	c.ShutdownGrace = 5 * time.Second
	c.OctoEverywhere.APIURL = e.Sim.APIURL
	c.OctoEverywhere.PortalURL = e.Sim.PortalURL
	c.OctoEverywhere.RelayDomain = e.Sim.Domain
	c.Listen.PortBase = 40000 + int(time.Now().UnixNano()%20000)
	if mod != nil {
		mod(&c)
	}
	var log *zap.Logger
	var logs *observer.ObservedLogs
	if level != nil {
		core, l := observer.New(level)
		log, logs = zap.New(core), l
	} else {
		log, logs = observed()
	}
	ready := make(chan struct{})
	d, err := New(Options{Config: c, Store: e.Store, Transport: e.Transport, API: e.API, Logger: log,
		Health: health.Options{Interval: time.Hour, MinCheckGap: -1, Now: now},
		Ready:  func(*Daemon) { close(ready) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("daemon stopped: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("daemon not ready within 10 s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon Run: %v", err)
		}
		e.AssertNoSecrets(t, logText(logs))
	})
	return d, logs
}

// allSecrets is every secret of the sim, Basic user names included.
func allSecrets(e *testEnv) []string {
	out := e.Secrets()
	for _, c := range e.Sim.Connections() {
		out = append(out, c.Credentials().BasicUser)
	}
	return out
}

func assertNoSecret(t *testing.T, e *testEnv, what, text string) {
	t.Helper()
	for _, s := range allSecrets(e) {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a secret (%d bytes)", what, len(s))
		}
	}
}

// browser is a client with a cookie jar, like the browser that uses the admin page.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

// newBrowser is a browser that logged in with the daemon's current login URL.
func newBrowser(t *testing.T, d *Daemon) *browser {
	t.Helper()
	b := newAnonBrowser(t, d)
	b.login(d.AdminLoginURL())
	return b
}

// newAnonBrowser is a browser that never logged in: another local user, or a page that found the port.
func newAnonBrowser(t *testing.T, d *Daemon) *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, base: "http://" + d.AdminAddr(), hc: &http.Client{Jar: jar, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// login opens a login URL and checks that it led to the printers page with a session cookie.
func (b *browser) login(loginURL string) adminReply {
	b.t.Helper()
	path, ok := strings.CutPrefix(loginURL, b.base)
	if !ok {
		b.t.Fatalf("login URL %q is not on %s", loginURL, b.base)
	}
	r := b.do(http.MethodGet, path, nil, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		b.t.Fatalf("login: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	return r
}

type adminReply struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, mod func(*http.Request)) adminReply {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if mod != nil {
		mod(req)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return adminReply{resp.StatusCode, resp.Header, string(raw)}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// page gets the admin page and returns it with the form token it carries.
func (b *browser) page() (string, string) {
	b.t.Helper()
	r := b.do(http.MethodGet, "/", nil, nil)
	if r.status != http.StatusOK {
		b.t.Fatalf("GET /: %d %s", r.status, r.body)
	}
	m := csrfRe.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("no CSRF token on the page:\n%s", r.body)
	}
	return r.body, m[1]
}

func addServed(t *testing.T, e *testEnv, name string, p *oesim.Printer) *oesim.Connection {
	t.Helper()
	c, _ := e.Add(t, name, p)
	freePort(t, e, name)
	return c
}

func TestAdminPageListsPrinters(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	mk4, voron := e.Sim.Printers()[0], e.Sim.Printers()[1]
	addServed(t, e, "mk4", mk4)
	addServed(t, e, "voron", voron)
	d, _ := serviceDaemon(t, e, nil, nil)
	for _, n := range []string{"mk4", "voron"} {
		waitState(t, d.healthOf(n), health.StateOnline)
	}
	// Traffic shows on the page.
	if a := send(t, http.MethodGet, "http://"+d.PrinterAddr("mk4")+"/api/version", ""); a.status != 200 {
		t.Fatalf("GET through mk4: %d", a.status)
	}

	// A webcam viewer shows as one shared stream with one viewer.
	camCtx, stopCam := context.WithCancel(context.Background())
	defer stopCam()
	camReq, _ := http.NewRequestWithContext(camCtx, http.MethodGet, "http://"+d.PrinterAddr("mk4")+"/webcam/?action=stream", nil)
	camResp, err := http.DefaultClient.Do(camReq)
	if err != nil {
		t.Fatal(err)
	}
	defer camResp.Body.Close()
	if _, err := io.ReadAtLeast(camResp.Body, make([]byte, 2048), 2048); err != nil {
		t.Fatalf("webcam through mk4: %v", err)
	}

	checks := d.healthOf("mk4").Snapshot().Checks
	b := newBrowser(t, d)
	body, _ := b.page()
	// The page shows what the health tracker knows (StatusNow): loading it asks OctoEverywhere nothing.
	if n := d.healthOf("mk4").Snapshot().Checks; n != checks {
		t.Errorf("loading the admin page ran %d health checks, want none", n-checks)
	}
	for _, want := range []string{
		"1 shared stream(s) to the printer for 1 viewer(s)",
		`id="printer-mk4"`, `id="printer-voron"`, "Prusa MK4", "Voron 2.4",
		`href="http://` + d.PrinterAddr("mk4") + `"`, `href="http://` + d.PrinterAddr("voron") + `"`,
		`class="state online"`, "relay", "upload 500 MiB", "1 requests", `action="/connect"`,
		`action="/printers/mk4/livelink"`, `action="/printers/voron/gadget"`, `action="/printers/mk4/remove"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the admin page has a script")
	}
	assertNoSecret(t, e, "the admin page", body)
	r := b.do(http.MethodGet, "/", nil, nil)
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if r.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options %q", r.header.Get("X-Frame-Options"))
	}

	// Remove: the GET only asks; the POST removes.
	conf := b.do(http.MethodGet, "/printers/voron/remove", nil, nil)
	if conf.status != 200 || !strings.Contains(conf.body, "Remove voron?") || d.PrinterAddr("voron") == "" {
		t.Fatalf("confirm page: %d %s", conf.status, conf.body)
	}
	tok := csrfRe.FindStringSubmatch(conf.body)[1]
	rm := b.do(http.MethodPost, "/printers/voron/remove", url.Values{"csrf": {tok}}, nil)
	if rm.status != http.StatusSeeOther || d.PrinterAddr("voron") != "" {
		t.Fatalf("remove: %d %s; still served at %q", rm.status, rm.body, d.PrinterAddr("voron"))
	}
	body, _ = b.page()
	if strings.Contains(body, `id="printer-voron"`) || !strings.Contains(body, "Removed voron") {
		t.Errorf("page after remove:\n%s", body)
	}
}

func TestAdminHostAndOrigin(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	addServed(t, e, "mk4", nil)
	d, _ := serviceDaemon(t, e, func(c *config.Config) { c.Listen.AllowedHosts = []string{"printers.lan", "pi.lan:7080"} }, nil)
	b := newBrowser(t, d)
	_, port, _ := net.SplitHostPort(d.AdminAddr())
	for _, tc := range []struct {
		path, host string
		want       int
	}{
		{"/", "localhost:" + port, 200},
		{"/", "127.0.0.1:" + port, 200},
		{"/", "[::1]:" + port, 200},
		{"/", "printers.lan:" + port, 200},
		{"/", "pi.lan:7080", 200},
		{"/", "pi.lan:" + port, 421},
		{"/", "evil.example:" + port, 421},
		{"/", "127.0.0.1.evil.example", 421},
		{"/metrics", "evil.example", 421},
		{"/oeproxy/callback/abc", "evil.example", 421},
		{"/healthz", "evil.example", 200}, // a health check may come from anywhere that reaches the port
		{"/readyz", "evil.example", 421},  // it names the printers
		{"/readyz", "127.0.0.1:" + port, 200},
		{"/login?token=x", "evil.example", 421},
	} {
		r := b.do(http.MethodGet, tc.path, nil, func(r *http.Request) {
			r.Host = tc.host
			// A browser keeps cookies per host name: send the session under each name tried here.
			if r.Header.Get("Cookie") == "" {
				for _, c := range b.hc.Jar.Cookies(r.URL) {
					r.AddCookie(c)
				}
			}
		})
		if r.status != tc.want {
			t.Errorf("GET %s Host %s: %d, want %d", tc.path, tc.host, r.status, tc.want)
		}
	}

	// Origin: a cross-site POST is refused even with a valid token; the page's own origin passes.
	_, tok := b.page()
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"http://evil.example", 403},
		{"null", 403},
		{"http://127.0.0.1:5001", 403}, // a printer's port is another origin
		{"http://" + d.AdminAddr(), 200},
		{"", 200},
	} {
		r := b.do(http.MethodPost, "/printers/mk4/livelink", url.Values{"csrf": {tok}}, func(r *http.Request) {
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
		})
		if r.status != tc.want {
			t.Errorf("POST with Origin %q: %d, want %d (%s)", tc.origin, r.status, tc.want, r.body)
		}
	}
}

func TestAdminCSRF(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	addServed(t, e, "mk4", nil)
	d, _ := serviceDaemon(t, e, nil, nil)
	b := newBrowser(t, d)
	_, tok := b.page()
	other := newBrowser(t, d)
	_, otherTok := other.page()
	if tok == otherTok {
		t.Fatal("two browsers got the same token")
	}
	fresh := newAnonBrowser(t, d) // never logged in: no session cookie
	for _, tc := range []struct {
		name string
		b    *browser
		form url.Values
	}{
		{"no token", b, url.Values{}},
		{"empty token", b, url.Values{"csrf": {""}}},
		{"wrong token", b, url.Values{"csrf": {"AAAA" + tok[4:]}}},
		{"another browser's token", b, url.Values{"csrf": {otherTok}}},
		{"no cookie", fresh, url.Values{"csrf": {tok}}},
	} {
		for _, path := range []string{"/printers/mk4/remove", "/connect", "/printers/mk4/livelink"} {
			if r := tc.b.do(http.MethodPost, path, tc.form, nil); r.status != http.StatusForbidden {
				t.Errorf("%s: POST %s: %d, want 403", tc.name, path, r.status)
			}
		}
	}
	if d.PrinterAddr("mk4") == "" {
		t.Fatal("a refused POST removed the printer")
	}
	if len(e.Sim.PortalSessions()) != 0 {
		t.Error("a refused POST started a portal flow")
	}
	// The right token works, and a Live Link comes back as links.
	r := b.do(http.MethodPost, "/printers/mk4/livelink", url.Values{"csrf": {tok}, "hours": {"2"}}, nil)
	if r.status != 200 || !strings.Contains(r.body, "Live Link for mk4") || !strings.Contains(r.body, `href="https://`) {
		t.Fatalf("live link: %d %s", r.status, r.body)
	}
	if ll := e.Sim.Connections()[0].LiveLinks(); len(ll) != 1 {
		t.Errorf("sim live links: %+v", ll)
	}
	r = b.do(http.MethodPost, "/printers/mk4/livelink", url.Values{"csrf": {tok}, "hours": {"0"}}, nil)
	if r.status != http.StatusBadRequest {
		t.Errorf("hours 0: %d", r.status)
	}
	r = b.do(http.MethodPost, "/printers/nope/gadget", url.Values{"csrf": {tok}}, nil)
	if r.status != http.StatusNotFound {
		t.Errorf("gadget of an unknown printer: %d %s", r.status, r.body)
	}
	assertNoSecret(t, e, "a result page", r.body)
}

func TestAdminConnectCompletesPortalFlow(t *testing.T) {
	e := newTestEnv(t, oesim.Options{AutoApprove: true})
	d, logs := serviceDaemon(t, e, nil, nil)
	b := newBrowser(t, d)
	body, tok := b.page()
	if !strings.Contains(body, `id="no-printers"`) {
		t.Fatalf("empty page:\n%s", body)
	}
	port := freeTCPPort(t)
	mk4 := e.Sim.Printers()[0]
	r := b.do(http.MethodPost, "/connect", url.Values{"csrf": {tok}, "name": {"bench-mk4"}, "port": {strconv.Itoa(port)},
		"printer_url": {mk4.BackendURL}}, nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("POST /connect: %d %s", r.status, r.body)
	}
	portal := r.header.Get("Location")
	if !strings.HasPrefix(portal, e.Sim.PortalURL) {
		t.Fatalf("redirected to %q, want the portal", portal)
	}
	body, _ = b.page()
	if !strings.Contains(body, "Waiting for the OctoEverywhere portal") {
		t.Errorf("page does not show the pending setup:\n%s", body)
	}

	// The portal (auto-approved) sends the browser back to this admin server.
	resp, err := e.Sim.HTTPClient().Get(portal)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back := resp.Header.Get("Location")
	if !strings.HasPrefix(back, b.base+"/oeproxy/callback/") {
		t.Fatalf("portal returned to %q (%s), want the admin callback", back, resp.Status)
	}
	sessions := e.Sim.PortalSessions()
	if len(sessions) != 1 || sessions[0].Params.Get("printerid") == "" {
		t.Errorf("portal session params: %+v", sessions)
	}
	cb := b.do(http.MethodGet, strings.TrimPrefix(back, b.base), nil, nil)
	if cb.status != 200 || !strings.Contains(cb.body, "Connected") {
		t.Fatalf("callback: %d %s", cb.status, cb.body)
	}
	assertNoSecret(t, e, "the callback page", cb.body)

	// Stored, served on the chosen port, and listed.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if got := d.PrinterAddr("bench-mk4"); got != addr {
		t.Fatalf("served at %q, want %q\n%s", got, addr, logText(logs))
	}
	if a := send(t, http.MethodGet, "http://"+addr+"/api/version", ""); a.status != 200 || !strings.Contains(a.body, "OctoPrint") {
		t.Errorf("new printer through oeproxy: %d %s", a.status, a.body)
	}
	body, _ = b.page()
	if !strings.Contains(body, `id="printer-bench-mk4"`) || !strings.Contains(body, "Connected bench-mk4") {
		t.Errorf("page after connect:\n%s", body)
	}
	assertNoSecret(t, e, "the admin page", body)
	// The callback cannot be used twice, and an unknown state is refused.
	if again := b.do(http.MethodGet, strings.TrimPrefix(back, b.base), nil, nil); again.status != http.StatusNotFound {
		t.Errorf("callback replay: %d", again.status)
	}
	if recs, _ := e.Store.List(); len(recs) != 1 {
		t.Errorf("store holds %d records", len(recs))
	}
}

func TestAdminConnectRefusesBadInput(t *testing.T) {
	e := newTestEnv(t, oesim.Options{AutoApprove: true})
	d, _ := serviceDaemon(t, e, nil, nil)
	b := newBrowser(t, d)
	_, tok := b.page()
	for _, form := range []url.Values{
		{"csrf": {tok}, "name": {"Not A Slug"}},
		{"csrf": {tok}, "port": {"70000"}},
		{"csrf": {tok}, "port": {"abc"}},
	} {
		if r := b.do(http.MethodPost, "/connect", form, nil); r.status != http.StatusBadRequest {
			t.Errorf("%v: %d, want 400", form, r.status)
		}
	}
	if n := len(e.Sim.PortalSessions()); n != 0 {
		t.Errorf("%d portal sessions after refused input", n)
	}
}

func TestReadyz(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	addServed(t, e, "mk4", nil)
	e.Add(t, "busy", e.Sim.Printers()[1])
	l, err := net.Listen("tcp", "127.0.0.1:0") // someone else holds the port of "busy"
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := e.Store.Update("busy", func(r *credstore.Record) error { r.Port = l.Addr().(*net.TCPAddr).Port; return nil }); err != nil {
		t.Fatal(err)
	}
	d, _ := serviceDaemon(t, e, nil, nil)
	b := newBrowser(t, d)
	if r := b.do(http.MethodGet, "/healthz", nil, nil); r.status != 200 {
		t.Errorf("healthz: %d", r.status)
	}
	r := b.do(http.MethodGet, "/readyz", nil, nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "busy") || strings.Contains(r.body, "mk4") {
		t.Errorf("readyz with a busy port: %d %q", r.status, r.body)
	}
	body, _ := b.page()
	if !strings.Contains(body, "not served") {
		t.Error("the page does not say that busy is not served")
	}
	// Once the other printer is gone, the daemon is ready.
	if _, err := d.Control().Remove(context.Background(), "busy"); err != nil {
		t.Fatal(err)
	}
	if r := b.do(http.MethodGet, "/readyz", nil, nil); r.status != 200 || !strings.Contains(r.body, "1 printer") {
		t.Errorf("readyz after removing busy: %d %q", r.status, r.body)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestStatusClass(t *testing.T) {
	for in, want := range map[int]string{0: "none", 101: "1xx", 200: "2xx", 304: "3xx", 421: "4xx", 502: "5xx", 606: "6xx", 700: "none"} {
		if got := statusClass(in); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestAdminPprofOnlyWithEnv(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	off, _ := serviceDaemon(t, e, nil, nil)
	if r := newBrowser(t, off).do(http.MethodGet, "/debug/pprof/", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("pprof without %s: %d", admin.EnvPprof, r.status)
	}
	t.Setenv(admin.EnvPprof, "1")
	e2 := newTestEnv(t, oesim.Options{})
	on, _ := serviceDaemon(t, e2, nil, nil)
	b := newBrowser(t, on)
	if r := b.do(http.MethodGet, "/debug/pprof/", nil, nil); r.status != 200 || !strings.Contains(r.body, "goroutine") {
		t.Errorf("pprof with %s=1: %d", admin.EnvPprof, r.status)
	}
	if r := b.do(http.MethodGet, "/debug/pprof/", nil, func(r *http.Request) { r.Host = "evil.example" }); r.status != http.StatusMisdirectedRequest {
		t.Errorf("pprof for another Host: %d", r.status)
	}
}

// Any local user can reach the loopback admin port; only the one who can read the 0600 login file (the user that
// runs serve) gets a session, and nothing but /healthz, /readyz, /metrics and the portal callback answers
// without one.
func TestAdminNeedsLogin(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	addServed(t, e, "mk4", nil)
	d, _ := serviceDaemon(t, e, nil, nil)
	anon := newAnonBrowser(t, d)
	for _, path := range []string{"/", "/printers/mk4/remove"} {
		r := anon.do(http.MethodGet, path, nil, nil)
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "oeproxy admin") || strings.Contains(r.body, "mk4") {
			t.Errorf("GET %s without a session: %d %s", path, r.status, r.body)
		}
		if r.header.Get("Set-Cookie") != "" {
			t.Errorf("GET %s without a session set a cookie: %q", path, r.header.Get("Set-Cookie"))
		}
	}
	for _, path := range []string{"/printers/mk4/remove", "/printers/mk4/livelink", "/connect"} {
		if r := anon.do(http.MethodPost, path, url.Values{"csrf": {"x"}}, nil); r.status != http.StatusForbidden {
			t.Errorf("POST %s without a session: %d", path, r.status)
		}
	}
	// A cookie the daemon never issued is no session.
	forged := newAnonBrowser(t, d)
	if r := forged.do(http.MethodGet, "/", nil, func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: admin.SessionCookie, Value: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
	}); r.status != http.StatusUnauthorized {
		t.Errorf("GET / with a forged cookie: %d", r.status)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := anon.do(http.MethodGet, path, nil, nil); r.status != http.StatusOK {
			t.Errorf("GET %s without a session: %d", path, r.status)
		}
	}
	if r := anon.do(http.MethodGet, "/login?token=wrong", nil, nil); r.status != http.StatusForbidden || r.header.Get("Set-Cookie") != "" {
		t.Errorf("login with a wrong token: %d %q", r.status, r.header.Get("Set-Cookie"))
	}
	if d.PrinterAddr("mk4") == "" || len(e.Sim.Connections()[0].LiveLinks()) != 0 {
		t.Fatal("a request without a session changed something")
	}

	// The login file holds the current URL, readable by its owner only.
	file := filepath.Join(d.o.Config.DataDir, admin.LoginFile)
	fi, err := os.Lstat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("%s has mode %v, want -rw-------", file, fi.Mode())
	}
	raw, _ := os.ReadFile(file)
	first := strings.TrimSpace(string(raw))
	if first != d.AdminLoginURL() || !strings.Contains(first, "/login?token=") {
		t.Fatalf("login file holds %q, daemon says %q", first, d.AdminLoginURL())
	}
	owner := newAnonBrowser(t, d)
	r := owner.login(first)
	c := r.header.Get("Set-Cookie")
	for _, want := range []string{admin.SessionCookie + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(c, want) {
			t.Errorf("session cookie %q lacks %s", c, want)
		}
	}
	if r := owner.do(http.MethodGet, "/", nil, nil); r.status != 200 || !strings.Contains(r.body, `id="printer-mk4"`) {
		t.Errorf("page after login: %d", r.status)
	}
	// The token works once; the file then holds a new one.
	path := strings.TrimPrefix(first, anon.base)
	if r := anon.do(http.MethodGet, path, nil, nil); r.status != http.StatusForbidden {
		t.Errorf("second use of a login URL: %d", r.status)
	}
	raw, _ = os.ReadFile(file)
	if next := strings.TrimSpace(string(raw)); next == first || next != d.AdminLoginURL() {
		t.Errorf("login file after a login: %q (was %q, daemon says %q)", next, first, d.AdminLoginURL())
	}
	newBrowser(t, d) // the new one works
}

// One browser's abandoned setups do not lock out another's.
func TestAdminPendingLimitIsPerSession(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	d, _ := serviceDaemon(t, e, nil, nil)
	a := newBrowser(t, d)
	_, tok := a.page()
	for i := range admin.MaxPendingConnects {
		if r := a.do(http.MethodPost, "/connect", url.Values{"csrf": {tok}}, nil); r.status != http.StatusSeeOther {
			t.Fatalf("connect %d: %d %s", i+1, r.status, r.body)
		}
	}
	if r := a.do(http.MethodPost, "/connect", url.Values{"csrf": {tok}}, nil); r.status != http.StatusTooManyRequests {
		t.Errorf("connect %d of one session: %d", admin.MaxPendingConnects+1, r.status)
	}
	b := newBrowser(t, d)
	_, btok := b.page()
	if r := b.do(http.MethodPost, "/connect", url.Values{"csrf": {btok}}, nil); r.status != http.StatusSeeOther {
		t.Errorf("another session's connect while the first is at its limit: %d %s", r.status, r.body)
	}
}

// TestAdminPageWildcardAndUnknown: with listen.host 0.0.0.0 a printer's link uses the name the browser used for
// the page; a remove page for a name that is not stored answers 404 with the store's own words.
func TestAdminPageWildcardAndUnknown(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	addServed(t, e, "mk4", nil)
	d, _ := serviceDaemon(t, e, func(c *config.Config) { c.Listen.Host = "0.0.0.0" }, nil)
	waitState(t, d.healthOf("mk4"), health.StateOnline)
	rec, err := e.Store.Get("mk4")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, d)
	body, _ := b.page()
	if want := fmt.Sprintf(`href="http://127.0.0.1:%d"`, rec.Port); !strings.Contains(body, want) {
		t.Errorf("page lacks %q", want)
	}
	r := b.do(http.MethodGet, "/printers/nope/remove", nil, nil)
	if r.status != http.StatusNotFound || !strings.Contains(r.body, "no printer named") || !strings.Contains(r.body, "nope") {
		t.Errorf("remove page of an unknown printer: %d %s", r.status, r.body)
	}
}

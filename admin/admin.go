package admin

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/portalflow"
	"github.com/oeproxy/oeproxy/proxy"
	"github.com/oeproxy/oeproxy/route"
)

// The admin page (admin.listen) serves:
//
//	GET  /healthz                   200 while the process lives
//	GET  /readyz                    Options.Ready (the daemon's: 200 when every printer's listener is up)
//	GET  /metrics                   Options.Metrics (the daemon's Prometheus registry)
//	GET  /login?token=T             exchanges the one-time login token for a session cookie, redirects to /
//	GET  /                          the printers page
//	POST /connect                   starts the portal flow with this server as the callback, redirects to the portal
//	GET  /oeproxy/callback/{state}  the portal's return (portalflow's handler); the printer is then stored
//	GET  /printers/{name}/remove    asks for confirmation; POST removes
//	POST /printers/{name}/livelink  creates a Live Link
//	POST /printers/{name}/gadget    shows Gadget status
//	/debug/pprof/                   only with OEPROXY_PPROF=1 in the environment
//
// Everything but /healthz passes the same Host check as the printer ports (DNS rebinding: a web page whose name
// resolves to 127.0.0.1 must not read the page or start a flow). Any local user can reach a loopback port, so the
// pages and actions also need a session: the daemon writes a one-time login URL to <data_dir>/admin-login (0600,
// readable only by the user that runs serve, like the control socket), `oeproxy admin` prints it, and /login
// trades it for an HttpOnly SameSite=Strict cookie. /readyz and /metrics need only the Host check (probes and
// Prometheus cannot log in; they show printer names and counters, never a secret), and the portal callback is
// authenticated by its one-time state. POSTs also need a matching Origin when one is sent and a CSRF token bound
// to the session. No page shows a secret.

// EnvPprof mounts net/http/pprof on the admin listener when set to 1 (not a config key: a debugging switch).
const EnvPprof = "OEPROXY_PPROF"

// MaxPendingConnects bounds the portal flows one session has waiting at once (each holds a one-time state for
// 15 minutes); other sessions are not affected.
const MaxPendingConnects = 8

// maxSessions bounds the logged-in browsers kept in memory; the oldest is dropped first.
const maxSessions = 32

// SessionCookie is the name of the cookie a logged-in browser holds.
const SessionCookie = "oeproxy_admin_session"

// LoginFile is the file in the data directory that holds the admin page's current one-time login URL.
const LoginFile = "admin-login"

// Control is what the admin page asks about printers: the command line's control.Control (it adds, removes and
// reads printers through it, never through the store), plus StatusNow, the health the daemon knows without a
// new Info call per page load. daemon.Printers implements it.
type Control interface {
	control.Control
	StatusNow(ctx context.Context, name string) ([]control.PrinterStatus, error)
}

// Live is what only the running daemon knows and control.Control does not carry, shown beside each printer.
// The daemon implements it.
type Live interface {
	// Config is the configuration in force now (a reload may change it).
	Config() config.Config
	// RouteStatus is the router's view of a served printer; false when the printer has no router (not served).
	RouteStatus(name string) (route.Status, bool)
	// Traffic is what the printer carried since the daemon started.
	Traffic(name string) Traffic
	// Uploads are the latest uploads answered once stored, oldest first (nil without a spool).
	Uploads() []proxy.UploadRecord
}

// Traffic is one printer's counters since the daemon started.
type Traffic struct {
	Requests   int64 // proxied HTTP requests that finished
	BytesIn    int64 // request body bytes read from clients
	BytesOut   int64 // response body bytes written to clients
	WebSockets int64 // open now
	Streams    int64 // webcam (MJPEG) and event streams open now
	Uploads    int64 // requests with a body in progress now

	WebcamUpstreams     int64 // shared webcam streams open to the printer now
	WebcamViewers       int64 // local viewers of shared webcam streams now
	WebcamDropped       int64 // frames skipped for slow viewers since start
	WebcamContinuations int64 // shared streams reopened after the relay ended them since start
}

// Options configure the admin page.
type Options struct {
	Control Control
	Live    Live
	// Addr is the admin listener's bound address: the login URL points at it, and the Host check allows it.
	Addr string
	// Metrics and Ready are served at /metrics and /readyz behind the Host check only (probes and Prometheus
	// cannot log in).
	Metrics, Ready http.Handler
	Log            *zap.Logger
}

// Page is the admin listener's handler. New starts it; Close ends it.
type Page struct {
	handler http.Handler
	live    Live
	addr    string
	log     *zap.Logger
	c       Control
	key     []byte // HMAC key of the CSRF tokens, random per process
	started time.Time
	ctx     context.Context // ends the portal flows at shutdown
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu         sync.Mutex
	loginToken string                     // the one-time token of the current login URL
	sessions   map[string]time.Time       // logged-in browsers by cookie value, with the time they logged in
	pending    map[string]*pendingConnect // by the flow's callback state
	recent     []event                    // newest first
}

type pendingConnect struct {
	flow    *portalflow.Flow
	session string // the session that started it: the pending limit is per session
	started time.Time
}

// event is one line of "Recent actions" on the page.
type event struct {
	At   string
	Text string
	Link string
	Err  string
}

// New builds the admin page and writes its first login URL to the login file in the data directory; Close ends
// it at shutdown.
func New(o Options) *Page {
	a := &Page{live: o.Live, addr: o.Addr, log: o.Log, c: o.Control, key: make([]byte, 32), started: time.Now(),
		pending: map[string]*pendingConnect{}, sessions: map[string]time.Time{}}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if _, err := rand.Read(a.key); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.mu.Lock()
	a.newLoginLocked()
	a.mu.Unlock()

	// open: Host check only.
	open := http.NewServeMux()
	if o.Metrics != nil {
		open.Handle("GET /metrics", o.Metrics)
	}
	if o.Ready != nil {
		open.Handle("GET /readyz", o.Ready)
	}
	open.HandleFunc("GET /login", a.login)
	open.HandleFunc("GET "+portalflow.CallbackPathPrefix+"{state}", a.callback)

	ui := http.NewServeMux()
	ui.HandleFunc("GET /{$}", a.index)
	ui.HandleFunc("POST /connect", a.connect)
	ui.HandleFunc("GET /printers/{name}/remove", a.confirmRemove)
	ui.HandleFunc("POST /printers/{name}/remove", a.remove)
	ui.HandleFunc("POST /printers/{name}/livelink", a.liveLink)
	ui.HandleFunc("POST /printers/{name}/gadget", a.gadget)
	if os.Getenv(EnvPprof) == "1" {
		a.log.Warn("net/http/pprof is served on the admin listener (OEPROXY_PPROF=1)", zap.String("path", "/debug/pprof/"))
		ui.HandleFunc("GET /debug/pprof/", pprof.Index)
		ui.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		ui.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		ui.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		ui.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	open.Handle("/", a.requireSession(ui))
	mux.Handle("/", a.guard(open))
	a.handler = mux
	return a
}

// ServeHTTP serves the admin listener.
func (a *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Close ends the portal flows still waiting, waits for their goroutines and removes the login file (its token
// dies with the process).
func (a *Page) Close() {
	if a == nil {
		return
	}
	a.cancel()
	a.wg.Wait()
	_ = os.Remove(a.loginFile())
}

func (a *Page) loginFile() string { return filepath.Join(a.live.Config().DataDir, LoginFile) }

// LoginURL is the admin page's current one-time login URL; `oeproxy admin` reads the same URL from the login
// file in the data directory.
func (a *Page) LoginURL() string {
	if a == nil {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.loginURLLocked()
}

func (a *Page) loginURLLocked() string {
	host, port, err := net.SplitHostPort(a.addr)
	if err != nil {
		return ""
	}
	// A wildcard listener is reached on loopback from this machine.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/login?token=" + a.loginToken
}

// newLoginLocked makes a new one-time login token and writes its URL to the login file: a fresh temporary file
// (0600 from os.CreateTemp) renamed over the old one, so that no planted link is followed and no reader sees half
// a URL. A write that fails only means `oeproxy admin` cannot help; the page keeps working for logged-in browsers.
func (a *Page) newLoginLocked() {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	a.loginToken = base64.RawURLEncoding.EncodeToString(b)
	if err := writePrivateFile(a.loginFile(), []byte(a.loginURLLocked()+"\n")); err != nil {
		a.log.Warn("admin: the login URL could not be written; `oeproxy admin` cannot print one", zap.Error(err))
	}
}

func writePrivateFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// guard applies the Host check to every request, and the Origin and CSRF checks to every other method than
// GET and HEAD; it also sets the headers that keep the pages out of frames and caches. The session check is
// requireSession's.
func (a *Page) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.hostAllowed(r.Host) {
			a.log.Warn("admin: refused a request for another Host (DNS rebinding?)", zap.String("host", r.Host),
				zap.String("remote", r.RemoteAddr), zap.String("path", r.URL.Path))
			http.Error(w, fmt.Sprintf("421 Host %q not allowed: the admin page answers only to localhost, 127.0.0.1, "+
				"its admin.listen address or listen.allowed_hosts.", r.Host), http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", a.csp())
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !proxy.OriginAllowed(r) {
				a.log.Warn("admin: refused a cross-site request", zap.String("origin", r.Header.Get("Origin")),
					zap.String("host", r.Host), zap.String("path", r.URL.Path))
				http.Error(w, "403 cross-site request refused: the Origin is not this admin page.", http.StatusForbidden)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !a.csrfValid(r) {
				a.log.Warn("admin: refused a form without a valid CSRF token", zap.String("path", r.URL.Path))
				http.Error(w, "403 the form's token is missing or stale: reload the admin page and try again.", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// csp allows no script at all; forms may post here and the connect form is redirected to the portal (browsers
// apply form-action to the redirect).
func (a *Page) csp() string {
	formAction := "'self'"
	if u, err := url.Parse(a.live.Config().OctoEverywhere.PortalURL); err == nil && u.Scheme != "" && u.Host != "" {
		formAction += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action " + formAction
}

// hostAllowed is the printer ports' rule (proxy.HostAllowed) with the admin listen address.
func (a *Page) hostAllowed(host string) bool {
	cfg := a.live.Config()
	return proxy.HostAllowed(host, []string{cfg.Admin.Listen, a.addr}, cfg.Listen.AllowedHosts)
}

// requireSession lets through only a browser that logged in; the others get a page saying how to log in.
func (a *Page) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.sessionOf(r) == "" {
			a.log.Info("admin: refused a request without a session", zap.String("remote", r.RemoteAddr),
				zap.String("path", r.URL.Path))
			a.render(w, http.StatusUnauthorized, "message", messageView{Title: "Log in to the oeproxy admin page",
				Lines: []string{"This page needs a login: on the computer that runs oeproxy serve, as the same user, run",
					"oeproxy admin",
					"and open the address it prints. (The address works once; run oeproxy admin again for another browser.)"}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sessionOf returns the request's logged-in session, or "".
func (a *Page) sessionOf(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.sessions[c.Value]; !ok {
		return ""
	}
	return c.Value
}

// login trades the one-time token for a session cookie. The token is replaced at once (and the login file with
// it), so a URL left in a browser's history or a terminal's scrollback opens nothing later.
func (a *Page) login(w http.ResponseWriter, r *http.Request) {
	if a.sessionOf(r) != "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	got := r.URL.Query().Get("token")
	a.mu.Lock()
	ok := got != "" && hmac.Equal([]byte(got), []byte(a.loginToken))
	var sess string
	if ok {
		a.newLoginLocked()
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		sess = base64.RawURLEncoding.EncodeToString(b)
		if len(a.sessions) >= maxSessions {
			var oldest string
			for k, at := range a.sessions {
				if oldest == "" || at.Before(a.sessions[oldest]) {
					oldest = k
				}
			}
			delete(a.sessions, oldest)
		}
		a.sessions[sess] = time.Now()
	}
	a.mu.Unlock()
	if !ok {
		a.log.Warn("admin: refused a login with a wrong or used token", zap.String("remote", r.RemoteAddr))
		a.render(w, http.StatusForbidden, "message", messageView{Title: "This login address is not valid",
			Lines: []string{"It was used already, or oeproxy serve restarted since it was printed. Run oeproxy admin " +
				"again (as the user that runs oeproxy serve) and open the new address."}})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: sess, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	a.log.Info("admin: a browser logged in", zap.String("remote", r.RemoteAddr))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// token is the session's CSRF token: an HMAC of the session under a key that never leaves the process, so a page
// that cannot read the admin page cannot make one.
func (a *Page) token(session string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte("oeproxy admin csrf\x00" + session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (a *Page) csrfValid(r *http.Request) bool {
	sess := a.sessionOf(r)
	if sess == "" {
		return false
	}
	if err := r.ParseForm(); err != nil {
		return false
	}
	got := r.PostForm.Get("csrf")
	return got != "" && hmac.Equal([]byte(got), []byte(a.token(sess)))
}

// render writes a template with the given status; a template error is a bug, logged and answered with 500.
func (a *Page) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		a.log.Error("admin: page not rendered", zap.String("template", name), zap.Error(err))
		http.Error(w, "internal error: the page could not be rendered (see the log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type messageView struct {
	Title string
	Lines []string
	Links []string
	Error string
}

func (a *Page) fail(w http.ResponseWriter, title string, err error) {
	status := control.HTTPStatus(err)
	a.render(w, status, "message", messageView{Title: title, Error: err.Error()})
}

func (a *Page) note(text, link string, err error) {
	e := event{At: time.Now().Format("15:04:05"), Text: text, Link: link}
	if err != nil {
		e.Err = err.Error()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recent = append([]event{e}, a.recent...)
	if len(a.recent) > 10 {
		a.recent = a.recent[:10]
	}
}

// The printers page.

type indexView struct {
	Title    string
	CSRF     string
	Started  string
	Printers []printerView
	// Damaged describes each stored record that cannot be read, with how to remove it.
	Damaged []string
	Pending []string
	Recent  []event
	Uploads []uploadView
}

type printerView struct {
	Name, PrinterName, LocalURL, Route, RelayHost string
	Served                                        bool
	NotServed                                     string
	State                                         health.State
	StateSince, CheckedAt                         string
	Action                                        string
	LastError                                     *health.StatusError
	Supporter                                     string
	Limits                                        *limitsView
	Traffic                                       trafficView
}

type limitsView struct{ Upload, Download, Stream string }

type trafficView struct {
	Requests, WebSockets, Streams, Uploads int64
	In, Out                                string
	CamUpstreams, CamViewers               int64 // shared webcam streams to the printer now, and who watches them
	CamDropped, CamContinued               int64 // since start
}

func (a *Page) index(w http.ResponseWriter, r *http.Request) {
	sess := a.sessionOf(r)
	list, err := a.c.List(r.Context())
	if err != nil {
		a.fail(w, "The printers could not be read", err)
		return
	}
	statuses, err := a.c.StatusNow(r.Context(), "")
	if err != nil {
		a.fail(w, "The printers could not be read", err)
		return
	}
	byName := make(map[string]*control.PrinterStatus, len(statuses))
	for i := range statuses {
		byName[statuses[i].Name] = &statuses[i]
	}
	view := indexView{CSRF: a.token(sess), Started: a.started.Format("2006-01-02 15:04:05 MST")}
	listenHost := a.live.Config().Listen.Host
	for _, pub := range list {
		if pub.Damaged != "" {
			view.Damaged = append(view.Damaged, pub.Damaged)
			continue
		}
		view.Printers = append(view.Printers, a.printerView(pub, byName[pub.Name], listenHost, r.Host))
	}
	a.mu.Lock()
	for _, p := range a.pending {
		view.Pending = append(view.Pending, p.started.Format("15:04:05"))
	}
	view.Recent = slices.Clone(a.recent)
	a.mu.Unlock()
	slices.Sort(view.Pending)
	view.Uploads = uploadViews(a.live.Uploads())
	a.render(w, http.StatusOK, "index", view)
}

// printerView builds what the page shows of one printer from its public record, the health the daemon knows
// (st; nil or not Daemon: not served) and its traffic only.
func (a *Page) printerView(pub credstore.PublicRecord, st *control.PrinterStatus, listenHost, adminHost string) printerView {
	if ip := net.ParseIP(strings.Trim(listenHost, "[]")); listenHost == "" || (ip != nil && ip.IsUnspecified()) {
		// Bound to every address: link through the name the browser used for this page.
		name := adminHost
		if h, _, err := net.SplitHostPort(adminHost); err == nil {
			name = h
		}
		if name == "" {
			name = "127.0.0.1"
		}
		pub.LocalURL = "http://" + net.JoinHostPort(name, strconv.Itoa(pub.Port))
	}
	v := printerView{Name: pub.Name, PrinterName: pub.PrinterName, LocalURL: pub.LocalURL, Route: a.routeText(pub),
		RelayHost: pub.RelayHost, State: health.StateUnknown, Supporter: "unknown until OctoEverywhere answered once",
		NotServed: pub.NotServed}
	if st != nil && st.Daemon {
		v.Served = true
		v.State, v.Action, v.LastError = st.State, st.Action, st.LastError
		v.StateSince, v.CheckedAt = timeText(st.StateSince), timeText(st.CheckedAt)
		if st.PrinterName != "" {
			v.PrinterName = st.PrinterName
		}
		if l := st.Limits; l != nil {
			v.Limits = &limitsView{Upload: limitBytes(l.MaxUploadFileSizeBytes), Download: limitBytes(l.MaxDownloadFileSizeBytes),
				Stream: limitSeconds(l.MaxSingleWebcamStreamLengthSeconds)}
		}
		switch {
		case st.State == health.StateNoSupporterPerks:
			v.Supporter = "no Supporter Perks (605): the account owner must renew; the printer works again without re-linking"
		case st.Limits != nil:
			v.Supporter = "active (App Connections need Supporter Perks; OctoEverywhere answered with the limits below)"
		}
	}
	t := a.live.Traffic(pub.Name)
	v.Traffic = trafficView{Requests: t.Requests, WebSockets: t.WebSockets, Streams: t.Streams, Uploads: t.Uploads,
		In: config.FormatBytes(t.BytesIn), Out: config.FormatBytes(t.BytesOut), CamUpstreams: t.WebcamUpstreams, CamViewers: t.WebcamViewers,
		CamDropped: t.WebcamDropped, CamContinued: t.WebcamContinuations}
	return v
}

func timeText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func limitBytes(n int64) string {
	if n <= 0 {
		return "not reported"
	}
	return config.FormatBytes(n)
}

func limitSeconds(n int64) string {
	if n <= 0 {
		return "not reported"
	}
	return (time.Duration(n) * time.Second).String()
}

// Connect: the portal flow with this server as the callback.

func (a *Page) connect(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name != "" && name != credstore.Slug(name) {
		a.fail(w, "Not connected", fmt.Errorf("%w: name %q may use only lower-case letters, digits and '-' (try %q)", control.ErrInvalid, name, credstore.Slug(name)))
		return
	}
	port := 0
	if p := strings.TrimSpace(r.PostForm.Get("port")); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			a.fail(w, "Not connected", fmt.Errorf("%w: port %q is not a TCP port (1..65535); leave it empty for the next free one", control.ErrInvalid, p))
			return
		}
		port = n
	}
	sess := a.sessionOf(r)
	a.mu.Lock()
	mine := 0
	for _, p := range a.pending {
		if p.session == sess {
			mine++
		}
	}
	a.mu.Unlock()
	if mine >= MaxPendingConnects {
		a.render(w, http.StatusTooManyRequests, "message", messageView{Title: "Too many setups in progress",
			Error: fmt.Sprintf("%d portal setups of this browser are already waiting; finish or abandon them (they expire after 15 minutes).", MaxPendingConnects)})
		return
	}
	cfg := a.live.Config()
	req := control.AddRequest{Name: name, Port: port}
	shown := make(chan string, 1)
	ended := make(chan error, 1)
	var p *pendingConnect
	o := portalflow.LinkOptions{
		Flow: portalflow.FlowOptions{
			PortalURL: cfg.OctoEverywhere.PortalURL, AppID: cfg.OctoEverywhere.AppID, RelayDomain: cfg.OctoEverywhere.RelayDomain,
			AppLogoURL: cfg.OctoEverywhere.AppLogoURL, CallbackBaseURL: "http://" + r.Host, Logger: a.log.Named("portal"),
		},
		PrinterURL: strings.TrimSpace(r.PostForm.Get("printer_url")),
		Discovered: func(id string, warn error) {
			req.PrinterID = id
			if warn != nil {
				a.log.Warn("admin: printer ID not discovered; the portal lets the user pick the printer", zap.Error(warn))
			}
		},
		Show: func(_ context.Context, f *portalflow.Flow, portal string) error {
			p = &pendingConnect{flow: f, session: sess, started: time.Now()}
			a.mu.Lock()
			a.pending[f.State()] = p
			a.mu.Unlock()
			shown <- portal
			return nil
		},
		// The callback's page says "Connected" only once the daemon stored the printer and opened its port.
		Keep: func(ctx context.Context, c portalflow.Completion) (string, error) {
			req.Completion = c
			rec, err := a.c.Add(ctx, req)
			if err != nil {
				a.log.Error("admin: printer not connected", zap.Error(err))
				a.note("Connecting "+c.PrinterName+" failed", "", err)
				return "", err
			}
			a.note("Connected "+rec.Name+" ("+rec.PrinterName+"), served at", rec.LocalURL, nil)
			return "Its local address: " + rec.LocalURL, nil
		},
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_, err := portalflow.Link(a.ctx, o)
		if p != nil {
			a.mu.Lock()
			delete(a.pending, p.flow.State())
			a.mu.Unlock()
			var ke *portalflow.KeepError
			if err != nil && !errors.As(err, &ke) && a.ctx.Err() == nil {
				a.note("Connect did not finish", "", err)
			}
		}
		ended <- err
	}()
	select {
	case portal := <-shown:
		http.Redirect(w, r, portal, http.StatusSeeOther)
	case err := <-ended:
		a.fail(w, "The portal could not be started", err)
	}
}

// callback serves the portal's return through the flow's own handler, which stores the printer (Keep) before
// it answers, so that the admin page lists it as soon as the browser is back.
func (a *Page) callback(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	p := a.pending[r.PathValue("state")]
	a.mu.Unlock()
	if p == nil {
		a.render(w, http.StatusNotFound, "message", messageView{Title: "No connection setup is waiting for this address",
			Lines: []string{"Nothing was stored. It may be an older or finished setup; start a new one from the admin page."}})
		return
	}
	// The portal's pages set their own CSP (one hashed script); ours allows none.
	w.Header().Del("Content-Security-Policy")
	p.flow.Handler().ServeHTTP(w, r)
}

// Remove, Live Link, Gadget.

func (a *Page) publicRecord(ctx context.Context, name string) (credstore.PublicRecord, error) {
	list, err := a.c.List(ctx)
	if err != nil {
		return credstore.PublicRecord{}, err
	}
	for _, pub := range list {
		if pub.Name == name && pub.Damaged == "" {
			return pub, nil
		}
	}
	// Not listed (or damaged): the status of that one name carries the store's own error, word for word.
	if _, err := a.c.StatusNow(ctx, name); err != nil {
		return credstore.PublicRecord{}, err
	}
	return credstore.PublicRecord{}, fmt.Errorf("%w: no printer named %q", control.ErrNotFound, name)
}

func (a *Page) confirmRemove(w http.ResponseWriter, r *http.Request) {
	pub, err := a.publicRecord(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, "No such printer", err)
		return
	}
	a.render(w, http.StatusOK, "confirm", struct {
		Title, Name, LocalURL, CSRF string
	}{Title: "remove " + pub.Name, Name: pub.Name, LocalURL: pub.LocalURL, CSRF: a.token(a.sessionOf(r))})
}

func (a *Page) remove(w http.ResponseWriter, r *http.Request) {
	rec, err := a.c.Remove(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, "Not removed", err)
		return
	}
	a.note("Removed "+rec.Name+" (revoke its App Connection on the OctoEverywhere website)", "", nil)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *Page) liveLink(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	req := appapi.LiveLinkRequest{UntilPrintDone: r.PostForm.Get("until_print_done") != ""}
	if h := strings.TrimSpace(r.PostForm.Get("hours")); h != "" && !req.UntilPrintDone {
		n, err := strconv.Atoi(h)
		if err != nil || n < 1 || n > 17520 {
			a.fail(w, "No Live Link created", fmt.Errorf("%w: hours %q: give 1 to 17520", control.ErrInvalid, h))
			return
		}
		req.Hours = n
	}
	l, err := a.c.LiveLink(r.Context(), name, req)
	if err != nil {
		a.fail(w, "No Live Link created", err)
		return
	}
	lasts := "It ends when the current print is done."
	if !req.UntilPrintDone {
		hours := req.Hours
		if hours == 0 {
			hours = 24 // OctoEverywhere's default
		}
		lasts = fmt.Sprintf("It works for %d hours.", hours)
	}
	a.render(w, http.StatusOK, "message", messageView{Title: "Live Link for " + name,
		Lines: []string{"Anyone with this link sees the printer's webcam and print progress, without logging in. " + lasts},
		Links: nonEmpty(l.URL, l.ShortURL)})
}

func nonEmpty(s ...string) []string {
	return slices.DeleteFunc(s, func(v string) bool { return v == "" })
}

func (a *Page) gadget(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	g, err := a.c.Gadget(r.Context(), name)
	if err != nil {
		a.fail(w, "No Gadget status", err)
		return
	}
	lines := []string{"State: " + g.State.String()}
	if g.State == appapi.GadgetActive {
		lines = append(lines, "Status: "+g.Status, fmt.Sprintf("Color: %v", g.StatusColor), fmt.Sprintf("Rating: %v", g.Rating))
	}
	a.render(w, http.StatusOK, "message", messageView{Title: "Gadget status of " + name, Lines: lines})
}

// routeText is the page's route line of a printer, from its listing (whose Route is the effective route mode)
// and its router.
func (a *Page) routeText(pub credstore.PublicRecord) string {
	st, ok := a.live.RouteStatus(pub.Name)
	if !ok {
		return pub.Route + " (not served)"
	}
	s := fmt.Sprintf("%s, now %s", st.Mode, st.Active)
	if !st.LastProof.IsZero() {
		s += ", last proof " + st.LastProof.Local().Format("15:04:05")
		if st.Strength != "" {
			s += " (" + st.Strength + ")"
		}
	}
	if st.Reason != "" {
		s += ": " + st.Reason
	}
	return s
}

// uploadView is one spooled upload on the page.
type uploadView struct {
	Stored, Printer, File, Size, Error, Kept string
	State                                    proxy.UploadState
	Status                                   int
	Bad                                      bool // failed or interrupted: the printer does not have it
}

// uploadViews are the spool's records (oldest first) for the page, newest first.
func uploadViews(rs []proxy.UploadRecord) []uploadView {
	out := make([]uploadView, 0, len(rs))
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		out = append(out, uploadView{Stored: r.Stored.Format("2006-01-02 15:04:05"), Printer: r.Printer, File: r.File,
			Size: config.FormatBytes(r.Size), Error: r.Error, Kept: r.Kept, State: r.State, Status: r.Status,
			Bad: r.State == proxy.UploadFailed || r.State == proxy.UploadInterrupted})
	}
	return out
}

package proxy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oeproxy/oeproxy/front"
	"github.com/oeproxy/oeproxy/internal/oe"
	"github.com/oeproxy/oeproxy/route"
	"github.com/oeproxy/oeproxy/webcam"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Printer is what one handler needs to reach one printer through its App Connection.
type Printer struct {
	// Name is the user's name for the printer; it appears in logs and in the advice of error pages.
	Name string
	// RelayURL is the App Connection host, https://app-<id>.<domain>, with no port, path, query or userinfo.
	RelayURL *url.URL
	// Auth chooses the credential sent to the relay: "basic" (the default) or "bearer".
	Auth string
	// BasicUser and BasicPassword are the App Connection's Basic credential; BearerToken its Bearer token.
	BasicUser, BasicPassword, BearerToken string
	// LANHosts are the printer's own LAN addresses (the portal's last known local IP): absolute webcam URLs on
	// them in the printer's JSON are made relative, so that UIs keep using oeproxy.
	LANHosts []string
	// FrontAPIKey, when set, puts package front before the relay: the port answers OctoPrint's API (paths
	// front.Handles) over the plugin command APIs, for printers without an HTTP API of their own (Bambu Lab).
	// Clients must send this key; it is the front's own, shown once by connect.
	FrontAPIKey string
}

// Hooks lets the daemon count what the handler does (metrics, admin page). Every field may be nil. Hooks are
// called synchronously from request goroutines, so they must be quick and safe for concurrent use.
type Hooks struct {
	// RequestDone is called once per proxied HTTP request; WebSocket handshakes are reported through WebSocket
	// (and RelayCode when the relay refuses one) instead.
	RequestDone func(RequestStats)
	// WebSocket is called with true when a proxied WebSocket opens and false when it ends.
	WebSocket func(open bool)
	// Stream is called with true when a streaming response (MJPEG, event stream) starts and false when it ends.
	Stream func(open bool)
	// RelayCode is called for every OctoEverywhere 6xx answer, on HTTP requests and WebSocket handshakes.
	RelayCode func(code int)
}

// RequestStats describes one finished HTTP request.
type RequestStats struct {
	Status   int           // status sent to the client (0 if the client went away before any was sent)
	BytesIn  int64         // request body bytes read from the client
	BytesOut int64         // response body bytes written to the client
	Route    string        // "lan" or "relay": the route that answered (a LAN connect that fell back counts as relay)
	Duration time.Duration // from arrival to the end of the response body
}

// Options configures a Handler. Transport is required; every other zero value is a safe default.
type Options struct {
	// Transport carries requests to the relay; build it with oenet.Options.Transport() so that it has no
	// compression, no response-header timeout and honours connect_to.
	Transport http.RoundTripper
	// WebSocketTransport carries WebSocket handshakes (oenet.Options.WebSocketTransport()); default Transport.
	// It should not share Transport's connection cap: a WebSocket holds its connection for its whole life.
	WebSocketTransport http.RoundTripper
	// Logger receives one line per state change (6xx code, relay unreachable) and per refused client; default no-op.
	Logger *zap.Logger
	// ListenAddr is the local listener address (host:port); it is accepted as a Host besides loopback names.
	ListenAddr string
	// AllowedHosts are extra Host names (listen.allowed_hosts), "name" for any port or "name:port".
	AllowedHosts []string
	// AppID and PortalURL build the link of the 605 page: <origin of PortalURL>/appportal/v1/nosupporterperks?appid=<AppID>.
	// PortalURL defaults to https://octoeverywhere.com/appportal/v1/.
	AppID, PortalURL string
	// PingInterval is how often a proxied WebSocket pings the relay; a ping unanswered within the same
	// interval closes the client with 1011. Default 30s.
	PingInterval time.Duration
	// MaxMessageBytes is the largest WebSocket message relayed in either direction. Default 64 MiB.
	MaxMessageBytes int64
	// DialTimeout bounds a WebSocket handshake with the relay. Default 60s.
	DialTimeout time.Duration
	// Hooks receives counts for metrics.
	Hooks Hooks
	// Gate, when set, may refuse a request before it reaches the relay (see Gate).
	Gate Gate
	// RelaySlots, when set, caps the HTTP requests in flight to the relay (octoeverywhere.max_connections); a
	// request beyond it waits up to RelayWait (default 30s) for a slot, then is answered 503 with Retry-After.
	RelaySlots *RelaySlots
	RelayWait  time.Duration
	// BodyIdleTimeout fails a request whose body stops arriving for that long with 408 (default 60s, as nginx's
	// client_body_timeout). It bounds each wait between two reads, not the upload, which lasts as long as it lasts.
	BodyIdleTimeout time.Duration
	// Webcams, when set, shares webcam streams among viewers and answers snapshots from them (package webcam).
	// The caller owns it, so that a reload that replaces the handler does not end the viewers' streams.
	Webcams *webcam.Hub
	// Router, when set, decides per request (and per WebSocket or stream at its start) whether it goes to the
	// printer's LAN address or to the relay (package route); nil means always the relay.
	Router *route.Router
	// LANTransport carries requests on the LAN route; default route.NewLANTransport() (300 ms connect, no
	// environment proxy). It never carries the App Connection credential.
	LANTransport http.RoundTripper
	// UploadLimit, when set, returns the account's upload limit in bytes (0 unknown), for the front's 413.
	UploadLimit func() int64
	// Uploads, when set (upload.answer_when_stored), stores a slicer's upload on the relay route on disk and
	// answers 202 Accepted at once, then passes it on and records the printer's answer (upload.go). The caller
	// owns it. Nil, the default, streams the upload and passes the printer's own answer on when it comes.
	Uploads *UploadSpool
}

// Handler serves one printer. It is an http.Handler; Close ends its WebSockets.
type Handler struct {
	printer     Printer
	relayHost   string // lower-case host of RelayURL
	credential  string // the Authorization value sent to the relay; never logged
	opts        Options
	log         *zap.Logger
	supportLink string
	rp          *httputil.ReverseProxy
	wsClient    *http.Client
	now         func() time.Time // the clock of the refusal log's rate limit (tests replace it)

	state       atomic.Int32 // last relay state logged: 0 fine, a 6xx code, or 502 unreachable
	basicLogged sync.Map     // remote IP → struct{}: clients already told their Authorization was dropped
	basicCount  atomic.Int32
	refusals    refusalLog

	mu       sync.Mutex
	closed   bool
	sessions map[*wsSession]struct{}
	wg       sync.WaitGroup

	cams  *webcam.Hub
	front *front.Front // nil unless Printer.FrontAPIKey is set

	lanRP        *httputil.ReverseProxy
	lanTransport http.RoundTripper
	lanWSClient  *http.Client
	lanHosts     []string // host names of the router's LAN addresses: the printer's own, for webcam URLs
}

// New checks the printer and options and returns the printer's handler.
func New(p Printer, o Options) (*Handler, error) {
	if o.Transport == nil {
		return nil, errors.New("proxy: Options.Transport is required (build it with oenet.Options.Transport())")
	}
	if err := checkRelayURL(p.RelayURL); err != nil {
		return nil, err
	}
	cred, err := credentialOf(p)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 64 << 20
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 60 * time.Second
	}
	if o.RelayWait <= 0 {
		o.RelayWait = 30 * time.Second
	}
	if o.BodyIdleTimeout <= 0 {
		o.BodyIdleTimeout = 60 * time.Second
	}
	h := &Handler{
		printer:     p,
		relayHost:   strings.ToLower(p.RelayURL.Host),
		credential:  cred,
		opts:        o,
		log:         o.Logger.With(zap.String("printer", p.Name), zap.String("relay_host", strings.ToLower(p.RelayURL.Host))),
		supportLink: oe.SupporterPageURL(o.PortalURL, o.AppID),
		sessions:    make(map[*wsSession]struct{}),
		now:         time.Now,
		cams:        o.Webcams,
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:   h.rewrite,
		Transport: o.Transport,
		// 0, not -1: ReverseProxy itself flushes every write of a body of unknown length (MJPEG, SockJS
		// xhr_streaming, chunked answers) and of text/event-stream. -1 also flushed the headers of every
		// known-length answer on a timer goroutine of their own before the body: an extra write and goroutine per
		// small request (about 10% of the proxy's CPU per small GET in make bench's profile). A known-length body
		// is flushed by passOnBody instead, only when more of it is still to come from the relay.
		FlushInterval:  0,
		BufferPool:     copyBuffers{},
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.relayError,
		ErrorLog:       mustStdLogAt(h.log.Named("reverseproxy"), zap.DebugLevel),
	}
	h.lanTransport = o.LANTransport
	if h.lanTransport == nil {
		h.lanTransport = route.NewLANTransport()
	}
	h.lanRP = h.newLANProxy()
	h.lanWSClient = &http.Client{Transport: h.lanTransport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	h.lanHosts = o.Router.LANHosts()
	wst := o.WebSocketTransport
	if wst == nil {
		wst = o.Transport
	}
	if p.FrontAPIKey != "" {
		if h.front, err = h.newFront(); err != nil {
			return nil, err
		}
	}
	h.wsClient = &http.Client{
		Transport: wst,
		// A redirect on a handshake is the client's business: pass it on (with Location rewritten).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return h, nil
}

func checkRelayURL(u *url.URL) error {
	if u == nil {
		return errors.New("proxy: Printer.RelayURL is required (the App Connection URL, https://app-<id>.octoeverywhere.com)")
	}
	bad := u.Scheme != "https" || u.Hostname() == "" || u.Port() != "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != ""
	if bad {
		return fmt.Errorf("proxy: relay URL %q must be https://<host> with no port, path, query or userinfo: re-link the printer with oeproxy connect", u.Redacted())
	}
	return nil
}

func credentialOf(p Printer) (string, error) {
	switch strings.ToLower(p.Auth) {
	case "", "basic":
		if p.BasicUser == "" || p.BasicPassword == "" {
			return "", fmt.Errorf("proxy: printer %q has no Basic credential: re-link it with oeproxy connect, or set octoeverywhere.auth to bearer", p.Name)
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(p.BasicUser+":"+p.BasicPassword)), nil
	case "bearer":
		if p.BearerToken == "" {
			return "", fmt.Errorf("proxy: printer %q has no Bearer token: re-link it with oeproxy connect, or set octoeverywhere.auth to basic", p.Name)
		}
		return "Bearer " + p.BearerToken, nil
	default:
		return "", fmt.Errorf("proxy: auth %q is not basic or bearer", p.Auth)
	}
}

// ctxKey carries what the response hooks need to know about the client's request.
type ctxKey struct{}

type clientInfo struct {
	host     string // the Host the client used (already checked)
	remoteIP string
	body     *countingBody   // nil: no request body (or a WebSocket)
	w        *countingWriter // nil for a WebSocket
}

func clientOf(ctx context.Context) clientInfo {
	ci, _ := ctx.Value(ctxKey{}).(clientInfo)
	return ci
}

// ServeHTTP guards the local side, then relays the request (HTTP through ReverseProxy, WebSockets through
// serveWebSocket).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.TransferEncoding) > 0 {
		// RFC 9112 §6.3: a request with Transfer-Encoding may be a smuggling attempt (net/http has already dropped a
		// Content-Length sent beside it, so the two cannot be told apart here), and the connection MUST be closed
		// after the answer, so that nothing left in the body is ever read as a request of its own.
		w.Header().Set("Connection", "close")
	}
	if !h.hostAllowed(r.Host) {
		h.refuse(w, r, http.StatusMisdirectedRequest, "Host not allowed",
			fmt.Sprintf("This oeproxy port answers only to localhost, 127.0.0.1, its listen address or listen.allowed_hosts, not to Host %q. "+
				"This stops web pages from reaching your printer through DNS rebinding. To use another name, add it to listen.allowed_hosts.", r.Host))
		return
	}
	if r.Method == http.MethodTrace || r.Method == "TRACK" {
		// TRACE echoes the request, credential headers included, to whoever can read the answer.
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		h.refuse(w, r, http.StatusMethodNotAllowed, "Method not allowed",
			"oeproxy does not forward TRACE: it would echo the request, credentials included, back to the caller.")
		return
	}
	ws := isWebSocketUpgrade(r)
	if (ws || !safeMethod(r.Method)) && !OriginAllowed(r) {
		from := fmt.Sprintf("Origin %q", r.Header.Get("Origin"))
		if len(r.Header.Values("Origin")) == 0 {
			from = "A request from another web site (Sec-Fetch-Site: cross-site)"
		}
		h.refuse(w, r, http.StatusForbidden, "Cross-site request refused",
			fmt.Sprintf("%s is not this printer's local origin http://%s: oeproxy refuses state-changing requests and WebSockets "+
				"from other web pages so that they cannot use your printer's credential.", from, r.Host))
		return
	}
	// The route is decided once, here, for the whole request (a WebSocket or stream keeps it for its life). The
	// Gate speaks for the relay (its limits, a dead App Connection): a request on the LAN does not ask it, unless
	// it falls back to the relay.
	d := h.opts.Router.Decide()
	if d.Route != route.LAN && !h.admit(w, r) {
		return
	}
	if h.front != nil && !ws && front.Handles(r.URL.Path) {
		h.serveFront(w, r)
		return
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	var cb *countingBody
	if !ws && r.Body != nil && r.Body != http.NoBody {
		cb = &countingBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: h.opts.BodyIdleTimeout}
		r.Body = cb
	}
	var cw *countingWriter
	if !ws {
		cw = &countingWriter{ResponseWriter: w}
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, clientInfo{host: r.Host, remoteIP: ip, body: cb, w: cw}))
	if ws {
		h.serveWebSocket(w, r, d)
		return
	}
	if r.Header.Get("Upgrade") != "" {
		// Only WebSocket upgrades are carried; anything else (h2c, ...) goes on as a plain request.
		r.Header.Del("Upgrade")
	}
	h.serveHTTP(cw, r, cb, d)
}

func (h *Handler) serveHTTP(cw *countingWriter, r *http.Request, cb *countingBody, d route.Decision) {
	start := time.Now()
	method, path := r.Method, r.URL.Path // before the handlers below change r
	via := d.Route
	defer func() {
		cb.finish()
		access := h.log.Check(zapcore.DebugLevel, "request")
		if h.opts.Hooks.RequestDone == nil && access == nil {
			return
		}
		st := RequestStats{Status: cw.status, BytesOut: cw.n, Route: string(via), Duration: time.Since(start)}
		if cb != nil {
			st.BytesIn = cb.n.Load()
		}
		if access != nil {
			// The access log: never the query, which may carry an API key (?apikey=, snapshot tokens).
			access.Write(zap.String("method", method), zap.String("path", path), zap.Int("status", st.Status),
				zap.Int64("bytes_in", st.BytesIn), zap.Int64("bytes_out", st.BytesOut), zap.Duration("duration", st.Duration),
				zap.String("route", st.Route))
		}
		if h.opts.Hooks.RequestDone != nil {
			h.opts.Hooks.RequestDone(st)
		}
	}()
	r, done := h.serveWebcam(cw, r)
	if done {
		return
	}
	defer camDone(r)
	if d.Route == route.LAN {
		if h.serveLAN(cw, r, d) {
			return
		}
		via = route.Relay // nothing reached the LAN: the same request goes on to the relay
		if !h.admit(cw, r) {
			return
		}
	}
	if h.spools(r) {
		h.serveSpooled(cw, r) // upload.answer_when_stored (upload.go)
		return
	}
	if !h.opts.RelaySlots.acquire(r, h.opts.RelayWait) {
		h.relayBusy(cw, r)
		return
	}
	defer h.opts.RelaySlots.release()
	h.rp.ServeHTTP(cw, r)
}

// OpenWebSockets is the number of WebSockets being relayed now.
func (h *Handler) OpenWebSockets() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Close closes every proxied WebSocket on both sides with 1001 (going away) and waits for them to end.
// WebSocket handshakes after Close are refused with 503; plain HTTP requests are the server's to drain.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	sessions := make([]*wsSession, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	for _, s := range sessions {
		s.end(endShutdown, 0, "")
	}
	h.wg.Wait()
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// countingWriter records the status and body size; Unwrap keeps Flush (and Hijack) reachable through
// http.ResponseController, which ReverseProxy uses.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
	body   passOnBody // the relay's body, when passOn wraps it (here: no allocation per response)
	rc     *http.ResponseController
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// passOn makes resp's body flush what was written to the client before each read that may wait for the relay.
// ReverseProxy does so itself for bodies of unknown length and event streams; a body with a Content-Length
// would otherwise wait in net/http's buffers until 4 KiB gathered or it ended, which holds back one that
// trickles (a slow printer, a long poll). A small answer read in one go is never flushed early: it leaves in one
// write when the handler ends, as before.
func (c *countingWriter) passOn(resp *http.Response) {
	if resp.ContentLength <= 0 || strings.Contains(resp.Header.Get("Content-Type"), "event-stream") {
		return
	}
	c.body = passOnBody{ReadCloser: resp.Body, w: c, left: resp.ContentLength}
	resp.Body = &c.body
}

func (c *countingWriter) flush() {
	if c.rc == nil {
		c.rc = http.NewResponseController(c.ResponseWriter)
	}
	_ = c.rc.Flush()
}

// passOnBody is the relay's body of a known length; ReverseProxy reads it and writes to the client on one
// goroutine, so the flush needs no lock.
type passOnBody struct {
	io.ReadCloser
	w       *countingWriter
	left    int64 // bytes of the Content-Length not read yet
	pending bool  // bytes were read (and so written) since the last flush, and more are to come
}

func (b *passOnBody) Read(p []byte) (int, error) {
	if b.pending {
		b.pending = false
		b.w.flush()
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	b.pending = n > 0 && b.left > 0 && err == nil
	return n, err
}

// mustStdLogAt adapts zap to the standard logger ReverseProxy wants, at a fixed level.
func mustStdLogAt(l *zap.Logger, lvl zapcore.Level) *log.Logger {
	std, err := zap.NewStdLogAt(l, lvl)
	if err != nil {
		return zap.NewStdLog(l)
	}
	return std
}

// copyBuffers lends ReverseProxy its 32 KiB copy buffers; without a pool it allocates one per response, which was
// most of the garbage (and GC work) of a small request.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte { return *copyBufferPool.Get().(*[]byte) }

func (copyBuffers) Put(b []byte) {
	if cap(b) >= 32<<10 {
		b = b[:32<<10]
		copyBufferPool.Put(&b)
	}
}

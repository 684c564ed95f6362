package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/route"
)

// The LAN route. Options.Router decides, once per request and once per WebSocket or stream at its start, whether
// it goes to the printer's LAN address (proven to be the same printer, package route) or to the relay; a
// WebSocket, upload or stream stays on the route it started on. The Host and Origin checks of ServeHTTP run
// before the decision, so they are the same on both routes.
//
// What the LAN may see is decided here, in lanView: everything the client sent (its API key, Basic or Digest
// Authorization for PrusaLink, cookies) passes as it would to the printer's own address, and the App Connection
// credential is never added: it belongs to the relay only (relayView). Forwarding headers are dropped as on the
// relay, since Moonraker and OctoPrint trust clients by address.
//
// A LAN connect that fails (refused, no route, no answer within route.LANDialTimeout) reached nothing, so in
// auto mode the same request goes on to the relay at once, provided none of its body was read; a request whose
// body was partly sent is not replayed (it could act twice) and gets a 502 saying so. In lan mode nothing ever
// goes to the relay: an unreachable printer gets a 502 page.

// lanAttempt is the state of one request's try on the LAN, shared by the LAN proxy's hooks.
type lanAttempt struct {
	d        route.Decision
	body     *lanBody // nil: no request body
	fallback bool     // set by lanError: nothing reached the LAN, go on to the relay
}

type lanKey struct{}

func attemptOf(ctx context.Context) *lanAttempt {
	a, _ := ctx.Value(lanKey{}).(*lanAttempt)
	return a
}

// lanBody lends the client's body to the LAN attempt. It counts what the LAN transport read and does not close
// the client's body while nothing was read, so that the relay can still send it whole after a failed connect.
type lanBody struct {
	rc     io.ReadCloser
	n      atomic.Int64
	closed atomic.Bool
}

func (b *lanBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *lanBody) Close() error {
	b.closed.Store(true)
	if b.n.Load() > 0 {
		return b.rc.Close()
	}
	return nil
}

func (b *lanBody) sent() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

// freshForBody sends a request with a body over a connection of its own, and every other request over rt's pool.
// A pooled connection may have been closed by a printer that vanished a moment ago without rt having noticed yet:
// the transport then reads some of the body before the write fails, and such a request may no longer go to the
// relay (its body was partly taken). A new connection to a vanished printer is refused instead, before any body
// byte is read, so the request falls back to the relay whole. A LAN connect costs well under a millisecond.
type freshForBody struct {
	pooled, fresh http.RoundTripper
}

func newFreshForBody(rt http.RoundTripper) http.RoundTripper {
	t, ok := rt.(*http.Transport)
	if !ok {
		return rt
	}
	f := t.Clone()
	f.DisableKeepAlives = true
	return freshForBody{pooled: rt, fresh: f}
}

func (f freshForBody) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		return f.fresh.RoundTrip(r)
	}
	return f.pooled.RoundTrip(r)
}

// newLANProxy builds the ReverseProxy of the LAN route.
func (h *Handler) newLANProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        h.lanRewrite,
		Transport:      newFreshForBody(h.lanTransport),
		FlushInterval:  0, // as the relay's: see New
		BufferPool:     copyBuffers{},
		ModifyResponse: h.lanModifyResponse,
		ErrorHandler:   h.lanError,
		ErrorLog:       mustStdLogAt(h.log.Named("reverseproxy-lan"), zap.DebugLevel),
	}
}

// serveLAN tries r on the LAN and reports whether it was answered; false means it must go to the relay.
func (h *Handler) serveLAN(cw *countingWriter, r *http.Request, d route.Decision) bool {
	if d.Refuse != "" {
		h.lanRefused(cw, r, d.Refuse)
		return true
	}
	a := &lanAttempt{d: d}
	lr := r.WithContext(context.WithValue(r.Context(), lanKey{}, a))
	if r.Body != nil && r.Body != http.NoBody {
		a.body = &lanBody{rc: r.Body}
		lr.Body = a.body
	}
	h.lanRP.ServeHTTP(cw, lr)
	return !a.fallback
}

// lanView makes hdr hold what the printer's LAN address may see: the client's headers, Authorization included,
// minus forwarding headers. The App Connection credential is never set here.
func lanView(hdr http.Header) {
	for k := range hdr {
		if blocked, auth := classifyHeaderName(k); blocked && !auth {
			delete(hdr, k)
		}
	}
}

// lanRewrite is the LAN proxy's Rewrite: the LAN base URL (its path prefix kept), the client's path and query,
// and Host set to the LAN host, as a client of the printer's own address sends it.
func (h *Handler) lanRewrite(pr *httputil.ProxyRequest) {
	a := attemptOf(pr.In.Context())
	pr.SetURL(a.d.LANURL)
	lanView(pr.Out.Header)
	if h.cams != nil {
		detachCam(pr)
	}
}

// lanModifyResponse maps URLs on the LAN host back to the local origin, makes cookies work on the local side and
// maps the printer's own webcam URLs, as modifyResponse does for the relay.
func (h *Handler) lanModifyResponse(resp *http.Response) error {
	ci := clientOf(resp.Request.Context())
	a := attemptOf(resp.Request.Context())
	rewriteLANHeader(resp.Header, a.d.LANURL, ci.host)
	addFramingProtection(resp.Header)
	resp.Header.Del(ErrorHeader)
	h.mapWebcamURLs(resp)
	if h.cams != nil {
		h.adoptCamVia(resp, h.lanTransport)
	}
	if ci.w != nil {
		ci.w.passOn(resp)
	}
	if h.opts.Hooks.Stream != nil && isStream(resp.Header.Get("Content-Type")) {
		h.opts.Hooks.Stream(true)
		resp.Body = &onClose{ReadCloser: resp.Body, fn: func() { h.opts.Hooks.Stream(false) }}
	}
	resp.Body = &lanAnswer{ReadCloser: resp.Body, ctx: resp.Request.Context(), router: h.opts.Router}
	return nil
}

// lanAnswer tells the router when the printer stops answering in the middle of an answer (it vanished from the
// LAN mid-stream): the answer cannot be saved, but the next request goes to the relay at once.
type lanAnswer struct {
	io.ReadCloser
	ctx    context.Context
	router *route.Router
	told   bool
}

func (b *lanAnswer) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && !b.told && b.ctx.Err() == nil {
		b.told = true
		b.router.LANFailed("the printer stopped answering mid-answer: " + lanReason(err))
	}
	return n, err
}

// rewriteLANHeader maps Location and Content-Location on the LAN host to http://<localHost>, and rewrites the
// cookies for the local side (Domain on the LAN host and Secure dropped).
func rewriteLANHeader(hdr http.Header, base *url.URL, localHost string) {
	for _, k := range []string{"Location", "Content-Location"} {
		v := hdr.Get(k)
		u, err := url.Parse(strings.TrimSpace(v))
		if v == "" || err != nil || localHost == "" || !sameLANHost(u, base) {
			continue
		}
		u.Path = strings.TrimPrefix(u.Path, base.Path)
		u.RawPath = ""
		if strings.EqualFold(u.Scheme, "wss") || strings.EqualFold(u.Scheme, "ws") {
			u.Scheme = "ws"
		} else {
			u.Scheme = "http"
		}
		u.Host, u.User = localHost, nil
		hdr.Set(k, u.String())
	}
	if cs := hdr.Values("Set-Cookie"); len(cs) > 0 {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = rewriteSetCookie(c, strings.ToLower(base.Hostname()))
		}
		hdr["Set-Cookie"] = out
	}
}

func sameLANHost(u, base *url.URL) bool {
	if u.Host == "" || !strings.EqualFold(u.Hostname(), base.Hostname()) {
		return false
	}
	return portOf(u) == portOf(base)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") || strings.EqualFold(u.Scheme, "wss") {
		return "443"
	}
	return "80"
}

// lanError is the LAN proxy's ErrorHandler: fall back to the relay when nothing reached the LAN and the mode
// allows it; otherwise a 502 that says what happened.
func (h *Handler) lanError(w http.ResponseWriter, r *http.Request, err error) {
	a := attemptOf(r.Context())
	if berr := clientOf(r.Context()).body.err(); berr != nil && (r.Context().Err() == nil || isTimeout(berr)) {
		h.clientBodyError(w, r, berr)
		return
	}
	if r.Context().Err() != nil || errors.Is(err, context.Canceled) {
		w.WriteHeader(http.StatusBadGateway) // the client went away
		return
	}
	connect := route.ConnectFailed(err)
	h.opts.Router.LANFailed(lanReason(err))
	if connect && a.body.sent() == 0 && a.d.Fallback {
		a.fallback = true
		h.log.Debug("LAN connect failed; the request goes to the relay", zap.Error(safeErr(err)))
		return
	}
	if a.body.sent() > 0 {
		writeExplanation(w, r, http.StatusBadGateway, explanation{Code: http.StatusBadGateway,
			Meaning: fmt.Sprintf("The printer stopped answering on its LAN address %s after %d bytes of the request body were sent (%s).",
				a.d.LANURL.Host, a.body.sent(), lanReason(err)),
			Action: "oeproxy does not send a request twice (an upload or a command could run twice). Send it again: " +
				"oeproxy now uses the relay until the printer proves itself on the LAN again."})
		return
	}
	h.lanUnreachable(w, r, a.d, err)
}

// lanUnreachable answers a request that reached nothing on the LAN and may not go to the relay (lan mode), or
// that failed there in another way than a connect.
func (h *Handler) lanUnreachable(w http.ResponseWriter, r *http.Request, d route.Decision, err error) {
	e := explanation{Code: http.StatusBadGateway,
		Meaning: fmt.Sprintf("The printer %q did not answer on its LAN address %s: %s.", h.printer.Name, d.LANURL.Host, lanReason(err))}
	if d.Fallback {
		e.Action = "Try again: oeproxy now uses the relay until the printer proves itself on the LAN again."
	} else {
		e.Action = fmt.Sprintf("This printer's route is lan, so oeproxy never uses the relay for it. Check that the printer is on and "+
			"that this computer is on its network, or let oeproxy fall back to the relay: oeproxy connect --route auto, or set route: auto (printer %s).", h.printer.Name)
	}
	writeExplanation(w, r, http.StatusBadGateway, e)
}

// lanRefused answers a request in lan mode whose LAN host proved to be another printer.
func (h *Handler) lanRefused(w http.ResponseWriter, r *http.Request, why string) {
	writeExplanation(w, r, http.StatusBadGateway, explanation{Code: http.StatusBadGateway,
		Meaning: "oeproxy did not send this request to the printer's LAN address: " + why + ".",
		Action: "This computer is probably on another network, where another device uses the printer's address. Set the printer's " +
			"LAN address (oeproxy lan set NAME URL), or use route auto so that oeproxy takes the relay away from home."})
}

// lanReason names a LAN failure for a page or a log line, without a URL.
func lanReason(err error) string {
	err = safeErr(err)
	switch {
	case isTimeout(err):
		return fmt.Sprintf("no answer within %s", route.LANDialTimeout)
	case route.ConnectFailed(err):
		return "connection refused or no route to the printer"
	}
	return err.Error()
}

// dialLAN opens a WebSocket to the printer's LAN address with the client's own auth headers and cookies (no
// credential, no Origin: the relay path sends none either, and our Origin check already ran).
func (h *Handler) dialLAN(r *http.Request, base *url.URL) (*websocket.Conn, *http.Response, context.CancelFunc, error) {
	scheme := "ws"
	if base.Scheme == "https" {
		scheme = "wss"
	}
	return h.dialWS(r, scheme+"://"+base.Host+base.Path+r.URL.RequestURI(), "", h.lanWSClient, wsClientHeaders(r))
}

// upstream is the far side of a WebSocket being opened: the relay's or the LAN host's.
type upstream struct {
	conn    *websocket.Conn
	resp    *http.Response // the handshake answer, when one came
	release context.CancelFunc
	err     error
	lan     bool
}

// dialUpstream opens a WebSocket on the route decided at its start; the session stays on it for its whole life.
// It reports answered when it already answered the client (a refused or unreachable LAN host).
func (h *Handler) dialUpstream(w http.ResponseWriter, r *http.Request, d route.Decision) (up upstream, answered bool) {
	if d.Route != route.LAN {
		up.conn, up.resp, up.release, up.err = h.dialRelay(r)
		return up, false
	}
	if d.Refuse != "" {
		h.lanRefused(w, r, d.Refuse)
		return up, true
	}
	up.lan = true
	up.conn, up.resp, up.release, up.err = h.dialLAN(r, d.LANURL)
	if up.err == nil || up.resp != nil {
		return up, false
	}
	if r.Context().Err() != nil {
		w.WriteHeader(http.StatusBadGateway) // the client went away
		return up, true
	}
	h.opts.Router.LANFailed(lanReason(up.err))
	if route.ConnectFailed(up.err) && d.Fallback {
		if !h.admit(w, r) {
			return upstream{}, true
		}
		up = upstream{}
		up.conn, up.resp, up.release, up.err = h.dialRelay(r)
		return up, false
	}
	h.lanUnreachable(w, r, d, up.err)
	return up, true
}

package proxy

import (
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/oeproxy/oeproxy/internal/oe"
)

// modifyResponse is ReverseProxy's ModifyResponse hook: URLs that point at the relay host are mapped back to the
// local origin (or clients following them would bypass oeproxy and meet 606), cookies are made to work on plain
// http://localhost, and OctoEverywhere 6xx answers get an explanation body. Other bodies pass untouched.
func (h *Handler) modifyResponse(resp *http.Response) error {
	ci := clientOf(resp.Request.Context())
	rewriteResponseHeader(resp.Header, h.relayHost, ci.host)
	addFramingProtection(resp.Header)
	if oe.IsCode(resp.StatusCode) {
		h.noteRelayCode(resp.StatusCode)
		accept := resp.Request.Header.Get("Accept")
		replaceBody(resp, h.explain(resp.StatusCode), accept)
		return nil
	}
	h.noteRelayOK()
	resp.Header.Del(ErrorHeader) // only oeproxy sets it, and only on a 6xx
	h.mapWebcamURLs(resp)
	if h.cams != nil {
		h.adoptCam(resp)
	}
	if ci.w != nil {
		ci.w.passOn(resp)
	}
	if h.opts.Hooks.Stream != nil && isStream(resp.Header.Get("Content-Type")) {
		h.opts.Hooks.Stream(true)
		resp.Body = &onClose{ReadCloser: resp.Body, fn: func() { h.opts.Hooks.Stream(false) }}
	}
	return nil
}

// rewriteResponseHeader maps Location, Content-Location and Refresh from the relay host to http://<localHost>,
// and rewrites every Set-Cookie for the local side.
func rewriteResponseHeader(hdr http.Header, relayHost, localHost string) {
	for _, k := range []string{"Location", "Content-Location"} {
		if v := hdr.Get(k); v != "" {
			if nv, ok := rewriteRelayURL(v, relayHost, localHost); ok {
				hdr.Set(k, nv)
			}
		}
	}
	if v := hdr.Get("Refresh"); v != "" {
		hdr.Set("Refresh", rewriteRefresh(v, relayHost, localHost))
	}
	if cs := hdr.Values("Set-Cookie"); len(cs) > 0 {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = rewriteSetCookie(c, relayHost)
		}
		hdr["Set-Cookie"] = out
	}
}

// rewriteRelayURL maps an absolute (or scheme-relative) URL on the relay host to the same path on
// http://<localHost> (ws:// for wss://). Other URLs are left alone (ok false).
func rewriteRelayURL(raw, relayHost, localHost string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || localHost == "" {
		return raw, false
	}
	host := strings.ToLower(u.Hostname())
	if host != relayHost || (u.Port() != "" && u.Port() != "443") {
		return raw, false
	}
	switch strings.ToLower(u.Scheme) {
	case "https", "http", "":
		u.Scheme = "http"
	case "wss", "ws":
		u.Scheme = "ws"
	default:
		return raw, false
	}
	u.Host = localHost
	u.User = nil
	return u.String(), true
}

// rewriteRefresh rewrites the url= part of a Refresh header ("5; url=https://app-x/...").
func rewriteRefresh(v, relayHost, localHost string) string {
	i := strings.Index(strings.ToLower(v), "url=")
	if i < 0 {
		return v
	}
	target := strings.Trim(strings.TrimSpace(v[i+4:]), `"'`)
	if nv, ok := rewriteRelayURL(target, relayHost, localHost); ok {
		return v[:i+4] + nv
	}
	return v
}

// rewriteSetCookie drops a Domain that names the relay host (or a parent of it) so the cookie binds to the local
// host, and drops Secure (with SameSite=None and Partitioned, which browsers refuse without Secure) since the
// local side is plain http. Everything else is kept byte for byte.
func rewriteSetCookie(line, relayHost string) string {
	parts := strings.Split(line, ";")
	out := parts[:1]
	changed := false
	for _, p := range parts[1:] {
		name, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.ToLower(strings.TrimSpace(val))
		switch {
		case name == "secure", name == "partitioned",
			name == "samesite" && val == "none",
			name == "domain" && domainCovers(strings.TrimPrefix(val, "."), relayHost):
			changed = true
			continue
		}
		out = append(out, p)
	}
	if !changed {
		return line
	}
	return strings.Join(out, ";")
}

func domainCovers(domain, host string) bool {
	return domain != "" && (host == domain || strings.HasSuffix(host, "."+domain))
}

func isStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (strings.HasPrefix(mt, "multipart/x-mixed-replace") || mt == "text/event-stream")
}

// onClose runs fn once when the body is closed (ReverseProxy closes it when the copy ends either way).
type onClose struct {
	io.ReadCloser
	once sync.Once
	fn   func()
}

func (o *onClose) Close() error {
	err := o.ReadCloser.Close()
	o.once.Do(o.fn)
	return err
}

// frameAncestorsSelf is added when the printer says nothing about framing (Mainsail and Fluidd do not): the local
// port is predictable, so any web site could frame the printer's page and trick the user into clicking on it.
const frameAncestorsSelf = "frame-ancestors 'self'"

// addFramingProtection adds frameAncestorsSelf as a policy of its own unless the printer sent X-Frame-Options
// or a Content-Security-Policy with frame-ancestors; the printer's own rules are kept as they are.
func addFramingProtection(hdr http.Header) {
	if len(hdr["X-Frame-Options"]) > 0 {
		return
	}
	for _, v := range hdr["Content-Security-Policy"] {
		if strings.Contains(strings.ToLower(v), "frame-ancestors") {
			return
		}
	}
	hdr["Content-Security-Policy"] = append(hdr["Content-Security-Policy"], frameAncestorsSelf)
}

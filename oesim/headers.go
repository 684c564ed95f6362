package oesim

import (
	"net/http"
	"net/url"
	"strings"
)

// hopHeaders are connection-scoped (RFC 9110 §7.6.1): no proxy passes them on.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// pluginRequestHeader is what the OE plugin sends to the printer for a relayed HTTP request
// (GatherRequestHeaders in the plugin's octoheaderimpl.py):
//   - dropped: Accept-Encoding (then set to identity), Transfer-Encoding, Upgrade-Insecure-Requests,
//     X-Forwarded-For and X-Real-IP (OctoPrint would warn about an external client; Moonraker trusts by address),
//     X-Original-Proto, and the hop-by-hop headers;
//   - Host, Origin and Referer rewritten to the printer's local address (Origin and Referer become
//     "http://<local address>" with no path, exactly as the plugin does);
//   - added X-Forwarded-Host (the public app host) and X-Forwarded-Proto (https, or wss for WebSockets).
//
// Expect is dropped too: the body is already stored, so there is nothing to wait for. Authorization (the
// OctoEverywhere credential) is dropped unless forwardAuth.
func pluginRequestHeader(in http.Header, publicHost, localHost, proto string, forwardAuth bool) http.Header {
	h := in.Clone()
	removeHopHeaders(h)
	for _, name := range []string{"Accept-Encoding", "Upgrade-Insecure-Requests", "X-Forwarded-For", "X-Real-Ip",
		"X-Original-Proto", "Expect", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		h.Del(name)
	}
	if !forwardAuth {
		h.Del("Authorization")
	}
	if h.Get("Origin") != "" {
		h.Set("Origin", "http://"+localHost)
	}
	if h.Get("Referer") != "" {
		h.Set("Referer", "http://"+localHost)
	}
	h.Set("X-Forwarded-Host", publicHost)
	h.Set("X-Forwarded-Proto", proto)
	h.Set("Accept-Encoding", "identity")
	return h
}

// pluginWebSocketHeader is GatherWebsocketRequestHeaders: only X-Api-Key* and Cookie reach the printer on a
// WebSocket handshake (subprotocols travel separately).
func pluginWebSocketHeader(in http.Header) http.Header {
	h := http.Header{}
	for name, vv := range in {
		if strings.HasPrefix(strings.ToLower(name), "x-api-key") || strings.EqualFold(name, "Cookie") {
			h[name] = append([]string(nil), vv...)
		}
	}
	return h
}

// pluginResponseHeader copies the printer's response headers for the client: hop-by-hop headers,
// Transfer-Encoding and X-Clacks-Overhead are dropped, and Location is corrected to the public host with the
// original kept in x-og-location.
func pluginResponseHeader(dst, src http.Header, publicHost, requestPath string) {
	h := src.Clone()
	removeHopHeaders(h)
	h.Del("X-Clacks-Overhead")
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", correctLocation(loc, "https", publicHost, requestPath))
		h.Set("X-Og-Location", loc)
	}
	for k, vv := range h {
		dst[k] = vv
	}
}

// correctLocation is the plugin's CorrectLocationResponseHeaderIfNeeded, quirks included: every Location except
// a ws(s):// one becomes <proto>://<public host><path>[?<query>] whatever host it named; a "./x" path is
// appended to the request path without a separating slash, as the plugin does.
func correctLocation(loc, proto, publicHost, requestPath string) string {
	lower := strings.ToLower(loc)
	if !strings.HasPrefix(lower, "http") && strings.HasPrefix(lower, "ws") {
		return loc
	}
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	path := u.EscapedPath()
	if strings.HasPrefix(path, "./") {
		base := requestPath
		if !strings.HasPrefix(base, "/") {
			base += "/"
		}
		path = base + path[2:]
	}
	out := proto + "://" + publicHost + path
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}

package proxy

import (
	"net"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// The local port holds the printer's credential on behalf of whoever can reach it. Two browser attacks could
// borrow it: a web page that rebinds its DNS name to 127.0.0.1 (stopped by the Host check: the browser still
// sends the attacker's name), and a web page that posts to http://127.0.0.1:<port> or opens a WebSocket to it
// (stopped by the Origin check). Slicers, curl and scripts send no Origin and pass.

// hostAllowed reports whether the Host header names this listener (see HostAllowed).
func (h *Handler) hostAllowed(host string) bool {
	return HostAllowed(host, []string{h.opts.ListenAddr}, h.opts.AllowedHosts)
}

// HostAllowed reports whether a Host header names a local listener: a loopback name or address with any port,
// one of listenAddrs (unless unspecified, like 0.0.0.0), or an entry of allowed ("name" for any port,
// "name:port" for one). The admin listener uses the same rule as the printer ports.
func HostAllowed(host string, listenAddrs, allowed []string) bool {
	host = strings.ToLower(strings.TrimSpace(host))
	if host == "" {
		return false
	}
	name, port := splitHostPort(host)
	if isLoopbackName(name) {
		return true
	}
	for _, l := range listenAddrs {
		ln, lp := splitHostPort(strings.ToLower(l))
		if l != "" && name == ln && (port == lp || (port == "" && lp == "80")) && !isUnspecified(ln) {
			return true
		}
	}
	for _, a := range allowed {
		an, ap := splitHostPort(strings.ToLower(strings.TrimSpace(a)))
		if an == name && (ap == "" || ap == port) {
			return true
		}
	}
	return false
}

// splitHostPort splits "name:port", "[v6]:port", "name" and "[v6]"; the name loses brackets and a trailing dot.
func splitHostPort(hp string) (name, port string) {
	if n, p, err := net.SplitHostPort(hp); err == nil {
		name, port = n, p
	} else {
		name = strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]")
	}
	return strings.TrimSuffix(name, "."), port
}

func isLoopbackName(name string) bool {
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

func isUnspecified(name string) bool {
	ip := net.ParseIP(name)
	return name == "" || (ip != nil && ip.IsUnspecified())
}

// OriginAllowed reports whether a browser Origin, if any, is the local origin: "http://" + the Host the client
// used (checked by HostAllowed first). No Origin passes (slicers, curl) unless the browser says the request
// comes from another site (Sec-Fetch-Site: cross-site, which a page cannot forge); "null" (sandboxed frames,
// file: pages) and several Origin headers do not.
func OriginAllowed(r *http.Request) bool {
	vals := r.Header.Values("Origin")
	switch len(vals) {
	case 0:
		return !strings.EqualFold(strings.TrimSpace(r.Header.Get("Sec-Fetch-Site")), "cross-site")
	case 1:
		return strings.EqualFold(strings.TrimSpace(vals[0]), "http://"+r.Host)
	default:
		return false
	}
}

// isWebSocketUpgrade reports whether r asks to switch to the WebSocket protocol.
func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		// Cut, not Split: every browser request carries "Connection: keep-alive", and Split allocated for it.
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// refuse answers a request the local guard turned down, and logs it (the attack is worth knowing about).
// One line per client and reason a minute (logLimited): a page retrying in a loop must not flood the log.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	h.logLimited(r, "refused a local request", title, zap.Int("status", status), zap.String("reason", title),
		zap.String("host", r.Host), zap.String("origin", r.Header.Get("Origin")))
	writeExplanation(w, r, status, explanation{Code: status, Meaning: title, Action: detail})
}

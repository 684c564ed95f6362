package proxy

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httputil"
	"strings"

	"go.uber.org/zap"
)

// neverToRelay are headers (compared lower-case with '_' read as '-') that no client copy of may reach the
// relay: Authorization belongs to the App Connection credential, and forwarding headers would tell the printer
// who the client is (Moonraker and OctoPrint trust clients by address) or let a client pose as another.
// Comparing normalised names stops the underscore and case variants that bypassed oauth2-proxy's stripping.
var neverToRelay = map[string]bool{
	"authorization":       true,
	"proxy-authorization": true,
	"forwarded":           true,
	"x-real-ip":           true,
	"x-client-ip":         true,
	"true-client-ip":      true,
	"x-original-proto":    true,
	"x-original-host":     true,
}

func normalizedHeaderName(k string) string {
	return strings.ReplaceAll(strings.ToLower(k), "_", "-")
}

// classifyHeaderName reports whether a client's header k must never reach the relay (neverToRelay, X-Forwarded-*)
// and whether it is an Authorization header, by the same normalised comparison as normalizedHeaderName but
// without building the lower-case name on the heap: relayView runs for every request and every header, and
// strings.ToLower allocated once per canonical (upper-case) name, twice per header (BenchmarkSmallGETBrowser).
func classifyHeaderName(k string) (blocked, auth bool) {
	var buf [32]byte
	if len(k) > len(buf) {
		n := normalizedHeaderName(k)
		return neverToRelay[n] || strings.HasPrefix(n, "x-forwarded-"), n == "authorization"
	}
	b := buf[:len(k)]
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 0x80:
			// Unicode case folding (the Kelvin sign lower-cases to 'k'): the slow path, exactly as before.
			n := normalizedHeaderName(k)
			return neverToRelay[n] || strings.HasPrefix(n, "x-forwarded-"), n == "authorization"
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		b[i] = c
	}
	// Map lookups and comparisons with string(b) do not allocate.
	return neverToRelay[string(b)] || string(b[:min(len(b), len(xForwarded))]) == xForwarded, string(b) == "authorization"
}

const xForwarded = "x-forwarded-"

// relayView makes h hold only what the relay may see, and returns the scheme of a client Authorization that
// had to be dropped without a translation ("" when none was). It is the single place that decides this, for
// HTTP (called from Rewrite, after ReverseProxy removed the hop-by-hop headers, so a client's
// "Connection: Authorization" cannot remove what is set here) and for WebSocket handshakes.
//
// A client "Authorization: Bearer K" is printer auth (OctoPrint API key, Moonraker API key or JWT); the relay
// slot is taken by the App Connection credential, so K moves to X-Api-Key, or to X-Access-Token when K is a
// JWT (Moonraker), unless the client already sent that header. Basic and Digest cannot be carried.
func relayView(h http.Header, credential string) (dropped string) {
	var auths []string
	for k, vs := range h {
		if _, auth := classifyHeaderName(k); auth {
			auths = append(auths, vs...)
		}
	}
	for _, v := range auths {
		scheme, token, _ := strings.Cut(strings.TrimSpace(v), " ")
		token = strings.TrimSpace(token)
		if strings.EqualFold(scheme, "Bearer") && token != "" {
			target := "X-Api-Key"
			if looksLikeJWT(token) {
				target = "X-Access-Token"
			}
			if len(h.Values(target)) == 0 {
				h.Set(target, token)
			}
			continue
		}
		if dropped == "" {
			dropped = schemeName(scheme)
		}
	}
	for k := range h {
		if blocked, _ := classifyHeaderName(k); blocked {
			delete(h, k)
		}
	}
	h.Set("Authorization", credential)
	return dropped
}

// schemeName names an auth scheme for a log line without ever echoing a value: a header with no scheme word
// ("Authorization: <token>") must not put the token in the log.
func schemeName(s string) string {
	for _, known := range []string{"Basic", "Digest", "Bearer", "Negotiate", "NTLM", "AWS4-HMAC-SHA256"} {
		if strings.EqualFold(s, known) {
			return known
		}
	}
	return "unknown"
}

// looksLikeJWT reports whether tok is three base64url parts whose first decodes to a JSON object (a JWS header).
func looksLikeJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return false
	}
	var hdr map[string]any
	return json.Unmarshal(b, &hdr) == nil
}

// rewrite is ReverseProxy's Rewrite hook: the relay host over https, the path and query as the client sent them,
// and the relay view of the headers. Rewrite (not Director) runs after hop-by-hop removal; see relayView.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "https"
	pr.Out.URL.Host = h.relayHost
	pr.Out.Host = h.relayHost
	h.noteDropped(pr.In, relayView(pr.Out.Header, h.credential))
	if h.cams != nil {
		detachCam(pr)
	}
}

// noteDropped logs, once per client address, that its own Authorization could not be carried.
func (h *Handler) noteDropped(r *http.Request, scheme string) {
	if scheme == "" {
		return
	}
	ip := clientOf(r.Context()).remoteIP
	if _, seen := h.basicLogged.LoadOrStore(ip, struct{}{}); seen {
		return
	}
	if h.basicCount.Add(1) > 1024 {
		// Keep the memory bounded if many addresses appear; start over.
		h.basicLogged.Clear()
		h.basicCount.Store(0)
	}
	reason := "the App Connection credential occupies the Authorization header on the relay, so a client's own " +
		"Authorization cannot be carried; use the printer's API key (X-Api-Key) instead"
	if strings.EqualFold(scheme, "Digest") {
		reason = "HTTP Digest auth (PrusaLink) cannot pass through an App Connection, which uses the Authorization header; set an API key on the printer and send it as X-Api-Key"
	}
	h.log.Warn("dropped the client's Authorization header", zap.String("scheme", scheme),
		zap.String("client", ip), zap.String("reason", reason))
}

// RelayTransport returns a RoundTripper that sends any request to the printer's relay host over https with the
// relay view of its headers (relayView: the App Connection credential set, every client Authorization and
// forwarding header removed). Package route proves LAN hosts with it, so that the credential is still added in
// this one place only. base is the relay transport (oenet.Options.Transport()).
func RelayTransport(p Printer, base http.RoundTripper) (http.RoundTripper, error) {
	if err := checkRelayURL(p.RelayURL); err != nil {
		return nil, err
	}
	cred, err := credentialOf(p)
	if err != nil {
		return nil, err
	}
	if base == nil {
		return nil, errors.New("proxy: RelayTransport needs the relay transport (oenet.Options.Transport())")
	}
	return relayTransport{base: base, host: strings.ToLower(p.RelayURL.Host), credential: cred}, nil
}

type relayTransport struct {
	base       http.RoundTripper
	host       string
	credential string
}

func (t relayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = "https", t.host, t.host
	if out.Header == nil {
		out.Header = http.Header{}
	}
	relayView(out.Header, t.credential)
	return t.base.RoundTrip(out)
}

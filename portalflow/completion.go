package portalflow

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"

	"github.com/oeproxy/oeproxy/internal/logging"
)

// DefaultRelayDomain is OctoEverywhere's domain; ParseCompletion uses it when given an empty relay domain.
const DefaultRelayDomain = "octoeverywhere.com"

// maxCompletionLen bounds what ParseCompletion reads: a real completion URL is well under 2 KiB.
const maxCompletionLen = 64 << 10

// Completion is what the portal returned for one App Connection. The secrets in it (BasicUser,
// BasicPassword, BearerToken, AppAPIToken, OctoPrintAPIKey) are returned by OctoEverywhere exactly once: the
// caller must store them. Printing a Completion with fmt, zap (zap.Object or zap.Any) or slog shows
// "[redacted]" in their place; encoding/json does not redact (the control socket carries it as JSON).
type Completion struct {
	ID                      string // App Connection ID
	URL                     string // canonical "https://app-<label>.<relay domain>" (lower case, no trailing slash)
	AppAPIToken             string // secret: the App API token (AppToken header)
	PrinterName             string // user-assigned printer name
	UserPrinterAccessURL    string // OctoEverywhere's own page for the printer (needs the user's login); empty when not https under the relay domain
	PrinterLastKnownLocalIP string // last known LAN IP; empty when absent or not an IP address
	BasicUser               string // secret: HTTP Basic user for the relay
	BasicPassword           string // secret: HTTP Basic password for the relay
	BearerToken             string // secret: Bearer token for the relay
	OctoPrintAPIKey         string // secret: OctoPrint API key the portal generated, when asked and it worked
}

// HasBasic reports whether both halves of the Basic credential are present.
func (c Completion) HasBasic() bool { return c.BasicUser != "" && c.BasicPassword != "" }

// HasBearer reports whether a Bearer token is present.
func (c Completion) HasBearer() bool { return c.BearerToken != "" }

// PasteQuery is the completion as the query of a completion address ("?success=true&..."), which
// ParseCompletion reads back to the same Completion: what oeproxy hands the user to paste when it received a
// completion it could not store. It holds every secret.
func (c Completion) PasteQuery() string {
	v := url.Values{"success": {"true"}}
	for key, val := range map[string]string{
		"id": c.ID, "url": c.URL, "appApiToken": c.AppAPIToken, "printername": c.PrinterName,
		"userPrinterAccessUrl": c.UserPrinterAccessURL, "printerLastKnownLocalIp": c.PrinterLastKnownLocalIP,
		"authBasicHttpUser": c.BasicUser, "authBasicHttpPassword": c.BasicPassword,
		"authBearerToken": c.BearerToken, "octoPrintApiKey": c.OctoPrintAPIKey,
	} {
		if val != "" {
			v.Set(key, val)
		}
	}
	return "?" + v.Encode()
}

// RelayHost is the App Connection host ("app-<label>.<relay domain>"), or "" when URL is not https.
func (c Completion) RelayHost() string {
	h, ok := strings.CutPrefix(c.URL, "https://")
	if !ok {
		return ""
	}
	return h
}

func present(s string) string {
	if s == "" {
		return "(none)"
	}
	return logging.Redacted
}

// String describes the completion without any secret.
func (c Completion) String() string {
	return fmt.Sprintf("Completion{ID:%q URL:%q PrinterName:%q UserPrinterAccessURL:%q PrinterLastKnownLocalIP:%q "+
		"AppAPIToken:%s BasicUser:%s BasicPassword:%s BearerToken:%s OctoPrintAPIKey:%s}",
		c.ID, c.URL, c.PrinterName, c.UserPrinterAccessURL, c.PrinterLastKnownLocalIP,
		present(c.AppAPIToken), present(c.BasicUser), present(c.BasicPassword), present(c.BearerToken), present(c.OctoPrintAPIKey))
}

// GoString is String with the package name, so %#v cannot show a secret either.
func (c Completion) GoString() string { return "portalflow." + c.String() }

// Format makes every fmt verb (including %d, %x and %+v, which would otherwise print fields by reflection)
// go through String or GoString.
func (c Completion) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, c.GoString())
		return
	}
	fmt.Fprint(f, c.String())
}

// MarshalLogObject lets zap.Object("completion", c) and zap.Any log it without secrets.
func (c Completion) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("id", c.ID)
	enc.AddString("url", c.URL)
	enc.AddString("printer_name", c.PrinterName)
	enc.AddString("printer_last_known_local_ip", c.PrinterLastKnownLocalIP)
	enc.AddBool("basic", c.HasBasic())
	enc.AddBool("bearer", c.HasBearer())
	enc.AddBool("octoprint_api_key", c.OctoPrintAPIKey != "")
	return nil
}

// LogValue does the same for log/slog.
func (c Completion) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", c.ID), slog.String("url", c.URL), slog.String("printer_name", c.PrinterName),
		slog.Bool("basic", c.HasBasic()), slog.Bool("bearer", c.HasBearer()),
		slog.Bool("octoprint_api_key", c.OctoPrintAPIKey != ""),
	)
}

// ErrInvalidCompletion is wrapped by every *CompletionError: the completion URL is malformed or incomplete.
var ErrInvalidCompletion = errors.New("invalid completion URL")

// ErrPortalDeclined means the portal ended with success=false: no App Connection was created. The caller
// adds the Supporter Perks link (oe.SupporterPageURL) where it has the portal URL and App ID.
var ErrPortalDeclined = errors.New("OctoEverywhere did not create the App Connection (success=false): " +
	"most likely the printer's owner has no OctoEverywhere Supporter Perks, which App Connections need, " +
	"or the setup was cancelled in the portal; get Supporter Perks or run oeproxy connect again")

// CompletionError names the completion key that is wrong and why. It never holds the key's value.
type CompletionError struct {
	Key     string // the documented key name, e.g. "url" or "appApiToken"
	Problem string // what is wrong with it
}

func (e *CompletionError) Error() string {
	return fmt.Sprintf("%s: %s %s (copy the whole address of the page the portal ends on, or run oeproxy connect again)",
		ErrInvalidCompletion, e.Key, e.Problem)
}

func (e *CompletionError) Unwrap() error { return ErrInvalidCompletion }

func invalid(key, problem string) error { return &CompletionError{Key: key, Problem: problem} }

// completionKeys maps the lower-cased keys the portal may send to their documented spelling.
var completionKeys = map[string]string{
	"success":                 "success",
	"id":                      "id",
	"url":                     "url",
	"appapitoken":             "appApiToken",
	"printername":             "printername",
	"userprinteraccessurl":    "userPrinterAccessUrl",
	"printerlastknownlocalip": "printerLastKnownLocalIp",
	"authbasichttpuser":       "authBasicHttpUser",
	"authbasichttppassword":   "authBasicHttpPassword",
	"authbearertoken":         "authBearerToken",
	"octoprintapikey":         "octoPrintApiKey",
}

// ParseCompletion reads the portal's completion from raw: a full URL (the loopback callback or
// https://octoeverywhere.com/appportal/v1/complete?...), or only its query. Surrounding whitespace and quotes
// are ignored. Keys match case-insensitively (both documented spellings of the Basic keys), and keys in the
// URL fragment count too. It requires success=true, url = https://app-<one label>.<relayDomain> exactly,
// appApiToken, and Basic (user and password) or Bearer credentials. success=false gives ErrPortalDeclined;
// anything else wrong gives a *CompletionError (errors.Is ErrInvalidCompletion) naming the key, never its value.
func ParseCompletion(raw, relayDomain string) (Completion, error) {
	domain, err := normalizeDomain(relayDomain)
	if err != nil {
		return Completion{}, err
	}
	if len(raw) > maxCompletionLen {
		return Completion{}, invalid("address", fmt.Sprintf("is longer than %d bytes", maxCompletionLen))
	}
	vals, err := completionValues(trimPasted(raw))
	if err != nil {
		return Completion{}, err
	}
	switch s := vals["success"]; {
	case s == "":
		return Completion{}, invalid("success", "is missing: this is not an OctoEverywhere completion address")
	case strings.EqualFold(s, "false"):
		return Completion{}, ErrPortalDeclined
	case !strings.EqualFold(s, "true"):
		return Completion{}, invalid("success", "must be true or false")
	}
	canon, problem := canonicalRelayURL(vals["url"], domain)
	if problem != "" {
		return Completion{}, invalid("url", problem)
	}
	c := Completion{
		ID:                      vals["id"],
		URL:                     canon,
		AppAPIToken:             vals["appapitoken"],
		PrinterName:             cleanName(vals["printername"]),
		UserPrinterAccessURL:    accessURL(vals["userprinteraccessurl"], domain),
		PrinterLastKnownLocalIP: localIP(vals["printerlastknownlocalip"]),
		BasicUser:               vals["authbasichttpuser"],
		BasicPassword:           vals["authbasichttppassword"],
		BearerToken:             vals["authbearertoken"],
		OctoPrintAPIKey:         vals["octoprintapikey"],
	}
	// Half a Basic credential cannot be used; it is dropped rather than failing the whole completion when a
	// Bearer token is there (Validate then decides).
	if !c.HasBasic() {
		c.BasicUser, c.BasicPassword = "", ""
		if !c.HasBearer() {
			switch {
			case vals["authbasichttpuser"] != "":
				return Completion{}, invalid("authBasicHttpPassword", "is missing (and there is no authBearerToken)")
			case vals["authbasichttppassword"] != "":
				return Completion{}, invalid("authBasicHttpUser", "is missing (and there is no authBearerToken)")
			}
		}
	}
	if err := Validate(c, domain); err != nil {
		return Completion{}, err
	}
	return c, nil
}

// Validate checks the invariants every stored Completion keeps: URL is the canonical
// https://app-<label>.<relayDomain>, the App API token is there, Basic (both halves) or Bearer is there, and
// every secret is something an HTTP header can carry. The daemon calls it again on completions that reach it
// through the control socket.
func Validate(c Completion, relayDomain string) error {
	domain, err := normalizeDomain(relayDomain)
	if err != nil {
		return err
	}
	canon, problem := canonicalRelayURL(c.URL, domain)
	if problem != "" {
		return invalid("url", problem)
	}
	if canon != c.URL {
		return invalid("url", "is not in canonical form (lower case, no trailing slash)")
	}
	if c.AppAPIToken == "" {
		return invalid("appApiToken", "is missing")
	}
	if c.BasicUser != "" && c.BasicPassword == "" {
		return invalid("authBasicHttpPassword", "is missing while authBasicHttpUser is present")
	}
	if c.BasicUser == "" && c.BasicPassword != "" {
		return invalid("authBasicHttpUser", "is missing while authBasicHttpPassword is present")
	}
	if !c.HasBasic() && !c.HasBearer() {
		return invalid("authBasicHttpUser", "and authBearerToken are both missing: the relay needs Basic or Bearer credentials")
	}
	for _, s := range []struct{ key, v string }{
		{"id", c.ID}, {"appApiToken", c.AppAPIToken}, {"authBasicHttpUser", c.BasicUser},
		{"authBasicHttpPassword", c.BasicPassword}, {"authBearerToken", c.BearerToken}, {"octoPrintApiKey", c.OctoPrintAPIKey},
	} {
		if s.v != "" && !tokenChars(s.v) {
			return invalid(s.key, "contains characters a credential cannot have (spaces, control or non-ASCII characters)")
		}
	}
	if strings.Contains(c.BasicUser, ":") {
		return invalid("authBasicHttpUser", "contains ':', which HTTP Basic user names cannot")
	}
	return nil
}

// trimPasted removes what a copy from a terminal, chat or document tends to add around a URL.
func trimPasted(s string) string {
	for {
		t := strings.TrimSpace(s)
		if len(t) >= 2 {
			switch first, last := t[0], t[len(t)-1]; {
			case first == last && (first == '"' || first == '\'' || first == '`'), first == '<' && last == '>':
				t = t[1 : len(t)-1]
			}
		}
		if t == s {
			return t
		}
		s = t
	}
}

// completionValues merges the known keys from the query and the fragment, lower-casing the keys. A key
// that appears twice with different values (two spellings, or query and fragment) is refused: there is no
// way to know which one the portal meant.
func completionValues(raw string) (map[string]string, error) {
	var parts []string
	if u, err := url.Parse(raw); err == nil && (u.Scheme != "" || strings.ContainsAny(raw, "?#")) {
		parts = append(parts, u.RawQuery, u.EscapedFragment())
	} else if strings.Contains(raw, "=") && !strings.Contains(raw, "://") {
		parts = append(parts, strings.TrimPrefix(raw, "?"))
	} else {
		return nil, invalid("address", "is not a URL")
	}
	out := map[string]string{}
	for _, p := range parts {
		if p == "" {
			continue
		}
		q, err := url.ParseQuery(p)
		if err != nil {
			return nil, invalid("query", "is malformed (a bad %-escape or a ';')")
		}
		for k, vs := range q {
			lk := strings.ToLower(strings.TrimSpace(k))
			doc, known := completionKeys[lk]
			if !known {
				continue
			}
			for _, v := range vs {
				if v == "" {
					continue
				}
				if prev, ok := out[lk]; ok && prev != v {
					return nil, invalid(doc, "appears more than once with different values")
				}
				out[lk] = v
			}
		}
	}
	return out, nil
}

// normalizeDomain lower-cases the relay domain and checks that it is a DNS name.
func normalizeDomain(d string) (string, error) {
	d = strings.Trim(strings.ToLower(strings.TrimSpace(d)), ".")
	if d == "" {
		return DefaultRelayDomain, nil
	}
	for _, l := range strings.Split(d, ".") {
		if !dnsLabel(l) {
			return "", fmt.Errorf("relay domain %q is not a DNS name: fix octoeverywhere.relay_domain", d)
		}
	}
	return d, nil
}

// dnsLabel: 1..63 of [a-z0-9-], not starting or ending with '-'.
func dnsLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// canonicalRelayURL accepts exactly https://app-<one label>.<domain> with an optional "/" and returns it
// lower-cased without the slash, or a problem. It works on the string, not on url.Parse's view, so that no
// escape, userinfo or port trick survives: whatever is not a plain host name is refused.
func canonicalRelayURL(v, domain string) (string, string) {
	if v == "" {
		return "", "is missing"
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return "", "contains spaces, control or non-ASCII characters"
		}
	}
	s := strings.ToLower(v)
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		if strings.HasPrefix(s, "http://") {
			return "", "must use https, not http"
		}
		return "", "must start with https://"
	}
	rest = strings.TrimSuffix(rest, "/")
	switch {
	case strings.Contains(rest, "@"):
		return "", "must not carry a user name or password"
	case strings.Contains(rest, "?"):
		return "", "must not have a query"
	case strings.Contains(rest, "#"):
		return "", "must not have a fragment"
	case strings.ContainsAny(rest, "/\\"):
		return "", "must not have a path"
	case strings.Contains(rest, ":"):
		return "", "must not have a port"
	}
	want := "must be https://app-<id>." + domain
	label, ok := strings.CutSuffix(rest, "."+domain)
	if !ok {
		return "", want + " (the host is not under the relay domain)"
	}
	if !strings.HasPrefix(label, "app-") || len(label) == len("app-") || !dnsLabel(label) {
		return "", want + " (the host is not one app-<id> label under the relay domain)"
	}
	return "https://" + rest, ""
}

// tokenChars: printable ASCII without space, the characters an HTTP header credential can carry safely.
func tokenChars(s string) bool {
	if len(s) > 4096 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// cleanName keeps a printer name printable: valid UTF-8, no control characters, at most 200 runes.
func cleanName(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:200])
	}
	return s
}

// accessURL keeps userPrinterAccessUrl only when it is an https URL on the relay domain or under it: the
// admin page shows it as a link, so nothing else (javascript:, another site) may pass.
func accessURL(v, domain string) string {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" || u.Opaque != "" {
		return ""
	}
	h := strings.ToLower(u.Hostname())
	if h != domain && !strings.HasSuffix(h, "."+domain) {
		return ""
	}
	if !tokenChars(v) {
		return ""
	}
	return v
}

// localIP keeps printerLastKnownLocalIp only when it is an IP address.
func localIP(v string) string {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return ""
	}
	return a.String()
}

package portalflow

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"bytes"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Test secrets: distinctive so a leak is found by grep.
const (
	tUser   = "BasicUSER9"
	tPass   = "BasicPASSWORDx7Qz4Lm2Np8Rt5Vw1Ys3"
	tBearer = "BearerTOKENk3J9h2G7f5D1s8A4"
	tApp    = "AppAPITOKENq8W2e5R7t1Y3u9I4"
	tOcto   = "OctoPrintKEYz5X8c2V6b9N3m1"
	tHost   = "app-0123456789abcdefghijklmnopqrstuv.octoeverywhere.com"
	tURL    = "https://" + tHost
)

var secrets = []string{tUser, tPass, tBearer, tApp, tOcto}

// goodParams is a completion as the portal sends it, in the lowercase spelling most apps read.
func goodParams() [][2]string {
	return [][2]string{
		{"success", "true"}, {"id", "conn42"}, {"url", tURL}, {"appApiToken", tApp},
		{"printername", "Prusa MK4"}, {"userPrinterAccessUrl", "https://octoeverywhere.com/view/Prusa%20MK4"},
		{"printerLastKnownLocalIp", "192.168.1.20"},
		{"authbasichttpuser", tUser}, {"authbasichttppassword", tPass}, {"authBearerToken", tBearer},
		{"octoPrintApiKey", tOcto},
	}
}

// build encodes params in order, applying edits: a key mapped to "" is removed; a new key is appended.
func build(params [][2]string, edits map[string]string) string {
	var parts []string
	seen := map[string]bool{}
	for _, p := range params {
		v, edited := edits[p[0]]
		seen[p[0]] = true
		if edited && v == "\x00" {
			continue
		}
		if edited {
			p[1] = v
		}
		parts = append(parts, url.QueryEscape(p[0])+"="+url.QueryEscape(p[1]))
	}
	for k, v := range edits {
		if !seen[k] && v != "\x00" {
			parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

const drop = "\x00"

func upperKeys(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		parts[i] = strings.ToUpper(k) + "=" + v
	}
	return strings.Join(parts, "&")
}

func TestParseCompletion(t *testing.T) {
	good := build(goodParams(), nil)
	camel := strings.NewReplacer("authbasichttpuser", "authBasicHttpUser", "authbasichttppassword", "authBasicHttpPassword").Replace(good)
	cb := "http://127.0.0.1:40123/oeproxy/callback/STATE?"
	want := Completion{
		ID: "conn42", URL: tURL, AppAPIToken: tApp, PrinterName: "Prusa MK4",
		UserPrinterAccessURL: "https://octoeverywhere.com/view/Prusa%20MK4", PrinterLastKnownLocalIP: "192.168.1.20",
		BasicUser: tUser, BasicPassword: tPass, BearerToken: tBearer, OctoPrintAPIKey: tOcto,
	}
	ok := []struct {
		name, raw string
		edit      func(*Completion)
	}{
		{"lowercase keys on the loopback callback", cb + good, nil},
		{"documented camelCase keys", cb + camel, nil},
		{"all keys upper-cased", cb + upperKeys(good), nil},
		{"keys with the old docs' trailing space", cb + strings.Replace(good, "appApiToken=", "appApiToken+=", 1), nil},
		{"portal's own completion page", "https://octoeverywhere.com/appportal/v1/complete?" + good, nil},
		{"fragment only", "https://octoeverywhere.com/appportal/v1/complete#" + good, nil},
		{"query and fragment split", cb + build(goodParams()[:5], nil) + "#" + build(goodParams()[5:], nil), nil},
		{"query only", good, nil},
		{"query with leading ?", "?" + good, nil},
		{"surrounding whitespace and quotes", "  \n\"" + cb + good + "\"\t\n", nil},
		{"single quotes and angle brackets", "'<" + cb + good + ">'", nil},
		{"success=TRUE", cb + build(goodParams(), map[string]string{"success": "TRUE"}), nil},
		{"upper-case host", cb + build(goodParams(), map[string]string{"url": "HTTPS://" + strings.ToUpper(tHost)}), nil},
		{"trailing slash", cb + build(goodParams(), map[string]string{"url": tURL + "/"}), nil},
		{"same key twice with the same value", cb + good + "&authBasicHttpUser=" + tUser, nil},
		{"no octoPrintApiKey (keygen failed)", cb + build(goodParams(), map[string]string{"octoPrintApiKey": drop}),
			func(c *Completion) { c.OctoPrintAPIKey = "" }},
		{"bearer only", cb + build(goodParams(), map[string]string{"authbasichttpuser": drop, "authbasichttppassword": drop}),
			func(c *Completion) { c.BasicUser, c.BasicPassword = "", "" }},
		{"basic only", cb + build(goodParams(), map[string]string{"authBearerToken": drop}),
			func(c *Completion) { c.BearerToken = "" }},
		{"half basic plus bearer drops the half", cb + build(goodParams(), map[string]string{"authbasichttppassword": drop}),
			func(c *Completion) { c.BasicUser, c.BasicPassword = "", "" }},
		{"non-IP local IP dropped", cb + build(goodParams(), map[string]string{"printerLastKnownLocalIp": "<script>"}),
			func(c *Completion) { c.PrinterLastKnownLocalIP = "" }},
		{"javascript access URL dropped", cb + build(goodParams(), map[string]string{"userPrinterAccessUrl": "javascript:alert(1)"}),
			func(c *Completion) { c.UserPrinterAccessURL = "" }},
		{"foreign access URL dropped", cb + build(goodParams(), map[string]string{"userPrinterAccessUrl": "https://evil.example/x"}),
			func(c *Completion) { c.UserPrinterAccessURL = "" }},
		{"control characters leave the printer name", cb + build(goodParams(), map[string]string{"printername": "Prusa\x1b[31m MK4\n"}),
			func(c *Completion) { c.PrinterName = "Prusa[31m MK4" }},
		{"unknown keys ignored", cb + good + "&formatVersion=1&moonraker=true", nil},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCompletion(tc.raw, "octoeverywhere.com")
			if err != nil {
				t.Fatalf("ParseCompletion: %v", err)
			}
			w := want
			if tc.edit != nil {
				tc.edit(&w)
			}
			if got != w {
				t.Fatalf("got  %#v\nwant %#v\n(secrets: basic %v/%v bearer %v octo %v)", got, w,
					got.BasicUser == w.BasicUser, got.BasicPassword == w.BasicPassword, got.BearerToken == w.BearerToken, got.OctoPrintAPIKey == w.OctoPrintAPIKey)
			}
		})
	}

	bad := []struct {
		name, raw, key string // key: the CompletionError.Key expected ("" for ErrPortalDeclined)
	}{
		{"success=false", cb + "success=false", ""},
		{"success=False with secrets", cb + build(goodParams(), map[string]string{"success": "False"}), ""},
		{"missing success", cb + build(goodParams(), map[string]string{"success": drop}), "success"},
		{"success=1", cb + build(goodParams(), map[string]string{"success": "1"}), "success"},
		{"empty input", "", "address"},
		{"only whitespace", "  \n ", "address"},
		{"junk", "hello world", "address"},
		{"not a URL", "http://[::1", "address"},
		{"bad escape", cb + good + "&x=%zz", "query"},
		{"semicolon", cb + strings.Replace(good, "&", ";", 1), "query"},
		{"missing url", cb + build(goodParams(), map[string]string{"url": drop}), "url"},
		{"http url", cb + build(goodParams(), map[string]string{"url": "http://" + tHost}), "url"},
		{"ftp url", cb + build(goodParams(), map[string]string{"url": "ftp://" + tHost}), "url"},
		{"scheme-relative url", cb + build(goodParams(), map[string]string{"url": "//" + tHost}), "url"},
		{"foreign host", cb + build(goodParams(), map[string]string{"url": "https://app-x.evil.com"}), "url"},
		{"lookalike suffix domain", cb + build(goodParams(), map[string]string{"url": "https://app-x.octoeverywhere.com.evil.com"}), "url"},
		{"lookalike hyphen domain", cb + build(goodParams(), map[string]string{"url": "https://app-x.evil-octoeverywhere.com"}), "url"},
		{"lookalike no-dot domain", cb + build(goodParams(), map[string]string{"url": "https://app-xoctoeverywhere.com"}), "url"},
		{"relay domain itself", cb + build(goodParams(), map[string]string{"url": "https://octoeverywhere.com"}), "url"},
		{"two labels", cb + build(goodParams(), map[string]string{"url": "https://app-x.y.octoeverywhere.com"}), "url"},
		{"not app- prefix", cb + build(goodParams(), map[string]string{"url": "https://shared-x.octoeverywhere.com"}), "url"},
		{"bare app-", cb + build(goodParams(), map[string]string{"url": "https://app-.octoeverywhere.com"}), "url"},
		{"label ends in hyphen", cb + build(goodParams(), map[string]string{"url": "https://app-x-.octoeverywhere.com"}), "url"},
		{"label too long", cb + build(goodParams(), map[string]string{"url": "https://app-" + strings.Repeat("a", 60) + ".octoeverywhere.com"}), "url"},
		{"port", cb + build(goodParams(), map[string]string{"url": tURL + ":443"}), "url"},
		{"empty port", cb + build(goodParams(), map[string]string{"url": tURL + ":"}), "url"},
		{"path", cb + build(goodParams(), map[string]string{"url": tURL + "/api"}), "url"},
		{"double slash", cb + build(goodParams(), map[string]string{"url": tURL + "//"}), "url"},
		{"query", cb + build(goodParams(), map[string]string{"url": tURL + "?a=b"}), "url"},
		{"empty query", cb + build(goodParams(), map[string]string{"url": tURL + "/?"}), "url"},
		{"fragment", cb + build(goodParams(), map[string]string{"url": tURL + "#x"}), "url"},
		{"userinfo", cb + build(goodParams(), map[string]string{"url": "https://u:p@" + tHost}), "url"},
		{"userinfo host trick", cb + build(goodParams(), map[string]string{"url": "https://" + tHost + "@evil.com"}), "url"},
		{"backslash trick", cb + build(goodParams(), map[string]string{"url": "https://evil.com\\@" + tHost}), "url"},
		{"percent-encoded dot", cb + build(goodParams(), map[string]string{"url": "https://app-x%2eoctoeverywhere.com"}), "url"},
		{"unicode Kelvin sign", cb + build(goodParams(), map[string]string{"url": "https://app-\u212a.octoeverywhere.com"}), "url"},
		{"space in url", cb + build(goodParams(), map[string]string{"url": " " + tURL}), "url"},
		{"trailing dot host", cb + build(goodParams(), map[string]string{"url": tURL + "."}), "url"},
		{"missing appApiToken", cb + build(goodParams(), map[string]string{"appApiToken": drop}), "appApiToken"},
		{"empty appApiToken", cb + build(goodParams(), map[string]string{"appApiToken": ""}), "appApiToken"},
		{"missing all credentials", cb + build(goodParams(), map[string]string{"authbasichttpuser": drop, "authbasichttppassword": drop, "authBearerToken": drop}), "authBasicHttpUser"},
		{"user without password, no bearer", cb + build(goodParams(), map[string]string{"authbasichttppassword": drop, "authBearerToken": drop}), "authBasicHttpPassword"},
		{"password without user, no bearer", cb + build(goodParams(), map[string]string{"authbasichttpuser": drop, "authBearerToken": drop}), "authBasicHttpUser"},
		{"conflicting spellings", cb + good + "&authBasicHttpUser=Other", "authBasicHttpUser"},
		{"conflict between query and fragment", cb + good + "#appApiToken=Other", "appApiToken"},
		{"secret with a space", cb + build(goodParams(), map[string]string{"authBearerToken": "a b"}), "authBearerToken"},
		{"secret with CRLF", cb + build(goodParams(), map[string]string{"appApiToken": "a\r\nX-Evil: 1"}), "appApiToken"},
		{"basic user with colon", cb + build(goodParams(), map[string]string{"authbasichttpuser": "a:b"}), "authBasicHttpUser"},
		{"non-ASCII octoprint key", cb + build(goodParams(), map[string]string{"octoPrintApiKey": "kéy"}), "octoPrintApiKey"},
		{"too long", cb + good + "&pad=" + strings.Repeat("a", maxCompletionLen), "address"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCompletion(tc.raw, "octoeverywhere.com")
			if err == nil {
				t.Fatalf("accepted: %v", got)
			}
			if got != (Completion{}) {
				t.Fatalf("returned a non-zero completion with an error: %v", got)
			}
			if tc.key == "" {
				if !errors.Is(err, ErrPortalDeclined) {
					t.Fatalf("err = %v, want ErrPortalDeclined", err)
				}
			} else {
				var ce *CompletionError
				if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidCompletion) {
					t.Fatalf("err = %v (%T), want *CompletionError", err, err)
				}
				if ce.Key != tc.key {
					t.Fatalf("key = %q, want %q (%v)", ce.Key, tc.key, err)
				}
			}
			for _, s := range append(secrets, "Other", "X-Evil", "evil.com") {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q contains the value %q", err, s)
				}
			}
		})
	}
}

func TestParseCompletionRelayDomain(t *testing.T) {
	raw := build(goodParams(), map[string]string{"url": "https://app-abc.Sim.Example"})
	c, err := ParseCompletion(raw, "sim.example.")
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "https://app-abc.sim.example" || c.RelayHost() != "app-abc.sim.example" {
		t.Fatalf("URL %q host %q", c.URL, c.RelayHost())
	}
	if _, err := ParseCompletion(build(goodParams(), nil), "sim.example"); err == nil {
		t.Fatal("accepted an octoeverywhere.com host for relay domain sim.example")
	}
	if _, err := ParseCompletion(raw, "bad domain!"); err == nil || errors.Is(err, ErrInvalidCompletion) {
		t.Fatalf("bad relay domain: err = %v, want a configuration error", err)
	}
	if c, err := ParseCompletion(build(goodParams(), nil), ""); err != nil || c.URL != tURL {
		t.Fatalf("empty relay domain should mean octoeverywhere.com: %v %v", c, err)
	}
}

func TestValidate(t *testing.T) {
	c, err := ParseCompletion(build(goodParams(), nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(c, "octoeverywhere.com"); err != nil {
		t.Fatalf("a parsed completion must validate: %v", err)
	}
	for name, edit := range map[string]func(*Completion){
		"upper-case URL":    func(c *Completion) { c.URL = strings.ToUpper(c.URL) },
		"trailing slash":    func(c *Completion) { c.URL += "/" },
		"foreign URL":       func(c *Completion) { c.URL = "https://app-x.evil.com" },
		"no token":          func(c *Completion) { c.AppAPIToken = "" },
		"no credentials":    func(c *Completion) { c.BasicUser, c.BasicPassword, c.BearerToken = "", "", "" },
		"half basic":        func(c *Completion) { c.BasicPassword = "" },
		"other half basic":  func(c *Completion) { c.BasicUser = "" },
		"newline in bearer": func(c *Completion) { c.BearerToken = "a\nb" },
		"newline in id":     func(c *Completion) { c.ID = "a\nb" },
		"colon in basic":    func(c *Completion) { c.BasicUser = "a:b" },
		"space in octo key": func(c *Completion) { c.OctoPrintAPIKey = "a b" },
		"zero value":        func(c *Completion) { *c = Completion{} },
	} {
		t.Run(name, func(t *testing.T) {
			bad := c
			edit(&bad)
			if err := Validate(bad, "octoeverywhere.com"); !errors.Is(err, ErrInvalidCompletion) {
				t.Fatalf("Validate = %v, want ErrInvalidCompletion", err)
			}
		})
	}
}

// TestCompletionNeverPrintsSecrets formats a completion every way a caller might and greps for each secret.
func TestCompletionNeverPrintsSecrets(t *testing.T) {
	c, err := ParseCompletion(build(goodParams(), nil), "")
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v", "%10.3v"} {
		outs = append(outs, fmt.Sprintf(f, c), fmt.Sprintf(f, &c), fmt.Sprintf(f, []Completion{c}),
			fmt.Sprintf(f, struct{ C Completion }{c}))
	}
	outs = append(outs, fmt.Sprint(c), fmt.Sprintln(&c), c.String(), c.GoString())

	core, logs := observer.New(zap.DebugLevel)
	zl := zap.New(core)
	zl.Info("x", zap.Object("c", c), zap.Any("any", c), zap.Stringer("s", c))
	for _, e := range logs.All() {
		outs = append(outs, fmt.Sprint(e.ContextMap()))
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "c", c)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "c", c)
	outs = append(outs, buf.String())

	all := strings.Join(outs, "\n")
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Fatalf("secret %q printed:\n%s", s, all)
		}
	}
	for _, want := range []string{"conn42", tHost, "Prusa MK4", "[redacted]"} {
		if !strings.Contains(c.String(), want) {
			t.Errorf("String() lacks %q: %s", want, c.String())
		}
	}
	if !strings.Contains(c.GoString(), "portalflow.Completion{") {
		t.Errorf("GoString: %s", c.GoString())
	}
	if empty := (Completion{}).String(); strings.Contains(empty, "[redacted]") {
		t.Errorf("an empty completion claims secrets: %s", empty)
	}
}

// What oeproxy hands the user to paste reads back to the same completion.
func TestPasteQueryRoundTrip(t *testing.T) {
	for _, edits := range []map[string]string{nil, {"authBearerToken": "\x00", "octoPrintApiKey": "\x00"},
		{"printername": "Voron 2.4 & Co", "userPrinterAccessUrl": "\x00", "printerLastKnownLocalIp": "\x00"}} {
		c, err := ParseCompletion(build(goodParams(), edits), "octoeverywhere.com")
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseCompletion(c.PasteQuery(), "octoeverywhere.com")
		if err != nil || back != c {
			t.Errorf("round trip of %v: %v, %v", c, back, err)
		}
	}
}

package portalflow

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseCompletion: ParseCompletion never panics, and whatever it accepts keeps every invariant, checked
// here independently of the parser (through net/url): https, one app- label under the relay domain, no port,
// path, query, fragment or userinfo, an App API token, and Basic or Bearer credentials.
func FuzzParseCompletion(f *testing.F) {
	good := build(goodParams(), nil)
	camel := strings.NewReplacer("authbasichttpuser", "authBasicHttpUser", "authbasichttppassword", "authBasicHttpPassword").Replace(good)
	for _, s := range []string{
		"http://127.0.0.1:40123/oeproxy/callback/STATE?" + good,
		"http://127.0.0.1:40123/oeproxy/callback/STATE?" + camel,
		"https://octoeverywhere.com/appportal/v1/complete?" + good,
		"https://octoeverywhere.com/appportal/v1/complete#" + camel,
		"\"" + good + "\"",
		upperKeys(good),
		"success=false",
		"http://127.0.0.1:1/oeproxy/callback/x?success=true&url=https%3A%2F%2Fapp-x.octoeverywhere.com.evil.com&appApiToken=a&authBearerToken=b",
		"success=true&url=https://app-x.evil-octoeverywhere.com&appApiToken=a&authBearerToken=b",
		"success=true&url=https://u:p@app-x.octoeverywhere.com&appApiToken=a&authBearerToken=b",
		"success=true&url=HTTPS://APP-X.OCTOEVERYWHERE.COM/&appApiToken=a&authbasichttpuser=u&authbasichttppassword=p",
		"success=true&url=https://app-x.octoeverywhere.com:8443&appApiToken=a&authBearerToken=b",
		"success=true&url=https://app-x.octoeverywhere.com&appApiToken=a",
		"?success=true#url=https://app-x.octoeverywhere.com&appApiToken=a&authBearerToken=b",
		"",
		"junk",
		"%zz",
		"https://[::1]:80/?success=true",
		"'<>'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := ParseCompletion(raw, "octoeverywhere.com")
		if err != nil {
			if c != (Completion{}) {
				t.Fatalf("error %v with a non-zero completion", err)
			}
			return
		}
		u, perr := url.Parse(c.URL)
		if perr != nil {
			t.Fatalf("accepted URL %q does not parse: %v", c.URL, perr)
		}
		host := u.Hostname()
		label, under := strings.CutSuffix(host, ".octoeverywhere.com")
		switch {
		case u.Scheme != "https":
			t.Fatalf("scheme %q", u.Scheme)
		case !under || !strings.HasPrefix(label, "app-") || strings.Contains(label, ".") || len(label) <= 4:
			t.Fatalf("host %q is not one app- label under the relay domain", host)
		case u.Host != host || u.Port() != "":
			t.Fatalf("port in %q", c.URL)
		case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
			t.Fatalf("extra parts in %q", c.URL)
		case c.URL != strings.ToLower(c.URL) || c.URL != "https://"+host:
			t.Fatalf("not canonical: %q", c.URL)
		case c.AppAPIToken == "":
			t.Fatal("no App API token")
		case !(c.BasicUser != "" && c.BasicPassword != "") && c.BearerToken == "":
			t.Fatal("no credentials")
		case (c.BasicUser == "") != (c.BasicPassword == ""):
			t.Fatal("half a Basic credential")
		}
		for _, s := range []string{c.ID, c.AppAPIToken, c.BasicUser, c.BasicPassword, c.BearerToken, c.OctoPrintAPIKey} {
			if strings.ContainsAny(s, " \r\n\t\x00") {
				t.Fatalf("credential with white space or control characters: %q", s)
			}
		}
		if err := Validate(c, "octoeverywhere.com"); err != nil {
			t.Fatalf("accepted completion fails Validate: %v", err)
		}
		// String must not depend on the secrets' values: the same completion with other secret values prints
		// the same text.
		other := c
		for _, p := range []*string{&other.AppAPIToken, &other.BasicUser, &other.BasicPassword, &other.BearerToken, &other.OctoPrintAPIKey} {
			if *p != "" {
				*p = "X" + *p
			}
		}
		if c.String() != other.String() || c.GoString() != other.GoString() {
			t.Fatalf("String depends on secret values: %s", c)
		}
	})
}

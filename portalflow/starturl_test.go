package portalflow

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

const testPrinterID = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGHIJKLMNOPQRSTUVWX" // 60

func TestStartURL(t *testing.T) {
	got, err := StartURL(StartOptions{
		PortalURL: "https://octoeverywhere.com/appportal/v1/?moonraker=true&AppID=stale&RETURNURL=x",
		AppID:     "devtest", ReturnURL: "http://127.0.0.1:4000/oeproxy/callback/abc",
		AppLogoURL: "https://example.org/logo.png", PrinterID: testPrinterID, OctoPrintKeyName: "oeproxy on desk",
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" || u.Host != "octoeverywhere.com" || u.Path != "/appportal/v1/" {
		t.Fatalf("base changed: %s", got)
	}
	q := u.Query()
	want := url.Values{
		"appid": {"devtest"}, "returnUrl": {"http://127.0.0.1:4000/oeproxy/callback/abc"},
		"appLogoUrl": {"https://example.org/logo.png"}, "printerId": {testPrinterID},
		"octoPrintApiKeyAppName": {"oeproxy on desk"}, "moonraker": {"true"},
	}
	if q.Encode() != want.Encode() {
		t.Fatalf("query\n got %s\nwant %s", q.Encode(), want.Encode())
	}

	got, err = StartURL(StartOptions{AppID: "devtest", NoOctoPrintKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if got != "https://octoeverywhere.com/appportal/v1/?appid=devtest" {
		t.Fatalf("minimal start URL: %s", got)
	}

	got, err = StartURL(StartOptions{AppID: "devtest"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ = url.Parse(got)
	if name := u.Query().Get("octoPrintApiKeyAppName"); !strings.HasPrefix(name, "oeproxy") || utf8.RuneCountInString(name) > 60 {
		t.Fatalf("default key name %q", name)
	}

	for name, o := range map[string]StartOptions{
		"no app id":         {},
		"app id with space": {AppID: "a b"},
		"bad portal":        {AppID: "x", PortalURL: "ftp://x/"},
		"relative portal":   {AppID: "x", PortalURL: "/appportal/v1/"},
		"bad printer id":    {AppID: "x", PrinterID: "abc"},
		"lowercase id":      {AppID: "x", PrinterID: strings.ToLower(testPrinterID)},
		"bad return":        {AppID: "x", ReturnURL: "javascript:alert(1)"},
		"bad logo":          {AppID: "x", AppLogoURL: "logo.png"},
	} {
		if _, err := StartURL(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOctoPrintKeyName(t *testing.T) {
	long := "oeproxy on " + strings.Repeat("é", 80)
	for in, want := range map[string]string{
		"oeproxy on desk":        "oeproxy on desk",
		"  oeproxy\ton\n desk  ": "oeproxy on desk",
		"x":                      "oeproxy",
		"":                       "oeproxy",
		"\x00\x01":               "oeproxy",
		long:                     string([]rune(long)[:60]),
	} {
		got := OctoPrintKeyName(in)
		if got != want {
			t.Errorf("OctoPrintKeyName(%q) = %q, want %q", in, got, want)
		}
		if n := utf8.RuneCountInString(got); n < 2 || n > 60 {
			t.Errorf("length %d out of 2..60", n)
		}
	}
}

func TestValidPrinterID(t *testing.T) {
	for s, want := range map[string]bool{
		testPrinterID:                                true,
		testPrinterID[:40]:                           true,
		testPrinterID[:39]:                           false,
		testPrinterID + "A":                          false,
		strings.ToLower(testPrinterID):               false,
		testPrinterID[:50] + "-" + testPrinterID[:9]: false,
		"": false,
	} {
		if got := ValidPrinterID(s); got != want {
			t.Errorf("ValidPrinterID(%q) = %v", s, got)
		}
	}
}

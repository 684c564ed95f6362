package portalflow

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultPortalURL is OctoEverywhere's App Connection portal.
const DefaultPortalURL = "https://octoeverywhere.com/appportal/v1/"

// StartOptions is what the portal start URL carries.
type StartOptions struct {
	PortalURL        string // octoeverywhere.portal_url; empty means DefaultPortalURL
	AppID            string // octoeverywhere.app_id (required)
	ReturnURL        string // where the portal sends the completion; empty lets the portal end on its own page (paste fallback)
	AppLogoURL       string // optional logo shown by the portal
	PrinterID        string // optional OctoEverywhere printer ID (see DiscoverPrinterID), preselected by the portal
	OctoPrintKeyName string // name of the OctoPrint API key the portal creates; empty means DefaultOctoPrintKeyName()
	NoOctoPrintKey   bool   // do not ask the portal for an OctoPrint API key
}

// portalKeys are the start-URL parameters this package sets; copies of them already in portal_url (in any
// casing, since the portal matches keys case-insensitively) are removed so that ours are the only ones.
var portalKeys = []string{"appid", "returnurl", "applogourl", "printerid", "octoprintapikeyappname"}

// StartURL builds the portal start URL. Keys are spelled as the portal documentation and the apps in the wild
// spell them (appid, returnUrl, appLogoUrl, printerId, octoPrintApiKeyAppName); any other query parameters in
// PortalURL are kept.
func StartURL(o StartOptions) (string, error) {
	raw := o.PortalURL
	if raw == "" {
		raw = DefaultPortalURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("octoeverywhere.portal_url %q is not an http(s) URL: use %s", raw, DefaultPortalURL)
	}
	if o.AppID == "" || !tokenChars(o.AppID) {
		return "", fmt.Errorf("octoeverywhere.app_id %q is empty or has spaces or control characters: use the App ID OctoEverywhere gave you (or devtest)", o.AppID)
	}
	q := u.Query()
	for k := range q {
		for _, pk := range portalKeys {
			if strings.EqualFold(k, pk) {
				delete(q, k)
			}
		}
	}
	q.Set("appid", o.AppID)
	if o.ReturnURL != "" {
		if err := absoluteHTTPURL(o.ReturnURL); err != nil {
			return "", fmt.Errorf("return URL: %w", err)
		}
		q.Set("returnUrl", o.ReturnURL)
	}
	if o.AppLogoURL != "" {
		if err := absoluteHTTPURL(o.AppLogoURL); err != nil {
			return "", fmt.Errorf("app logo URL (octoeverywhere.app_logo_url): %w", err)
		}
		q.Set("appLogoUrl", o.AppLogoURL)
	}
	if o.PrinterID != "" {
		if !ValidPrinterID(o.PrinterID) {
			return "", fmt.Errorf("printer ID %q is not an OctoEverywhere printer ID (40 to 60 of A-Z and 0-9)", o.PrinterID)
		}
		q.Set("printerId", o.PrinterID)
	}
	if !o.NoOctoPrintKey {
		name := o.OctoPrintKeyName
		if name == "" {
			name = DefaultOctoPrintKeyName()
		}
		q.Set("octoPrintApiKeyAppName", OctoPrintKeyName(name))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func absoluteHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// DefaultOctoPrintKeyName is "oeproxy on <hostname>", so the user can tell keys apart in OctoPrint's settings.
func DefaultOctoPrintKeyName() string {
	h, err := os.Hostname()
	if err != nil || strings.TrimSpace(h) == "" {
		return "oeproxy"
	}
	return OctoPrintKeyName("oeproxy on " + h)
}

// OctoPrintKeyName makes name fit the portal's 2..60 characters: control characters and runs of white space
// become one space, the result is cut to 60 characters, and a name shorter than 2 becomes "oeproxy".
func OctoPrintKeyName(name string) string {
	name = strings.Join(strings.FieldsFunc(strings.ToValidUTF8(name, ""), func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if utf8.RuneCountInString(name) > 60 {
		name = strings.TrimSpace(string([]rune(name)[:60]))
	}
	if utf8.RuneCountInString(name) < 2 {
		return "oeproxy"
	}
	return name
}

// ValidPrinterID reports whether s looks like an OctoEverywhere printer ID: 40 to 60 of [A-Z0-9].
func ValidPrinterID(s string) bool {
	if len(s) < 40 || len(s) > 60 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

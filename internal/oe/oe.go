// Package oe is OctoEverywhere's vocabulary as oeproxy speaks it to users: what each of OctoEverywhere's own
// status codes (600–613) means and what to do about it, the advice to link a printer again, the Supporter Perks
// page, the bounds the App APIs put on Live Links, and the rule for webhook URLs.
//
// Every message a user reads about these (the proxy's 6xx pages, App API errors, `status`, the admin page, the
// health gate's refusals) comes from here, so that the same code never reads two ways. The package knows no
// HTTP client, store or config: callers pass what they have.
package oe

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Code is what one OctoEverywhere status code means to a user.
type Code struct {
	Code int
	// Name is a short title ("App Connection revoked").
	Name string
	// Meaning says what happened, in words a user understands.
	Meaning string
	// Action says what to do next. It may name the printer as NAME: see ActionFor.
	Action string
	// Temporary is true when the same request may succeed later without anyone linking the printer again.
	Temporary bool
	// Relink is true when the stored credentials are worthless: only a new App Connection helps.
	Relink bool
}

// ActionFor is Action with the printer's name in place of NAME, so that the advice can be pasted as it is.
func (c Code) ActionFor(printer string) string {
	if printer == "" {
		return c.Action
	}
	return strings.ReplaceAll(c.Action, "NAME", printer)
}

// relinkAction is the advice for codes after which the stored credentials never work again.
const relinkAction = "Link the printer again: " + relinkTemplate + " (the old credentials will never work again)."

const relinkTemplate = "oeproxy remove NAME && oeproxy connect --name NAME"

// RelinkCommand is what the user runs to link a printer again under the same name.
func RelinkCommand(name string) string { return strings.ReplaceAll(relinkTemplate, "NAME", name) }

// RelinkAdvice is the sentence that tells the user to link a printer again, with the command to run.
func RelinkAdvice(name string) string { return strings.ReplaceAll(relinkAction, "NAME", name) }

// codes is the single table of what OctoEverywhere's codes mean (research §3.6).
var codes = map[int]Code{
	600: {Name: "unknown error", Temporary: true,
		Meaning: "OctoEverywhere had an unexpected server error.",
		Action:  "This is usually temporary: try again in a minute; if it keeps happening, contact OctoEverywhere support."},
	601: {Name: "printer offline", Temporary: true,
		Meaning: "The printer is not connected to OctoEverywhere (the OctoEverywhere plugin on the printer is offline).",
		Action:  "Check that the printer and its OctoEverywhere plugin are on and online; the connection recovers by itself when it reconnects."},
	602: {Name: "printer timed out", Temporary: true,
		Meaning: "OctoEverywhere's connection to the printer's plugin timed out (the printer is connected but slow to answer).",
		Action:  "Try again in a moment; if it persists, check the printer's network and load."},
	603: {Name: "App Connection not found", Relink: true,
		Meaning: "OctoEverywhere does not know this App Connection (its address or token maps to nothing).",
		Action:  relinkAction},
	604: {Name: "App Connection revoked", Relink: true,
		Meaning: "This App Connection was revoked or has expired (revoked on the OctoEverywhere website, printer removed, or account deleted).",
		Action:  relinkAction},
	605: {Name: "no Supporter Perks", Temporary: true,
		Meaning: "The owner of this printer's OctoEverywhere account is no longer an OctoEverywhere Supporter, which App Connections require.",
		Action:  "The printer's owner needs to renew OctoEverywhere Supporter Perks (see the Supporter Perks page); the connection works again after that, without linking the printer again."},
	// 606 alone is not proof that the credentials are dead: a relay hiccup answers it too, so it only advises.
	606: {Name: "invalid credentials",
		Meaning: "OctoEverywhere refused the App Connection credential (missing or wrong).",
		Action:  "If this persists, link the printer again: " + relinkTemplate + "."},
	607: {Name: "download limit exceeded",
		Meaning: "The file is larger than the download limit of this OctoEverywhere account.",
		Action:  "See the limit with `oeproxy status NAME`; download the file on the printer's own network, or a higher supporter level raises it."},
	608: {Name: "upload limit exceeded",
		Meaning: "The upload is larger than the upload limit of this OctoEverywhere account.",
		Action:  "See the limit with `oeproxy status NAME`; send a smaller file or upload on the printer's own network, or a higher supporter level raises it."},
	609: {Name: "webcam limit exceeded", Temporary: true,
		Meaning: "Too many webcam streams were started in a short time.",
		Action:  "Wait a few minutes before opening the webcam again, and avoid reopening it in a loop."},
	610: {Name: "plugin update required", Temporary: true,
		Meaning: "The printer's OctoEverywhere plugin is too old for this feature.",
		Action:  "Update the OctoEverywhere plugin on the printer, then try again."},
	611: {Name: "no beta access", Temporary: true,
		Meaning: "This feature is in beta and the account has no beta access.",
		Action:  "Enable beta access on the OctoEverywhere website, or do without the feature."},
	612: {Name: "plugin error", Temporary: true,
		Meaning: "The printer's OctoEverywhere plugin reported an error.",
		Action:  "Try again; if it persists, restart the printer's OctoEverywhere plugin or contact OctoEverywhere support."},
	613: {Name: "no active print", Temporary: true,
		Meaning: "There is no active print, so a Live Link that ends with the current print cannot be made.",
		Action:  "Start a print first, or create the Live Link for a number of hours instead (`oeproxy livelink NAME --hours H`)."},
}

// IsCode reports whether an HTTP status is in OctoEverywhere's own range.
func IsCode(status int) bool { return status >= 600 && status <= 699 }

// Describe returns what an OctoEverywhere code means. ok is false for codes this version does not know
// (anything outside 600–613, including codes OctoEverywhere may add later); Unknown describes those.
func Describe(code int) (c Code, ok bool) {
	c, ok = codes[code]
	c.Code = code
	return c, ok
}

// Lookup is Describe with Unknown for the codes it does not know.
func Lookup(code int) Code {
	if c, ok := Describe(code); ok {
		return c
	}
	return Unknown(code)
}

// Unknown describes a 6xx code that this version of oeproxy does not know.
func Unknown(code int) Code {
	return Code{Code: code, Name: "unrecognized OctoEverywhere error",
		Meaning: "OctoEverywhere answered with an error code this version of oeproxy does not know.",
		Action:  "Try again later; if it persists, update oeproxy and check the printer in the OctoEverywhere dashboard."}
}

// DefaultPortalURL is where the App Connection portal lives.
const DefaultPortalURL = "https://octoeverywhere.com/appportal/v1/"

// SupporterPageURL is the page that explains Supporter Perks for an app:
// <origin of portalURL>/appportal/v1/nosupporterperks?appid=<appID>. A portal URL that is not absolute falls
// back to OctoEverywhere's own origin, so a 605 always carries a working link.
func SupporterPageURL(portalURL, appID string) string {
	origin := "https://octoeverywhere.com"
	if u, err := url.Parse(portalURL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		origin = u.Scheme + "://" + u.Host
	}
	return origin + "/appportal/v1/nosupporterperks?appid=" + url.QueryEscape(appID)
}

// Live Link durations OctoEverywhere accepts, in hours.
const (
	MinLiveLinkHours     = 1
	MaxLiveLinkHours     = 17520 // two years
	DefaultLiveLinkHours = 24
)

// ErrInvalidArgument marks a value refused before anything was sent to OctoEverywhere.
var ErrInvalidArgument = errors.New("invalid argument")

// CheckLiveLinkHours accepts 0 (the default) or MinLiveLinkHours..MaxLiveLinkHours.
func CheckLiveLinkHours(h int) error {
	if h != 0 && (h < MinLiveLinkHours || h > MaxLiveLinkHours) {
		return fmt.Errorf("%w: Live Link hours must be between %d and %d (two years), not %d",
			ErrInvalidArgument, MinLiveLinkHours, MaxLiveLinkHours, h)
	}
	return nil
}

// CheckWebhookURL accepts only absolute https URLs with a host (OctoEverywhere calls nothing else). Its messages
// never repeat the URL, which may carry a secret of the receiver.
func CheckWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%w: the webhook URL does not parse; give a full https:// URL", ErrInvalidArgument)
	case !strings.EqualFold(u.Scheme, "https"):
		return fmt.Errorf("%w: the webhook URL must start with https:// (OctoEverywhere only calls https), not %q", ErrInvalidArgument, u.Scheme+":")
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%w: the webhook URL has no host; give a full https:// URL", ErrInvalidArgument)
	case strings.ContainsAny(raw, " \t\r\n"):
		return fmt.Errorf("%w: the webhook URL contains spaces; percent-encode them", ErrInvalidArgument)
	}
	return nil
}

// WebhookHost is the host of a webhook URL, the one part of it that is safe to show.
func WebhookHost(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return ""
}

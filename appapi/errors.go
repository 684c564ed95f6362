package appapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// OEError is one of OctoEverywhere's own status codes (600-613), which the relay, its WebSockets and the App
// APIs all use. Code, Name, Meaning, Action and Temporary come from Describe; Detail is the message
// OctoEverywhere sent with it, if any.
//
// errors.Is(err, ErrRevoked604) holds for any *OEError with Code 604, whatever its Detail.
type OEError struct {
	Code int
	// Name is a short title ("App Connection revoked").
	Name string
	// Meaning says what happened, in words a user understands.
	Meaning string
	// Action says what to do next.
	Action string
	// Temporary is true when the same call may succeed later without anyone re-linking the printer.
	Temporary bool
	// Detail is OctoEverywhere's own message for this occurrence (may be empty).
	Detail string
}

func (e *OEError) Error() string {
	msg := fmt.Sprintf("OctoEverywhere error %d (%s): %s", e.Code, e.Name, e.Meaning)
	if e.Detail != "" && e.Detail != e.Meaning {
		msg += " (OctoEverywhere said " + strconv.Quote(e.Detail) + ")"
	}
	if e.Action != "" {
		msg += " " + e.Action
	}
	return msg
}

// Is reports whether target is an *OEError with the same code, so the sentinels below work with errors.Is.
func (e *OEError) Is(target error) bool {
	t, ok := target.(*OEError)
	return ok && t != nil && e != nil && t.Code == e.Code
}

// The OctoEverywhere codes as sentinels for errors.Is. They carry no Detail; compare, never modify them.
var (
	ErrUnknown600        = sentinel(600)
	ErrPrinterOffline601 = sentinel(601)
	ErrTimeout602        = sentinel(602)
	ErrNotFound603       = sentinel(603)
	ErrRevoked604        = sentinel(604)
	ErrNoSupporter605    = sentinel(605)
	ErrBadCredentials606 = sentinel(606)
	ErrDownloadLimit607  = sentinel(607)
	ErrUploadLimit608    = sentinel(608)
	ErrWebcamLimit609    = sentinel(609)
	ErrPluginUpdate610   = sentinel(610)
	ErrNoBeta611         = sentinel(611)
	ErrPluginError612    = sentinel(612)
	ErrNoActivePrint613  = sentinel(613)
)

func sentinel(code int) *OEError {
	e, ok := Describe(code)
	if !ok {
		panic("appapi: no description for " + strconv.Itoa(code))
	}
	return &e
}

// relink is the advice for codes after which the stored credentials are worthless.
const relink = "Link the printer again: run `oeproxy remove NAME` and then `oeproxy connect` (the old credentials will never work again)."

// codes is the single table of what OctoEverywhere's codes mean (research §3.6). The proxy uses it too.
var codes = map[int]OEError{
	600: {Name: "unknown error", Temporary: true,
		Meaning: "OctoEverywhere had an unexpected server error.",
		Action:  "Try again in a minute; if it keeps happening, contact OctoEverywhere support."},
	601: {Name: "printer offline", Temporary: true,
		Meaning: "The printer is not connected to OctoEverywhere (the OctoEverywhere plugin on the printer is offline).",
		Action:  "Check that the printer and its OctoEverywhere plugin are on and online; the connection recovers by itself when it reconnects."},
	602: {Name: "printer timed out", Temporary: true,
		Meaning: "OctoEverywhere's connection to the printer's plugin timed out (the printer is connected but slow to answer).",
		Action:  "Try again; if it persists, check the printer's network and load."},
	603: {Name: "App Connection not found", Temporary: false,
		Meaning: "OctoEverywhere does not know this App Connection (its address or token maps to nothing).",
		Action:  relink},
	604: {Name: "App Connection revoked", Temporary: false,
		Meaning: "The App Connection was revoked or has expired (revoked on the OctoEverywhere website, printer removed, or account deleted).",
		Action:  relink},
	605: {Name: "no Supporter Perks", Temporary: true,
		Meaning: "The printer's owner is no longer an OctoEverywhere supporter, which App Connections require.",
		Action:  "The printer's owner needs to renew OctoEverywhere Supporter Perks on the OctoEverywhere website; the connection works again after that, without re-linking."},
	606: {Name: "invalid credentials", Temporary: false,
		Meaning: "OctoEverywhere rejected the App Connection credentials (missing or wrong).",
		Action:  "If this persists, link the printer again: run `oeproxy remove NAME` and then `oeproxy connect`."},
	607: {Name: "download limit exceeded", Temporary: false,
		Meaning: "The file is larger than the account's download limit.",
		Action:  "Download a smaller file, or see the limit with `oeproxy status NAME`; a higher supporter level raises it."},
	608: {Name: "upload limit exceeded", Temporary: false,
		Meaning: "The file is larger than the account's upload limit.",
		Action:  "Upload a smaller file (see the limit with `oeproxy status NAME`), or upload over the LAN; a higher supporter level raises it."},
	609: {Name: "webcam limit exceeded", Temporary: true,
		Meaning: "Too many webcam streams were started back to back in a short time window.",
		Action:  "Wait a few minutes before opening the webcam again, and avoid reopening it in a loop."},
	610: {Name: "plugin update required", Temporary: true,
		Meaning: "The OctoEverywhere plugin on the printer is too old for this feature.",
		Action:  "Update the OctoEverywhere plugin on the printer, then try again."},
	611: {Name: "no beta access", Temporary: true,
		Meaning: "This feature is in beta and the account has no beta access.",
		Action:  "Enable beta access on the OctoEverywhere website, or do without the feature."},
	612: {Name: "plugin error", Temporary: true,
		Meaning: "The OctoEverywhere plugin on the printer reported an error.",
		Action:  "Try again; if it persists, restart the printer's OctoEverywhere plugin or contact OctoEverywhere support."},
	613: {Name: "no active print", Temporary: true,
		Meaning: "There is no print running, so a Live Link that ends with the current print cannot be made.",
		Action:  "Start a print first, or create the Live Link for a number of hours instead (`oeproxy livelink NAME --hours H`)."},
}

// Describe returns what an OctoEverywhere code means and what to do about it. ok is false for codes that are not
// OctoEverywhere's (anything outside 600-613, including codes OctoEverywhere may add later).
func Describe(code int) (e OEError, ok bool) {
	e, ok = codes[code]
	e.Code = code
	return e, ok
}

// newOEError builds the error for a code received from OctoEverywhere, including unknown 6xx codes.
func newOEError(code int, detail string) *OEError {
	e, ok := Describe(code)
	if !ok {
		e = OEError{Code: code, Name: "unrecognized OctoEverywhere error", Temporary: false,
			Meaning: "OctoEverywhere answered with a code this version of oeproxy does not know.",
			Action:  "Update oeproxy; OctoEverywhere's developer docs list the code's meaning."}
	}
	e.Detail = detail
	return &e
}

// CodeOf returns the OctoEverywhere code carried by err (600-699), or 0 if err is not an OctoEverywhere error.
func CodeOf(err error) int {
	var oe *OEError
	if errors.As(err, &oe) {
		return oe.Code
	}
	return 0
}

// Errors that are not OctoEverywhere codes.
var (
	// ErrRateLimited: the call was refused because it came too soon (errors.As gives a *RateLimitError).
	ErrRateLimited = errors.New("rate limited")
	// ErrBadRequest: OctoEverywhere answered 400 (a missing token or an invalid value); errors.As gives *HTTPError.
	ErrBadRequest = errors.New("OctoEverywhere refused the request as invalid (400)")
	// ErrInvalidArgument: the call was refused before anything was sent (bad hours, non-https URL, ...).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnreachable: OctoEverywhere could not be reached (DNS, TCP, TLS, timeout); the cause is wrapped too.
	ErrUnreachable = errors.New("could not reach OctoEverywhere")
	// ErrUnexpectedResponse: OctoEverywhere answered success with a body this client cannot read.
	ErrUnexpectedResponse = errors.New("unexpected response from OctoEverywhere")
)

// RateLimitError says a call came too soon and how long to wait. errors.Is(err, ErrRateLimited) holds.
type RateLimitError struct {
	// Wait is how long until a call is allowed again (0 if OctoEverywhere did not say).
	Wait time.Duration
	// Server is true when OctoEverywhere itself answered 429, false when this client held the call back.
	Server bool
}

func (e *RateLimitError) Error() string {
	who := "held back by oeproxy: OctoEverywhere allows one Gadget status call per 10 s per connection"
	if e.Server {
		who = "OctoEverywhere answered 429 Too Many Requests"
	}
	if e.Wait > 0 {
		return fmt.Sprintf("rate limited (%s); try again in %s", who, e.Wait.Round(100*time.Millisecond))
	}
	return fmt.Sprintf("rate limited (%s); try again later", who)
}

// Is makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// HTTPError is a plain (non-6xx) HTTP error status from the App API. errors.Is(err, ErrBadRequest) holds for 400.
type HTTPError struct {
	StatusCode int
	// Detail is OctoEverywhere's message, if any.
	Detail string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("OctoEverywhere App API answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Detail != "" {
		msg += ": " + strconv.Quote(e.Detail)
	}
	switch {
	case e.StatusCode == http.StatusBadRequest:
		msg += "; the request was refused as invalid (a missing token or a value out of range): check the arguments, or link the printer again if the token is missing"
	case e.StatusCode >= 500:
		msg += "; OctoEverywhere had a server problem: try again later"
	case e.StatusCode >= 300 && e.StatusCode < 400:
		msg += "; redirects are not followed (they could leak the token): check octoeverywhere.api_url"
	case e.StatusCode == http.StatusNotFound:
		msg += "; check octoeverywhere.api_url (it should be https://octoeverywhere.com)"
	}
	return msg
}

// Is makes errors.Is(err, ErrBadRequest) hold for 400.
func (e *HTTPError) Is(target error) bool {
	return target == ErrBadRequest && e.StatusCode == http.StatusBadRequest
}

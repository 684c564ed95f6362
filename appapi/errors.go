package appapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/oeproxy/oeproxy/internal/oe"
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

// Describe returns what an OctoEverywhere code means and what to do about it (package oe owns the table). ok is
// false for codes that are not OctoEverywhere's (anything outside 600-613, including codes OctoEverywhere may add
// later).
func Describe(code int) (e OEError, ok bool) {
	c, ok := oe.Describe(code)
	return fromCode(c), ok
}

func fromCode(c oe.Code) OEError {
	return OEError{Code: c.Code, Name: c.Name, Meaning: c.Meaning, Action: c.Action, Temporary: c.Temporary}
}

// newOEError builds the error for a code received from OctoEverywhere, including unknown 6xx codes.
func newOEError(code int, detail string) *OEError {
	e := fromCode(oe.Lookup(code))
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
	ErrInvalidArgument = oe.ErrInvalidArgument
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

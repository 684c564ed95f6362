package control

import (
	"errors"
	"net/http"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/credstore"
)

// Error kinds carried over the control socket, so the client returns the same sentinel errors as the store.
var (
	ErrConflict = errors.New("already taken")
	ErrNotFound = errors.New("no such printer")
	ErrInvalid  = errors.New("invalid request")
)

// ErrNoDaemon means no daemon answers on the control socket; the caller opens the store itself.
var ErrNoDaemon = errors.New("no oeproxy daemon is running")

// ErrNoAnswer means a change was sent to the daemon but its answer was lost (the daemon stopped half-way): the
// change may or may not have been made. The caller looks before it tries again.
var ErrNoAnswer = errors.New("the daemon stopped before it answered, so it is not known whether the change was made")

// errorBody is the JSON error of the control API.
type errorBody struct {
	Error string `json:"error"`
	// Kinds name the sentinel errors the daemon's error matched (errorKinds), so that errors.Is gives the same
	// answer on the client side as in the daemon, and the message stays word for word the same.
	Kinds []string `json:"kinds,omitempty"`
	// Kind is the first of Kinds (older clients read it).
	Kind string `json:"kind,omitempty"`
	// Code is the OctoEverywhere code (600-613) the error carries, so errors.Is works on the client side.
	Code int `json:"oe_code,omitempty"`
}

// errorKinds are the sentinel errors that cross the control socket by name, each with the HTTP status the
// daemon answers with when it is the first one an error matches.
var errorKinds = []struct {
	kind   string
	status int
	err    error
}{
	{"bad_argument", http.StatusBadRequest, appapi.ErrInvalidArgument},
	{"rate_limited", http.StatusTooManyRequests, appapi.ErrRateLimited},
	{"not_found", http.StatusNotFound, ErrNotFound},
	{"store_not_found", http.StatusNotFound, credstore.ErrNotFound},
	{"conflict", http.StatusConflict, ErrConflict},
	{"name_taken", http.StatusConflict, credstore.ErrNameTaken},
	{"port_taken", http.StatusConflict, credstore.ErrPortTaken},
	{"duplicate", http.StatusConflict, credstore.ErrDuplicate},
	{"exists", http.StatusConflict, credstore.ErrExists},
	{"invalid", http.StatusBadRequest, ErrInvalid},
	{"store_invalid", http.StatusBadRequest, credstore.ErrInvalid},
	{"corrupt", http.StatusInternalServerError, credstore.ErrCorrupt},
}

// kindsOf names the sentinels err matches and picks the reply's status.
func kindsOf(err error) ([]string, int) {
	var kinds []string
	status := 0
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			kinds = append(kinds, k.kind)
			if status == 0 {
				status = k.status
			}
		}
	}
	switch {
	case status != 0:
	case appapi.CodeOf(err) != 0:
		status = http.StatusBadGateway
	default:
		status = http.StatusInternalServerError
	}
	return kinds, status
}

// HTTPStatus is the HTTP status the control API answers err with: 400 for an invalid request, 404 for a
// printer that is not there, 409 for a name or port another printer has, 429 when OctoEverywhere asks to slow
// down, 502 for another OctoEverywhere error, 500 otherwise. The admin page answers with the same statuses.
func HTTPStatus(err error) int {
	_, status := kindsOf(err)
	return status
}

// remoteError is an error that crossed the control socket: the daemon's message, and the sentinels (and
// OctoEverywhere code) it matched there, so that errors.Is works on the client side as in the daemon.
type remoteError struct {
	msg  string
	errs []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.errs }

// errorFromBody rebuilds the daemon's error from its reply.
func errorFromBody(e errorBody) error {
	kinds := e.Kinds
	if len(kinds) == 0 && e.Kind != "" {
		kinds = []string{e.Kind}
	}
	var errs []error
	for _, name := range kinds {
		for _, k := range errorKinds {
			if k.kind == name {
				errs = append(errs, k.err)
			}
		}
	}
	if e.Code != 0 {
		errs = append(errs, &appapi.OEError{Code: e.Code})
	}
	return &remoteError{msg: e.Error, errs: errs}
}

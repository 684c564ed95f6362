package proxy

import (
	"net/http"
	"strconv"

	"go.uber.org/zap"
)

// Gate lets the daemon refuse a request before anything of it reaches the relay, from what it knows about the
// printer's App Connection: its account limits, or that it must be linked again. It is asked once per request
// (WebSocket handshakes included), after the Host and Origin checks.
//
// Refusing early matters for two cases: an upload over the account's limit would otherwise be sent in full (the
// relay stores the whole body before it answers 608), and a connection OctoEverywhere has confirmed dead would
// otherwise send every request, with its credential, to a relay that can only refuse it.
type Gate interface {
	// Admit returns nil to let r through, or the refusal to answer instead. It must be quick, safe for concurrent
	// use, and must not read r.Body.
	Admit(r *http.Request) *Refusal
}

// Refusal is a Gate's answer. It is sent with the same JSON or HTML explanation body as the relay's 6xx answers,
// X-Oeproxy-Error set to Code, and X-Oeproxy-Gate: refused so that scripts can tell it from the relay's own.
type Refusal struct {
	// Status is the HTTP status sent: 413 for an upload over the limit, or an OctoEverywhere code (603, 604, 606)
	// when the connection must be linked again, so that apps that act on those codes still do.
	Status int
	// Code is the OctoEverywhere code the refusal stands for (608 for an upload over the limit).
	Code int
	// Meaning says what is wrong, Action what to do; Link is an optional URL shown with them.
	Meaning, Action, Link string
}

// GateHeader is set to "refused" on every answer a Gate gave instead of the relay.
const GateHeader = "X-Oeproxy-Gate"

// admit asks the Gate, if any, and answers the request itself when the Gate refuses it. It reports whether the
// request may go on. The refused request is not counted by Hooks (it never reached the relay).
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) bool {
	if h.opts.Gate == nil {
		return true
	}
	ref := h.opts.Gate.Admit(r)
	if ref == nil {
		return true
	}
	// Debug only: the daemon logs the state change behind a refusal once; a client retrying must not flood the log.
	h.log.Debug("request refused before the relay", zap.Int("status", ref.Status), zap.Int("code", ref.Code),
		zap.String("method", r.Method), zap.Int64("content_length", r.ContentLength))
	w.Header().Set(GateHeader, "refused")
	if ref.Code != 0 {
		w.Header().Set(ErrorHeader, strconv.Itoa(ref.Code))
	}
	if r.ContentLength != 0 {
		// The body is left unread: tell the client the connection will not carry another request.
		w.Header().Set("Connection", "close")
	}
	writeExplanation(w, r, ref.Status, explanation{Code: ref.Code, Meaning: ref.Meaning, Action: ref.Action, Link: ref.Link})
	return false
}

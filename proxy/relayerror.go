package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"

	"go.uber.org/zap"
)

// stateUnreachable is the state noted while the relay cannot be reached (logged once per change, like a 6xx).
const stateUnreachable = http.StatusBadGateway

// relayError is ReverseProxy's ErrorHandler: the relay could not be reached or answered nothing usable. The client
// gets a 502 that says why; a client that went away gets nothing and causes no log noise.
func (h *Handler) relayError(w http.ResponseWriter, r *http.Request, err error) {
	// First: a body that failed to arrive also ends the request's context (net/http takes any read error on the
	// connection for a client gone), and the client that sent it is most likely still waiting for the answer.
	if berr := clientOf(r.Context()).body.err(); berr != nil && (r.Context().Err() == nil || isTimeout(berr)) {
		h.clientBodyError(w, r, berr)
		return
	}
	if r.Context().Err() != nil || errors.Is(err, context.Canceled) {
		h.log.Debug("client went away before the relay answered")
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	e := describeRelayError(err)
	if prev := h.state.Swap(stateUnreachable); prev != stateUnreachable {
		h.log.Warn("cannot reach the relay", zap.String("meaning", e.Meaning), zap.Error(safeErr(err)))
	}
	writeExplanation(w, r, http.StatusBadGateway, e)
}

// describeRelayError turns a transport error into an explanation; certificate problems say so.
func describeRelayError(err error) explanation {
	err = safeErr(err)
	e := explanation{Code: http.StatusBadGateway}
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
		nerr net.Error
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &uerr), errors.As(err, &herr), errors.As(err, &cerr):
		e.Meaning = "The relay's TLS certificate was not accepted: " + err.Error() + "."
		e.Action = "Something between this computer and OctoEverywhere presented a certificate oeproxy does not trust. " +
			"If you set tls.ca_file or octoeverywhere.connect_to, check them; otherwise check the network (a captive portal or TLS-inspecting proxy)."
	case errors.As(err, &nerr) && nerr.Timeout():
		e.Meaning = "The relay did not answer in time: " + err.Error() + "."
		e.Action = "Check this computer's internet connection and try again."
	default:
		e.Meaning = "Cannot reach the OctoEverywhere relay: " + err.Error() + "."
		e.Action = "Check this computer's internet connection (and DNS) and try again."
	}
	return e
}

// safeErr drops the URL a *url.Error carries: its query may hold a client's API key.
func safeErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

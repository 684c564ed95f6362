package oesim

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// OctoEverywhere's own status codes (§3.6). They never clash with the printer's codes, so a client can tell
// "the relay refused" from "the printer answered".
const (
	StatusServerError       = 600
	StatusPrinterOffline    = 601
	StatusPluginTimeout     = 602
	StatusNotFound          = 603
	StatusRevoked           = 604
	StatusNoSupporter       = 605
	StatusBadCredentials    = 606
	StatusDownloadTooLarge  = 607
	StatusUploadTooLarge    = 608
	StatusWebcamLimit       = 609
	StatusPluginUpdate      = 610
	StatusNoBetaAccess      = 611
	StatusPluginError       = 612
	StatusNoActivePrint     = 613
	StatusGadgetRateLimited = http.StatusTooManyRequests // undocumented; our choice
)

var oeMessages = map[int]string{
	600: "Unknown error on the OctoEverywhere server.",
	601: "The printer is not connected to OctoEverywhere.",
	602: "OctoEverywhere's connection to the printer's plugin timed out.",
	603: "App Connection not found.",
	604: "App Connection revoked or expired.",
	605: "The owner of this App Connection is no longer an OctoEverywhere supporter.",
	606: "Invalid App Connection credentials.",
	607: "File download limit exceeded.",
	608: "File upload limit exceeded.",
	609: "Webcam back-to-back limit exceeded.",
	610: "Plugin update required.",
	611: "No beta access.",
	612: "Plugin error.",
	613: "No active print.",
	400: "Bad request.",
	429: "Too many requests.",
}

// StatusText returns the sim's message for an OctoEverywhere code (or Go's text for an HTTP code).
func StatusText(code int) string {
	if m, ok := oeMessages[code]; ok {
		return m
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Status " + strconv.Itoa(code)
}

// relayError is the body of a relay 6xx. OctoEverywhere does not document one (gap 6); the sim answers a short
// JSON object {"Status":6xx,"Error":"..."} so that tests and humans can read it, and clients must not rely on it.
type relayError struct {
	Status int
	Error  string
}

func writeRelayError(w http.ResponseWriter, code int) {
	body, _ := json.Marshal(relayError{Status: code, Error: StatusText(code)})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

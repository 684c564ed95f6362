// Package printer implements the simulated printers' own local HTTP servers for oesim:
// an OctoPrint-flavoured server, a Moonraker-flavoured API plus a Mainsail-like frontend,
// the OctoEverywhere companion local web API, and an mjpg-streamer-style webcam.
//
// It owns only plain http.Handlers that look like the real printer software on the wire
// (paths, JSON shapes, status codes, WebSocket framing), so that oeproxy's tests exercise
// the shapes real slicers, browsers and apps see. It must not do TLS, open listeners, or know
// anything about OctoEverywhere's relay: package oesim runs these handlers behind its relay.
//
// Every long-lived response (webcam streams, WebSockets) ends when the client goes away or
// when Close is called; Close returns only after those handlers have finished.
package printer

import (
	"time"

	"go.uber.org/zap"
)

// DefaultFrameInterval is the webcam frame period when the options leave it zero.
const DefaultFrameInterval = 200 * time.Millisecond

// DefaultPluginVersion is the OctoEverywhere plugin version the printers report by default.
const DefaultPluginVersion = "5.3.1"

// pushInterval is how often the WebSockets push printer state, as OctoPrint and Moonraker do.
const pushInterval = time.Second

// Upload records one file upload the printer received. The body is never kept: only its
// size and SHA-256, so that multi-GiB test uploads cost no memory.
type Upload struct {
	Path          string // target folder as sent in the form field "path" ("" for the root)
	Filename      string // the file part's filename
	Root          string // OctoPrint: the location ("local"); Moonraker: the root ("gcodes")
	Size          int64  // bytes in the file part
	SHA256        string // lower-case hex of the file part
	Print         bool   // the form asked to start printing it
	ContentLength int64  // the request's Content-Length
}

// OctoPrintOptions configures NewOctoPrint. The zero value is usable.
type OctoPrintOptions struct {
	Name          string        // printer name (shown on the page); default "OctoPrint"
	PrinterID     string        // OctoEverywhere printer id; empty means the plugin is not installed (404)
	APIKey        string        // when set, the API requires it (X-Api-Key, ?apikey= or Authorization: Bearer)
	FrameInterval time.Duration // webcam frame period; default DefaultFrameInterval
	PluginVersion string        // OctoEverywhere plugin version; default DefaultPluginVersion
	// StrictOrigin makes WebSocket handshakes refuse a browser Origin whose host differs from
	// the request's Host, as Tornado does by default. Off by default so the page works behind
	// any proxy that does not rewrite Origin.
	StrictOrigin bool
	Logger       *zap.Logger
}

// MoonrakerOptions configures NewMoonraker. The zero value is usable.
type MoonrakerOptions struct {
	Name          string        // printer name (hostname in printer.info, page title); default "Klipper"
	PrinterID     string        // OctoEverywhere printer id stored in the database; empty means not installed
	APIKey        string        // when set, the API requires X-Api-Key or a oneshot ?token=
	FrameInterval time.Duration // webcam frame period; default DefaultFrameInterval
	PluginVersion string        // OctoEverywhere plugin version in the database; default DefaultPluginVersion
	StrictOrigin  bool          // as in OctoPrintOptions
	Logger        *zap.Logger
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

package control

import (
	"context"

	"github.com/oeproxy/oeproxy/credstore"
)

// LANControl is the part of Control that sets a printer's LAN address and route (`oeproxy lan set`, `lan clear`).
type LANControl interface {
	SetLAN(ctx context.Context, name string, req LANRequest) (credstore.PublicRecord, error)
}

// LANRequest changes a printer's LAN settings. An empty URL with Clear false leaves the address as it is; an
// empty Route leaves the route as it is.
type LANRequest struct {
	// URL is the printer's LAN address (http://host[:port]); Clear forgets it (the last known local IP is still
	// tried in auto mode).
	URL   string `json:"url,omitempty"`
	Clear bool   `json:"clear,omitempty"`
	// Companion is the OctoEverywhere companion's local web API (http://host:port), the identity proof for a
	// printer behind a companion (PrusaLink, Elegoo); Clear forgets it too. Empty: as it is.
	Companion string `json:"companion,omitempty"`
	// Route is relay, lan, auto, or "default" (follow the config key route).
	Route string `json:"route,omitempty"`
}

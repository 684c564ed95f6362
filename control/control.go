package control

import (
	"context"

	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/portalflow"
)

// Control is what the command line asks of oeproxy. The same interface is served by the running daemon over the
// control socket and, when no daemon runs, by the store directly, so the user sees the same result either way.
type Control interface {
	List(ctx context.Context) ([]credstore.PublicRecord, error)
	Add(ctx context.Context, req AddRequest) (credstore.PublicRecord, error)
	Remove(ctx context.Context, name string) (credstore.PublicRecord, error)
	Change(ctx context.Context, name string, ch Change) (credstore.PublicRecord, error)
	AppControl
	LANControl
	MQTTControl
}

// AddRequest stores a new App Connection from a validated portal completion.
type AddRequest struct {
	Completion portalflow.Completion `json:"completion"`
	// Name is the local name; empty: a slug of the printer name.
	Name string `json:"name,omitempty"`
	// Port is the local port; 0: the next free one from listen.port_base.
	Port int `json:"port,omitempty"`
	// PrinterID is the OctoEverywhere printer ID when discovered.
	PrinterID string `json:"printer_id,omitempty"`
	// Route is relay, lan or auto (connect --route); empty: the config key route.
	Route string `json:"route,omitempty"`
	// LANURL is the printer's LAN address (connect --printer-url); empty: none set.
	LANURL string `json:"lan_url,omitempty"`
	// Platform is connect --platform; empty: what the OctoEverywhere plugin reports.
	Platform string `json:"platform,omitempty"`
	// FrontAPIKey is the key connect shows once; stored only when the platform gets the OctoPrint front.
	FrontAPIKey string `json:"front_api_key,omitempty"`
}

// Change is a change to a stored printer; zero fields stay as they are.
type Change struct {
	Name string `json:"name,omitempty"` // new local name
	Port int    `json:"port,omitempty"` // new local port
}

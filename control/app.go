package control

import (
	"context"
	"time"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/proxy"
)

// AppControl is the part of Control that calls OctoEverywhere's App APIs for a stored printer: status, Live Links,
// Gadget and the app-owned notification webhook. daemon.Printers implements it with its API client (directly when
// no daemon runs; through the daemon's Health when one does), Client over the control socket.
type AppControl interface {
	// Status reports every printer (name == "") or one.
	Status(ctx context.Context, name string) ([]PrinterStatus, error)
	LiveLink(ctx context.Context, name string, req appapi.LiveLinkRequest) (*appapi.LiveLink, error)
	// Gadget is never sent twice within 10 s for one printer by one API client: the daemon's, or each
	// short-lived command's own when no daemon runs.
	Gadget(ctx context.Context, name string) (*appapi.GadgetStatus, error)
	// SetWebhook sets the webhook and records URL, events and time in the store (the daemon renews it).
	SetWebhook(ctx context.Context, name, webhookURL string, events []appapi.EventType) (WebhookInfo, error)
	DeleteWebhook(ctx context.Context, name string) error
	TestWebhook(ctx context.Context, name string) (*appapi.WebhookTest, error)
}

// PrinterStatus is one printer's line of `oeproxy status`. Its JSON keys are a stable contract: never renamed or
// removed, only added. Times are RFC 3339 in UTC, or null when unknown or never.
type PrinterStatus struct {
	Name        string       `json:"name"`
	PrinterName string       `json:"printer_name"`
	State       health.State `json:"state"`
	// StateSince is when the daemon saw the state begin (null without a daemon).
	StateSince     *time.Time          `json:"state_since"`
	Online         bool                `json:"online"`
	LocalIP        string              `json:"local_ip"`
	LastConnect    appapi.Time         `json:"last_connect"`
	LastDisconnect appapi.Time         `json:"last_disconnect"`
	Limits         *appapi.Limits      `json:"limits"` // null until Info succeeded once
	LastError      *health.StatusError `json:"last_error"`
	CheckedAt      *time.Time          `json:"checked_at"`
	WebhookSetAt   *time.Time          `json:"webhook_set_at"`
	// WebhookExpiresAt is 180 days after WebhookSetAt, when OctoEverywhere stops calling it unless renewed.
	WebhookExpiresAt *time.Time `json:"webhook_expires_at"`
	// Daemon is true when a running daemon answered: its state also reflects the relay's answers to traffic.
	Daemon bool `json:"daemon"`
	// Action says what to do when the state needs the user ("" when online).
	Action string `json:"action,omitempty"`
	// NotServed says why the running daemon has no listener for the printer (its port is busy); absent when
	// it is served or without a daemon.
	NotServed string `json:"not_served,omitempty"`
	// Route is the printer's route mode (relay, lan or auto); ActiveRoute the route in use now (lan or relay;
	// "none" without a daemon); LastProof when the daemon last checked the LAN host (null: never); RouteReason
	// why the active route is the one in use.
	Route       string     `json:"route"`
	ActiveRoute string     `json:"active_route"`
	LastProof   *time.Time `json:"last_proof"`
	RouteReason string     `json:"route_reason,omitempty"`
	// Uploads are the printer's latest uploads answered once stored (upload.answer_when_stored) and what became of
	// them, oldest first; absent without a daemon or without such uploads.
	Uploads []proxy.UploadRecord `json:"uploads,omitempty"`
}

// WebhookInfo says what `webhook set` stored. The URL itself is not returned: OctoEverywhere calls it exactly as
// given, so it may carry a secret.
type WebhookInfo struct {
	Name      string    `json:"name"`
	Host      string    `json:"host"`
	Events    []int     `json:"events"` // empty: every event
	SetAt     time.Time `json:"set_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

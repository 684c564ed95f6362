package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/internal/oe"
	"github.com/oeproxy/oeproxy/proxy"
)

// AppControl is the part of Control that calls OctoEverywhere's App APIs for a stored printer: status, Live Links,
// Gadget and the app-owned notification webhook. Printers implements it with its API client (directly when no
// daemon runs; through the daemon's Health when one does), ControlClient over the control socket.
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

// errNoAPI is returned when Printers has no App API client.
var errNoAPI = errors.New("no OctoEverywhere App API client is configured (octoeverywhere.api_url)")

func (p *Printers) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// record returns a stored printer, or an error saying oeproxy list shows the names.
func (p *Printers) record(name string) (credstore.Record, error) {
	if p.API == nil {
		return credstore.Record{}, errNoAPI
	}
	return p.Store.Get(name)
}

// statusConcurrency bounds how many printers one status asks OctoEverywhere about at once.
const statusConcurrency = 4

// Status implements AppControl. With the daemon's Health it checks at once and reports the state machine (which
// also hears the relay); without it, it calls Info once per printer and derives the state with the same rules.
func (p *Printers) Status(ctx context.Context, name string) ([]PrinterStatus, error) {
	if p.API == nil {
		return nil, errNoAPI
	}
	return p.status(ctx, name, true)
}

// StatusNow is Status without asking OctoEverywhere: what the daemon's health trackers know now, and unknown for
// a printer that has none. The admin page shows it at every load, which must not cost an Info call per printer.
func (p *Printers) StatusNow(ctx context.Context, name string) ([]PrinterStatus, error) {
	return p.status(ctx, name, false)
}

// status reports every printer (name == "") or one; fresh checks each one first.
func (p *Printers) status(ctx context.Context, name string, fresh bool) ([]PrinterStatus, error) {
	var recs []credstore.Record
	var damaged []credstore.Damaged
	if name != "" {
		r, err := p.Store.Get(name)
		if err != nil {
			return nil, err
		}
		recs = []credstore.Record{r}
	} else {
		var err error
		if recs, damaged, err = p.Store.Scan(); err != nil {
			return nil, err
		}
	}
	// Printers are asked at once (bounded), so an unreachable OctoEverywhere costs one timeout, not one per
	// printer; the answer keeps the store's order.
	out := make([]PrinterStatus, len(recs), len(recs)+len(damaged))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(statusConcurrency)
	for i, r := range recs {
		g.Go(func() error {
			var h *health.Health
			daemon := false
			if p.Health != nil {
				h = p.Health(r.Name)
				daemon = h != nil
			}
			if h == nil { // a one-off check, deriving the state with the same rules
				h = health.New(health.Options{Name: r.Name, API: p.API, Store: p.Store, Now: p.Now})
			}
			if fresh {
				h.Refresh(gctx)
			}
			if err := gctx.Err(); err != nil {
				return err
			}
			out[i] = statusOf(r, h.Snapshot(), daemon)
			if p.NotServed != nil {
				out[i].NotServed = p.NotServed(r.Name)
			}
			if p.Uploads != nil {
				out[i].Uploads = p.Uploads(r.Name)
			}
			p.statusRoute(&out[i], r)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, d := range damaged {
		out = append(out, PrinterStatus{Name: d.Name, State: StateDamaged, Action: d.Error()})
	}
	return out, nil
}

func statusOf(r credstore.Record, s health.Snapshot, daemon bool) PrinterStatus {
	ps := PrinterStatus{Name: r.Name, PrinterName: r.PrinterName, State: s.State, LocalIP: r.LastKnownLocalIP,
		LastError: s.LastError, Daemon: daemon}
	if s.Info != nil {
		ps.Online = s.Info.IsOnline
		if s.Info.PrinterName != "" {
			ps.PrinterName = s.Info.PrinterName
		}
		if s.Info.PrinterLocalIP != "" {
			ps.LocalIP = s.Info.PrinterLocalIP
		}
		ps.LastConnect, ps.LastDisconnect = s.Info.LastConnection, s.Info.LastDisconnect
		l := s.Info.Limits
		ps.Limits = &l
	}
	if s.State != health.StateOnline {
		ps.Online = false
	}
	ps.CheckedAt = utcPtr(s.CheckedAt)
	if daemon {
		ps.StateSince = utcPtr(s.Since)
	}
	if r.WebhookURL != "" {
		ps.WebhookSetAt = utcPtr(r.WebhookSetAt)
		ps.WebhookExpiresAt = utcPtr(r.WebhookSetAt.Add(health.WebhookLifetime))
	}
	switch s.State {
	case health.StateNeedsRelink:
		ps.Action = oe.RelinkAdvice(r.Name)
	case health.StateNoSupporterPerks:
		ps.Action = "The owner of the OctoEverywhere account needs Supporter Perks again; the printer works again after that, without re-linking."
	case health.StatePrinterOffline:
		ps.Action = "Check that the printer and its OctoEverywhere plugin are on and online."
	case health.StateUnknown:
		if s.LastError != nil {
			ps.Action = "OctoEverywhere could not be asked; check this computer's connection and try again."
		}
	}
	return ps
}

func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}

// LiveLink implements AppControl.
func (p *Printers) LiveLink(ctx context.Context, name string, req appapi.LiveLinkRequest) (*appapi.LiveLink, error) {
	r, err := p.record(name)
	if err != nil {
		return nil, err
	}
	return p.API.CreateLiveLink(ctx, r.AppAPIToken, req)
}

// Gadget implements AppControl. The 10 s rule is keyed by the App Connection ID in p.API.
func (p *Printers) Gadget(ctx context.Context, name string) (*appapi.GadgetStatus, error) {
	r, err := p.record(name)
	if err != nil {
		return nil, err
	}
	return p.API.GadgetStatus(ctx, r.ConnectionID, r.AppAPIToken)
}

// SetWebhook implements AppControl: OctoEverywhere first, then the record, so the store never claims a webhook
// OctoEverywhere refused.
func (p *Printers) SetWebhook(ctx context.Context, name, webhookURL string, events []appapi.EventType) (WebhookInfo, error) {
	r, err := p.record(name)
	if err != nil {
		return WebhookInfo{}, err
	}
	if err := p.API.SetWebhook(ctx, r.AppAPIToken, webhookURL, events); err != nil {
		return WebhookInfo{}, err
	}
	ev := make([]int, 0, len(events))
	for _, e := range events {
		if !slices.Contains(ev, int(e)) {
			ev = append(ev, int(e))
		}
	}
	now := p.now().UTC().Truncate(time.Second)
	err = p.Store.Update(name, func(rec *credstore.Record) error {
		rec.WebhookURL, rec.WebhookEvents, rec.WebhookSetAt = webhookURL, ev, now
		return nil
	})
	if err != nil {
		return WebhookInfo{}, fmt.Errorf("OctoEverywhere set the webhook, but oeproxy could not record it (it will not be renewed): %w", err)
	}
	info := WebhookInfo{Name: name, Events: ev, SetAt: now, ExpiresAt: now.Add(health.WebhookLifetime)}
	info.Host = oe.WebhookHost(webhookURL)
	return info, nil
}

// DeleteWebhook implements AppControl.
func (p *Printers) DeleteWebhook(ctx context.Context, name string) error {
	r, err := p.record(name)
	if err != nil {
		return err
	}
	if err := p.API.DeleteWebhook(ctx, r.AppAPIToken); err != nil {
		return err
	}
	return p.Store.Update(name, func(rec *credstore.Record) error {
		rec.WebhookURL, rec.WebhookEvents, rec.WebhookSetAt = "", nil, time.Time{}
		return nil
	})
}

// TestWebhook implements AppControl.
func (p *Printers) TestWebhook(ctx context.Context, name string) (*appapi.WebhookTest, error) {
	r, err := p.record(name)
	if err != nil {
		return nil, err
	}
	return p.API.TestWebhook(ctx, r.AppAPIToken)
}

// Control socket: routes and client.

type liveLinkBody struct {
	Hours          int  `json:"hours,omitempty"`
	UntilPrintDone bool `json:"until_print_done,omitempty"`
}

type webhookBody struct {
	URL    string `json:"url"`
	Events []int  `json:"events,omitempty"`
}

// appRoutes adds the AppControl routes to the control API.
func appRoutes(mux *http.ServeMux, c Control) {
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		list, err := c.Status(r.Context(), r.URL.Query().Get("name"))
		reply(w, list, err)
	})
	mux.HandleFunc("POST /v1/printers/{name}/livelink", func(w http.ResponseWriter, r *http.Request) {
		var b liveLinkBody
		if !decodeBody(w, r, &b) {
			return
		}
		l, err := c.LiveLink(r.Context(), r.PathValue("name"), appapi.LiveLinkRequest{Hours: b.Hours, UntilPrintDone: b.UntilPrintDone})
		reply(w, l, err)
	})
	mux.HandleFunc("POST /v1/printers/{name}/gadget", func(w http.ResponseWriter, r *http.Request) {
		g, err := c.Gadget(r.Context(), r.PathValue("name"))
		reply(w, g, err)
	})
	mux.HandleFunc("PUT /v1/printers/{name}/webhook", func(w http.ResponseWriter, r *http.Request) {
		var b webhookBody
		if !decodeBody(w, r, &b) {
			return
		}
		ev := make([]appapi.EventType, 0, len(b.Events))
		for _, e := range b.Events {
			ev = append(ev, appapi.EventType(e))
		}
		info, err := c.SetWebhook(r.Context(), r.PathValue("name"), b.URL, ev)
		reply(w, info, err)
	})
	mux.HandleFunc("DELETE /v1/printers/{name}/webhook", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, c.DeleteWebhook(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/printers/{name}/webhook/test", func(w http.ResponseWriter, r *http.Request) {
		t, err := c.TestWebhook(r.Context(), r.PathValue("name"))
		reply(w, t, err)
	})
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		reply(w, nil, fmt.Errorf("%w: %v", ErrInvalid, err))
		return false
	}
	return true
}

// Status implements AppControl.
func (c *ControlClient) Status(ctx context.Context, name string) ([]PrinterStatus, error) {
	var out []PrinterStatus
	path := "/v1/status"
	if name != "" {
		path += "?name=" + url.QueryEscape(name)
	}
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// LiveLink implements AppControl.
func (c *ControlClient) LiveLink(ctx context.Context, name string, req appapi.LiveLinkRequest) (*appapi.LiveLink, error) {
	var out appapi.LiveLink
	err := c.do(ctx, http.MethodPost, "/v1/printers/"+url.PathEscape(name)+"/livelink",
		liveLinkBody{Hours: req.Hours, UntilPrintDone: req.UntilPrintDone}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Gadget implements AppControl.
func (c *ControlClient) Gadget(ctx context.Context, name string) (*appapi.GadgetStatus, error) {
	var out appapi.GadgetStatus
	if err := c.do(ctx, http.MethodPost, "/v1/printers/"+url.PathEscape(name)+"/gadget", struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetWebhook implements AppControl.
func (c *ControlClient) SetWebhook(ctx context.Context, name, webhookURL string, events []appapi.EventType) (WebhookInfo, error) {
	b := webhookBody{URL: webhookURL}
	for _, e := range events {
		b.Events = append(b.Events, int(e))
	}
	var out WebhookInfo
	return out, c.do(ctx, http.MethodPut, "/v1/printers/"+url.PathEscape(name)+"/webhook", b, &out)
}

// DeleteWebhook implements AppControl.
func (c *ControlClient) DeleteWebhook(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/printers/"+url.PathEscape(name)+"/webhook", nil, nil)
}

// TestWebhook implements AppControl.
func (c *ControlClient) TestWebhook(ctx context.Context, name string) (*appapi.WebhookTest, error) {
	var out appapi.WebhookTest
	if err := c.do(ctx, http.MethodPost, "/v1/printers/"+url.PathEscape(name)+"/webhook/test", struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

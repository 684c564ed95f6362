package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/internal/oe"
)

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
func (p *Printers) Status(ctx context.Context, name string) ([]control.PrinterStatus, error) {
	if p.API == nil {
		return nil, errNoAPI
	}
	return p.status(ctx, name, true)
}

// StatusNow is Status without asking OctoEverywhere: what the daemon's health trackers know now, and unknown for
// a printer that has none. The admin page shows it at every load, which must not cost an Info call per printer.
func (p *Printers) StatusNow(ctx context.Context, name string) ([]control.PrinterStatus, error) {
	return p.status(ctx, name, false)
}

// status reports every printer (name == "") or one; fresh checks each one first.
func (p *Printers) status(ctx context.Context, name string, fresh bool) ([]control.PrinterStatus, error) {
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
	out := make([]control.PrinterStatus, len(recs), len(recs)+len(damaged))
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
		out = append(out, control.PrinterStatus{Name: d.Name, State: StateDamaged, Action: d.Error()})
	}
	return out, nil
}

func statusOf(r credstore.Record, s health.Snapshot, daemon bool) control.PrinterStatus {
	ps := control.PrinterStatus{Name: r.Name, PrinterName: r.PrinterName, State: s.State, LocalIP: r.LastKnownLocalIP,
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
func (p *Printers) SetWebhook(ctx context.Context, name, webhookURL string, events []appapi.EventType) (control.WebhookInfo, error) {
	r, err := p.record(name)
	if err != nil {
		return control.WebhookInfo{}, err
	}
	if err := p.API.SetWebhook(ctx, r.AppAPIToken, webhookURL, events); err != nil {
		return control.WebhookInfo{}, err
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
		return control.WebhookInfo{}, fmt.Errorf("OctoEverywhere set the webhook, but oeproxy could not record it (it will not be renewed): %w", err)
	}
	info := control.WebhookInfo{Name: name, Events: ev, SetAt: now, ExpiresAt: now.Add(health.WebhookLifetime)}
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

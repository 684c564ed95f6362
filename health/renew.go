package health

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/credstore"
)

// Webhook renewal timing.
const (
	// WebhookLifetime is how long OctoEverywhere keeps calling a webhook after the last successful Set.
	WebhookLifetime = 180 * 24 * time.Hour
	// webhookRenewAfter is the age at which the daemon sets a webhook again, a month before it would lapse.
	webhookRenewAfter = 150 * 24 * time.Hour
	// defaultRenewRetry is the least time between two renewal attempts after one failed.
	defaultRenewRetry = time.Hour
)

// RenewOptions configure one printer's Renewer.
type RenewOptions struct {
	// Name is the printer's record name; the webhook is read from Store at each look, so a webhook set or
	// deleted through the control socket is seen at the next one.
	Name  string
	API   *appapi.Client
	Store *credstore.Store
	// Logger gets a line per renewal and per failed attempt, never the webhook URL (it may hold a secret).
	// Default zap.NewNop().
	Logger *zap.Logger
	// Interval is the time between two looks at the webhook's age (default 60 s, as the health checks).
	Interval time.Duration
	// Retry is the least time between two renewal attempts (default 1 h).
	Retry time.Duration
	// Now is the clock of the webhook's age (tests inject one). Default time.Now.
	Now func() time.Time
}

// Renewer sets a printer's webhook again before OctoEverywhere lets it lapse (after 150 days, a month before the 180). It is apart
// from Health because it depends on the stored record only: a webhook call that hangs must not hold up the
// state that the gate uses.
type Renewer struct {
	o   RenewOptions
	log *zap.Logger

	lookMu sync.Mutex // one look at a time

	mu         sync.Mutex
	tried      time.Time
	lastFailed bool
}

// NewRenewer returns a Renewer; nothing runs until Run.
func NewRenewer(o RenewOptions) *Renewer {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Interval <= 0 {
		o.Interval = defaultInterval
	}
	if o.Retry <= 0 {
		o.Retry = defaultRenewRetry
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Renewer{o: o, log: o.Logger.With(zap.String("printer", o.Name))}
}

// Run looks at once, then every Interval, until ctx ends.
func (r *Renewer) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		r.renew(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// failed reports whether the last renewal attempt failed.
func (r *Renewer) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastFailed
}

// renew sets the webhook again when it is older than webhookRenewAfter; a failure is logged as a warning with
// the date it lapses, and retried after Retry.
func (r *Renewer) renew(ctx context.Context) {
	r.lookMu.Lock()
	defer r.lookMu.Unlock()
	if ctx.Err() != nil || r.o.API == nil {
		return
	}
	rec, err := r.o.Store.Get(r.o.Name)
	if err != nil {
		r.log.Debug("webhook renewal skipped: the printer is not in the store", zap.Error(err))
		return
	}
	if rec.WebhookURL == "" {
		return
	}
	now := r.o.Now()
	if now.Sub(rec.WebhookSetAt) < webhookRenewAfter {
		return
	}
	r.mu.Lock()
	due := r.tried.IsZero() || now.Sub(r.tried) >= r.o.Retry
	if due {
		r.tried = now
	}
	r.mu.Unlock()
	if !due {
		return
	}
	events := make([]appapi.EventType, 0, len(rec.WebhookEvents))
	for _, e := range rec.WebhookEvents {
		events = append(events, appapi.EventType(e))
	}
	expires := rec.WebhookSetAt.Add(WebhookLifetime)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = r.o.API.SetWebhook(cctx, rec.AppAPIToken, rec.WebhookURL, events)
	cancel()
	if err == nil {
		err = r.o.Store.Update(r.o.Name, func(cur *credstore.Record) error {
			if cur.WebhookURL == rec.WebhookURL { // not replaced or deleted meanwhile
				cur.WebhookSetAt = now
			}
			return nil
		})
	}
	r.mu.Lock()
	r.lastFailed = err != nil
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("webhook renewal failed: OctoEverywhere stops calling the webhook when it lapses; oeproxy will try again",
			zap.Time("lapses_at", expires), zap.Duration("retry_in", r.o.Retry), zap.Error(err))
		return
	}
	r.log.Info("webhook renewed", zap.Time("next_renewal", now.Add(webhookRenewAfter)))
}

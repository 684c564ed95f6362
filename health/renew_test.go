package health

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/internal/simtest"
	"github.com/oeproxy/oeproxy/internal/testutil"
	"github.com/oeproxy/oeproxy/oesim"
)

func newTestRenewer(e *simtest.Env, name string, clock *testutil.Clock) (*Renewer, *observer.ObservedLogs) {
	log, logs := testutil.Observed()
	return NewRenewer(RenewOptions{Name: name, API: e.API, Store: e.Store, Logger: log, Now: clock.Now}), logs
}

// TestRenewerRenew: a webhook set 150 days ago is set again with the same URL and events, and its date
// recorded; a failed renewal warns, and is retried only after Retry.
func TestRenewerRenew(t *testing.T) {
	e := simtest.New(t, oesim.Options{})
	clock := testutil.NewClock()
	conn, _ := e.Add(t, "mk4", nil)
	const hook = "https://hooks.example.com/oe?key=webhook-secret"
	setAt := clock.Now().Add(-149 * 24 * time.Hour)
	if err := e.Store.Update("mk4", func(r *credstore.Record) error {
		r.WebhookURL, r.WebhookEvents, r.WebhookSetAt = hook, []int{2, 3}, setAt
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rn, logs := newTestRenewer(e, "mk4", clock)
	rn.renew(context.Background())
	if u, _, _ := conn.Webhook(); u != "" {
		t.Fatal("renewed a webhook younger than 150 days")
	}
	clock.Add(2 * 24 * time.Hour)
	rn.renew(context.Background())
	u, filter, _ := conn.Webhook()
	if u != hook || len(filter) != 2 || filter[0] != 2 || filter[1] != 3 {
		t.Fatalf("sim webhook %q %v after renewal", u, filter)
	}
	rec, _ := e.Store.Get("mk4")
	if !rec.WebhookSetAt.Equal(clock.Now()) {
		t.Errorf("recorded set time %v, want %v", rec.WebhookSetAt, clock.Now())
	}
	if logs.FilterMessage("webhook renewed").Len() != 1 {
		t.Errorf("no renewal log line:\n%s", testutil.LogText(logs))
	}

	// Failure: OctoEverywhere refuses (the connection was revoked).
	clock.Add(151 * 24 * time.Hour)
	conn.Revoke()
	rn.renew(context.Background())
	rn.renew(context.Background()) // within Retry: not tried again
	warns := logs.FilterMessageSnippet("webhook renewal failed")
	if warns.Len() != 1 {
		t.Fatalf("%d renewal warnings, want 1:\n%s", warns.Len(), testutil.LogText(logs))
	}
	if !rn.failed() {
		t.Error("the renewer does not say the renewal failed")
	}
	clock.Add(defaultRenewRetry)
	rn.renew(context.Background())
	if n := logs.FilterMessageSnippet("webhook renewal failed").Len(); n != 2 {
		t.Errorf("%d renewal warnings after Retry, want 2", n)
	}
	if rec2, _ := e.Store.Get("mk4"); !rec2.WebhookSetAt.Equal(rec.WebhookSetAt) {
		t.Error("a failed renewal changed the recorded date")
	}
	text := testutil.LogText(logs)
	if strings.Contains(text, "webhook-secret") {
		t.Error("the webhook URL (it may hold a secret) reached the log")
	}
	e.AssertNoSecrets(t, text)
}

// TestRenewerRun: Run looks at once (a due webhook is renewed without waiting an Interval), and stops with its
// context.
func TestRenewerRun(t *testing.T) {
	e := simtest.New(t, oesim.Options{})
	clock := testutil.NewClock()
	conn, _ := e.Add(t, "mk4", nil)
	const hook = "https://hooks.example.com/oe"
	if err := e.Store.Update("mk4", func(r *credstore.Record) error {
		r.WebhookURL, r.WebhookSetAt = hook, clock.Now().Add(-webhookRenewAfter)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	log, _ := testutil.Observed()
	rn := NewRenewer(RenewOptions{Name: "mk4", API: e.API, Store: e.Store, Logger: log, Now: clock.Now, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rn.Run(ctx) }()
	testutil.WaitFor(t, "the renewal at start", func() bool { u, _, _ := conn.Webhook(); return u == hook })
	cancel()
	<-done
}

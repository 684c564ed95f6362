package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/control/controltest"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/oesim"
)

// webhookReceiver is an https receiver the sim trusts; it counts calls.
func webhookReceiver(t *testing.T, status int) (*httptest.Server, func() int) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestAppControl runs every App API command against oesim, through the store-backed Printers directly (no daemon)
// and through the control socket, and checks that no answer or error carries a secret.
func TestAppControl(t *testing.T) {
	for _, mode := range []string{"direct", "socket"} {
		t.Run(mode, func(t *testing.T) {
			recv, calls := webhookReceiver(t, http.StatusOK)
			e := newTestEnv(t, oesim.Options{WebhookClient: recv.Client(),
				Printers: []oesim.PrinterOptions{{Name: "Prusa MK4", Kind: oesim.KindOctoPrint, LocalIP: "192.168.1.50"}}})
			conn, _ := e.Add(t, "mk4", nil)
			p := &Printers{Store: e.Store, API: e.API, RelayDomain: e.Sim.Domain}
			var ctl control.Control = p
			if mode == "socket" {
				ctl = controltest.Serve(t, p)
			}
			ctx := context.Background()
			var seen []any // every answer and error, searched for secrets at the end

			st, err := ctl.Status(ctx, "")
			seen = append(seen, st, err)
			if err != nil || len(st) != 1 {
				t.Fatalf("status: %v %v", st, err)
			}
			s := st[0]
			if s.Name != "mk4" || s.State != health.StateOnline || !s.Online || s.LocalIP != "192.168.1.50" || s.PrinterName != "Prusa MK4" ||
				s.Limits == nil || s.Limits.MaxUploadFileSizeBytes != 500<<20 || s.CheckedAt == nil || s.Daemon || s.LastError != nil {
				t.Errorf("status %+v", s)
			}
			if _, err := ctl.Status(ctx, "nope"); !errors.Is(err, control.ErrNotFound) && !errors.Is(err, credstore.ErrNotFound) {
				t.Errorf("status of an unknown printer: %v", err)
			}

			l, err := ctl.LiveLink(ctx, "mk4", appapi.LiveLinkRequest{Hours: 48})
			seen = append(seen, l, err)
			if err != nil || !strings.HasPrefix(l.URL, "https://octoeverywhere.com/live/") || l.ShortURL == "" {
				t.Fatalf("livelink: %+v %v", l, err)
			}
			if links := conn.LiveLinks(); len(links) != 1 || links[0].ExpirationHours != 48 {
				t.Errorf("sim links %+v", links)
			}
			_, err = ctl.LiveLink(ctx, "mk4", appapi.LiveLinkRequest{UntilPrintDone: true})
			seen = append(seen, err)
			if !errors.Is(err, appapi.ErrNoActivePrint613) || !strings.Contains(err.Error(), "613") {
				t.Errorf("livelink until done without a print: %v", err)
			}
			conn.Printer().SetPrinting(true)
			if l, err := ctl.LiveLink(ctx, "mk4", appapi.LiveLinkRequest{UntilPrintDone: true}); err != nil || l.URL == "" {
				t.Errorf("livelink until done while printing: %v", err)
			}

			conn.SetGadget(oesim.GadgetStatus{State: 3, Status: "Looking Good", StatusColor: "y", Rating: 5})
			g, err := ctl.Gadget(ctx, "mk4")
			seen = append(seen, g, err)
			if err != nil || g.State != appapi.GadgetActive || g.Status != "Looking Good" || g.StatusColor != appapi.ColorYellow || g.Rating != 5 {
				t.Fatalf("gadget: %+v %v", g, err)
			}
			_, err = ctl.Gadget(ctx, "mk4")
			if !errors.Is(err, appapi.ErrRateLimited) {
				t.Errorf("second gadget call within 10 s: %v", err)
			}

			hook := recv.URL + "/oe?key=webhook-secret"
			info, err := ctl.SetWebhook(ctx, "mk4", hook, []appapi.EventType{2, 3, 2})
			seen = append(seen, info, err)
			if err != nil || info.Host != strings.TrimPrefix(recv.URL, "https://") || len(info.Events) != 2 ||
				!info.ExpiresAt.Equal(info.SetAt.Add(health.WebhookLifetime)) {
				t.Fatalf("set webhook: %+v %v", info, err)
			}
			if u, f, _ := conn.Webhook(); u != hook || len(f) != 2 {
				t.Errorf("sim webhook %q %v", u, f)
			}
			rec, _ := e.Store.Get("mk4")
			if rec.WebhookURL != hook || len(rec.WebhookEvents) != 2 || !rec.WebhookSetAt.Equal(info.SetAt) {
				t.Errorf("record webhook %v %v", rec.WebhookEvents, rec.WebhookSetAt)
			}
			if st, _ := ctl.Status(ctx, "mk4"); st[0].WebhookSetAt == nil || st[0].WebhookExpiresAt == nil {
				t.Errorf("status lacks the webhook dates: %+v", st[0])
			}
			if _, err := ctl.SetWebhook(ctx, "mk4", "http://insecure.example.com/", nil); !errors.Is(err, appapi.ErrInvalidArgument) {
				t.Errorf("non-https webhook: %v", err)
			}

			tr, err := ctl.TestWebhook(ctx, "mk4")
			seen = append(seen, tr, err)
			if err != nil || tr.StatusCode != 200 || calls() != 1 {
				t.Errorf("test webhook: %+v %v (receiver called %d times)", tr, err, calls())
			}

			if err := ctl.DeleteWebhook(ctx, "mk4"); err != nil {
				t.Fatal(err)
			}
			if u, _, _ := conn.Webhook(); u != "" {
				t.Error("the sim still has the webhook")
			}
			if rec, _ := e.Store.Get("mk4"); rec.WebhookURL != "" || !rec.WebhookSetAt.IsZero() {
				t.Error("the record still has the webhook")
			}

			conn.Revoke()
			st, err = ctl.Status(ctx, "mk4")
			seen = append(seen, st, err)
			if err != nil || st[0].State != health.StateNeedsRelink || st[0].LastError == nil || st[0].LastError.Code != 604 ||
				!strings.Contains(st[0].Action, "oeproxy remove mk4 && oeproxy connect --name mk4") {
				t.Errorf("status after revoke: %+v %v", st, err)
			}
			_, err = ctl.LiveLink(ctx, "mk4", appapi.LiveLinkRequest{})
			seen = append(seen, err)
			if !errors.Is(err, appapi.ErrRevoked604) {
				t.Errorf("livelink after revoke: %v", err)
			}

			var texts []string
			for _, v := range seen {
				if err, ok := v.(error); ok && err != nil {
					texts = append(texts, err.Error())
					continue
				}
				b, _ := json.Marshal(v)
				texts = append(texts, string(b))
			}
			e.AssertNoSecrets(t, texts...)
			for _, text := range texts {
				if strings.Contains(text, "webhook-secret") {
					t.Errorf("the webhook URL leaked: %s", text)
				}
			}
		})
	}
}

// TestAppControlNoAPI: without an App API client, the commands fail with a clear error rather than panic.
func TestAppControlNoAPI(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	e.Add(t, "mk4", nil)
	p := &Printers{Store: e.Store}
	if _, err := p.Status(context.Background(), ""); !errors.Is(err, errNoAPI) {
		t.Errorf("status: %v", err)
	}
	if _, err := p.Gadget(context.Background(), "mk4"); !errors.Is(err, errNoAPI) {
		t.Errorf("gadget: %v", err)
	}
}

// TestPrinterStatusJSON pins the documented keys of `oeproxy status --json`.
func TestPrinterStatusJSON(t *testing.T) {
	b, err := json.Marshal(control.PrinterStatus{Limits: &appapi.Limits{}, LastError: &health.StatusError{}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "printer_name", "state", "state_since", "online", "local_ip", "last_connect",
		"last_disconnect", "limits", "last_error", "checked_at", "webhook_set_at", "webhook_expires_at", "daemon",
		"route", "active_route", "last_proof"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %s", k, b)
		}
	}
	for _, k := range []string{"code", "meaning", "source", "at"} {
		if _, ok := m["last_error"].(map[string]any)[k]; !ok {
			t.Errorf("last_error key %q missing", k)
		}
	}
	for _, k := range []string{"max_download_file_size_bytes", "max_upload_file_size_bytes", "max_single_webcam_stream_length_seconds"} {
		if _, ok := m["limits"].(map[string]any)[k]; !ok {
			t.Errorf("limits key %q missing", k)
		}
	}
}

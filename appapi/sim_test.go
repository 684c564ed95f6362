package appapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/oesim"
)

// startSim starts oesim and returns it with an appapi client that reaches it the way the daemon will: the real
// https://octoeverywhere.com base URL, dialled at sim.Addr through oenet's connect-to transport.
func startSim(t *testing.T, o oesim.Options) (*oesim.Sim, *appapi.Client) {
	t.Helper()
	if o.GadgetMinInterval == 0 {
		o.GadgetMinInterval = -1 // the client enforces the interval; tests of the sim's own 429 set it
	}
	sim, err := oesim.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	tr := oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	c, err := appapi.New(appapi.Options{BaseURL: sim.APIURL, Transport: tr, RetryBase: time.Millisecond, MinGadgetInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

// webhookReceiver is an https receiver the sim trusts; it answers status and records each payload.
func webhookReceiver(t *testing.T, status int) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.RawQuery+" "+string(b))
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
}

func TestSimEveryEndpoint(t *testing.T) {
	for _, bare := range []bool{false, true} {
		name := map[bool]string{false: "envelope", true: "bare"}[bare]
		t.Run(name, func(t *testing.T) {
			recv, received := webhookReceiver(t, http.StatusOK)
			sim, c := startSim(t, oesim.Options{BareAPI: bare, WebhookClient: recv.Client(), Printers: []oesim.PrinterOptions{
				{Name: "Prusa MK4", Kind: oesim.KindOctoPrint, LocalIP: "192.168.1.50"}}})
			p := sim.Printers()[0]
			conn := sim.Connect(p)
			token := conn.Credentials().AppAPIToken
			ctx := context.Background()

			in, err := c.Info(ctx, token)
			if err != nil {
				t.Fatal(err)
			}
			if in.PrinterName != "Prusa MK4" || in.PrinterLocalIP != "192.168.1.50" || !in.IsOnline ||
				in.Limits.MaxUploadFileSizeBytes != 500<<20 || in.Limits.MaxSingleWebcamStreamLengthSeconds != 120 ||
				in.Limits.WebcamStreamTimeWindow != nil || in.UserFacingPrinterURL == "" {
				t.Errorf("Info = %+v", in)
			}
			conn.SetLimits(oesim.Limits{MaxUploadFileSizeBytes: 1234, MaxSingleWebcamStreamLength: 30 * time.Second})
			p.SetOnline(false)
			if in, err = c.Info(ctx, token); err != nil || in.IsOnline || in.Limits.MaxUploadFileSizeBytes != 1234 ||
				in.Limits.MaxSingleWebcamStreamLengthSeconds != 30 || in.LastDisconnect.IsZero() {
				t.Errorf("offline Info = %+v, %v", in, err)
			}
			p.SetOnline(true)

			l, err := c.CreateLiveLink(ctx, token, appapi.LiveLinkRequest{Hours: 2})
			if err != nil || l.LiveID == "" || !strings.HasSuffix(l.URL, "/live/"+l.LiveID) || !strings.HasSuffix(l.ShortURL, "/l/"+l.LiveID) {
				t.Errorf("CreateLiveLink = %+v, %v", l, err)
			}
			if links := conn.LiveLinks(); len(links) != 1 || links[0].ExpirationHours != 2 {
				t.Errorf("sim recorded %+v", links)
			}
			_, err = c.CreateLiveLink(ctx, token, appapi.LiveLinkRequest{UntilPrintDone: true})
			if !errors.Is(err, appapi.ErrNoActivePrint613) || !strings.Contains(err.Error(), "--hours") {
				t.Errorf("until print done without a print: %v", err)
			}
			p.SetPrinting(true)
			if _, err := c.CreateLiveLink(ctx, token, appapi.LiveLinkRequest{UntilPrintDone: true}); err != nil {
				t.Errorf("until print done while printing: %v", err)
			}

			conn.SetGadget(oesim.GadgetStatus{State: 3, Status: "Looking Good", StatusColor: "y", Rating: 5})
			g, err := c.GadgetStatus(ctx, conn.Credentials().ID, token)
			if err != nil || g.State != appapi.GadgetActive || g.StatusColor != appapi.ColorYellow || g.Rating != 5 || g.Status != "Looking Good" {
				t.Errorf("GadgetStatus = %+v, %v", g, err)
			}

			hook := recv.URL + "/hook?corr=abc"
			if err := c.SetWebhook(ctx, token, hook, []appapi.EventType{appapi.EventPrintComplete}); err != nil {
				t.Fatal(err)
			}
			if u, filter, setAt := conn.Webhook(); u != hook || len(filter) != 1 || filter[0] != 2 || setAt.IsZero() {
				t.Errorf("sim webhook = %q %v %v", u, filter, setAt)
			}
			res, err := c.TestWebhook(ctx, token)
			if err != nil || res.StatusCode != 200 || !res.OK() {
				t.Errorf("TestWebhook = %+v, %v", res, err)
			}
			if got := received(); len(got) != 1 || !strings.HasPrefix(got[0], "corr=abc ") || !strings.Contains(got[0], `"EventType":16`) {
				t.Errorf("receiver got %q", got)
			}
			if err := c.DeleteWebhook(ctx, token); err != nil {
				t.Fatal(err)
			}
			if u, _, _ := conn.Webhook(); u != "" {
				t.Errorf("webhook still set: %q", u)
			}
			// With no webhook the sim answers 400.
			if _, err := c.TestWebhook(ctx, token); !errors.Is(err, appapi.ErrBadRequest) {
				t.Errorf("TestWebhook without a webhook: %v", err)
			}
		})
	}
}

func TestSimWebhookReceiverFailure(t *testing.T) {
	recv, _ := webhookReceiver(t, http.StatusInternalServerError)
	sim, c := startSim(t, oesim.Options{WebhookClient: recv.Client()})
	conn := sim.Connect(sim.Printers()[0])
	token := conn.Credentials().AppAPIToken
	if err := c.SetWebhook(context.Background(), token, recv.URL, nil); err != nil {
		t.Fatal(err)
	}
	res, err := c.TestWebhook(context.Background(), token)
	if err != nil || res.StatusCode != 500 || res.OK() {
		t.Fatalf("TestWebhook = %+v, %v", res, err)
	}
}

// TestSimErrors drives each error state of the sim through every endpoint it applies to.
func TestSimErrors(t *testing.T) {
	type call struct {
		name string
		run  func(c *appapi.Client, token string) error
	}
	ctx := context.Background()
	info := call{"info", func(c *appapi.Client, tok string) error { _, err := c.Info(ctx, tok); return err }}
	live := call{"live", func(c *appapi.Client, tok string) error {
		_, err := c.CreateLiveLink(ctx, tok, appapi.LiveLinkRequest{Hours: 1})
		return err
	}}
	gadget := call{"gadget", func(c *appapi.Client, tok string) error { _, err := c.GadgetStatus(ctx, "", tok); return err }}
	set := call{"set", func(c *appapi.Client, tok string) error {
		return c.SetWebhook(ctx, tok, "https://hook.example/", nil)
	}}
	del := call{"delete", func(c *appapi.Client, tok string) error { return c.DeleteWebhook(ctx, tok) }}
	test := call{"test", func(c *appapi.Client, tok string) error { _, err := c.TestWebhook(ctx, tok); return err }}
	all := []call{info, live, gadget, set, del, test}

	cases := []struct {
		name  string
		opts  oesim.Options
		setup func(sim *oesim.Sim, conn *oesim.Connection) (token string)
		calls []call
		want  error
		temp  bool
	}{
		{name: "603 deleted", calls: all, want: appapi.ErrNotFound603,
			setup: func(_ *oesim.Sim, c *oesim.Connection) string { c.Delete(); return c.Credentials().AppAPIToken }},
		{name: "603 unknown token", calls: all, want: appapi.ErrNotFound603,
			setup: func(*oesim.Sim, *oesim.Connection) string { return "NoSuchToken" }},
		{name: "604 revoked", calls: all, want: appapi.ErrRevoked604,
			setup: func(_ *oesim.Sim, c *oesim.Connection) string { c.Revoke(); return c.Credentials().AppAPIToken }},
		{name: "605 no supporter", calls: []call{info}, want: appapi.ErrNoSupporter605, temp: true,
			setup: func(_ *oesim.Sim, c *oesim.Connection) string {
				c.SetSupporter(false)
				return c.Credentials().AppAPIToken
			}},
		{name: "601 offline info", opts: oesim.Options{InfoOfflineError: true}, calls: []call{info}, want: appapi.ErrPrinterOffline601, temp: true,
			setup: func(_ *oesim.Sim, c *oesim.Connection) string {
				c.Printer().SetOnline(false)
				return c.Credentials().AppAPIToken
			}},
		{name: "601 offline gadget", calls: []call{gadget}, want: appapi.ErrPrinterOffline601, temp: true,
			setup: func(_ *oesim.Sim, c *oesim.Connection) string {
				c.Printer().SetOnline(false)
				return c.Credentials().AppAPIToken
			}},
	}
	for _, tc := range cases {
		for _, bare := range []bool{false, true} {
			opts := tc.opts
			opts.BareAPI = bare
			sim, c := startSim(t, opts)
			token := tc.setup(sim, sim.Connect(sim.Printers()[0]))
			for _, cl := range tc.calls {
				err := cl.run(c, token)
				var oe *appapi.OEError
				if !errors.Is(err, tc.want) || !errors.As(err, &oe) || oe.Temporary != tc.temp || oe.Detail == "" {
					t.Errorf("%s bare=%v %s: err %v (%+v)", tc.name, bare, cl.name, err, oe)
				}
				if strings.Contains(err.Error(), token) {
					t.Errorf("%s: error shows the token", tc.name)
				}
			}
			_ = sim.Close()
		}
	}
}

func TestSimMissingTokenIs400(t *testing.T) {
	sim, _ := startSim(t, oesim.Options{})
	// The client refuses an empty token itself, so ask the sim directly to check that the two agree.
	resp, err := sim.HTTPClient().Get(sim.APIURL + "/api/appconnection/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("sim answered %d without a token", resp.StatusCode)
	}
}

func TestSimGadgetRateLimit(t *testing.T) {
	sim, err := oesim.Start(context.Background(), oesim.Options{GadgetMinInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	tr := oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	defer tr.CloseIdleConnections()
	conn := sim.Connect(sim.Printers()[0])
	token := conn.Credentials().AppAPIToken
	ctx := context.Background()

	// The client's own rule holds the second call back without sending it.
	c, _ := appapi.New(appapi.Options{BaseURL: sim.APIURL, Transport: tr})
	if _, err := c.GadgetStatus(ctx, conn.Credentials().ID, token); err != nil {
		t.Fatal(err)
	}
	var rl *appapi.RateLimitError
	if _, err := c.GadgetStatus(ctx, conn.Credentials().ID, token); !errors.As(err, &rl) || rl.Server {
		t.Fatalf("client-side limit: %v", err)
	}
	// A second client (another process) is refused by the sim itself: 429, reported as such.
	c2, _ := appapi.New(appapi.Options{BaseURL: sim.APIURL, Transport: tr})
	if _, err := c2.GadgetStatus(ctx, conn.Credentials().ID, token); !errors.As(err, &rl) || !rl.Server {
		t.Fatalf("server-side limit: %v", err)
	}
}

package portalflow

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
)

// browse plays the browser: the portal (on the sim, through its client, which does not follow redirects)
// answers with a redirect to the loopback callback, fetched with a plain client.
func browse(t *testing.T, simClient *http.Client, portal string) (int, string) {
	t.Helper()
	resp, err := simClient.Get(portal)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || loc == "" {
		t.Fatalf("portal answered %s without a redirect", resp.Status)
	}
	if !strings.HasPrefix(loc, "http://127.0.0.1:") {
		t.Fatalf("portal redirected to %q, not to the loopback callback", strings.SplitN(loc, "?", 2)[0])
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err = (&http.Client{Transport: tr}).Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndToEndWithOESim(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, camel := range []bool{false, true} {
		name := "lowercase completion"
		if camel {
			name = "camelCase completion"
		}
		t.Run(name, func(t *testing.T) {
			sim, err := oesim.Start(ctx, oesim.Options{AutoApprove: true, CamelCaseCompletion: camel})
			if err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			simClient := sim.HTTPClient()
			defer simClient.CloseIdleConnections()

			for _, p := range sim.Printers() {
				// Discovery on the printer's LAN address: OctoPrint plugin or Moonraker database.
				tr := &http.Transport{}
				id, warn := DiscoverPrinterID(ctx, p.BackendURL, "", &http.Client{Transport: tr})
				tr.CloseIdleConnections()
				if warn != nil || id != p.ID {
					t.Fatalf("%s: discovered %q, %v; want %q", p.Name, id, warn, p.ID)
				}

				f, err := NewFlow(FlowOptions{PortalURL: sim.PortalURL, AppID: "devtest", RelayDomain: sim.Domain, PrinterID: id})
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				portal, err := f.Start(ctx)
				if err != nil {
					t.Fatal(err)
				}
				status, body := browse(t, simClient, portal)
				if status != 200 || !strings.Contains(body, "Connected — you can close this tab") {
					t.Fatalf("callback page: %d\n%s", status, body)
				}
				got, err := f.Wait(ctx)
				if err != nil {
					t.Fatal(err)
				}
				conn := sim.Connection(got.ID)
				if conn == nil {
					t.Fatalf("the sim knows no connection %q", got.ID)
				}
				cr := conn.Credentials()
				want := Completion{ID: cr.ID, URL: cr.URL, AppAPIToken: cr.AppAPIToken, BasicUser: cr.BasicUser,
					BasicPassword: cr.BasicPassword, BearerToken: cr.BearerToken, OctoPrintAPIKey: cr.OctoPrintAPIKey,
					PrinterName: p.Name, UserPrinterAccessURL: got.UserPrinterAccessURL, PrinterLastKnownLocalIP: got.PrinterLastKnownLocalIP}
				if got != want {
					t.Fatalf("completion differs from what the sim issued:\n got %#v\nwant %#v", got, want)
				}
				if conn.Printer().ID != p.ID || got.RelayHost() != cr.Host {
					t.Fatalf("connection for printer %q host %q, want %q %q", conn.Printer().ID, got.RelayHost(), p.ID, cr.Host)
				}
				for _, s := range []string{cr.AppAPIToken, cr.BasicUser, cr.BasicPassword, cr.BearerToken} {
					if strings.Contains(body, s) {
						t.Fatal("the callback page shows a secret")
					}
				}
				sessions := sim.PortalSessions()
				params := sessions[len(sessions)-1].Params
				pu, _ := url.Parse(portal)
				if params.Get("printerid") != p.ID || params.Get("returnurl") != pu.Query().Get("returnUrl") ||
					params.Get("octoprintapikeyappname") == "" || params.Get("appid") != "devtest" {
					t.Fatalf("the portal was asked for %v", params)
				}
				if p.Kind == oesim.KindOctoPrint && got.OctoPrintAPIKey == "" {
					t.Fatal("no OctoPrint API key for the OctoPrint printer")
				}
				f.Close()
			}
		})
	}
}

func TestEndToEndOutcomesWithOESim(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim, err := oesim.Start(ctx, oesim.Options{AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	simClient := sim.HTTPClient()
	defer simClient.CloseIdleConnections()

	run := func(o oesim.Outcome, noKey bool) (Completion, string, error) {
		sim.QueueOutcome(o)
		f, err := NewFlow(FlowOptions{PortalURL: sim.PortalURL, AppID: "devtest", RelayDomain: sim.Domain, NoOctoPrintKey: noKey})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		portal, err := f.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, body := browse(t, simClient, portal)
		c, err := f.Wait(ctx)
		return c, body, err
	}

	_, body, err := run(oesim.OutcomeFailure, false)
	if !errors.Is(err, ErrPortalDeclined) || !strings.Contains(err.Error(), "https://"+sim.Domain+"/appportal/v1/nosupporterperks?appid=devtest") {
		t.Fatalf("failure outcome: %v", err)
	}
	if !strings.Contains(body, "Supporter Perks") {
		t.Fatalf("declined page:\n%s", body)
	}

	c, _, err := run(oesim.OutcomeKeygenFail, false)
	if err != nil || c.OctoPrintAPIKey != "" || c.AppAPIToken == "" {
		t.Fatalf("keygen failure: %v, %v", c, err)
	}

	c, _, err = run(oesim.OutcomeApprove, true)
	sessions := sim.PortalSessions()
	if err != nil || c.OctoPrintAPIKey != "" || sessions[len(sessions)-1].Params.Has("octoprintapikeyappname") {
		t.Fatalf("--no-octoprint-key: %v, %v, %v", c, err, sessions[len(sessions)-1].Params)
	}

	// The paste fallback: no returnUrl, the portal ends on its own completion page, the user copies its address.
	start, err := StartURL(StartOptions{PortalURL: sim.PortalURL, AppID: "devtest"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := simClient.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "https://"+sim.Domain+"/appportal/v1/complete?") {
		t.Fatalf("no returnUrl: portal went to %q", strings.SplitN(loc, "?", 2)[0])
	}
	c, err = ParseCompletion("  '"+loc+"'\n", sim.Domain)
	if err != nil {
		t.Fatal(err)
	}
	cr := sim.Connection(c.ID).Credentials()
	if c.URL != cr.URL || c.AppAPIToken != cr.AppAPIToken || c.BasicPassword != cr.BasicPassword || c.BearerToken != cr.BearerToken {
		t.Fatal("pasted completion differs from what the sim issued")
	}
}

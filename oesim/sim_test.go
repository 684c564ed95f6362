package oesim

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAndHosts(t *testing.T) {
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ps := s.Printers()
	if len(ps) != 2 || ps[0].Kind != KindOctoPrint || ps[0].Name != "Prusa MK4" || ps[0].OctoPrint() == nil ||
		ps[1].Kind != KindMoonraker || ps[1].Name != "Voron 2.4" || ps[1].Moonraker() == nil || ps[1].FrontendURL == "" {
		t.Fatalf("default printers: %+v %+v", ps[0], ps[1])
	}
	for _, p := range ps {
		if len(p.ID) != 60 || strings.Trim(p.ID, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			t.Errorf("printer id %q is not 60 [A-Z0-9]", p.ID)
		}
	}
	if s.APIURL != "https://octoeverywhere.com" || s.PortalURL != "https://octoeverywhere.com/appportal/v1/" ||
		!strings.HasPrefix(s.Addr, "127.0.0.1:") || len(s.CACertPEM) == 0 {
		t.Errorf("sim %+v", s)
	}
	client := s.HTTPClient()
	for host, want := range map[string]int{
		"octoeverywhere.com":                 404, // the API origin, no such path
		"app-unknown.octoeverywhere.com":     603,
		"app-a.b.octoeverywhere.com":         421,
		"shared-abc.octoeverywhere.com":      421,
		"evil.example":                       421,
		"APP-UNKNOWN.OctoEverywhere.com:443": 603,
	} {
		req, _ := http.NewRequest(http.MethodGet, "https://octoeverywhere.com/nothing", nil)
		req.Host = host
		if resp, _ := do(t, client, req); resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

func TestCustomDomainAndContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{Domain: "OE.Test", Printers: []PrinterOptions{{Kind: KindGeneric, Handler: &testPrinter{name: "api"}}}})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Connect(nil)
	if cr := c.Credentials(); !strings.HasSuffix(cr.Host, ".oe.test") || cr.URL != "https://"+cr.Host {
		t.Fatalf("credentials %+v", cr)
	}
	if resp, _ := do(t, s.HTTPClient(), relayRequest(t, s, c, http.MethodGet, "/", nil, "basic")); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel() // closes the sim
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.HTTPClient().Get("https://oe.test/")
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sim still answers after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after the context ended: %v", err)
	}

	if _, err := Start(context.Background(), Options{Domain: "https://oe.test"}); err == nil {
		t.Error("a URL as Domain was accepted")
	}
	if _, err := Start(context.Background(), Options{Printers: []PrinterOptions{{Kind: KindGeneric}}}); err == nil {
		t.Error("a generic printer without a Handler was accepted")
	}
}

// A connection keeps the most recent requests, not all: a soak run's millions would grow the process for good.
func TestRecordedRequestsBounded(t *testing.T) {
	c := &Connection{}
	const n = 2*MaxRecorded + MaxRecorded/2
	for i := range n {
		c.record(&Request{Path: fmt.Sprint(i)})
	}
	got := c.Requests()
	if len(got) < MaxRecorded || len(got) >= 2*MaxRecorded {
		t.Fatalf("%d requests kept after %d, want between %d and %d", len(got), n, MaxRecorded, 2*MaxRecorded)
	}
	if last := got[len(got)-1].Path; last != fmt.Sprint(n-1) {
		t.Errorf("last kept request %s, want the latest %d", last, n-1)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].Path >= got[i].Path && len(got[i-1].Path) == len(got[i].Path) {
			t.Fatalf("requests out of order at %d: %s then %s", i, got[i-1].Path, got[i].Path)
		}
	}
}

package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/internal/testutil"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/route"
)

func TestEffectiveRoute(t *testing.T) {
	t.Parallel()
	withLAN := credstore.Record{LANURL: "http://192.168.1.5"}
	withIP := credstore.Record{LastKnownLocalIP: "192.168.1.6"}
	none := credstore.Record{}
	for _, tc := range []struct {
		rec      credstore.Record
		recRoute string
		cfg      string
		want     route.Mode
	}{
		{withLAN, "", "auto", route.ModeAuto},
		{withIP, "", "auto", route.ModeAuto},
		{withIP, "", "", route.ModeAuto},
		{none, "", "auto", route.ModeRelay}, // no LAN address: relay
		{none, "lan", "auto", route.ModeRelay},
		{withLAN, "", "relay", route.ModeRelay},
		{withLAN, "relay", "auto", route.ModeRelay}, // the printer's own route wins
		{withLAN, "lan", "relay", route.ModeLAN},
	} {
		tc.rec.Route = tc.recRoute
		if got := EffectiveRoute(tc.rec, tc.cfg); got != tc.want {
			t.Errorf("EffectiveRoute(lan %q ip %q route %q, config %q) = %s, want %s", tc.rec.LANURL, tc.rec.LastKnownLocalIP, tc.recRoute, tc.cfg, got, tc.want)
		}
	}
	if got := LANCandidates(withIP); strings.Join(got, " ") != "http://192.168.1.6 http://192.168.1.6:7125 http://192.168.1.6:5000" {
		t.Errorf("candidates %v", got)
	}
	if got := LANCandidates(withLAN); len(got) != 1 || got[0] != "http://192.168.1.5" {
		t.Errorf("a set LAN URL must be the only candidate: %v", got)
	}
}

// TestLANSetWhileServing: lan set through the control socket moves a served printer onto the LAN once the LAN
// host proved itself, and list shows it; lan clear puts it back on the relay.
func TestLANSetWhileServing(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, oesim.Options{Printers: []oesim.PrinterOptions{{Name: "Voron", Kind: oesim.KindMoonraker, LAN: true}}})
	voron := e.Sim.Printers()[0]
	e.Add(t, "voron", voron)
	d, _ := startTestDaemon(t, e, nil, nil, nil)
	ctl, err := control.Dial(context.Background(), d.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	list := func() credstore.PublicRecord {
		t.Helper()
		l, err := ctl.List(context.Background())
		if err != nil || len(l) != 1 {
			t.Fatalf("list: %v %v", l, err)
		}
		return l[0]
	}
	if p := list(); p.Route != "relay" || p.ActiveRoute != "relay" {
		t.Fatalf("without a LAN address: route %q active %q", p.Route, p.ActiveRoute)
	}
	pub, err := ctl.SetLAN(context.Background(), "voron", control.LANRequest{URL: voron.LANURL})
	if err != nil {
		t.Fatal(err)
	}
	if pub.Route != "auto" || pub.LANURL != voron.LANURL {
		t.Fatalf("after lan set: %+v", pub)
	}
	deadline := time.Now().Add(10 * time.Second)
	for list().ActiveRoute != "lan" {
		if time.Now().After(deadline) {
			t.Fatalf("the printer never went on the LAN: %+v", list())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p := list(); p.LastProof == nil {
		t.Fatal("no last_proof in the listing")
	}
	sts, err := ctl.Status(context.Background(), "voron")
	if err != nil || len(sts) != 1 {
		t.Fatalf("status: %v %v", sts, err)
	}
	if st := sts[0]; st.Route != "auto" || st.ActiveRoute != "lan" || st.LastProof == nil || !strings.Contains(st.RouteReason, "nonce") {
		t.Fatalf("status route %q active %q proof %v reason %q", st.Route, st.ActiveRoute, st.LastProof, st.RouteReason)
	}
	resp, err := http.Get("http://" + d.PrinterAddr("voron") + "/server/info")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var onLAN bool
	for _, r := range voron.LANRequests() {
		onLAN = onLAN || r.Path == "/server/info"
	}
	if resp.StatusCode != 200 || !onLAN {
		t.Fatalf("a request after the proof: %d, on the LAN %v", resp.StatusCode, onLAN)
	}
	fams, err := d.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += "," + l.GetName() + "=" + l.GetValue()
			}
			seen[f.GetName()+labels] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for _, k := range []string{
		"oeproxy_route_proofs_total,printer=voron,result=ok",
		"oeproxy_route_switches_total,printer=voron,to=lan",
		"oeproxy_route_active,printer=voron,route=lan",
	} {
		if seen[k] < 1 {
			t.Errorf("metric %s = %v, want at least 1", k, seen[k])
		}
	}
	if seen["oeproxy_route_bytes_total,direction=out,printer=voron,route=lan"] <= 0 {
		t.Error("no bytes counted on the LAN route")
	}
	if _, err := ctl.SetLAN(context.Background(), "voron", control.LANRequest{Clear: true}); err != nil {
		t.Fatal(err)
	}
	if p := list(); p.Route != "relay" || p.ActiveRoute != "relay" || p.LANURL != "" {
		t.Fatalf("after lan clear: %+v", p)
	}
	if _, err := ctl.SetLAN(context.Background(), "voron", control.LANRequest{URL: "ftp://nope"}); err == nil {
		t.Fatal("a bad LAN URL was accepted")
	}
}

// TestInfoCandidates: the Info API's local IP is tried when it moved since the portal's, and never when the user
// set an address.
func TestInfoCandidates(t *testing.T) {
	t.Parallel()
	h := &appapi.Info{PrinterLocalIP: "192.168.1.77"}
	moved := credstore.Record{LastKnownLocalIP: "192.168.1.5"}
	if got := infoCandidates(moved, h); len(got) != 3 || got[0] != "http://192.168.1.77" {
		t.Errorf("moved: %v", got)
	}
	if got := infoCandidates(credstore.Record{LastKnownLocalIP: "192.168.1.77"}, h); got != nil {
		t.Errorf("same address: %v", got)
	}
	if got := infoCandidates(credstore.Record{LANURL: "http://10.0.0.2"}, h); got != nil {
		t.Errorf("the user's address must win: %v", got)
	}
	if got := infoCandidates(moved, nil); got != nil {
		t.Errorf("no Info yet (or no health tracker): %v", got)
	}
}

// TestLANSetWithCompanion: a PrusaLink printer (its own HTTP asks for Digest, no printer id) goes on the LAN once
// the companion named by lan set --companion reports its printer id; lan clear forgets both addresses.
func TestLANSetWithCompanion(t *testing.T) {
	t.Parallel()
	prusaLink := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Digest realm="Printer API", nonce="0", qop="auth"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"api":"2.0.0","server":"2.1.2","text":"PrusaLink"}`)
	})
	e := newTestEnv(t, oesim.Options{Printers: []oesim.PrinterOptions{{Name: "Core One", Kind: oesim.KindGeneric, Handler: prusaLink, LAN: true, Companion: true}}})
	core := e.Sim.Printers()[0]
	e.Add(t, "core", core)
	if err := e.Store.Update("core", func(r *credstore.Record) error {
		r.PrinterID, r.Platform = core.ID, "prusalink"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	d, _ := startTestDaemon(t, e, nil, nil, nil)
	ctl, err := control.Dial(context.Background(), d.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if _, err := ctl.SetLAN(context.Background(), "core", control.LANRequest{URL: core.LANURL, Companion: "not a url:"}); !errors.Is(err, control.ErrInvalid) {
		t.Fatalf("a bad companion URL: %v, want control.ErrInvalid", err)
	}
	pub, err := ctl.SetLAN(context.Background(), "core", control.LANRequest{URL: core.LANURL, Companion: core.CompanionURL})
	if err != nil {
		t.Fatal(err)
	}
	if pub.CompanionURL != core.CompanionURL {
		t.Fatalf("companion_url %q, want %q", pub.CompanionURL, core.CompanionURL)
	}
	status := func() control.PrinterStatus {
		t.Helper()
		sts, err := ctl.Status(context.Background(), "core")
		if err != nil || len(sts) != 1 {
			t.Fatalf("status: %v %v", sts, err)
		}
		return sts[0]
	}
	deadline := time.Now().Add(10 * time.Second)
	for status().ActiveRoute != "lan" {
		if time.Now().After(deadline) {
			t.Fatalf("the printer never went on the LAN: %+v", status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := status(); !strings.Contains(st.RouteReason, "companion") {
		t.Fatalf("route reason %q does not name the companion", st.RouteReason)
	}
	// The client's own Digest answer now reaches the printer (the relay would have added the App Connection's).
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.PrinterAddr("core")+"/api/version", nil)
	req.Header.Set("Authorization", `Digest username="maker"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var onLAN bool
	for _, r := range core.LANRequests() {
		onLAN = onLAN || (r.Path == "/api/version" && r.Header.Get("Authorization") == `Digest username="maker"`)
	}
	if resp.StatusCode != 200 || !strings.Contains(string(body), "PrusaLink") || !onLAN {
		t.Fatalf("a request after the proof: %d %q, on the LAN with the client's Digest %v", resp.StatusCode, body, onLAN)
	}
	// Another network: its companion serves another printer, so the route goes back to the relay at the next
	// proof (lan set proves at once; the network watcher here is the machine's, which the sim cannot move).
	if err := core.SetLAN(oesim.LANImpostorOtherID); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.SetLAN(context.Background(), "core", control.LANRequest{Companion: core.CompanionURL}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for status().ActiveRoute != "relay" {
		if time.Now().After(deadline) {
			t.Fatalf("the printer stayed on the LAN on another network: %+v", status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := status(); !strings.Contains(st.RouteReason, "another printer") {
		t.Fatalf("route reason %q", st.RouteReason)
	}
	pub, err = ctl.SetLAN(context.Background(), "core", control.LANRequest{Clear: true})
	if err != nil || pub.LANURL != "" || pub.CompanionURL != "" {
		t.Fatalf("lan clear: %+v %v", pub, err)
	}
}

// TestRouteKeyReloads: the config key route applies on a reload (SIGHUP): a printer with a LAN address goes on
// the LAN when route becomes auto and back on the relay when it becomes relay, and the listing says so.
func TestRouteKeyReloads(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, oesim.Options{Printers: []oesim.PrinterOptions{{Name: "Voron", Kind: oesim.KindMoonraker, LAN: true}}})
	voron := e.Sim.Printers()[0]
	e.Add(t, "voron", voron)
	if err := e.Store.Update("voron", func(r *credstore.Record) error { r.LANURL = voron.LANURL; return nil }); err != nil {
		t.Fatal(err)
	}
	d, _ := startTestDaemon(t, e, func(c *config.Config) { c.Route = "relay" }, nil, nil)
	list := func() credstore.PublicRecord {
		t.Helper()
		l, err := d.Control().List(context.Background())
		if err != nil || len(l) != 1 {
			t.Fatalf("list: %v %v", l, err)
		}
		return l[0]
	}
	if p := list(); p.Route != "relay" || p.ActiveRoute != "relay" {
		t.Fatalf("with route relay: route %q active %q", p.Route, p.ActiveRoute)
	}
	next := d.cfg()
	next.Route = "auto"
	if rep := d.Reload(next, nil); !slices.Contains(rep.Applied, "route") {
		t.Fatalf("route not applied: %+v", rep)
	}
	testutil.WaitFor(t, "the printer on the LAN after the reload", func() bool { p := list(); return p.Route == "auto" && p.ActiveRoute == "lan" })
	next.Route = "relay"
	d.Reload(next, nil)
	if p := list(); p.Route != "relay" || p.ActiveRoute != "relay" {
		t.Fatalf("after route relay again: route %q active %q", p.Route, p.ActiveRoute)
	}
}

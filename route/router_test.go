package route

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// relayRT is the test's stand-in for proxy.RelayTransport: the connection's host and its Basic credential.
type relayRT struct {
	rt   http.RoundTripper
	cred oesim.Credentials
}

func (r relayRT) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = "https", r.cred.Host, r.cred.Host
	out.SetBasicAuth(r.cred.BasicUser, r.cred.BasicPassword)
	return r.rt.RoundTrip(out)
}

type rig struct {
	sim      *oesim.Sim
	mini     *oesim.Printer // OctoPrint kind, on the LAN
	voron    *oesim.Printer // Moonraker kind, on the LAN
	relayFor map[*oesim.Printer]http.RoundTripper
	lan      *http.Transport
}

func newRig(t *testing.T) *rig {
	t.Helper()
	s, err := oesim.Start(context.Background(), oesim.Options{Printers: []oesim.PrinterOptions{
		{Name: "Mini", Kind: oesim.KindOctoPrint, LAN: true},
		{Name: "Voron", Kind: oesim.KindMoonraker, LAN: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ps := s.Printers()
	r := &rig{sim: s, mini: ps[0], voron: ps[1], relayFor: map[*oesim.Printer]http.RoundTripper{}, lan: NewLANTransport()}
	t.Cleanup(r.lan.CloseIdleConnections)
	for _, p := range ps {
		r.relayFor[p] = relayRT{rt: s.HTTPClient().Transport, cred: s.Connect(p).Credentials()}
	}
	return r
}

func (r *rig) router(t *testing.T, p *oesim.Printer, o Options) (*Router, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	o.Printer = p.Name
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if o.LANURLs == nil {
		o.LANURLs = []string{p.LANURL}
	}
	o.Relay = r.relayFor[p]
	o.LAN = r.lan
	o.Logger = zap.New(core)
	rt, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return rt, logs
}

// proofs collects proofs from Hooks.Proof so that a test waits for the n-th one instead of sleeping.
type proofs struct {
	mu   sync.Mutex
	list []Proof
	ch   chan struct{}
}

func newProofs() *proofs { return &proofs{ch: make(chan struct{}, 64)} }

func (p *proofs) hook(pr Proof) {
	p.mu.Lock()
	p.list = append(p.list, pr)
	p.mu.Unlock()
	p.ch <- struct{}{}
}

func (p *proofs) wait(t *testing.T) Proof {
	t.Helper()
	select {
	case <-p.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no proof within 10 s")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.list[len(p.list)-1]
}

// settle waits until the router applied the proof the hook just saw (apply runs right after the hook).
func settle(t *testing.T, rt *Router, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for rt.Status().LastProof.IsZero() || proofCount(rt) < n {
		if time.Now().After(deadline) {
			t.Fatal("proof not applied")
		}
		time.Sleep(time.Millisecond)
	}
}

func proofCount(rt *Router) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.applied
}

func TestProofPerPlatform(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	p := prover{lan: r.lan, since: time.Since}
	tests := []struct {
		name     string
		printer  *oesim.Printer
		lanHost  oesim.LANHost
		platform string
		ok       bool
		mismatch bool
		strength string
	}{
		{"moonraker, the printer", r.voron, oesim.LANPrinter, "", true, false, StrengthNonce},
		{"moonraker, platform given", r.voron, oesim.LANPrinter, PlatformMoonraker, true, false, StrengthNonce},
		{"moonraker, another id", r.voron, oesim.LANImpostorOtherID, "", false, true, ""},
		{"moonraker, id copied, no nonce", r.voron, oesim.LANImpostorSameID, "", false, true, ""},
		{"moonraker, gone", r.voron, oesim.LANGone, "", false, false, ""},
		{"octoprint, the printer", r.mini, oesim.LANPrinter, "", true, false, StrengthID},
		{"octoprint, another id", r.mini, oesim.LANImpostorOtherID, PlatformOctoPrint, false, true, ""},
		// What the OctoPrint proof is not worth: a device that copied the id passes (README says so).
		{"octoprint, id copied", r.mini, oesim.LANImpostorSameID, "", true, false, StrengthID},
		{"octoprint, gone", r.mini, oesim.LANGone, "", false, false, ""},
	}
	for _, tc := range tests {
		if err := tc.printer.SetLAN(tc.lanHost); err != nil {
			t.Fatal(err)
		}
		p.relay, p.platform = r.relayFor[tc.printer], tc.platform
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got := p.prove(ctx, tc.printer.LANURL)
		cancel()
		if got.OK != tc.ok || got.Mismatch != tc.mismatch || got.Strength != tc.strength {
			t.Errorf("%s: ok %v mismatch %v strength %q (%s); want %v %v %q", tc.name, got.OK, got.Mismatch, got.Strength, got.Reason, tc.ok, tc.mismatch, tc.strength)
		}
		if strings.Contains(got.Reason, tc.printer.ID) {
			t.Errorf("%s: the reason holds the whole printer id", tc.name)
		}
	}
	// The proofs' LAN requests never carried a credential.
	for _, pr := range []*oesim.Printer{r.mini, r.voron} {
		for _, q := range pr.LANRequests() {
			if len(q.Header.Values("Authorization")) > 0 || q.Header.Get("X-Api-Key") != "" {
				t.Fatalf("%s: a proof request carried a credential to the LAN: %v", pr.Name, q.Header)
			}
		}
	}
}

func TestProofWrongStoredID(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	p := prover{lan: r.lan, relay: r.relayFor[r.mini], printerID: "SOMEOTHERPRINTERID0000000000000000000000", since: time.Since}
	got := p.prove(context.Background(), r.mini.LANURL)
	if got.OK || !strings.Contains(got.Reason, "re-link") {
		t.Fatalf("a stored id other than the relay's passed or was not explained: %+v", got)
	}
	for _, q := range r.mini.LANRequests() {
		if q.Method != "GET" || (q.Path != octoPrintIDPath && q.Path != "/server/database/item") {
			t.Fatalf("the LAN got %s %s during a failed proof", q.Method, q.Path)
		}
	}
}

func TestAutoSwitchesWithTheNetwork(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ps := newProofs()
	var switches []string
	var smu sync.Mutex
	changes := r.sim.NetworkChanges()
	rt, logs := r.router(t, r.voron, Options{Changes: changes, Hooks: Hooks{Proof: ps.hook, Switch: func(from, to Route, _ string) {
		smu.Lock()
		switches = append(switches, string(from)+">"+string(to))
		smu.Unlock()
	}}})
	if d := rt.Decide(); d.Route != Relay {
		t.Fatalf("before any proof: %v, want relay", d.Route)
	}
	rt.Start(context.Background())
	defer rt.Close()

	ps.wait(t)
	settle(t, rt, 1)
	d := rt.Decide()
	if d.Route != LAN || !d.Fallback || d.LANURL.String() != r.voron.LANURL {
		t.Fatalf("after a good proof: %+v", d)
	}
	st := rt.Status()
	if st.Active != LAN || !st.ProofOK || st.Strength != StrengthNonce || st.LastProof.IsZero() {
		t.Fatalf("status %+v", st)
	}

	// The laptop moves to a café: another device at the same address, with the id copied.
	if err := r.voron.SetLAN(oesim.LANImpostorSameID); err != nil {
		t.Fatal(err)
	}
	r.sim.ChangeNetwork()
	ps.wait(t)
	settle(t, rt, 2)
	if d := rt.Decide(); d.Route != Relay {
		t.Fatalf("after the network change to an impostor: %v", d.Route)
	}
	if st := rt.Status(); st.ProofOK || !strings.Contains(st.Reason, "nonce") {
		t.Fatalf("status after the impostor: %+v", st)
	}

	// Home again; a failed LAN request (or the timer) re-checks.
	if err := r.voron.SetLAN(oesim.LANPrinter); err != nil {
		t.Fatal(err)
	}
	rt.Recheck()
	ps.wait(t)
	settle(t, rt, 3)
	if d := rt.Decide(); d.Route != LAN {
		t.Fatalf("home again: %v", d.Route)
	}
	if err := r.voron.SetLAN(oesim.LANGone); err != nil {
		t.Fatal(err)
	}
	rt.LANFailed("connection refused")
	if d := rt.Decide(); d.Route != Relay {
		t.Fatalf("right after a failed LAN request: %v, want relay at once", d.Route)
	}
	ps.wait(t)
	settle(t, rt, 4)

	smu.Lock()
	got := strings.Join(switches, " ")
	smu.Unlock()
	if got != "relay>lan lan>relay relay>lan lan>relay" {
		t.Fatalf("switches %q", got)
	}
	if n := logs.FilterMessage("route switched").Len(); n != 4 {
		t.Fatalf("%d switch log lines, want 4 (one per switch)", n)
	}
}

func TestStaleProofGoesToRelay(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	rt, _ := r.router(t, r.mini, Options{Interval: time.Hour})
	now := time.Now()
	rt.now = func() time.Time { return now }
	rt.apply(Proof{LANURL: r.mini.LANURL, OK: true, Strength: StrengthID})
	if d := rt.Decide(); d.Route != LAN {
		t.Fatalf("fresh proof: %v", d.Route)
	}
	now = now.Add(2*time.Hour + 6*time.Second)
	if d := rt.Decide(); d.Route != Relay {
		t.Fatalf("a proof older than twice the interval still routes to the LAN")
	}
	if st := rt.Status(); st.Active != Relay || !strings.Contains(st.Reason, "stale") {
		t.Fatalf("status %+v", st)
	}
}

func TestSlowerLANIsNotChosen(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	rt, _ := r.router(t, r.mini, Options{})
	rt.apply(Proof{LANURL: r.mini.LANURL, OK: true, Strength: StrengthID, LANTime: 80 * time.Millisecond, RelayTime: 40 * time.Millisecond})
	if d := rt.Decide(); d.Route != Relay {
		t.Fatal("a LAN twice as slow as the relay was chosen")
	}
	if st := rt.Status(); !strings.Contains(st.Reason, "slower") {
		t.Fatalf("reason %q", st.Reason)
	}
	rt.apply(Proof{LANURL: r.mini.LANURL, OK: true, Strength: StrengthID, LANTime: 3 * time.Millisecond, RelayTime: 40 * time.Millisecond})
	if d := rt.Decide(); d.Route != LAN {
		t.Fatal("a faster LAN was not chosen")
	}
}

func TestLANModeTrustsButRefusesAnotherPrinter(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ps := newProofs()
	rt, _ := r.router(t, r.mini, Options{Mode: ModeLAN, Hooks: Hooks{Proof: ps.hook}})
	if d := rt.Decide(); d.Route != LAN || d.Fallback || d.Refuse != "" {
		t.Fatalf("lan mode before a proof: %+v", d)
	}
	if err := r.mini.SetLAN(oesim.LANImpostorOtherID); err != nil {
		t.Fatal(err)
	}
	rt.Start(context.Background())
	defer rt.Close()
	ps.wait(t)
	settle(t, rt, 1)
	if d := rt.Decide(); d.Route != LAN || d.Refuse == "" {
		t.Fatalf("lan mode with another printer on the address: %+v", d)
	}
}

func TestRelayModeProvesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	rt, _ := r.router(t, r.mini, Options{Mode: ModeRelay})
	rt.Start(context.Background())
	rt.Close()
	if d := rt.Decide(); d.Route != Relay {
		t.Fatalf("relay mode: %v", d.Route)
	}
	if n := len(r.mini.LANRequests()); n != 0 {
		t.Fatalf("relay mode sent %d requests to the LAN", n)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"http://192.168.1.5", "http://192.168.1.5", true},
		{"192.168.1.5:7125", "http://192.168.1.5:7125", true},
		{"http://voron.local/", "http://voron.local", true},
		{"https://octopi.lan:443/octoprint/", "https://octopi.lan:443/octoprint", true},
		{"ftp://x", "", false},
		{"http://user:pw@x", "", false},
		{"http://x/?a=1", "", false},
		{"", "", false},
	} {
		u, err := ParseLANURL(tc.in)
		if (err == nil) != tc.ok || (tc.ok && u.String() != tc.want) {
			t.Errorf("ParseLANURL(%q) = %v, %v", tc.in, u, err)
		}
	}
	for in, want := range map[string]Mode{"": ModeRelay, "LAN": ModeLAN, " auto ": ModeAuto, "relay": ModeRelay} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %v, %v", in, m, err)
		}
	}
	if _, err := ParseMode("direct"); err == nil {
		t.Error("ParseMode accepted direct")
	}
	if _, err := New(Options{Printer: "x", Mode: ModeAuto}); err == nil || !strings.Contains(err.Error(), "lan set") {
		t.Errorf("auto without a LAN address: %v", err)
	}
}

func TestWatcherCloses(t *testing.T) {
	t.Parallel()
	w := Watch(context.Background(), nil)
	a, b := w.Subscribe(), w.Subscribe()
	w.Unsubscribe(b)
	w.notify("test")
	select {
	case <-a:
	default:
		t.Error("a subscriber was not told")
	}
	select {
	case <-b:
		t.Error("an unsubscribed channel was told")
	default:
	}
	w.Close() // goleak checks that nothing of it is left
}

// TestProofWhileThePluginIsOffline: with the relay answering 601, OctoPrint's id proof can use the stored id;
// Moonraker's nonce cannot be written, so it fails whatever is stored.
func TestProofWhileThePluginIsOffline(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.mini.SetOnline(false)
	r.voron.SetOnline(false)
	for _, tc := range []struct {
		printer *oesim.Printer
		stored  string
		ok      bool
	}{
		{r.mini, r.mini.ID, true},
		{r.mini, "", false},
		{r.voron, r.voron.ID, false},
	} {
		p := prover{lan: r.lan, relay: r.relayFor[tc.printer], printerID: tc.stored, since: time.Since}
		got := p.prove(context.Background(), tc.printer.LANURL)
		if got.OK != tc.ok {
			t.Errorf("%s, stored id %v: ok %v (%s), want %v", tc.printer.Name, tc.stored != "", got.OK, got.Reason, tc.ok)
		}
	}
}

// A PrusaLink printer behind a companion has no id of its own to tell: the companion's local web API says it.
func TestCompanionProof(t *testing.T) {
	t.Parallel()
	prusaLink := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Digest realm="Printer API", nonce="0", qop="auth"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	s, err := oesim.Start(context.Background(), oesim.Options{Printers: []oesim.PrinterOptions{
		{Name: "MK4", Kind: oesim.KindGeneric, Handler: prusaLink, LAN: true, Companion: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	mk4 := s.Printers()[0]
	lan := NewLANTransport()
	t.Cleanup(lan.CloseIdleConnections)
	relay := relayRT{rt: s.HTTPClient().Transport, cred: s.Connect(mk4).Credentials()}
	tests := []struct {
		name      string
		lanHost   oesim.LANHost
		printerID string
		companion string
		ok        bool
		mismatch  bool
		reason    string
	}{
		{"the printer's companion", oesim.LANPrinter, mk4.ID, mk4.CompanionURL, true, false, "companion answers"},
		{"another network's companion", oesim.LANImpostorOtherID, mk4.ID, mk4.CompanionURL, false, true, "another printer"},
		// What this proof is not worth: a device that copied the id passes (README says so).
		{"a companion that copied the id", oesim.LANImpostorSameID, mk4.ID, mk4.CompanionURL, true, false, "companion answers"},
		{"nothing on this network", oesim.LANGone, mk4.ID, mk4.CompanionURL, false, false, "did not answer"},
		{"printer id not stored", oesim.LANPrinter, "", mk4.CompanionURL, false, false, "re-link"},
		{"the printer's address given as the companion", oesim.LANPrinter, mk4.ID, mk4.LANURL, false, false, "not the companion"},
		{"no companion: no proof", oesim.LANPrinter, mk4.ID, "", false, false, "cannot prove"},
	}
	for _, tc := range tests {
		if err := mk4.SetLAN(tc.lanHost); err != nil {
			t.Fatal(err)
		}
		p := prover{lan: lan, relay: relay, printerID: tc.printerID, platform: "prusalink", companion: tc.companion, since: time.Since}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got := p.prove(ctx, mk4.LANURL)
		cancel()
		if got.OK != tc.ok || got.Mismatch != tc.mismatch || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: ok %v mismatch %v (%s); want %v %v and %q", tc.name, got.OK, got.Mismatch, got.Reason, tc.ok, tc.mismatch, tc.reason)
		}
		if got.OK && (got.Strength != StrengthCompanion || got.Platform != PlatformCompanion) {
			t.Errorf("%s: strength %q platform %q, want companion", tc.name, got.Strength, got.Platform)
		}
		if strings.Contains(got.Reason, mk4.ID) {
			t.Errorf("%s: the reason holds the whole printer id", tc.name)
		}
	}
	for _, q := range mk4.LANRequests() {
		if len(q.Header.Values("Authorization")) > 0 || q.Method != http.MethodGet {
			t.Fatalf("a proof sent %s %s with %v to the LAN host", q.Method, q.Path, q.Header)
		}
	}
}

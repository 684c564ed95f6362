package route

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Mode is what the user asked for (config key route, connect --route).
type Mode string

// The modes of DESIGN.md's route key.
const (
	// ModeRelay: always through the relay (what oeproxy did before LAN routing).
	ModeRelay Mode = "relay"
	// ModeLAN: always the LAN address the user gave, never the relay; an unreachable printer gets a clear 502.
	ModeLAN Mode = "lan"
	// ModeAuto: the LAN while the LAN host is proven to be the same printer, else the relay.
	ModeAuto Mode = "auto"
)

// ParseMode accepts relay, lan or auto (any case); an empty string is ModeRelay.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return ModeRelay, nil
	case ModeRelay, ModeLAN, ModeAuto:
		return m, nil
	}
	return "", fmt.Errorf("route %q is not relay, lan or auto", s)
}

// Route is the way one request goes.
type Route string

// The two routes; their names are what list --json's active_route, metrics and RequestStats.Route say.
const (
	LAN   Route = "lan"
	Relay Route = "relay"
)

// Decision is the route of one request (or one WebSocket or stream, for its whole life).
type Decision struct {
	Route Route
	// LANURL is the LAN base URL (http://host[:port]) when Route is LAN.
	LANURL *url.URL
	// Fallback: a LAN connect failure may be retried on the relay (auto mode). In lan mode it is false.
	Fallback bool
	// Refuse, when set (lan mode only), is why the LAN host must not get the request: it proved to be another
	// printer. The request gets a 502 with this reason.
	Refuse string
}

// Status is what status, list --json and the admin page show of a printer's routing.
type Status struct {
	Mode      Mode      `json:"route"`
	Active    Route     `json:"active_route"`
	LANURL    string    `json:"lan_url,omitempty"`
	LastProof time.Time `json:"last_proof,omitzero"` // when the last proof ended (zero: none yet)
	ProofOK   bool      `json:"proof_ok"`
	Strength  string    `json:"proof_strength,omitempty"`
	Reason    string    `json:"route_reason,omitempty"`
}

// Hooks let the daemon count what the router does. Both may be nil; they are called from the router's goroutine.
type Hooks struct {
	// Proof is called after each proof with its result.
	Proof func(Proof)
	// Switch is called when the active route changes, with the reason.
	Switch func(from, to Route, reason string)
}

// Options configures a Router.
type Options struct {
	// Printer names the printer in log lines.
	Printer string
	Mode    Mode
	// LANURLs are the candidate LAN base URLs, in order (the user's --printer-url or `lan set` first; then the
	// last known local IP on the platform's usual ports). The first that proves itself is used.
	LANURLs []string
	// MoreLANURLs, when set, is asked before each check for candidates learnt since (the Info API's
	// PrinterLocalIp after a DHCP change); they are tried after LANURLs.
	MoreLANURLs func() []string
	// PrinterID is the App Connection's OctoEverywhere printer id when known; else it is read through the relay.
	PrinterID string
	// Platform is octoprint, moonraker or empty (try both); any other (prusalink, elegoo) proves through
	// CompanionURL when it is set.
	Platform string
	// CompanionURL is the OctoEverywhere companion's local web API (http://host:port), for printers whose LAN
	// host cannot say its printer id itself; empty: none.
	CompanionURL string
	// LAN carries the proof's requests to the LAN (plain HTTP, a short dial timeout, never a credential).
	// Default: NewLANTransport().
	LAN http.RoundTripper
	// Relay carries the proof's requests through the App Connection; it must set the relay host and the
	// credential itself (proxy.RelayTransport). Required unless Mode is relay.
	Relay http.RoundTripper
	// Changes signals network changes (Watch); each one makes the proof stale at once and re-checks it.
	Changes <-chan struct{}
	// Interval is how often a proof is re-checked without any event; default 3 minutes. A proof older than
	// twice the interval is stale.
	Interval time.Duration
	// ProofTimeout bounds one proof of one address; default 5 s.
	ProofTimeout time.Duration
	Logger       *zap.Logger
	Hooks        Hooks
	// since measures durations (tests replace it to make the LAN look slower than the relay).
	since func(time.Time) time.Duration
}

// Router decides the route of each request of one printer. Start runs its checks; Close stops them.
type Router struct {
	opts    Options
	log     *zap.Logger
	prover  prover
	recheck chan struct{}
	now     func() time.Time

	mu       sync.Mutex
	active   Route
	lan      *url.URL // the proven (auto) or given (lan) LAN base
	provedAt time.Time
	st       Status
	mismatch string // lan mode: why the LAN host is refused
	applied  int    // proofs applied (tests wait for it)

	cancel context.CancelFunc
	done   chan struct{}
}

// New checks o and returns a Router that decides Relay (or, in lan mode, the first LAN URL) until Start's first
// proof passes.
func New(o Options) (*Router, error) {
	if o.Mode == "" {
		o.Mode = ModeRelay
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return nil, fmt.Errorf("route: %w", err)
	}
	if o.Mode != ModeRelay && len(o.LANURLs) == 0 {
		return nil, fmt.Errorf("route: printer %q has route %s but no LAN address: set one with oeproxy lan set %s URL", o.Printer, o.Mode, o.Printer)
	}
	var lanBase *url.URL
	for i, raw := range o.LANURLs {
		u, err := ParseLANURL(raw)
		if err != nil {
			return nil, fmt.Errorf("route: printer %q: %w", o.Printer, err)
		}
		if i == 0 {
			lanBase = u
		}
	}
	if o.CompanionURL != "" {
		if _, err := ParseLANURL(o.CompanionURL); err != nil {
			return nil, fmt.Errorf("route: printer %q: companion: %w", o.Printer, err)
		}
	}
	if o.Mode != ModeRelay && o.Relay == nil {
		return nil, errors.New("route: Options.Relay is required for route lan or auto")
	}
	if o.LAN == nil {
		o.LAN = NewLANTransport()
	}
	if o.Interval <= 0 {
		o.Interval = 3 * time.Minute
	}
	if o.ProofTimeout <= 0 {
		o.ProofTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.since == nil {
		o.since = time.Since
	}
	r := &Router{
		opts:    o,
		log:     o.Logger.With(zap.String("printer", o.Printer)),
		prover:  prover{lan: o.LAN, relay: o.Relay, printerID: o.PrinterID, platform: o.Platform, companion: o.CompanionURL, since: o.since},
		recheck: make(chan struct{}, 1),
		now:     time.Now,
		active:  Relay,
	}
	r.st = Status{Mode: o.Mode, Active: Relay, Reason: "no proof yet"}
	switch o.Mode {
	case ModeRelay:
		r.st.Reason = "route relay"
	case ModeLAN:
		r.active, r.lan = LAN, lanBase
		r.st.Active, r.st.LANURL, r.st.Reason = LAN, lanBase.String(), "route lan: the LAN address is used as given"
	}
	return r, nil
}

// ParseLANURL checks a printer LAN address: http(s)://host[:port][/path], no userinfo, query or fragment. A bare
// host or host:port gets http://.
func ParseLANURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw != "" && !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("LAN address %q is not http://host[:port] (for example http://192.168.1.50 or http://voron.local:7125)", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// Start runs the proofs on a goroutine of the router's own until Close (or ctx ends). In relay mode it does
// nothing.
func (r *Router) Start(ctx context.Context) {
	if r.opts.Mode == ModeRelay {
		return
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go r.run(ctx)
}

// Close stops the checks and waits for them to end.
func (r *Router) Close() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

func (r *Router) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	r.check(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.recheck:
		case <-r.opts.Changes:
			r.stale("the network changed: re-checking the LAN host")
		}
		r.check(ctx)
		t.Reset(r.opts.Interval)
	}
}

// check proves the candidate addresses in order and applies the first that passes (or the relay).
func (r *Router) check(ctx context.Context) {
	var last Proof
	cands := r.opts.LANURLs
	if r.opts.MoreLANURLs != nil {
		for _, c := range r.opts.MoreLANURLs() {
			if _, err := ParseLANURL(c); err == nil && !slices.Contains(cands, c) {
				cands = append(slices.Clip(cands), c)
			}
		}
	}
	for _, cand := range cands {
		pctx, cancel := context.WithTimeout(ctx, r.opts.ProofTimeout)
		p := r.prover.prove(pctx, cand)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if r.opts.Hooks.Proof != nil {
			r.opts.Hooks.Proof(p)
		}
		last = p
		if p.OK || p.Mismatch {
			break
		}
	}
	r.apply(last)
}

// apply turns a proof into the active route.
func (r *Router) apply(p Proof) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied++
	now := r.now()
	r.st.LastProof, r.st.ProofOK, r.st.Strength = now, p.OK, p.Strength
	if !p.OK {
		r.st.Strength = ""
	}
	if r.opts.Mode == ModeLAN {
		// lan mode trusts the given address; only a host proven to be another printer is refused.
		r.mismatch = ""
		reason := "route lan: the LAN address is used as given"
		if p.Mismatch {
			r.mismatch, reason = p.Reason, "route lan, but "+p.Reason
		} else if p.OK {
			reason = "route lan: " + p.Reason
		}
		r.st.Reason = reason
		return
	}
	if p.OK && slower(p.LANTime, p.RelayTime) {
		p.OK = false
		p.Reason = fmt.Sprintf("the LAN host is the printer but answered slower (%s) than the relay (%s)",
			p.LANTime.Round(time.Millisecond), p.RelayTime.Round(time.Millisecond))
	}
	if !p.OK {
		r.provedAt = time.Time{}
		r.switchLocked(Relay, nil, p.Reason)
		return
	}
	u, _ := ParseLANURL(p.LANURL)
	r.provedAt = now
	r.switchLocked(LAN, u, p.Reason)
}

// slower reports whether the LAN is clearly slower than the relay: a LAN address reached through a VPN or a
// far-away site must not win over the relay by accident. The margin (a quarter plus 20 ms) keeps one slow
// sample on a busy machine from flipping the route: a real LAN answers in a few milliseconds, the relay in tens
// to hundreds.
func slower(lan, relay time.Duration) bool {
	return relay > 0 && lan > relay+relay/4+20*time.Millisecond
}

// switchLocked sets the active route and logs a change once.
func (r *Router) switchLocked(to Route, lan *url.URL, reason string) {
	from := r.active
	r.active, r.lan = to, lan
	r.st.Active, r.st.Reason = to, reason
	r.st.LANURL = ""
	if lan != nil {
		r.st.LANURL = lan.String()
	}
	if from == to {
		return
	}
	fields := []zap.Field{zap.String("from", string(from)), zap.String("to", string(to)), zap.String("reason", reason)}
	if lan != nil {
		fields = append(fields, zap.String("lan_url", lan.Redacted()))
	}
	r.log.Info("route switched", fields...)
	if r.opts.Hooks.Switch != nil {
		r.opts.Hooks.Switch(from, to, reason)
	}
}

// stale drops a proven LAN route at once (auto mode) and asks for a re-check.
func (r *Router) stale(reason string) {
	r.mu.Lock()
	if r.opts.Mode == ModeAuto && r.active == LAN {
		r.provedAt = time.Time{}
		r.switchLocked(Relay, nil, reason)
	}
	r.mu.Unlock()
}

// Decide returns the route for a request (or WebSocket, or stream) starting now.
func (r *Router) Decide() Decision {
	if r == nil {
		return Decision{Route: Relay}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.opts.Mode {
	case ModeLAN:
		return Decision{Route: LAN, LANURL: r.lan, Refuse: r.mismatch}
	case ModeAuto:
		if r.active == LAN && r.now().Sub(r.provedAt) <= 2*r.opts.Interval+r.opts.ProofTimeout {
			return Decision{Route: LAN, LANURL: r.lan, Fallback: true}
		}
		if r.active == LAN {
			// The checks stalled (a suspended laptop wakes up): a proof this old proves nothing any more.
			r.switchLocked(Relay, nil, "the LAN proof is stale")
			r.signal()
		}
	}
	return Decision{Route: Relay}
}

// LANFailed reports that a request on the LAN route could not reach the LAN host: auto mode switches to the relay
// at once and re-checks.
func (r *Router) LANFailed(reason string) {
	if r == nil {
		return
	}
	r.stale("a LAN request failed: " + reason)
	r.signal()
}

// Recheck asks for a proof now (for example after the user changed the LAN address).
func (r *Router) Recheck() {
	if r != nil {
		r.signal()
	}
}

func (r *Router) signal() {
	select {
	case r.recheck <- struct{}{}:
	default:
	}
}

// Status returns the routing state for status pages.
func (r *Router) Status() Status {
	if r == nil {
		return Status{Mode: ModeRelay, Active: Relay}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// LANHosts returns the host names of the printer's LAN addresses (nil in relay mode): URLs on them in the
// printer's own JSON name the printer itself.
func (r *Router) LANHosts() []string {
	if r == nil || r.opts.Mode == ModeRelay {
		return nil
	}
	var out []string
	for _, raw := range r.opts.LANURLs {
		if u, err := ParseLANURL(raw); err == nil {
			out = append(out, u.Hostname())
		}
	}
	return out
}

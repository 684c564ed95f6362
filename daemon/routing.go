package daemon

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/proxy"
	"github.com/oeproxy/oeproxy/route"
)

// LAN-first routing in the daemon: each served printer has one route.Router for the life of its listener (a
// reload's new handler gets the same one; `lan set` gives it a new one), the routers share one network Watcher
// and one LAN transport, and the route's metrics live here.

// routing is the daemon's shared routing state.
type routing struct {
	once    sync.Once
	watcher *route.Watcher
	lan     *http.Transport

	metricsOnce sync.Once
	proofs      *prometheus.CounterVec
	switches    *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	active      *prometheus.GaugeVec
}

func (rt *routing) start(log *zap.Logger) {
	rt.once.Do(func() {
		rt.watcher = route.Watch(context.Background(), log.Named("netwatch"))
		rt.lan = route.NewLANTransport()
	})
}

// close stops the watcher (if any router started it).
func (rt *routing) close() {
	rt.once.Do(func() {}) // nothing may start it afterwards
	if rt.watcher != nil {
		rt.watcher.Close()
		rt.lan.CloseIdleConnections()
	}
}

func (rt *routing) lanTransport() http.RoundTripper {
	if rt.lan == nil {
		return nil // the proxy builds its own; no router uses the LAN
	}
	return rt.lan
}

// EffectiveRoute is a printer's route mode: its own (connect --route, lan set), else the config key route; auto
// or lan without any LAN address is relay.
func EffectiveRoute(rec credstore.Record, cfgRoute string) route.Mode {
	m, err := route.ParseMode(rec.Route)
	if rec.Route == "" {
		m, err = route.ParseMode(cfgRoute)
		if cfgRoute == "" {
			m = route.ModeAuto
		}
	}
	if err != nil || len(LANCandidates(rec)) == 0 {
		return route.ModeRelay
	}
	return m
}

// LANCandidates are the LAN base URLs to prove, in order: the address the user set, else the last known local IP
// on the usual ports (80: OctoPi's and MainsailOS's web server; 7125: Moonraker; 5000: OctoPrint).
func LANCandidates(rec credstore.Record) []string {
	if rec.LANURL != "" {
		return []string{rec.LANURL}
	}
	ip := net.ParseIP(strings.TrimSpace(rec.LastKnownLocalIP))
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	host := ip.String()
	if ip.To4() == nil {
		host = "[" + host + "]"
	}
	return []string{"http://" + host, "http://" + host + ":7125", "http://" + host + ":5000"}
}

// newRouter builds and starts a printer's router (nil in relay mode). tracker (may be nil) tells it the local IP
// the Info API reports; it is passed in, not looked up under d.mu, because a router is closed under d.mu.
func (d *Daemon) newRouter(rec credstore.Record, relay *url.URL, tracker *health.Health) (*route.Router, func()) {
	cfg := d.cfg()
	mode := EffectiveRoute(rec, cfg.Route)
	if mode == route.ModeRelay {
		return nil, nil
	}
	log := d.log.With(zap.String("printer", rec.Name))
	relayRT, err := proxy.RelayTransport(proxy.Printer{Name: rec.Name, RelayURL: relay, Auth: cfg.OctoEverywhere.Auth,
		BasicUser: rec.BasicUser, BasicPassword: rec.BasicPassword, BearerToken: rec.BearerToken}, d.o.Transport)
	if err != nil {
		log.Warn("LAN routing off: the relay cannot be used to prove the LAN host", zap.Error(err))
		return nil, nil
	}
	d.routing.start(d.log)
	m := d.routeMetrics()
	changes := d.routing.watcher.Subscribe()
	unsubscribe := func() { d.routing.watcher.Unsubscribe(changes) }
	r, err := route.New(route.Options{
		Printer: rec.Name, Mode: mode, LANURLs: LANCandidates(rec), PrinterID: rec.PrinterID,
		Platform: rec.Platform, CompanionURL: rec.CompanionURL,
		MoreLANURLs: func() []string {
			if tracker == nil {
				return nil
			}
			return infoCandidates(rec, tracker.Snapshot().Info)
		},
		LAN: d.routing.lan, Relay: relayRT, Changes: changes, Logger: d.log,
		Hooks: route.Hooks{
			Proof: func(p route.Proof) { m.proofs.WithLabelValues(rec.Name, proofResult(p)).Inc() },
			Switch: func(from, to route.Route, _ string) {
				m.switches.WithLabelValues(rec.Name, string(to)).Inc()
				m.active.WithLabelValues(rec.Name, string(from)).Set(0)
				m.active.WithLabelValues(rec.Name, string(to)).Set(1)
			},
		},
	})
	if err != nil {
		unsubscribe()
		log.Warn("LAN routing off", zap.Error(err))
		return nil, nil
	}
	m.active.WithLabelValues(rec.Name, string(r.Status().Active)).Set(1)
	r.Start(context.Background())
	return r, unsubscribe
}

func proofResult(p route.Proof) string {
	switch {
	case p.OK:
		return "ok"
	case p.Mismatch:
		return "other_printer"
	}
	return "failed"
}

// routeMetrics registers the routing metrics once.
func (d *Daemon) routeMetrics() *routing {
	rt := &d.routing
	rt.metricsOnce.Do(func() {
		rt.proofs = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oeproxy_route_proofs_total",
			Help: "LAN identity proofs, by printer and result (ok, other_printer: the LAN host is another printer, failed: no answer or no proof possible).",
		}, []string{"printer", "result"})
		rt.switches = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oeproxy_route_switches_total",
			Help: "Switches of the active route, by printer and the route switched to (lan or relay).",
		}, []string{"printer", "to"})
		rt.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oeproxy_route_bytes_total",
			Help: "Body bytes of proxied HTTP requests, by printer, route (lan or relay) and direction (in: from clients, out: to clients).",
		}, []string{"printer", "route", "direction"})
		rt.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oeproxy_route_active",
			Help: "1 for the route a printer uses now (lan or relay), by printer and route.",
		}, []string{"printer", "route"})
		d.metrics.reg.MustRegister(rt.proofs, rt.switches, rt.bytes, rt.active)
	})
	return rt
}

// counterOnce keeps a vector's child once it was first looked up.
type counterOnce struct {
	p atomic.Pointer[prometheus.Counter]
}

func (c *counterOnce) get(vec *prometheus.CounterVec, a, b, d string) prometheus.Counter {
	if p := c.p.Load(); p != nil {
		return *p
	}
	n := vec.WithLabelValues(a, b, d)
	c.p.Store(&n)
	return n
}

// routeHooks counts body bytes per route, then calls next.
func (d *Daemon) routeHooks(name string, next proxy.Hooks) proxy.Hooks {
	m := d.routeMetrics()
	done := next.RequestDone
	// The children for the two routes are looked up on first use and kept, not per request (WithLabelValues built
	// a label slice on the heap and hashed three labels under the vector's lock, twice per request); a series
	// still appears when its route is first used.
	var relayIn, relayOut, lanIn, lanOut counterOnce
	next.RequestDone = func(s proxy.RequestStats) {
		r := s.Route
		if r == "" {
			r = string(route.Relay)
		}
		var in, out prometheus.Counter
		switch r {
		case string(route.Relay):
			in, out = relayIn.get(m.bytes, name, r, "in"), relayOut.get(m.bytes, name, r, "out")
		case string(route.LAN):
			in, out = lanIn.get(m.bytes, name, r, "in"), lanOut.get(m.bytes, name, r, "out")
		default:
			in, out = m.bytes.WithLabelValues(name, r, "in"), m.bytes.WithLabelValues(name, r, "out")
		}
		in.Add(float64(s.BytesIn))
		out.Add(float64(s.BytesOut))
		if done != nil {
			done(s)
		}
	}
	return next
}

// printerRouter is the router a printer's handlers share.
type printerRouter struct {
	mu    sync.Mutex
	cur   *route.Router
	unsub func() // stops the network events of cur
}

func (p *printerRouter) get() *route.Router {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

func (p *printerRouter) set(r *route.Router, unsub func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
	p.cur, p.unsub = r, unsub
}

// stopLocked ends the current router's checks. Retired handlers that still hold it (for their open WebSockets)
// may ask it: its last LAN decision goes stale within two intervals, and then it says relay.
func (p *printerRouter) stopLocked() {
	if p.cur != nil {
		p.cur.Close()
	}
	if p.unsub != nil {
		p.unsub()
	}
	p.cur, p.unsub = nil, nil
}

func (p *printerRouter) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

// routeStatus is a served printer's routing state (false when it is not served).
func (d *Daemon) routeStatus(name string) (route.Status, bool) {
	d.mu.Lock()
	p := d.printers[name]
	d.mu.Unlock()
	if p == nil {
		return route.Status{}, false
	}
	if r := p.handler.routes.get(); r != nil {
		return r.Status(), true
	}
	return route.Status{Mode: route.ModeRelay, Active: route.Relay, Reason: "route relay"}, true
}

// fillRoute puts the effective route, and the daemon's active route when it serves the printer, into a listing.
func fillRoute(pub *credstore.PublicRecord, rec credstore.Record, cfgRoute string, status func(string) (route.Status, bool)) {
	pub.Route = string(EffectiveRoute(rec, cfgRoute))
	pub.ActiveRoute = "none"
	if status == nil {
		return
	}
	if st, ok := status(rec.Name); ok {
		pub.Route, pub.ActiveRoute = string(st.Mode), string(st.Active)
		if !st.LastProof.IsZero() {
			t := st.LastProof.UTC().Truncate(time.Second)
			pub.LastProof = &t
		}
	}
}

// setLANRoute applies a changed LAN address or route to a served printer: a new router, and a rebuilt handler
// that uses it for new requests; open WebSockets and streams stay where they are.
func (d *Daemon) setLANRoute(rec credstore.Record) error {
	d.mu.Lock()
	p := d.printers[rec.Name]
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	relay, err := url.Parse(rec.URL)
	if err != nil {
		return err
	}
	p.handler.routes.set(d.newRouter(rec, relay, p.health))
	return p.handler.rebuild()
}

// infoCandidates are the LAN URLs of the local IP the Info API reports now, when the user set no address and it
// differs from the one the portal gave (the printer got another address from DHCP since).
func infoCandidates(rec credstore.Record, in *appapi.Info) []string {
	if rec.LANURL != "" || in == nil || in.PrinterLocalIP == "" || in.PrinterLocalIP == rec.LastKnownLocalIP {
		return nil
	}
	return LANCandidates(credstore.Record{LastKnownLocalIP: in.PrinterLocalIP})
}

package daemon

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/oeproxy/oeproxy/admin"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/proxy"
	"github.com/oeproxy/oeproxy/webcam"
)

// Metrics counts what the printers' handlers do, for /metrics and the admin page. Each Daemon has its own
// Prometheus registry (not the global one): tests run many daemons in one process, and a library must not
// register into a registry it does not own.
//
// Label values are the printer's local name, the route, a status class and an OctoEverywhere code: never a
// credential, and never the relay host (it names the App Connection and would only add series).
type Metrics struct {
	reg *prometheus.Registry

	requests   *prometheus.CounterVec
	oeCodes    *prometheus.CounterVec
	bytesIn    *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	websockets *prometheus.GaugeVec
	streams    *prometheus.GaugeVec
	uploads    *prometheus.GaugeVec
	latency    *prometheus.HistogramVec

	camUpstreams *prometheus.GaugeVec
	camViewers   *prometheus.GaugeVec
	camDropped   *prometheus.CounterVec
	camContinued *prometheus.CounterVec

	mu     sync.Mutex
	totals map[string]*trafficCounters
}

type trafficCounters struct {
	requests, bytesIn, bytesOut  atomic.Int64
	websockets, streams, uploads atomic.Int64

	camUpstreams, camViewers, camDropped, camContinued atomic.Int64
}

// latencyBuckets spans a LAN-fast answer to a relay that first has to wake the printer's plugin.
var latencyBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(d *Daemon) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), totals: map[string]*trafficCounters{}}
	printer := []string{"printer"}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oeproxy_requests_total",
		Help: "Proxied HTTP requests that finished, by printer, route (relay or lan) and status class (2xx..6xx; none when the client left before an answer).",
	}, []string{"printer", "route", "class"})
	m.oeCodes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oeproxy_octoeverywhere_errors_total",
		Help: "OctoEverywhere 6xx answers (HTTP requests and WebSocket handshakes), by printer and code.",
	}, []string{"printer", "code"})
	m.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oeproxy_request_body_bytes_total",
		Help: "Request body bytes read from local clients (uploads), by printer.",
	}, printer)
	m.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oeproxy_response_body_bytes_total",
		Help: "Response body bytes written to local clients, by printer.",
	}, printer)
	m.websockets = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "oeproxy_open_websockets",
		Help: "WebSockets being relayed now, by printer.",
	}, printer)
	m.streams = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "oeproxy_open_streams",
		Help: "Streaming responses (webcam MJPEG, event streams) open now, by printer.",
	}, printer)
	m.uploads = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "oeproxy_open_uploads",
		Help: "Requests with a body (uploads, form posts) in progress now, by printer.",
	}, printer)
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "oeproxy_response_header_seconds",
		Help:    "Time from a request's arrival to its response header (relay latency plus the printer's own time), by printer. WebSockets are not included.",
		Buckets: latencyBuckets,
	}, printer)
	m.camUpstreams = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "oeproxy_webcam_upstreams",
		Help: "Shared webcam streams open to the printer now (one per webcam and client credential), by printer.",
	}, printer)
	m.camViewers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "oeproxy_webcam_viewers",
		Help: "Local viewers of shared webcam streams now, by printer.",
	}, printer)
	m.camDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oeproxy_webcam_frames_dropped_total",
		Help: "Webcam frames skipped for viewers that read slower than the camera sends, by printer.",
	}, printer)
	m.camContinued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oeproxy_webcam_continuations_total",
		Help: "Shared webcam streams reopened after the relay ended them (its stream time limit), by printer.",
	}, printer)
	m.reg.MustRegister(m.requests, m.oeCodes, m.bytesIn, m.bytesOut, m.websockets, m.streams, m.uploads, m.latency,
		m.camUpstreams, m.camViewers, m.camDropped, m.camContinued,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&printerCollector{d: d})
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the daemon's private registry (tests and embedders may gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) counters(name string) *trafficCounters {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.totals[name]
	if c == nil {
		c = &trafficCounters{}
		m.totals[name] = c
	}
	return c
}

// Traffic returns one printer's counts since the daemon started.
func (m *Metrics) Traffic(name string) admin.Traffic {
	c := m.counters(name)
	return admin.Traffic{
		Requests: c.requests.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		WebSockets: c.websockets.Load(), Streams: c.streams.Load(), Uploads: c.uploads.Load(),
		WebcamUpstreams: c.camUpstreams.Load(), WebcamViewers: c.camViewers.Load(),
		WebcamDropped: c.camDropped.Load(), WebcamContinuations: c.camContinued.Load(),
	}
}

// webcamHooks count what a printer's webcam hub does.
func (m *Metrics) webcamHooks(name string) webcam.Hooks {
	c := m.counters(name)
	up, viewers := m.camUpstreams.WithLabelValues(name), m.camViewers.WithLabelValues(name)
	dropped, continued := m.camDropped.WithLabelValues(name), m.camContinued.WithLabelValues(name)
	return webcam.Hooks{
		Upstream:  func(open bool) { gauge(up, &c.camUpstreams, open) },
		Viewer:    func(join bool) { gauge(viewers, &c.camViewers, join) },
		Dropped:   func() { dropped.Inc(); c.camDropped.Add(1) },
		Continued: func() { continued.Inc(); c.camContinued.Add(1) },
	}
}

// hooks returns proxy hooks that count for printer name and then call next's hooks (the health tracker's).
func (m *Metrics) hooks(name string, next proxy.Hooks) proxy.Hooks {
	c := m.counters(name)
	ws, st := m.websockets.WithLabelValues(name), m.streams.WithLabelValues(name)
	in, out := m.bytesIn.WithLabelValues(name), m.bytesOut.WithLabelValues(name)
	reqs := &requestSeries{vec: m.requests, printer: name}
	return proxy.Hooks{
		RequestDone: func(s proxy.RequestStats) {
			route := s.Route
			if route == "" {
				route = "relay"
			}
			reqs.get(route, s.Status).Inc()
			in.Add(float64(s.BytesIn))
			out.Add(float64(s.BytesOut))
			c.requests.Add(1)
			c.bytesIn.Add(s.BytesIn)
			c.bytesOut.Add(s.BytesOut)
			if next.RequestDone != nil {
				next.RequestDone(s)
			}
		},
		WebSocket: func(open bool) {
			gauge(ws, &c.websockets, open)
			if next.WebSocket != nil {
				next.WebSocket(open)
			}
		},
		Stream: func(open bool) {
			gauge(st, &c.streams, open)
			if next.Stream != nil {
				next.Stream(open)
			}
		},
		RelayCode: func(code int) {
			m.oeCodes.WithLabelValues(name, strconv.Itoa(code)).Inc()
			if next.RelayCode != nil {
				next.RelayCode(code)
			}
		},
	}
}

func gauge(g prometheus.Gauge, n *atomic.Int64, open bool) {
	if open {
		g.Inc()
		n.Add(1)
		return
	}
	g.Dec()
	n.Add(-1)
}

// requestSeries finds one printer's oeproxy_requests_total child for a route and status once, on first use (a
// series appears when it is first counted, as before), and then without WithLabelValues: per request that built
// a label slice and a class string on the heap and hashed three labels under the vector's lock.
type requestSeries struct {
	vec     *prometheus.CounterVec
	printer string
	cache   [2][7]counterOnce // relay, lan × status/100 (0 for none, 1..6)
}

func (r *requestSeries) get(route string, status int) prometheus.Counter {
	ri, ci := -1, 0
	switch route {
	case "relay":
		ri = 0
	case "lan":
		ri = 1
	}
	if status >= 100 && status <= 699 {
		ci = status / 100
	}
	if ri < 0 {
		return r.vec.WithLabelValues(r.printer, route, statusClass(status))
	}
	c := &r.cache[ri][ci]
	if p := c.p.Load(); p != nil {
		return *p
	}
	return c.get(r.vec, r.printer, route, statusClass(status))
}

func statusClass(status int) string {
	if status < 100 || status > 699 {
		return "none"
	}
	return strconv.Itoa(status/100) + "xx"
}

// wrap measures what the proxy hooks cannot see: the time to the response header, and uploads in progress.
// WebSocket handshakes pass untouched, so that the proxy can hijack the connection.
func (m *Metrics) wrap(name string, next http.Handler) http.Handler {
	c := m.counters(name)
	up := m.uploads.WithLabelValues(name)
	lat := m.latency.WithLabelValues(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			gauge(up, &c.uploads, true)
			defer gauge(up, &c.uploads, false)
		}
		tw := &timingWriter{ResponseWriter: w, start: time.Now(), observe: lat}
		next.ServeHTTP(tw, r)
	})
}

// timingWriter observes the time to the first final response header. Unwrap keeps Flush reachable through
// http.ResponseController, which ReverseProxy uses for streams.
type timingWriter struct {
	http.ResponseWriter
	start   time.Time
	observe prometheus.Observer
	done    bool
}

func (t *timingWriter) mark() {
	if !t.done {
		t.done = true
		t.observe.Observe(time.Since(t.start).Seconds())
	}
}

func (t *timingWriter) WriteHeader(code int) {
	if code >= 200 {
		t.mark()
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *timingWriter) Write(p []byte) (int, error) {
	t.mark()
	return t.ResponseWriter.Write(p)
}

func (t *timingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// printerCollector reports each stored printer's listener and health state at scrape time, so the values are
// never stale and a removed printer's series disappear.
type printerCollector struct{ d *Daemon }

var (
	listenerUpDesc = prometheus.NewDesc("oeproxy_printer_listener_up",
		"1 when the printer's local port is being served, 0 when it is stored but not served (see the log: port busy?).",
		[]string{"printer"}, nil)
	printerStateDesc = prometheus.NewDesc("oeproxy_printer_state",
		"1 for the printer's current health state (online, printer_offline, no_supporter_perks, needs_relink, unknown), 0 for the others.",
		[]string{"printer", "state"}, nil)
)

var allStates = []health.State{health.StateOnline, health.StatePrinterOffline, health.StateNoSupporterPerks, health.StateNeedsRelink, health.StateUnknown}

func (p *printerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- listenerUpDesc
	ch <- printerStateDesc
}

func (p *printerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range p.d.printerStates() {
		up := 0.0
		if s.served {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(listenerUpDesc, prometheus.GaugeValue, up, s.name)
		for _, st := range allStates {
			v := 0.0
			if st == s.state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(printerStateDesc, prometheus.GaugeValue, v, s.name, string(st))
		}
	}
}

// HealthSettled reports whether every served printer's health is known (its first check is done): the demo
// prints its summary after the check's log lines, not among them.
func (d *Daemon) HealthSettled() bool {
	for _, s := range d.printerStates() {
		if s.served && s.state == health.StateUnknown {
			return false
		}
	}
	return true
}

type printerState struct {
	name   string
	served bool
	state  health.State
}

// printerStates lists the stored printers with whether each is served and its health state. A store that
// cannot be read yields only the served printers.
func (d *Daemon) printerStates() []printerState {
	recs, _, _ := d.o.Store.Scan()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]printerState, 0, len(recs))
	seen := map[string]bool{}
	add := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		s := printerState{name: name, state: health.StateUnknown}
		if p := d.printers[name]; p != nil {
			s.served = true
			if p.health != nil {
				s.state = p.health.Snapshot().State
			}
		}
		out = append(out, s)
	}
	for _, r := range recs {
		add(r.Name)
	}
	for name := range d.printers {
		add(name)
	}
	return out
}

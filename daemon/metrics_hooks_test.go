package daemon

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/oeproxy/oeproxy/proxy"
)

// TestRequestDoneSeries: the hooks count each request in the series of its route and status class, through
// the children they keep after the first lookup.
func TestRequestDoneSeries(t *testing.T) {
	d := &Daemon{}
	d.metrics = newMetrics(d)
	h := d.routeHooks("mk4", d.metrics.hooks("mk4", proxy.Hooks{}))
	for _, st := range []proxy.RequestStats{
		{Status: 200, BytesOut: 10, Route: "relay"}, {Status: 204, BytesOut: 5}, {Status: 404, Route: "relay"},
		{Status: 0, Route: "relay"}, {Status: 503, BytesIn: 7, BytesOut: 3, Route: "lan"}, {Status: 200, BytesOut: 1, Route: "lan"},
		{Status: 606, Route: "relay"}, {Status: 200, BytesOut: 2, Route: "relay"},
	} {
		h.RequestDone(st)
	}
	for _, c := range []struct {
		route, class string
		want         float64
	}{{"relay", "2xx", 3}, {"relay", "4xx", 1}, {"relay", "none", 1}, {"relay", "6xx", 1}, {"lan", "5xx", 1}, {"lan", "2xx", 1}} {
		if got := gathered(t, d, "oeproxy_requests_total", map[string]string{"printer": "mk4", "route": c.route, "class": c.class}); got != c.want {
			t.Errorf("oeproxy_requests_total{route=%q,class=%q} = %v, want %v", c.route, c.class, got, c.want)
		}
	}
	for _, c := range []struct {
		route, dir string
		want       float64
	}{{"relay", "out", 17}, {"relay", "in", 0}, {"lan", "in", 7}, {"lan", "out", 4}} {
		if got := gathered(t, d, "oeproxy_route_bytes_total", map[string]string{"printer": "mk4", "route": c.route, "direction": c.dir}); got != c.want {
			t.Errorf("oeproxy_route_bytes_total{route=%q,direction=%q} = %v, want %v", c.route, c.dir, got, c.want)
		}
	}
	if n := len(gatheredSeries(t, d, "oeproxy_requests_total")); n != 6 {
		t.Errorf("%d oeproxy_requests_total series, want the 6 used", n)
	}
}

func gatheredSeries(t *testing.T, d *Daemon, name string) []*dto.Metric {
	t.Helper()
	// Only the two vectors: the daemon's registry also asks the store, which this Daemon does not have.
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.metrics.requests, d.routing.bytes)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

// gathered is the counter value of the series of name with exactly labels (-1 when there is none).
func gathered(t *testing.T, d *Daemon, name string, labels map[string]string) float64 {
	t.Helper()
next:
	for _, m := range gatheredSeries(t, d, name) {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m.GetCounter().GetValue()
	}
	return -1
}

// BenchmarkRequestDoneHooks is what the daemon's hooks cost per proxied request (metrics and route bytes).
func BenchmarkRequestDoneHooks(b *testing.B) {
	d := &Daemon{}
	d.metrics = newMetrics(d)
	h := d.routeHooks("mk4", d.metrics.hooks("mk4", proxy.Hooks{}))
	st := proxy.RequestStats{Status: 200, BytesOut: 200, Route: "relay"}
	b.ReportAllocs()
	for b.Loop() {
		h.RequestDone(st)
	}
}

package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestQuickRun runs the harness end to end with tiny sizes (the real oeproxy binary, nginx when installed) and
// checks that every figure was measured on every path without an error. It never judges speed.
func TestQuickRun(t *testing.T) {
	cfg := QuickConfig()
	cfg.RateDuration = 300 * time.Millisecond
	cfg.TransferBytes = 2 << 20
	cfg.WSRoundTrips, cfg.WSOneWay, cfg.IdleWS = 50, 500, 20
	cfg.MJPEGDuration = 500 * time.Millisecond
	cfg.Wrk = FindWrk()
	cfg.Nginx = FindNginx()
	if cfg.Nginx == "" {
		t.Log("nginx is not installed: measuring direct and oeproxy only (scripts/bench-deps.sh installs it)")
	}
	cfg.HAProxy = FindHAProxy()
	cfg.OEProxyBin = filepath.Join(t.TempDir(), "oeproxy")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := BuildOEProxy(ctx, cfg.OEProxyBin); err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Errors {
		t.Error(e)
	}
	want := []string{PathDirect, PathOEProxy}
	if cfg.Nginx != "" {
		want = append(want, PathNginx)
	}
	if cfg.HAProxy != "" {
		want = append(want, PathHAProxy)
	}
	for _, f := range Figures {
		for _, p := range want {
			if f.ID == FigRPSAllocs && p != PathOEProxy {
				continue // only oeproxy tells its allocations
			}
			proxyOnly := f.ID == FigIdleWS || f.ID == FigIdleRSS || f.ID == FigStart || f.ID == FigDownloadRSS ||
				f.ID == FigUploadRSS || f.ID == FigAddP50 || f.ID == FigAddP99 ||
				f.ID == FigRPSCPU || f.ID == FigDownloadCPU || f.ID == FigUploadCPU || f.ID == FigCamRSSViewer
			if p == PathDirect && proxyOnly {
				if len(res.Samples[f.ID][p]) != 0 {
					t.Errorf("%s has a value on the direct path, which has no proxy process", f.ID)
				}
				continue
			}
			if got := len(res.Samples[f.ID][p]); got != cfg.Rounds {
				t.Errorf("%s on %s: %d samples, want %d", f.ID, p, got, cfg.Rounds)
			}
		}
	}
	// The WAN group: every figure of every quick profile on direct, oeproxy and nginx.
	wanPaths := []string{PathDirect, PathOEProxy}
	if cfg.Nginx != "" {
		wanPaths = append(wanPaths, PathNginx)
	}
	for _, prof := range cfg.WANProfiles {
		for _, f := range wanFigures(prof) {
			for _, p := range wanPaths {
				if got := len(res.Samples[f.ID][p]); got != cfg.WANRounds {
					t.Errorf("%s on %s: %d samples, want %d", f.ID, p, got, cfg.WANRounds)
				}
			}
		}
	}
	if res.LinkMethod == "" {
		t.Error("the WAN group ran without saying how the link was simulated")
	}
	md := res.Markdown()
	for _, s := range []string{"| figure |", "oeproxy/direct", "## Machine", res.Machine.GoVersion, "## Over a WAN link", "- the link:"} {
		if !strings.Contains(md, s) {
			t.Errorf("RESULTS markdown lacks %q", s)
		}
	}
	if cfg.Nginx != "" && !strings.Contains(md, "oeproxy/nginx") {
		t.Error("RESULTS markdown lacks the oeproxy/nginx ratio although nginx ran")
	}
	if cfg.HAProxy != "" && !strings.Contains(md, "| haproxy |") {
		t.Error("RESULTS markdown lacks the haproxy column although HAProxy ran")
	}
	t.Log("\n" + res.Table())
	if _, err := os.Stat(filepath.Dir(cfg.OEProxyBin)); err != nil {
		t.Fatal(err)
	}
}

// ReadCPU sees this process's own CPU time grow while it spins. The spin lasts until the growth shows (a shared
// machine may give this process little of its wall time), not for a fixed time.
func TestReadCPU(t *testing.T) {
	c0, err := ReadCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var d time.Duration
	for deadline := time.Now().Add(20 * time.Second); d < 50*time.Millisecond && time.Now().Before(deadline); {
		for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
		}
		c1, err := ReadCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		d = c1 - c0
	}
	if d < 50*time.Millisecond || d > time.Minute {
		t.Errorf("spinning for up to 20 s counted as %v of CPU", d)
	}
	if _, err := ReadCPU(1 << 30); err == nil {
		t.Error("no error for a pid that does not exist")
	}
}

func TestPercentile(t *testing.T) {
	cases := []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{[]float64{5, 1, 3, 2, 4}, 50, 3},
		{[]float64{5, 1, 3, 2, 4}, 99, 5},
		{[]float64{7}, 99, 7},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9},
	}
	for _, c := range cases {
		if got := percentile(c.xs, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", c.xs, c.p, got, c.want)
		}
	}
}

func TestVerdicts(t *testing.T) {
	r := newResults(Config{})
	r.Paths = []string{PathDirect, PathOEProxy, PathNginx}
	r.add(FigDownload, PathDirect, 100)
	r.add(FigDownload, PathOEProxy, 95)
	r.add(FigDownload, PathNginx, 90)
	r.add(FigUploadRSS, PathOEProxy, 41)
	r.add(FigRPS, PathOEProxy, 10)
	r.add(FigRPS, PathNginx, 11)
	got := map[string]bool{}
	for _, v := range r.Verdicts() {
		got[v.Figure.ID] = v.Met
	}
	want := map[string]bool{FigDownload: true, FigUploadRSS: false, FigRPS: false}
	for k, w := range want {
		if m, ok := got[k]; !ok || m != w {
			t.Errorf("verdict %s = %v (judged %v), want %v", k, m, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("judged %v, want only %v", got, want)
	}
}

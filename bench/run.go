package bench

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"
)

// Config sizes a run. FullConfig and QuickConfig are the two presets.
type Config struct {
	Quick  bool
	Rounds int

	SmallConns    int           // wrk connections for requests/s
	SmallDuration time.Duration // per path and round
	Rate          int           // open-loop requests/s for p50/p99
	RateDuration  time.Duration

	TransferBytes int64 // download and upload size

	WSRoundTrips int // sequential echoes for the round-trip latency
	WSOneWay     int // messages for the one-way rate
	IdleWS       int // idle WebSockets held open

	MJPEGViewers    int
	MJPEGDuration   time.Duration
	MJPEGInterval   time.Duration
	MJPEGFrameBytes int
	// WebcamCut is how long the relay lets a webcam stream run in the cut-gap figure.
	WebcamCut time.Duration

	DripBytes    int // bytes of the trickling Content-Length answer, one per DripInterval
	DripInterval time.Duration

	// The WAN group: the relay behind each of WANProfiles, WANRounds rounds, each after WANIdle without traffic.
	WANProfiles      []LinkProfile
	WANRounds        int
	WANIdle          time.Duration
	WANTransferBytes int64
	WANPageScale     float64 // the page's sizes are mainsailAssets times this
	WANWSRoundTrips  int

	// Wrk is wrk's path ("" = the Go closed-loop client); Nginx and HAProxy are the peers' paths ("" = no such
	// path). The targets are judged against nginx; HAProxy is shown beside it.
	Wrk, Nginx, HAProxy string
	// OEProxyBin is a prebuilt oeproxy binary; empty builds one with go build.
	OEProxyBin string
	// Log receives progress lines (nil: discarded).
	Log io.Writer
	// Only, when not empty, limits the run to these groups: start, transfer, get, drip, ws, mjpeg, webcam, idlews, wan.
	Only []string
}

func (c Config) runs(group string) bool { return len(c.Only) == 0 || slices.Contains(c.Only, group) }

// loopback says whether any loopback group runs (not only the WAN group).
func (c Config) loopback() bool {
	return len(c.Only) == 0 || slices.ContainsFunc(c.Only, func(g string) bool { return g != "wan" })
}

// FullConfig is `make bench`: the full sizes (1 GiB transfers, 1,000 idle WebSockets, 10 viewers), 5 rounds.
func FullConfig() Config {
	return Config{
		Rounds:     5,
		SmallConns: 64, SmallDuration: 5 * time.Second,
		Rate: 250, RateDuration: 8 * time.Second,
		TransferBytes: 1 << 30,
		WSRoundTrips:  2000, WSOneWay: 20000, IdleWS: 1000,
		MJPEGViewers: 10, MJPEGDuration: 5 * time.Second, MJPEGInterval: 100 * time.Millisecond, MJPEGFrameBytes: 48 << 10,
		WebcamCut: 2 * time.Second,
		DripBytes: 10, DripInterval: 200 * time.Millisecond,
		WANProfiles: WANProfiles, WANRounds: 2, WANIdle: 90 * time.Second, WANTransferBytes: 50 << 20, WANPageScale: 1,
		WANWSRoundTrips: 20,
	}
}

// QuickConfig is `make bench-quick`: tiny sizes and one round, to prove the harness works (< 2 minutes).
func QuickConfig() Config {
	return Config{
		Quick: true, Rounds: 1,
		SmallConns: 8, SmallDuration: time.Second,
		Rate: 200, RateDuration: time.Second,
		TransferBytes: 8 << 20,
		WSRoundTrips:  100, WSOneWay: 1000, IdleWS: 50,
		MJPEGViewers: 2, MJPEGDuration: time.Second, MJPEGInterval: 50 * time.Millisecond, MJPEGFrameBytes: 16 << 10,
		WebcamCut: 500 * time.Millisecond,
		DripBytes: 5, DripInterval: 100 * time.Millisecond,
		WANProfiles: QuickWANProfiles, WANRounds: 1, WANIdle: 200 * time.Millisecond, WANTransferBytes: 1 << 20, WANPageScale: 0.25,
		WANWSRoundTrips: 5,
	}
}

// FindWrk returns wrk's path or "".
func FindWrk() string {
	p, _ := exec.LookPath("wrk")
	return p
}

// Run starts the environment and the proxies, measures every figure on every path, round by round with the
// order of the paths rotated each round, and returns the samples. Measurement errors are collected in
// Results.Errors (the run goes on); an error is returned only when the run could not happen at all.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	logf := func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", a...)
		}
	}
	res := newResults(cfg)
	env, err := StartEnv(ctx)
	if err != nil {
		return nil, err
	}
	defer env.Close()

	bin := cfg.OEProxyBin
	if bin == "" {
		bin = filepath.Join(env.Dir, "oeproxy.bin")
		logf("building oeproxy ...")
		if err := BuildOEProxy(ctx, bin); err != nil {
			return nil, err
		}
	}
	oe, err := NewOEProxy(ctx, bin, env)
	if err != nil {
		return nil, err
	}
	res.oeproxyLog = oe.LogFile
	conns := max(cfg.SmallConns*2, 256)
	paths := []*Path{env.DirectPath(conns), localPath(PathOEProxy, oe.Addr(), oe, conns)}
	if cfg.Nginx != "" {
		ng, err := NewNginx(cfg.Nginx, env)
		if err != nil {
			return nil, err
		}
		paths = append(paths, localPath(PathNginx, ng.Addr(), ng, conns))
	}
	if cfg.HAProxy != "" {
		hp, err := NewHAProxy(cfg.HAProxy, env)
		if err != nil {
			return nil, err
		}
		paths = append(paths, localPath(PathHAProxy, hp.Addr(), hp, conns))
	}
	for _, p := range paths {
		res.Paths = append(res.Paths, p.Name)
	}
	defer func() {
		for _, p := range paths {
			p.Transport.CloseIdleConnections()
		}
	}()

	for round := range cfg.Rounds {
		if ctx.Err() != nil || !cfg.loopback() {
			break
		}
		order := rotate(paths, round)
		logf("round %d/%d: %s", round+1, cfg.Rounds, names(order))
		runRound(ctx, cfg, env, order, round, res, logf)
	}
	if cfg.runs("wan") && len(cfg.WANProfiles) > 0 {
		runWAN(ctx, cfg, bin, res, logf)
	}
	res.secretsInLog = searchSecrets(oe.LogFile, env.Secrets())
	res.finish()
	return res, nil
}

func rotate(paths []*Path, n int) []*Path {
	n %= len(paths)
	return append(append([]*Path(nil), paths[n:]...), paths[:n]...)
}

func names(paths []*Path) string {
	s := ""
	for i, p := range paths {
		if i > 0 {
			s += ", "
		}
		s += p.Name
	}
	return s
}

// runRound starts the proxies, runs every figure over the paths in order, and stops the proxies.
func runRound(ctx context.Context, cfg Config, env *Env, order []*Path, round int, res *Results, logf func(string, ...any)) {
	fail := func(fig, path string, err error) {
		res.Errors = append(res.Errors, fmt.Sprintf("round %d, %s, %s: %v", round+1, fig, path, err))
		logf("  ERROR %s %s: %v", fig, path, err)
	}
	// 6. start to first request, then idle RSS (after a second to settle).
	var live []*Path
	for _, p := range order {
		if p.Proc == nil {
			live = append(live, p)
			continue
		}
		d, err := p.Proc.Start()
		if err != nil {
			fail(FigStart, p.Name, err)
			continue
		}
		live = append(live, p)
		res.add(FigStart, p.Name, float64(d)/float64(time.Millisecond))
	}
	defer func() {
		for _, p := range live {
			if p.Proc != nil {
				p.Transport.CloseIdleConnections()
				if err := p.Proc.Stop(); err != nil {
					fail("stop", p.Name, err)
				}
			}
		}
	}()
	time.Sleep(time.Second)
	for _, p := range live {
		if m, ok, err := p.memory(); err != nil {
			fail(FigIdleRSS, p.Name, err)
		} else if ok {
			res.add(FigIdleRSS, p.Name, mib(m.RSS))
		}
	}

	// 2. transfers first, while the processes are small, with the peak RSS and the CPU time of each.
	transfers := []struct {
		name             string
		fig, rss, cpuFig string
		run              func(*Path) (float64, error)
	}{
		{"download", FigDownload, FigDownloadRSS, FigDownloadCPU, func(p *Path) (float64, error) { return download(ctx, p, cfg.TransferBytes) }},
		{"upload", FigUpload, FigUploadRSS, FigUploadCPU, func(p *Path) (float64, error) { return upload(ctx, p, env.Origin.fill, cfg.TransferBytes) }},
	}
	for _, tr := range transfers {
		for _, p := range live {
			if !cfg.runs("transfer") {
				break
			}
			peak, cpu := p.startPeak(), p.startCPU()
			v, err := tr.run(p)
			pk := peak()
			if err != nil {
				fail(tr.fig, p.Name, err)
				continue
			}
			if c, ok := cpu(); ok {
				res.add(tr.cpuFig, p.Name, c.Seconds()*float64(1<<30)/float64(cfg.TransferBytes))
			}
			res.add(tr.fig, p.Name, v)
			if p.Proc != nil {
				res.add(tr.rss, p.Name, mib(pk))
			}
			logf("  %-8s %-8s %8.1f MB/s", tr.name, p.Name, v)
		}
	}

	// 1. small GET: requests/s at fixed concurrency, then p50/p99 at a fixed open-loop rate.
	for _, p := range live {
		if !cfg.runs("get") {
			break
		}
		cpu := p.startCPU()
		oe, isOE := p.Proc.(*OEProxy)
		var m0 float64
		var merr error
		if isOE {
			m0, merr = oe.Mallocs()
		}
		v, tool, err := smallGETRate(ctx, cfg.Wrk, p, cfg.SmallConns, cfg.SmallDuration)
		res.RateTool = tool
		if c, ok := cpu(); ok && err == nil && v > 0 {
			res.add(FigRPSCPU, p.Name, float64(c.Microseconds())/(v*cfg.SmallDuration.Seconds()))
			if isOE && merr == nil {
				if m1, err := oe.Mallocs(); err == nil {
					res.add(FigRPSAllocs, p.Name, (m1-m0)/(v*cfg.SmallDuration.Seconds()))
				}
			}
		}
		if err != nil {
			fail(FigRPS, p.Name, err)
			continue
		}
		res.add(FigRPS, p.Name, v)
		logf("  GET      %-8s %8.0f req/s (%s)", p.Name, v, tool)
	}
	p50s := map[string]float64{}
	p99s := map[string]float64{}
	for _, p := range live {
		if !cfg.runs("get") {
			break
		}
		p50, p99, err := openLoop(ctx, p, cfg.Rate, cfg.RateDuration)
		if err != nil {
			fail(FigP50, p.Name, err)
			continue
		}
		p50s[p.Name], p99s[p.Name] = p50, p99
		res.add(FigP50, p.Name, p50)
		res.add(FigP99, p.Name, p99)
		logf("  latency  %-8s p50 %.3f ms p99 %.3f ms at %d/s", p.Name, p50, p99, cfg.Rate)
	}
	if d50, ok := p50s[PathDirect]; ok {
		for name := range p50s {
			if name != PathDirect {
				res.add(FigAddP50, name, p50s[name]-d50)
				res.add(FigAddP99, name, p99s[name]-p99s[PathDirect])
			}
		}
	}

	// A Content-Length answer whose body trickles: how soon its first byte reaches the client.
	for _, p := range live {
		if !cfg.runs("drip") {
			break
		}
		first, err := dripFirstByte(ctx, p, cfg.DripBytes, cfg.DripInterval)
		if err != nil {
			fail(FigDripFirst, p.Name, err)
			continue
		}
		res.add(FigDripFirst, p.Name, first)
		logf("  drip     %-8s first byte after %.1f ms (%d bytes over %s)", p.Name, first, cfg.DripBytes,
			time.Duration(cfg.DripBytes)*cfg.DripInterval)
	}

	// 3. WebSocket round trip and one-way rate.
	for _, p := range live {
		if !cfg.runs("ws") {
			break
		}
		p50, p99, err := wsRoundTrips(ctx, p, cfg.WSRoundTrips)
		if err != nil {
			fail(FigWSRTT50, p.Name, err)
			continue
		}
		res.add(FigWSRTT50, p.Name, p50)
		res.add(FigWSRTT99, p.Name, p99)
		rate, err := wsOneWay(ctx, p, cfg.WSOneWay)
		if err != nil {
			fail(FigWSRate, p.Name, err)
			continue
		}
		res.add(FigWSRate, p.Name, rate)
		logf("  ws       %-8s rtt p50 %.0f µs p99 %.0f µs, %.0f msg/s one way", p.Name, p50, p99, rate)
	}

	// 5. MJPEG with several viewers.
	for _, p := range live {
		if !cfg.runs("mjpeg") {
			break
		}
		r, err := mjpegViewers(ctx, p, env.Origin, cfg.MJPEGViewers, cfg.MJPEGDuration, cfg.MJPEGInterval, cfg.MJPEGFrameBytes)
		if err != nil {
			fail(FigMJPEG50, p.Name, err)
			continue
		}
		if r.frames == 0 {
			fail(FigMJPEG50, p.Name, fmt.Errorf("no frame reached the viewers"))
			continue
		}
		fps := float64(r.frames) / float64(cfg.MJPEGViewers) / cfg.MJPEGDuration.Seconds()
		res.add(FigMJPEG50, p.Name, percentile(r.latencies, 50))
		res.add(FigMJPEG99, p.Name, percentile(r.latencies, 99))
		res.add(FigMJPEGFPS, p.Name, fps)
		res.add(FigMJPEGBytes, p.Name, float64(r.bytes)/1e6)
		logf("  mjpeg    %-8s p50 %.2f ms, %.1f fps/viewer, relay sent %.1f MB", p.Name, percentile(r.latencies, 50), fps, float64(r.bytes)/1e6)
	}

	// 5b. One webcam, several viewers: relay streams, memory per viewer, snapshots, and a cut.
	for _, p := range live {
		if !cfg.runs("webcam") {
			break
		}
		r, err := webcamViewers(ctx, p, env, cfg.MJPEGViewers, cfg.MJPEGInterval, cfg.MJPEGFrameBytes, cfg.WebcamCut)
		if err != nil {
			fail(FigCamStreams, p.Name, err)
			continue
		}
		res.add(FigCamStreams, p.Name, float64(r.streams))
		if r.hasRSS {
			res.add(FigCamRSSViewer, p.Name, r.rssPerView)
		}
		res.add(FigCamSnapshot, p.Name, r.snapshotP50)
		res.add(FigCamCutGap, p.Name, r.cutGap)
		logf("  webcam   %-8s %d relay streams for %d viewers, %.1f KiB RSS per extra viewer, snapshot p50 %.2f ms, longest gap at a cut %.0f ms",
			p.Name, r.streams, cfg.MJPEGViewers, r.rssPerView, r.snapshotP50, r.cutGap)
	}

	// 4. idle WebSockets last: they grow the process for good.
	for _, p := range live {
		if p.Proc == nil || !cfg.runs("idlews") {
			continue
		}
		v, err := idleWebSockets(ctx, p, cfg.IdleWS, time.Second)
		if err != nil {
			fail(FigIdleWS, p.Name, err)
			continue
		}
		res.add(FigIdleWS, p.Name, v)
		logf("  idle ws  %-8s %.1f KiB per connection", p.Name, v)
	}
	runtime.GC() // the bench's own heap from this round should not weigh on the next
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

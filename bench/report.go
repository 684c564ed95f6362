package bench

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Figure IDs.
const (
	FigRPS         = "get_rps"
	FigP50         = "get_p50"
	FigP99         = "get_p99"
	FigAddP50      = "get_add_p50"
	FigAddP99      = "get_add_p99"
	FigDownload    = "download"
	FigDownloadRSS = "download_rss"
	FigUpload      = "upload"
	FigUploadRSS   = "upload_rss"
	FigWSRTT50     = "ws_rtt_p50"
	FigWSRTT99     = "ws_rtt_p99"
	FigWSRate      = "ws_rate"
	FigIdleWS      = "ws_idle"
	FigMJPEG50     = "mjpeg_p50"
	FigMJPEG99     = "mjpeg_p99"
	FigMJPEGFPS    = "mjpeg_fps"
	FigMJPEGBytes  = "mjpeg_bytes"
	// The webcam group: one webcam watched by MJPEGViewers viewers.
	FigCamStreams   = "webcam_relay_streams"
	FigCamRSSViewer = "webcam_rss_per_viewer"
	FigCamSnapshot  = "webcam_snapshot_p50"
	FigCamCutGap    = "webcam_cut_gap"
	FigIdleRSS      = "idle_rss"
	FigStart        = "start"
	FigRPSCPU       = "get_cpu"
	FigRPSAllocs    = "get_allocs"
	FigDownloadCPU  = "download_cpu"
	FigUploadCPU    = "upload_cpu"
	FigDripFirst    = "drip_first_byte"
)

// Figure describes one row of the table.
type Figure struct {
	ID, Label, Unit string
	Higher          bool // higher is better
	Digits          int
	// NoRatio hides the oeproxy/direct ratio (differences to direct, proxy-only figures).
	NoRatio bool
	// Target is the figure's target in words; Judge returns met/missed from the medians ("" when not judged).
	Target string
	Judge  func(med func(path string) (float64, bool)) (bool, bool)
}

func lessOrEqualNginx(id string) func(func(string) (float64, bool)) (bool, bool) {
	return func(med func(string) (float64, bool)) (bool, bool) {
		o, ok1 := med(PathOEProxy)
		n, ok2 := med(PathNginx)
		return o <= n, ok1 && ok2
	}
}

func below(limit float64) func(func(string) (float64, bool)) (bool, bool) {
	return func(med func(string) (float64, bool)) (bool, bool) {
		o, ok := med(PathOEProxy)
		return o < limit, ok
	}
}

func throughputTarget(med func(string) (float64, bool)) (bool, bool) {
	o, ok := med(PathOEProxy)
	d, okd := med(PathDirect)
	if !ok || !okd {
		return false, false
	}
	met := o >= 0.9*d
	if n, okn := med(PathNginx); okn {
		met = met && o >= n
	}
	return met, true
}

// Figures in table order.
var Figures = []Figure{
	{ID: FigRPS, Label: "small GET, fixed concurrency", Unit: "req/s", Higher: true, Digits: 0, Target: "≥ nginx",
		Judge: func(med func(string) (float64, bool)) (bool, bool) {
			o, ok1 := med(PathOEProxy)
			n, ok2 := med(PathNginx)
			return o >= n, ok1 && ok2
		}},
	{ID: FigRPSCPU, Label: "small GET: proxy CPU per request", Unit: "µs", Digits: 0, NoRatio: true},
	{ID: FigRPSAllocs, Label: "small GET: proxy heap allocations per request (oeproxy's go_memstats_mallocs_total)", Unit: "", Digits: 0, NoRatio: true},
	{ID: FigP50, Label: "small GET p50, open loop", Unit: "ms", Digits: 3},
	{ID: FigP99, Label: "small GET p99, open loop", Unit: "ms", Digits: 3},
	{ID: FigAddP50, Label: "small GET added p50 (vs direct)", Unit: "ms", Digits: 3, NoRatio: true, Target: "≤ nginx", Judge: lessOrEqualNginx(FigAddP50)},
	{ID: FigAddP99, Label: "small GET added p99 (vs direct)", Unit: "ms", Digits: 3, NoRatio: true, Target: "≤ nginx", Judge: lessOrEqualNginx(FigAddP99)},
	{ID: FigDownload, Label: "download", Unit: "MB/s", Higher: true, Digits: 0, Target: "≥ 0.9×direct, ≥ nginx", Judge: throughputTarget},
	{ID: FigDownloadCPU, Label: "download: proxy CPU per GiB", Unit: "s", Digits: 2, NoRatio: true},
	{ID: FigDownloadRSS, Label: "download: proxy peak RSS", Unit: "MiB", Digits: 1, NoRatio: true},
	{ID: FigUpload, Label: "upload (multipart, Content-Length)", Unit: "MB/s", Higher: true, Digits: 0, Target: "≥ 0.9×direct, ≥ nginx", Judge: throughputTarget},
	{ID: FigUploadCPU, Label: "upload: proxy CPU per GiB", Unit: "s", Digits: 2, NoRatio: true},
	{ID: FigUploadRSS, Label: "upload: proxy peak RSS", Unit: "MiB", Digits: 1, NoRatio: true, Target: "< 40 MiB", Judge: below(40)},
	{ID: FigDripFirst, Label: "trickling Content-Length body: first byte", Unit: "ms", Digits: 1, Target: "< 100 ms", Judge: below(100)},
	{ID: FigWSRTT50, Label: "WebSocket round trip p50", Unit: "µs", Digits: 0, Target: "≤ nginx", Judge: lessOrEqualNginx(FigWSRTT50)},
	{ID: FigWSRTT99, Label: "WebSocket round trip p99", Unit: "µs", Digits: 0},
	{ID: FigWSRate, Label: "WebSocket messages one way", Unit: "msg/s", Higher: true, Digits: 0},
	{ID: FigIdleWS, Label: "idle WebSocket: proxy RSS per connection", Unit: "KiB", Digits: 1, NoRatio: true, Target: "≤ 32 KiB",
		Judge: func(med func(string) (float64, bool)) (bool, bool) { o, ok := med(PathOEProxy); return o <= 32, ok }},
	{ID: FigMJPEG50, Label: "MJPEG frame latency p50", Unit: "ms", Digits: 2},
	{ID: FigMJPEG99, Label: "MJPEG frame latency p99", Unit: "ms", Digits: 2},
	{ID: FigMJPEGFPS, Label: "MJPEG frames per viewer", Unit: "fps", Higher: true, Digits: 1},
	{ID: FigMJPEGBytes, Label: "MJPEG bytes the relay sent", Unit: "MB", Digits: 1},
	{ID: FigCamStreams, Label: "webcam: relay streams for all viewers", Unit: "", Digits: 0, Target: "1 (oeproxy)",
		Judge: func(med func(string) (float64, bool)) (bool, bool) { o, ok := med(PathOEProxy); return o <= 1, ok }},
	{ID: FigCamRSSViewer, Label: "webcam: proxy RSS per extra viewer", Unit: "KiB", Digits: 0, NoRatio: true},
	{ID: FigCamSnapshot, Label: "webcam: snapshot latency p50 while streaming", Unit: "ms", Digits: 2},
	{ID: FigCamCutGap, Label: "webcam: longest frame gap across a relay cut", Unit: "ms", Digits: 0, Target: "≤ 200 ms (2× the frame interval)", Judge: below(200)},
	{ID: FigIdleRSS, Label: "idle RSS after start", Unit: "MiB", Digits: 1, NoRatio: true, Target: "< 25 MiB", Judge: below(25)},
	{ID: FigStart, Label: "start to first served request", Unit: "ms", Digits: 1, NoRatio: true, Target: "< 100 ms", Judge: below(100)},
}

// Results holds every sample of a run: figure → path → one value per round.
type Results struct {
	Config   Config `json:"-"`
	Paths    []string
	Samples  map[string]map[string][]float64
	Errors   []string
	RateTool string // "wrk" or "go"
	Machine  Machine
	Started  time.Time
	Duration time.Duration

	// LinkMethod is how the WAN link was simulated (LinkNetem or LinkGoFront); NetemWhyNot says why not netem.
	LinkMethod, NetemWhyNot string

	oeproxyLog   string
	secretsInLog int
}

// allFigures are the loopback figures and the WAN ones of the run's profiles.
func (r *Results) allFigures() []Figure {
	figs := slices.Clone(Figures)
	for _, p := range r.Config.WANProfiles {
		figs = append(figs, wanFigures(p)...)
	}
	return figs
}

func newResults(cfg Config) *Results {
	return &Results{Config: cfg, Samples: map[string]map[string][]float64{}, Started: time.Now(), Machine: DescribeMachine(cfg)}
}

func (r *Results) add(fig, path string, v float64) {
	if r.Samples[fig] == nil {
		r.Samples[fig] = map[string][]float64{}
	}
	r.Samples[fig][path] = append(r.Samples[fig][path], v)
}

func (r *Results) finish() {
	r.Duration = time.Since(r.Started)
	r.Machine.LoadEnd = loadAvg()
	if r.secretsInLog > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("%d secret(s) issued by oesim appear in oeproxy's log %s", r.secretsInLog, r.oeproxyLog))
	}
}

// Median returns the median of a figure on a path.
func (r *Results) Median(fig, path string) (float64, bool) {
	xs := r.Samples[fig][path]
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// Verdict is one target's outcome.
type Verdict struct {
	Figure Figure
	Met    bool
}

// Verdicts judges every figure that has a target and enough data.
func (r *Results) Verdicts() []Verdict {
	var out []Verdict
	for _, f := range r.allFigures() {
		if f.Judge == nil {
			continue
		}
		if met, ok := f.Judge(func(p string) (float64, bool) { return r.Median(f.ID, p) }); ok {
			out = append(out, Verdict{Figure: f, Met: met})
		}
	}
	return out
}

func (r *Results) cell(f Figure, path string) string {
	xs := r.Samples[f.ID][path]
	if len(xs) == 0 {
		return "—"
	}
	m, _ := r.Median(f.ID, path)
	if len(xs) == 1 {
		return fmtNum(m, f.Digits)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(m, f.Digits), fmtNum(slices.Min(xs), f.Digits), fmtNum(slices.Max(xs), f.Digits))
}

func (r *Results) ratio(f Figure, a, b string) string {
	if f.NoRatio && b == PathDirect {
		return "—"
	}
	x, ok1 := r.Median(f.ID, a)
	y, ok2 := r.Median(f.ID, b)
	if !ok1 || !ok2 || y <= 0 || x < 0 {
		return "—" // a ratio of differences around zero (added p99) means nothing
	}
	return fmt.Sprintf("%.2f", x/y)
}

func fmtNum(v float64, digits int) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return fmt.Sprintf("%.*f", digits, v)
}

// overlap reports whether the min–max ranges of two paths overlap: then a verdict between them is within the
// run-to-run noise.
func (r *Results) overlap(fig, a, b string) bool {
	xa, xb := r.Samples[fig][a], r.Samples[fig][b]
	if len(xa) < 2 || len(xb) < 2 {
		return false
	}
	return slices.Min(xa) <= slices.Max(xb) && slices.Min(xb) <= slices.Max(xa)
}

// Table renders the markdown table of the loopback figures: medians (min–max), ratios, targets and verdicts.
func (r *Results) Table() string { return r.tableOf(Figures) }

// WANTables renders one table per WAN profile that has samples, each under a heading naming the profile.
func (r *Results) WANTables() string {
	var b strings.Builder
	for _, p := range r.Config.WANProfiles {
		figs := wanFigures(p)
		if !r.hasSamples(figs) {
			continue
		}
		fmt.Fprintf(&b, "### WAN: %s\n\n%s\n", p.Name, r.tableOf(figs))
	}
	return b.String()
}

func (r *Results) hasSamples(figs []Figure) bool {
	for _, f := range figs {
		if len(r.Samples[f.ID]) > 0 {
			return true
		}
	}
	return false
}

func (r *Results) hasPath(figs []Figure, path string) bool {
	for _, f := range figs {
		if len(r.Samples[f.ID][path]) > 0 {
			return true
		}
	}
	return false
}

func (r *Results) tableOf(figs []Figure) string {
	var b strings.Builder
	hasNginx := r.hasPath(figs, PathNginx)
	hasHAProxy := r.hasPath(figs, PathHAProxy)
	b.WriteString("| figure | unit | direct | oeproxy |")
	if hasNginx {
		b.WriteString(" nginx |")
	}
	if hasHAProxy {
		b.WriteString(" haproxy |")
	}
	b.WriteString(" oeproxy/direct |")
	if hasNginx {
		b.WriteString(" oeproxy/nginx |")
	}
	b.WriteString(" target | verdict |\n|---|---|---:|---:|")
	if hasNginx {
		b.WriteString("---:|")
	}
	if hasHAProxy {
		b.WriteString("---:|")
	}
	b.WriteString("---:|")
	if hasNginx {
		b.WriteString("---:|")
	}
	b.WriteString("---|---|\n")
	verdicts := map[string]bool{}
	for _, v := range r.Verdicts() {
		verdicts[v.Figure.ID] = v.Met
	}
	for _, f := range figs {
		if len(r.Samples[f.ID]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |", f.Label, f.Unit, r.cell(f, PathDirect), r.cell(f, PathOEProxy))
		if hasNginx {
			fmt.Fprintf(&b, " %s |", r.cell(f, PathNginx))
		}
		if hasHAProxy {
			fmt.Fprintf(&b, " %s |", r.cell(f, PathHAProxy))
		}
		fmt.Fprintf(&b, " %s |", r.ratio(f, PathOEProxy, PathDirect))
		if hasNginx {
			fmt.Fprintf(&b, " %s |", r.ratio(f, PathOEProxy, PathNginx))
		}
		verdict := ""
		if met, ok := verdicts[f.ID]; ok {
			verdict = "missed"
			if met {
				verdict = "met"
			}
			if strings.Contains(f.Target, "nginx") && r.overlap(f.ID, PathOEProxy, PathNginx) ||
				strings.Contains(f.Target, "direct") && !strings.Contains(f.Target, "nginx") && r.overlap(f.ID, PathOEProxy, PathDirect) {
				verdict += " (ranges overlap)"
			}
		} else if f.Target != "" {
			verdict = "not judged"
		}
		fmt.Fprintf(&b, " %s | %s |\n", f.Target, verdict)
	}
	return b.String()
}

// Summary is one line: targets met and missed, errors.
func (r *Results) Summary() string {
	met, missed := 0, []string{}
	for _, v := range r.Verdicts() {
		if v.Met {
			met++
		} else {
			missed = append(missed, v.Figure.Label)
		}
	}
	s := fmt.Sprintf("bench: %d target(s) met, %d missed", met, len(missed))
	if len(missed) > 0 {
		s += " (" + strings.Join(missed, "; ") + ")"
	}
	return s + fmt.Sprintf(", %d error(s)", len(r.Errors))
}

// Markdown is the whole RESULTS.md.
func (r *Results) Markdown() string {
	var b strings.Builder
	c := r.Config
	mode := "full"
	if c.Quick {
		mode = "quick (proves the harness works; not for judging speed)"
	}
	fmt.Fprintf(&b, "# oeproxy benchmark results\n\n")
	fmt.Fprintf(&b, "Generated by `go run ./bench/cmd/bench` (`make bench`) on %s; %s run, %d round(s), %s.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), mode, c.Rounds, r.Duration.Round(time.Second))
	fmt.Fprintf(&b, "## Machine\n\n%s\n", r.Machine.Markdown())
	fmt.Fprintf(&b, "## Paths\n\n")
	b.WriteString("- **direct**: the client talks TLS to oesim's relay itself and sets the App Connection's Basic credential.\n")
	b.WriteString("- **oeproxy**: the client talks plain HTTP to the real `oeproxy serve` binary (a child process; its RSS is its own), which relays over TLS.\n")
	if slices.Contains(r.Paths, PathNginx) {
		b.WriteString("- **nginx**: the client talks plain HTTP to nginx (`worker_processes auto`, `proxy_buffering off`, `proxy_request_buffering off`,\n" +
			"  WebSocket upgrade, `proxy_ssl_server_name on`, certificate verified, upstream keep-alive 64, Host and Authorization set);\n" +
			"  RSS is master plus workers.\n")
	} else {
		b.WriteString("- **nginx**: not installed on this machine (run `scripts/bench-deps.sh`), so not measured.\n")
	}
	if slices.Contains(r.Paths, PathHAProxy) {
		b.WriteString("- **haproxy**: the client talks plain HTTP to HAProxy (one process, its default threads, `mode http`, keep-alive,\n" +
			"  Host and Authorization set, `ssl verify required` with SNI and `verifyhost`, server connections reused);\n" +
			"  shown beside nginx, which the targets are judged against.\n")
	}
	b.WriteString("\nThe relay is oesim (Go, TLS, HTTP/1.1, store-and-forward uploads spooled to disk, as OctoEverywhere's plugin does),\n" +
		"with a fast origin behind it; client, relay, origin and proxy share the machine's cores, so the ratios matter, not the absolute figures.\n" +
		"Paths are interleaved within each round and their order rotates from round to round.\n\n")
	fmt.Fprintf(&b, "## Results\n\nMedian over rounds (min–max). Ratios are of medians. \"ranges overlap\": the min–max ranges of oeproxy and\n"+
		"nginx overlap, so that verdict is within this machine's run-to-run noise. The p99 figures are dominated by the\n"+
		"shared relay and client process (Go GC and scheduling on the same cores); added p99 has no significant sign.\n\n%s\n", r.Table())
	if w := r.WANTables(); w != "" {
		b.WriteString("## Over a WAN link\n\nThe relay behind a simulated link (method below), the client and the proxies on this side of it, as a\n" +
			"user's laptop and oeproxy are. Median over rounds (min–max).\n\n" + w)
	}
	fmt.Fprintf(&b, "%s\n\n", r.Summary())
	fmt.Fprintf(&b, "## Method\n\n")
	tool := "wrk (`-t1`)"
	if r.RateTool == "go" {
		tool = "a Go closed-loop client (wrk not installed)"
	}
	fmt.Fprintf(&b, "- small GET: a 128-byte JSON answer; requests/s with %s at %d connections for %s; p50/p99 with an open-loop Go client at %d requests/s for %s after 1 s of warm-up (latency counted from when each request was due).\n",
		tool, c.SmallConns, c.SmallDuration, c.Rate, c.RateDuration)
	fmt.Fprintf(&b, "- small GET cost per request, during the requests/s run: proxy CPU is utime + stime from `/proc/<pid>/stat` (nginx's master and workers summed) divided by the requests answered; oeproxy's heap allocations are the growth of `go_memstats_mallocs_total` on its admin `/metrics` (Go's runtime count of heap objects allocated) across the run, divided the same way, so they include the daemon's own background work and one scrape of `/metrics`; nginx and HAProxy have no such count.\n")
	fmt.Fprintf(&b, "- download: %s generated by the origin with a Content-Length; upload: a multipart/form-data file of %s with a Content-Length. Peak RSS is VmHWM after resetting it (`/proc/<pid>/clear_refs`) before the transfer.\n",
		byteSize(c.TransferBytes), byteSize(c.TransferBytes))
	fmt.Fprintf(&b, "- trickling body: a %d-byte answer with a Content-Length whose origin writes (and flushes) one byte every %s; time from sending the request to its first body byte at the client.\n",
		c.DripBytes, c.DripInterval)
	fmt.Fprintf(&b, "- WebSocket: %d sequential echoes of a 64-byte message (round trip), and %d 64-byte messages one way (until the origin confirms their count).\n", c.WSRoundTrips, c.WSOneWay)
	fmt.Fprintf(&b, "- idle WebSockets: %d echo connections opened through the proxy (each proven with one echo), RSS growth after 1 s divided by %d.\n", c.IdleWS, c.IdleWS)
	fmt.Fprintf(&b, "- MJPEG: %d viewers for %s, one %s frame every %s; latency from the origin's timestamp in each part to the part's last byte at the viewer; the relay's bytes are the stream bytes the origin wrote (one upstream stream per viewer on direct, nginx and HAProxy; oeproxy shares one among the viewers).\n",
		c.MJPEGViewers, c.MJPEGDuration, byteSize(int64(c.MJPEGFrameBytes)), c.MJPEGInterval)
	fmt.Fprintf(&b, "- Webcam: one viewer of /webcam/stream, then %d more; relay streams are the stream requests the origin answered; RSS per extra viewer is the proxy's RSS growth after the others joined, divided by their number; snapshot p50 is 20 sequential /webcam/snapshot requests while the viewers watch (oeproxy answers them from the stream's newest frame, the others ask the relay); the cut gap is the longest time without a frame for one viewer while the relay ends every stream after %s, over 3 cuts (a stream that ended counts to the end of the window).\n",
		c.MJPEGViewers-1, c.WebcamCut)
	b.WriteString("- idle RSS: VmRSS one second after start (after the first request); start: from exec to the first request answered 200 through the proxy (includes the TLS handshake to the relay).\n")
	if r.hasSamples(r.allFigures()[len(Figures):]) {
		fmt.Fprintf(&b, "\nWAN group (%d round(s) per profile):\n\n%s", c.WANRounds, r.wanMethod())
	}
	if len(r.Errors) > 0 {
		b.WriteString("\n## Errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// Machine describes where the run happened.
type Machine struct {
	CPUs               int
	CPUModel, Kernel   string
	GoVersion          string
	Nginx, HAProxy     string
	Wrk                string
	LoadStart, LoadEnd string
}

// DescribeMachine reads /proc and the tools' versions.
func DescribeMachine(cfg Config) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if cfg.Nginx != "" {
		out, _ := exec.Command(cfg.Nginx, "-v").CombinedOutput()
		m.Nginx = strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: "))
	}
	if cfg.HAProxy != "" {
		out, _ := exec.Command(cfg.HAProxy, "-v").CombinedOutput()
		m.HAProxy = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	if cfg.Wrk != "" {
		out, _ := exec.Command(cfg.Wrk, "-v").CombinedOutput()
		m.Wrk = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Markdown renders the machine as a list.
func (m Machine) Markdown() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "- CPU: %d × %s\n- kernel: Linux %s\n- Go: %s\n", m.CPUs, orUnknown(m.CPUModel), orUnknown(m.Kernel), m.GoVersion)
	if m.Nginx != "" {
		fmt.Fprintf(&b, "- nginx: %s\n", m.Nginx)
	}
	if m.HAProxy != "" {
		fmt.Fprintf(&b, "- HAProxy: %s\n", m.HAProxy)
	}
	if m.Wrk != "" {
		fmt.Fprintf(&b, "- wrk: %s\n", m.Wrk)
	}
	fmt.Fprintf(&b, "- load average (1, 5, 15 min) at start: %s; at end: %s. The machine is shared with other work, so absolute figures vary from run to run.\n", m.LoadStart, m.LoadEnd)
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// searchSecrets counts the secrets found in a file.
func searchSecrets(file string, secrets []string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n := 0
	for _, s := range secrets {
		if s != "" && bytes.Contains(b, []byte(s)) {
			n++
		}
	}
	return n
}

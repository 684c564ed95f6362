package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// WAN figure IDs, without the profile's key (the Samples map holds "<key>_<id>", e.g. "wan40_cold").
const (
	WanCold     = "cold"
	WanPage     = "page"
	WanWSRTT    = "ws_rtt"
	WanCamFirst = "cam_first"
	WanCamNew   = "cam_new"
	WanDown     = "download_eff"
	WanUp       = "upload_eff"
	WanSlicer   = "slicer_upload"
	WanLowSpeed = "lowspeed_upload"
)

// mainsailAssets are the 40 files a Mainsail 2.x page load fetches after its index, in bytes as served (the
// larger ones compressed): the main and vendor bundles, route chunks, style sheets, fonts and icons. The sizes
// are modelled on a Mainsail release's dist/assets listing (about 1.9 MB in all), not copied from one build.
var mainsailAssets = []int{
	612_000, 318_000, 164_000, 96_000, 71_000, 58_000, 44_000, 39_000, 33_000, 28_000, // JS bundles and big chunks
	24_000, 21_000, 18_000, 16_000, 14_000, 12_000, 11_000, 9_500, 8_200, 7_400, // route chunks
	6_600, 5_900, 5_100, 4_400, 3_800, 3_100, 2_600, 2_100, // small chunks
	148_000, 22_000, 9_800, 4_200, 1_900, // CSS
	98_000, 76_000, 21_000, // woff2 fonts
	15_000, 4_800, 2_300, 1_100, // logo, favicon, manifest, icons
}

const mainsailIndex = 2_400 // index.html

// browserConns is a browser's limit of HTTP/1.1 connections per origin.
const browserConns = 6

// wanFigures are the WAN rows of one profile, in table order.
func wanFigures(p LinkProfile) []Figure {
	lessDirect := func(id string, strict bool) func(func(string) (float64, bool)) (bool, bool) {
		return func(med func(string) (float64, bool)) (bool, bool) {
			o, ok1 := med(PathOEProxy)
			d, ok2 := med(PathDirect)
			if strict {
				return o < d, ok1 && ok2
			}
			return o <= d, ok1 && ok2
		}
	}
	moreDirect := func(med func(string) (float64, bool)) (bool, bool) {
		o, ok1 := med(PathOEProxy)
		d, ok2 := med(PathDirect)
		return o >= d, ok1 && ok2
	}
	k := p.Key + "_"
	return []Figure{
		{ID: k + WanCold, Label: "first request after idle (cold connection)", Unit: "ms", Digits: 0, Target: "< direct", Judge: lessDirect(k+WanCold, true)},
		{ID: k + WanPage, Label: "printer UI page load: index + 40 assets, then WebSocket first message", Unit: "ms", Digits: 0, Target: "< direct", Judge: lessDirect(k+WanPage, true)},
		{ID: k + WanWSRTT, Label: "WebSocket round trip p50", Unit: "ms", Digits: 1, Target: fmt.Sprintf("≤ link RTT + 5 ms (%d)", p.RTT.Milliseconds()+5),
			Judge: func(med func(string) (float64, bool)) (bool, bool) {
				o, ok := med(PathOEProxy)
				return o <= ms(p.RTT)+5, ok
			}},
		{ID: k + WanCamFirst, Label: "webcam: first frame, first viewer", Unit: "ms", Digits: 0, Target: "≤ direct", Judge: lessDirect(k+WanCamFirst, false)},
		{ID: k + WanCamNew, Label: "webcam: first frame, a new viewer while one watches", Unit: "ms", Digits: 0, Target: "≤ direct", Judge: lessDirect(k+WanCamNew, false)},
		{ID: k + WanDown, Label: "download: share of the link's capacity", Unit: "%", Higher: true, Digits: 0, Target: "≥ direct", Judge: moreDirect},
		{ID: k + WanUp, Label: "upload: share of the link's capacity", Unit: "%", Higher: true, Digits: 0, Target: "≥ direct", Judge: moreDirect},
		{ID: k + WanSlicer, Label: "slicer upload (curl with PrusaSlicer's options), until the printer has it", Unit: "s", Digits: 1, Target: "≤ direct", Judge: lessDirect(k+WanSlicer, false)},
		{ID: k + WanLowSpeed, Label: "upload by a client with a low-speed limit (curl --speed-limit 1 --speed-time 10): done", Unit: "%", Higher: true, Digits: 0, NoRatio: true,
			Target: "100 (oeproxy, upload.answer_when_stored)", Judge: func(med func(string) (float64, bool)) (bool, bool) {
				o, ok := med(PathOEProxy)
				return o == 100, ok
			}},
	}
}

// runWAN measures every WAN profile: a fresh environment per profile whose relay sits behind the simulated link,
// with its own oeproxy and nginx, and the WAN figures round by round on every path.
func runWAN(ctx context.Context, cfg Config, bin string, res *Results, logf func(string, ...any)) {
	_, res.NetemWhyNot = NetemAvailable()
	for _, prof := range cfg.WANProfiles {
		if ctx.Err() != nil {
			return
		}
		if err := runProfile(ctx, cfg, bin, prof, res, logf); err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("WAN %s: %v", prof.Name, err))
			logf("  ERROR WAN %s: %v", prof.Name, err)
		}
	}
}

func runProfile(ctx context.Context, cfg Config, bin string, prof LinkProfile, res *Results, logf func(string, ...any)) error {
	// The printer's home line has the profile's rate too: the relay passes a stored upload on over it, and the
	// client hears nothing meanwhile (oesim.Options.PrinterLinkRate).
	eo := EnvOptions{HTTP2: prof.H2, PrinterLinkRate: int64(prof.bytesPerSecond())}
	var nl *netemLink
	if res.NetemWhyNot == "" {
		var err error
		if nl, err = newNetemLink(prof); err != nil {
			return err
		}
		defer nl.Close()
		if eo.Listener, err = nl.Listen(); err != nil {
			return err
		}
	}
	env, err := StartEnvWith(ctx, eo)
	if err != nil {
		return err
	}
	defer env.Close()
	if nl != nil {
		res.LinkMethod = LinkNetem // the sim listens inside the namespace: RelayAddr is already across the link
	} else {
		link, err := StartLink(prof, env.Sim.Addr)
		if err != nil {
			return err
		}
		defer link.Close()
		env.RelayAddr = link.Addr()
		res.LinkMethod = LinkGoFront
	}

	oe, err := NewOEProxy(ctx, bin, env)
	if err != nil {
		return err
	}
	paths := []*Path{env.DirectPath(browserConns), localPath(PathOEProxy, oe.Addr(), oe, browserConns)}
	if cfg.Nginx != "" {
		ng, err := NewNginx(cfg.Nginx, env)
		if err != nil {
			return err
		}
		paths = append(paths, localPath(PathNginx, ng.Addr(), ng, browserConns))
	}
	for _, p := range paths {
		if p.Proc != nil {
			if _, err := p.Proc.Start(); err != nil {
				return err
			}
			defer p.Proc.Stop() //nolint:errcheck // a proxy that does not stop cleanly shows in the loopback group
		}
	}
	fig := func(id string) string { return prof.Key + "_" + id }
	for round := range cfg.WANRounds {
		if ctx.Err() != nil {
			break
		}
		order := rotate(paths, round)
		logf("WAN %s, round %d/%d: %s (idle %s first)", prof.Name, round+1, cfg.WANRounds, names(order), cfg.WANIdle)
		fail := func(f, path string, err error) {
			res.Errors = append(res.Errors, fmt.Sprintf("WAN %s round %d, %s, %s: %v", prof.Name, round+1, f, path, err))
			logf("  ERROR %s %s: %v", f, path, err)
		}
		measure := func(id, what string, f func(*Path) (float64, error)) {
			for _, p := range order {
				v, err := f(p)
				if err != nil {
					fail(id, p.Name, err)
					continue
				}
				res.add(fig(id), p.Name, v)
				logf("  %-10s %-8s %8.1f", what, p.Name, v)
			}
		}
		// Nothing moves during the idle: every client below is new (no connection open), and each proxy keeps
		// what its own idle timeouts (and the relay's) leave it.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(cfg.WANIdle):
		}
		measure(WanCold, "cold GET", func(p *Path) (float64, error) { return coldRequest(ctx, p) })
		measure(WanPage, "page load", func(p *Path) (float64, error) { return pageLoad(ctx, p, cfg.WANPageScale) })
		measure(WanWSRTT, "ws rtt", func(p *Path) (float64, error) { return wanWSRTT(ctx, p, cfg.WANWSRoundTrips) })
		var newViewer = map[string]float64{}
		measure(WanCamFirst, "cam first", func(p *Path) (float64, error) {
			first, second, err := webcamFirstFrames(ctx, p)
			newViewer[p.Name] = second
			return first, err
		})
		measure(WanCamNew, "cam new", func(p *Path) (float64, error) {
			v, ok := newViewer[p.Name]
			if !ok {
				return 0, fmt.Errorf("no first viewer")
			}
			return v, nil
		})
		capacity := prof.bytesPerSecond() / 1e6
		measure(WanDown, "download %", func(p *Path) (float64, error) {
			q := p.fresh(1)
			defer q.Transport.CloseIdleConnections()
			v, err := download(ctx, q, cfg.WANTransferBytes)
			return 100 * v / capacity, err
		})
		measure(WanUp, "upload %", func(p *Path) (float64, error) {
			q := p.fresh(1)
			defer q.Transport.CloseIdleConnections()
			v, err := upload(ctx, q, env.Origin.fill, cfg.WANTransferBytes)
			return 100 * v / capacity, err
		})
		gcode := filepath.Join(env.Dir, "slicer.gcode")
		if err := writePattern(gcode, env.Origin.fill, cfg.WANTransferBytes); err != nil {
			return err
		}
		measure(WanSlicer, "slicer s", func(p *Path) (float64, error) { return slicerUpload(ctx, p, env, gcode, false) })
		measure(WanLowSpeed, "lowspeed %", func(p *Path) (float64, error) {
			_, err := slicerUpload(ctx, p, env, gcode, true)
			if errors.Is(err, errGaveUp) {
				logf("  %-10s %-8s %v", "lowspeed", p.Name, err)
				settle(ctx, env) // the relay's cut-off pass-on must not count in the next upload
				return 0, nil
			}
			return 100, err
		})
	}
	return nil
}

// coldRequest is one small GET from a client with no connection open: ms to the whole answer.
func coldRequest(ctx context.Context, p *Path) (float64, error) {
	q := p.fresh(browserConns)
	defer q.Transport.CloseIdleConnections()
	t0 := time.Now()
	if err := getSmall(ctx, q.client(), q); err != nil {
		return 0, err
	}
	return ms(time.Since(t0)), nil
}

// pageLoad is a browser opening the printer's UI with no connection open: the index, then the 40 assets over at
// most 6 connections (all asked for at once, as a browser queues them), then the UI's WebSocket connected and
// its first message answered. ms to the last of these.
func pageLoad(ctx context.Context, p *Path, scale float64) (float64, error) {
	q := p.fresh(browserConns)
	defer q.Transport.CloseIdleConnections()
	client := q.client()
	t0 := time.Now()
	get := func(path string, n int, dest string) error {
		req, err := q.newRequest(http.MethodGet, path)
		if err != nil {
			return err
		}
		req.Header.Set("Sec-Fetch-Dest", dest) // as a browser marks them (Fetch Metadata)
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || got != int64(n) {
			return fmt.Errorf("%s: %s, %d of %d bytes", path, resp.Status, got, n)
		}
		return nil
	}
	size := func(n int) int { return max(1, int(float64(n)*scale)) }
	if err := get(fmt.Sprintf("/bytes?n=%d&f=index.html", size(mainsailIndex)), size(mainsailIndex), "document"); err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(mainsailAssets))
	for i, n := range mainsailAssets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := get(fmt.Sprintf("/bytes?n=%d&f=asset%d", size(n), i), size(n), "script"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	c, err := dialWS(ctx, q, "/ws/echo")
	if err != nil {
		return 0, err
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","method":"server.info","id":1}`)); err != nil {
		return 0, err
	}
	if _, _, err := c.Read(ctx); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	c.Close(websocket.StatusNormalClosure, "")
	return ms(d), nil
}

// wanWSRTT is the p50 of n sequential 64-byte echoes on a new WebSocket, in ms.
func wanWSRTT(ctx context.Context, p *Path, n int) (float64, error) {
	q := p.fresh(1)
	defer q.Transport.CloseIdleConnections()
	p50, _, err := wsRoundTrips(ctx, q, n)
	return p50 / 1000, err
}

// webcamFirstFrames opens the webcam stream as a first viewer, then as a second one while the first watches:
// ms from each viewer's request to its first whole frame.
func webcamFirstFrames(ctx context.Context, p *Path) (first, second float64, err error) {
	const path = "/webcam/stream?ms=100&size=32768"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	view := func() (float64, error) {
		q := p.fresh(1)
		t0 := time.Now()
		got := make(chan float64, 1)
		errc := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer q.Transport.CloseIdleConnections()
			err := readMJPEG(ctx, q, path, time.Now().Add(time.Hour), func(int64) {
				select {
				case got <- ms(time.Since(t0)):
				default:
				}
			})
			if ctx.Err() == nil {
				errc <- fmt.Errorf("the webcam stream ended: %v", err)
			}
		}()
		select {
		case v := <-got:
			return v, nil
		case err := <-errc:
			return 0, err
		case <-time.After(20 * time.Second):
			return 0, fmt.Errorf("no webcam frame within 20 s")
		}
	}
	if first, err = view(); err != nil {
		return 0, 0, err
	}
	time.Sleep(300 * time.Millisecond) // the first viewer is watching
	second, err = view()
	return first, second, err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// wanMethod describes how the WAN group was run, for RESULTS.md.
func (r *Results) wanMethod() string {
	c := r.Config
	var b strings.Builder
	switch r.LinkMethod {
	case LinkNetem:
		b.WriteString("- the link: a network namespace holding the relay, reached over a veth pair with `tc netem` on both ends (delay RTT/2 each way, the rate each way, the loss each way).\n")
	default:
		fmt.Fprintf(&b, "- the link: a Go front in the bench (`bench/link.go`), because %s. It passes each TCP connection to the relay through one delay line per direction, shared by all connections (one access line): a segment of 1,448 bytes occupies the line for its serialization time at the profile's rate, then arrives RTT/2 later; a TCP connect costs one RTT; a lost segment (each way, with the profile's probability) arrives one RTT late and holds back what follows, like a fast retransmit. Not modelled: TCP's congestion response to loss, so the lossy profile's throughput is better than on a real lossy line.\n", orUnknown(r.NetemWhyNot))
	}
	fmt.Fprintf(&b, "- every WAN figure uses a client with no connection open (a new visit); the relay is oesim with its 2-minute idle timeout, so what a proxy keeps warm is what its own timeouts keep.\n")
	fmt.Fprintf(&b, "- first request after idle: nothing is sent for %s, then one small GET from a new client.\n", c.WANIdle)
	fmt.Fprintf(&b, "- page load: an index of %d bytes, then 40 assets of %.1f MB in all (sizes modelled on a Mainsail build) asked for at once over at most %d connections, as a browser does, then the WebSocket connected and one message echoed; time to the echo.\n",
		int(float64(mainsailIndex)*c.WANPageScale), float64(sum(mainsailAssets))*c.WANPageScale/1e6, browserConns)
	fmt.Fprintf(&b, "- WebSocket round trip: p50 of %d sequential 64-byte echoes on a new WebSocket.\n", c.WANWSRoundTrips)
	b.WriteString("- webcam: a 32 KiB frame every 100 ms; time from a viewer's request to its first whole frame, for a first viewer and for a second one who joins while the first watches.\n")
	b.WriteString("- the printer's home line: the relay stores a whole upload, then passes it on to the printer at the profile's rate (oesim `PrinterLinkRate`); the client hears nothing meanwhile, so the upload figures include that time.\n")
	fmt.Fprintf(&b, "- slicer upload: %s as multipart (print, path, file) to /api/files/local with curl and the options PrusaSlicer's and OrcaSlicer's Http.cpp set (`--connect-timeout 10`, no total timeout, no low-speed limit, HTTP/1.1), until the printer has it: the origin answered 200 with the body's size, or oeproxy answered 202 (`upload.answer_when_stored`, on in the bench) and the origin then counted the bytes.\n", byteSize(c.WANTransferBytes))
	b.WriteString("- low-speed client: the same upload with `--speed-limit 1 --speed-time 10` (a script's options; libcurl counts only body bytes, so no 1xx answer resets it): 100 when the printer got it and the client was told so, 0 when the client gave up (curl exit 28) during the relay's silence.\n")
	fmt.Fprintf(&b, "- transfers: %s downloaded, then uploaded as multipart with a Content-Length, each on a new connection; the share is the payload's rate against the link's rate.\n", byteSize(c.WANTransferBytes))
	return b.String()
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// slicerCurlArgs are the libcurl options PrusaSlicer and OrcaSlicer set for an OctoPrint upload (Http.cpp:
// CURLOPT_CONNECTTIMEOUT 10 s, CURLOPT_TIMEOUT 0, HTTP/1.1; OctoPrint.cpp: a multipart POST of print, path and
// file with X-Api-Key). Neither sets a low-speed limit; lowSpeedArgs are a scripted client's that does.
var (
	slicerCurlArgs = []string{"--http1.1", "--connect-timeout", "10", "-F", "print=false", "-F", "path="}
	lowSpeedArgs   = []string{"--speed-limit", "1", "--speed-time", "10"}
)

// errGaveUp is a client that stopped waiting (curl's exit 28, "Operation too slow").
var errGaveUp = errors.New("the client gave up on the silence (curl exit 28)")

// slicerUpload uploads file with curl as a slicer does (with a low-speed limit when lowSpeed) and returns
// seconds until the printer has it. It fails unless the answer was the origin's 200 with the whole body's size, or
// oeproxy's 202 (upload.answer_when_stored) after which the origin counts the bytes: an upload is done when the
// printer has it.
func slicerUpload(ctx context.Context, p *Path, env *Env, file string, lowSpeed bool) (float64, error) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		return 0, fmt.Errorf("curl is not installed (apt-get install curl): %w", err)
	}
	args := append([]string{"-sS", "-o", "-", "-w", "\n%{http_code} %{size_upload}"}, slicerCurlArgs...)
	if lowSpeed {
		args = append(args, lowSpeedArgs...)
	}
	args = append(args, "-F", "file=@"+file+";filename=bench.gcode", "-H", "X-Api-Key: bench")
	if p.Name == PathDirect {
		// The credential goes in a header file, not on the command line.
		hf := filepath.Join(env.Dir, "curl-headers")
		if err := os.WriteFile(hf, []byte("Authorization: "+env.BasicAuth()+"\n"), 0o600); err != nil {
			return 0, err
		}
		args = append(args, "-H", "@"+hf, "--cacert", env.CAFile, "--connect-to", env.Creds.Host+":443:"+env.RelayAddr)
	}
	args = append(args, p.url("/api/files/local"))
	before := env.Origin.UploadBytes.Load()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, curl, args...).CombinedOutput()
	text := redact(string(out), env.Secrets())
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 28 {
		return 0, fmt.Errorf("%w after %.1f s", errGaveUp, time.Since(t0).Seconds())
	}
	if err != nil {
		return 0, fmt.Errorf("curl: %w: %s", err, text)
	}
	body, tail, _ := strings.Cut(strings.TrimSpace(text), "\n")
	var code int
	var sent int64
	if _, err := fmt.Sscan(tail, &code, &sent); err != nil {
		return 0, fmt.Errorf("curl: answer %q", text)
	}
	switch code {
	case http.StatusOK:
		if want := fmt.Sprintf(`{"bytes":%d}`, sent); body != want {
			return 0, fmt.Errorf("curl sent %d bytes, the origin answered %s", sent, body)
		}
	case http.StatusAccepted: // stored by oeproxy: done when the origin has counted the bytes
		for env.Origin.UploadBytes.Load()-before < sent {
			if time.Since(t0) > 10*time.Minute || ctx.Err() != nil {
				return 0, fmt.Errorf("oeproxy answered 202 but the printer had %d of %d bytes after %s",
					env.Origin.UploadBytes.Load()-before, sent, time.Since(t0).Round(time.Second))
			}
			time.Sleep(10 * time.Millisecond)
		}
	default:
		return 0, fmt.Errorf("curl: answer %q", text)
	}
	if got := env.Origin.UploadBytes.Load() - before; got != sent {
		return 0, fmt.Errorf("curl sent %d bytes, the origin counted %d", sent, got)
	}
	return time.Since(t0).Seconds(), nil
}

// settle waits until the origin's upload count has not moved for a second (a cut-off upload's last bytes).
func settle(ctx context.Context, env *Env) {
	last := env.Origin.UploadBytes.Load()
	for quiet := 0; quiet < 10 && ctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
		if n := env.Origin.UploadBytes.Load(); n != last {
			last, quiet = n, 0
			continue
		}
		quiet++
	}
}

// writePattern writes n bytes of fill to a new file.
func writePattern(path string, fill []byte, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, &patternReader{n: n, fill: fill}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/oesim/printer"
)

// relayStreamLimit is how long oesim's relay lets one webcam stream run before it cuts it, as OctoEverywhere
// does at MaxSingleWebcamStreamLengthSeconds; short, so that a few seconds of watching span several cuts.
const relayStreamLimit = 1500 * time.Millisecond

// cutPage shows the webcam in an <img> and, every 100 ms, draws it into a canvas and hashes the pixels: the DOM
// then tells how often the image changed and when it last did, so a stream that froze at a cut shows.
const cutPage = `<!doctype html><html><body>
<img id="cam" src="/webcam/?action=stream" width="160" height="120">
<pre id="log">{}</pre>
<script>
const cam = document.getElementById('cam'), log = document.getElementById('log');
const t0 = performance.now();
let last = null, changes = 0, lastChange = 0;
setInterval(() => {
  const c = document.createElement('canvas'); c.width = 16; c.height = 12;
  const x = c.getContext('2d');
  try { x.drawImage(cam, 0, 0, 16, 12); } catch (e) { return; }
  const d = x.getImageData(0, 0, 16, 12).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + d[i+1] * 7 + d[i+2] * 13) | 0;
  if (h !== last) { changes++; last = h; lastChange = performance.now() - t0; }
  log.textContent = JSON.stringify({changes: changes, lastChange: Math.round(lastChange), now: Math.round(performance.now() - t0)});
}, 100);
</script></body></html>`

// cutPrinter is an OctoPrint simulation (its mjpg-streamer webcam at 10 frames a second) that also serves cutPage.
func cutPrinter(t *testing.T) oesim.PrinterOptions {
	octo := printer.NewOctoPrint(printer.OctoPrintOptions{Name: "Webcam test", FrameInterval: 100 * time.Millisecond})
	t.Cleanup(octo.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cut.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(cutPage))
	})
	mux.Handle("/", octo)
	return oesim.PrinterOptions{Name: "Webcam test", Kind: oesim.KindGeneric, Handler: mux}
}

func relayStreams(l linked) (streams, cuts int) {
	for _, rq := range l.conn.Requests() {
		if rq.Path == "/webcam/" && strings.Contains(rq.RawQuery, "action=stream") {
			streams++
			if rq.Cut {
				cuts++
			}
		}
	}
	return streams, cuts
}

// TestChromiumWebcamAcrossRelayCuts: a Chromium <img> on the webcam keeps changing for 6 s while the relay cuts
// each stream after 1.5 s: oeproxy continues the stream, so the image never freezes. Screenshots before and
// after a cut must differ in the webcam's area.
func TestChromiumWebcamAcrossRelayCuts(t *testing.T) {
	chromium := need(t, "chromium", "chromium-browser", "google-chrome")
	s := startStack(t, oesim.Options{Printers: []oesim.PrinterOptions{cutPrinter(t)},
		Limits: oesim.Limits{MaxSingleWebcamStreamLength: relayStreamLimit}})
	l := s.connect(t, s.sim.Printers()[0], "cam")
	outDir, err := filepath.Abs("out")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	page := openPage(t, chromium, l.url+"/cut.html")
	before, after := filepath.Join(outDir, "webcam-before-cut.png"), filepath.Join(outDir, "webcam-after-cut.png")
	time.Sleep(time.Second) // real time for the page to load and show frames
	page.screenshot(t, before)
	time.Sleep(5 * time.Second) // spans at least two cuts of 1.5 s
	page.screenshot(t, after)
	var got struct{ Changes, LastChange, Now int }
	raw := page.eval(t, "document.getElementById('log').textContent")
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("log %q: %v", raw, err)
	}
	streams, cuts := relayStreams(l)
	t.Logf("Chromium: the image changed %d times, last at %d ms of %d ms; relay: %d streams, %d cut at its limit", got.Changes, got.LastChange, got.Now, streams, cuts)
	if cuts < 2 {
		t.Fatalf("the relay cut %d streams while Chromium watched (%d streams): the test proves nothing", cuts, streams)
	}
	// Frozen at the first cut would mean a last change near 1.5 s and about 15 changes.
	if got.LastChange < got.Now-1000 || got.Changes < 30 {
		t.Errorf("the image froze: %d changes, the last at %d ms of %d", got.Changes, got.LastChange, got.Now)
	}
	if a, b := webcamPixels(t, before), webcamPixels(t, after); bytes.Equal(a, b) {
		t.Errorf("the webcam looks the same before and after the cuts (%s, %s)", before, after)
	}
	s.checkNoSecrets(t, l)
}

// webcamPixels returns the pixels of the 160x120 <img> at the page's top left corner of a screenshot.
func webcamPixels(t *testing.T, file string) []byte {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []byte
	for y := 10; y < 120; y += 4 {
		for x := 10; x < 160; x += 4 {
			r, g, b, _ := img.At(x, y).RGBA()
			out = append(out, byte(r>>8), byte(g>>8), byte(b>>8))
		}
	}
	return out
}

// TestFFmpegReadsAcrossRelayCuts: ffmpeg reads the webcam through oeproxy without an error while the relay cuts
// each stream after 1.5 s. ffmpeg's MJPEG demuxer stamps frames at 25 fps, so "-t 5" is 125 frames: 12.5 s of
// the 10 fps camera, several cuts.
func TestFFmpegReadsAcrossRelayCuts(t *testing.T) {
	ffmpeg := need(t, "ffmpeg")
	s := startStack(t, oesim.Options{Printers: []oesim.PrinterOptions{cutPrinter(t)},
		Limits: oesim.Limits{MaxSingleWebcamStreamLength: relayStreamLimit}})
	l := s.connect(t, s.sim.Printers()[0], "cam")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
		"-t", "5", "-i", l.url+"/webcam/?action=stream", "-f", "null", "-progress", "pipe:1", "-")
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, lastLines(string(out), 20))
	}
	frames := 0
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "frame="); ok {
			frames, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	streams, cuts := relayStreams(l)
	t.Logf("ffmpeg: %d frames in %v; relay: %d streams, %d cut at its limit", frames, took.Round(10*time.Millisecond), streams, cuts)
	if cuts < 2 {
		t.Fatalf("the relay cut %d streams while ffmpeg read: the test proves nothing", cuts)
	}
	if frames < 120 {
		t.Errorf("ffmpeg got %d of 125 frames: the stream ended or stalled at a cut\n%s", frames, out)
	}
	if errLines := strings.TrimSpace(regexp.MustCompile(`(?m)^(frame|fps|stream_|bitrate|total_size|out_time|dup_frames|drop_frames|speed|progress)[^\n]*\n?`).ReplaceAllString(string(out), "")); errLines != "" {
		t.Errorf("ffmpeg reported: %s", errLines)
	}
}

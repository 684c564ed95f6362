package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
)

// chromiumFlags are the flags tested in research/tools-on-this-machine.md §5.4: no sandbox (root in a
// container), no GPU, and nothing that would reach the internet. A fresh --user-data-dir is added per run.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
}

// chromiumDeadline bounds one Chromium run. The printer page never finishes loading (the MJPEG <img> streams
// forever), so Chromium is ended by --virtual-time-budget, and this deadline only catches a hung browser.
const chromiumDeadline = 90 * time.Second

// runChromium runs one headless Chromium with its own profile and returns its standard output. Chromium
// starts helper processes (zygote, renderer); it runs in its own process group, which is killed afterwards
// so that none outlives the test.
func runChromium(t *testing.T, chromium string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumDeadline)
	defer cancel()
	all := append(append([]string{}, chromiumFlags...), "--user-data-dir="+t.TempDir())
	cmd := exec.CommandContext(ctx, chromium, append(all, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second // a helper that keeps the output pipe open must not block Wait
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers left behind, if any (ESRCH otherwise)
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\nstderr:\n%s", chromium, strings.Join(args, " "), err, lastLines(stderr.String(), 20))
	}
	return stdout.Bytes(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// virtualTimeBudgets are tried in turn: the page needs its WebSocket opened and a first push, and the <img>
// its first frame; a slow machine gets a second, longer chance. They are budgets, not assertions on speed.
var virtualTimeBudgets = []int{5000, 15000}

var (
	wsStatusRE = regexp.MustCompile(`<span id="ws-status">([^<]*)</span>`)
	wsValueRE  = regexp.MustCompile(`<span id="ws-value">([^<]*)</span>`)
)

// pageReadout opens url and returns the page's WebSocket status and counter as the DOM shows them.
func pageReadout(t *testing.T, chromium, url string) (status string, value int, err error) {
	t.Helper()
	for _, budget := range virtualTimeBudgets {
		var dom []byte
		dom, err = runChromium(t, chromium, "--virtual-time-budget="+strconv.Itoa(budget), "--dump-dom", url)
		if err != nil {
			continue
		}
		s, v := wsStatusRE.FindSubmatch(dom), wsValueRE.FindSubmatch(dom)
		if s == nil || v == nil {
			err = fmt.Errorf("no #ws-status or #ws-value in the DOM of %s:\n%s", url, lastLines(string(dom), 40))
			continue
		}
		status = string(s[1])
		value, err = strconv.Atoi(string(v[1]))
		if err != nil {
			err = fmt.Errorf("#ws-value is %q, not a number (status %q)", v[1], status)
			continue
		}
		if status == "connected" && value >= 1 {
			return status, value, nil
		}
		err = fmt.Errorf("#ws-status %q, #ws-value %d after a virtual-time budget of %d ms", status, value, budget)
	}
	return status, value, err
}

// screenshotWebcam takes a 1000x700 screenshot of url into file and finds the webcam frame on it.
func screenshotWebcam(t *testing.T, chromium, url, file string) (webcamArea, error) {
	t.Helper()
	var err error
	for _, budget := range virtualTimeBudgets {
		_ = os.Remove(file)
		if _, err = runChromium(t, chromium, "--virtual-time-budget="+strconv.Itoa(budget),
			"--window-size=1000,700", "--screenshot="+file, url); err != nil {
			continue
		}
		var f *os.File
		if f, err = os.Open(file); err != nil {
			continue
		}
		img, derr := png.Decode(f)
		f.Close()
		if derr != nil {
			err = fmt.Errorf("%s is not a valid PNG: %w", file, derr)
			continue
		}
		if b := img.Bounds(); b.Dx() != 1000 || b.Dy() != 700 {
			err = fmt.Errorf("%s is %dx%d, want 1000x700", file, b.Dx(), b.Dy())
			continue
		}
		var a webcamArea
		if a, err = findWebcam(img); err == nil {
			if err = a.check(320, 240); err == nil { // the page's #webcam is 320x240
				return a, nil
			}
		}
		err = fmt.Errorf("%s: %w", file, err)
	}
	return webcamArea{}, err
}

// TestChromium opens both oesim printer pages (OctoPrint, and Mainsail on Moonraker) through the real daemon
// in a headless Chromium: the SockJS or JSON-RPC WebSocket must be connected with a live counter, the MJPEG
// <img> must show a frame, and the relay must have received the App Connection credential on the webcam and
// WebSocket requests, and no client-side forwarding headers.
func TestChromium(t *testing.T) {
	chromium := need(t, "chromium", "chromium-browser", "google-chrome")
	s := startStack(t, oesim.Options{}) // the built-in printers: an OctoPrint and a Moonraker/Mainsail one
	var ls []linked
	for _, p := range s.sim.Printers() {
		ls = append(ls, s.connect(t, p, map[oesim.PrinterKind]string{
			oesim.KindOctoPrint: "octoprint", oesim.KindMoonraker: "moonraker"}[p.Kind]))
	}
	if len(ls) != 2 {
		t.Fatalf("oesim has %d printers, want the OctoPrint and the Moonraker one", len(ls))
	}
	outDir, err := filepath.Abs("out")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		t.Run(l.name, func(t *testing.T) {
			status, value, err := pageReadout(t, chromium, l.url+"/")
			if err != nil {
				t.Fatalf("page readout through oeproxy: %v", err)
			}
			t.Logf("%s/: #ws-status %q, #ws-value %d", l.url, status, value)

			file := filepath.Join(outDir, "chromium-"+l.name+".png")
			a, err := screenshotWebcam(t, chromium, l.url+"/", file)
			if err != nil {
				t.Fatalf("webcam on the screenshot: %v", err)
			}
			t.Logf("screenshot %s: webcam frame at %v, %d background and %d digit pixels, luma mean %.0f stdev %.0f",
				file, a.Box, a.Background, a.Digit, a.Mean, a.Stdev)

			checkRelayRecord(t, l)
		})
	}
	s.checkNoSecrets(t, ls...)
}

// checkRelayRecord checks what oesim's relay recorded for the printer: a webcam stream and an accepted
// WebSocket arrived, and every request carried the App Connection credential and no forwarding header.
func checkRelayRecord(t *testing.T, l linked) {
	t.Helper()
	want := wantAuthorization(l.conn)
	var webcams, sockets int
	var errs []error
	for _, r := range l.conn.Requests() {
		what := fmt.Sprintf("%s %s?%s (status %d)", r.Method, r.Path, r.RawQuery, r.Status)
		if got := r.Header.Values("Authorization"); len(got) != 1 || got[0] != want {
			errs = append(errs, fmt.Errorf("%s: the relay got %d Authorization headers, not exactly the App Connection credential", what, len(got)))
		}
		for _, h := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := r.Header.Values(h); len(v) > 0 {
				errs = append(errs, fmt.Errorf("%s: oeproxy added %s: %q", what, h, v))
			}
		}
		switch {
		case r.WebSocket && r.Status == 101:
			sockets++
		case strings.HasPrefix(r.Path, "/webcam") && strings.Contains(r.RawQuery, "action=stream") && r.Status == 200:
			webcams++
		}
	}
	if webcams == 0 {
		errs = append(errs, errors.New("the relay recorded no webcam stream request answered 200"))
	}
	if sockets == 0 {
		errs = append(errs, errors.New("the relay recorded no WebSocket accepted with 101"))
	}
	t.Logf("relay recorded %d requests for %s: %d webcam streams, %d WebSockets", len(l.conn.Requests()), l.name, webcams, sockets)
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}

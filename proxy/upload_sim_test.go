package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
)

// slicerCurl are the libcurl options PrusaSlicer and OrcaSlicer set for an OctoPrint upload (src/slic3r/Utils/
// Http.cpp: CURLOPT_CONNECTTIMEOUT 10 s, CURLOPT_TIMEOUT 0, HTTP/1.1 in PrusaSlicer; OctoPrint.cpp: a multipart
// POST of print, path and file with X-Api-Key). Neither sets CURLOPT_LOW_SPEED_LIMIT/TIME. OrcaSlicer also
// removes "Expect:" (no 100-continue wait).
var slicerCurl = []string{"-sS", "--http1.1", "--connect-timeout", "10", "-F", "print=false", "-F", "path="}

// curlUpload posts file to url with curl and args, and returns curl's output (the answer's body, then a line
// with the status) and error.
func curlUpload(t *testing.T, url, file string, args ...string) (string, error) {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	a := append(append([]string{}, slicerCurl...), args...)
	a = append(a, "-H", "X-Api-Key: SLICERKEY0123456789", "-F", "file=@"+file+";filename="+filepath.Base(file),
		"-o", "-", "-w", "\n%{http_code}", url)
	out, err := exec.Command(curl, a...).CombinedOutput()
	return string(out), err
}

// gcodeFile writes n bytes of g-code to a temporary file and returns its path and SHA-256.
func gcodeFile(t *testing.T, n int) (string, string) {
	t.Helper()
	b := bytes.Repeat([]byte("G1 X10.5 Y20.25 E0.0421\n"), n/24+1)[:n]
	p := filepath.Join(t.TempDir(), "part.gcode")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return p, hex.EncodeToString(sum[:])
}

// TestSlicerUploadSilence: the relay stores the whole upload, then passes it to the printer over the printer's
// home link, and the slicer hears nothing meanwhile. With the options PrusaSlicer and OrcaSlicer really set (no
// low-speed limit, no total timeout) the slicer waits, and the printer's own answer reaches it through oeproxy:
// oeproxy must add no timeout of its own on the way.
func TestSlicerUploadSilence(t *testing.T) {
	const size, rate = 1 << 20, 256 << 10 // about 4 s of silence after the last byte
	e := startSimWith(t, oesim.Options{PrinterLinkRate: rate}, nil, nil)
	file, sum := gcodeFile(t, size)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"PrusaSlicer", nil},
		{"OrcaSlicer", []string{"-H", "Expect:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.printer.OctoPrint().Uploads())
			out, err := curlUpload(t, e.url("/api/files/local"), file, tc.args...)
			if err != nil || !strings.HasSuffix(out, "\n201") {
				t.Fatalf("curl: %v: %s", err, out)
			}
			ups := e.printer.OctoPrint().Uploads()
			if len(ups) != before+1 || ups[len(ups)-1].Size != size || ups[len(ups)-1].SHA256 != sum {
				t.Fatalf("printer uploads %+v, want one more of %d bytes", ups, size)
			}
		})
	}
}

// TestLowSpeedClientUpload: a client with a low-speed limit (curl --speed-limit 1 --speed-time 2; libcurl counts
// only body bytes, so no interim 1xx answer resets it) gives up during the relay's silence, and oeproxy says so
// (the client's own error; nothing reported done). With upload.answer_when_stored it gets 202 once the upload is
// on disk, and the spool records the printer's answer once the printer has it.
func TestLowSpeedClientUpload(t *testing.T) {
	const size, rate = 2 << 20, 200 << 10 // about 10 s of silence; curl gives up after about 7
	file, sum := gcodeFile(t, size)
	lowSpeed := []string{"--speed-limit", "1", "--speed-time", "2"}

	t.Run("default", func(t *testing.T) {
		e := startSimWith(t, oesim.Options{PrinterLinkRate: rate}, nil, nil)
		out, err := curlUpload(t, e.url("/api/files/local"), file, lowSpeed...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 28 {
			t.Fatalf("curl = %v, want exit 28 (too slow): %s", err, out)
		}
	})

	t.Run("answer_when_stored", func(t *testing.T) {
		dir := t.TempDir()
		var states []UploadState
		var mu sync.Mutex
		sp, err := NewUploadSpool(UploadSpoolOptions{Dir: dir, OnChange: func(r UploadRecord) {
			mu.Lock()
			states = append(states, r.State)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		e := startSimWith(t, oesim.Options{PrinterLinkRate: rate}, nil, func(o *Options, _ *Printer) { o.Uploads = sp })
		out, err := curlUpload(t, e.url("/api/files/local"), file, lowSpeed...)
		if err != nil || !strings.HasSuffix(out, "\n202") || !strings.Contains(out, `"file":"part.gcode"`) {
			t.Fatalf("curl: %v: %s", err, out)
		}
		rec := waitUpload(t, sp, UploadDelivered)
		if rec.Status != 201 || rec.File != "part.gcode" || rec.Printer != "mk4" || rec.Attempts != 1 {
			t.Errorf("record %+v, want delivered with the printer's 201 on the first attempt", rec)
		}
		ups := e.printer.OctoPrint().Uploads()
		if len(ups) != 1 || ups[0].Size != size || ups[0].SHA256 != sum {
			t.Fatalf("printer uploads %+v, want one of %d bytes", ups, size)
		}
		sp.Close(context.Background())
		mu.Lock()
		defer mu.Unlock()
		if want := []UploadState{UploadStored, UploadSending, UploadDelivered}; !slices.Equal(states, want) {
			t.Errorf("states %v, want %v", states, want)
		}
		assertSpoolEmpty(t, dir)
	})
}

// waitUpload waits for the spool's latest record to reach state (or a final state), and returns it.
func waitUpload(t *testing.T, sp *UploadSpool, state UploadState) UploadRecord {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if rs := sp.Records(); len(rs) > 0 {
			rec := rs[len(rs)-1]
			if rec.State == state || rec.State == UploadDelivered || rec.State == UploadFailed {
				if rec.State != state {
					t.Fatalf("upload %+v, want state %s", rec, state)
				}
				return rec
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("upload never reached %s: %+v", state, sp.Records())
	return UploadRecord{}
}

// assertSpoolEmpty: nothing is left in the spool but the (empty) undelivered folder.
func assertSpoolEmpty(t *testing.T, dir string) {
	t.Helper()
	left, _ := os.ReadDir(dir)
	for _, e := range left {
		if e.Name() != "undelivered" {
			t.Errorf("left in the spool: %s", e.Name())
		}
	}
}

// TestSpooledUploadRefused: when the printer refuses a spooled upload (here 415, a file type OctoPrint does not
// take), the outcome is failed with the printer's status, the file is kept under undelivered/ as the g-code alone,
// and the log says so, without the client's API key anywhere on disk or in the log.
func TestSpooledUploadRefused(t *testing.T) {
	dir := t.TempDir()
	log, logs := observed()
	sp, err := NewUploadSpool(UploadSpoolOptions{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e := startSimWith(t, oesim.Options{}, nil, func(o *Options, _ *Printer) { o.Uploads = sp })
	file, _ := gcodeFile(t, 300<<10)
	bad := filepath.Join(filepath.Dir(file), "part.exe")
	if err := os.Rename(file, bad); err != nil {
		t.Fatal(err)
	}
	out, err := curlUpload(t, e.url("/api/files/local"), bad)
	if err != nil || !strings.HasSuffix(out, "\n202") {
		t.Fatalf("curl: %v: %s", err, out)
	}
	rec := waitUpload(t, sp, UploadFailed)
	sp.Close(context.Background())
	if rec.Status != http.StatusUnsupportedMediaType || rec.Kept == "" {
		t.Fatalf("record %+v, want failed with 415 and the file kept", rec)
	}
	kept, err := os.ReadFile(rec.Kept)
	want, _ := os.ReadFile(bad)
	if err != nil || !bytes.Equal(kept, want) {
		t.Errorf("kept file %s: %v, %d bytes; want the uploaded file's %d bytes", rec.Kept, err, len(kept), len(want))
	}
	assertSpoolEmpty(t, dir)
	if !strings.Contains(logText(logs), "upload not delivered to the printer") {
		t.Errorf("no log line for the failed upload:\n%s", logText(logs))
	}
	assertNoSecrets(t, logs, "SLICERKEY0123456789")
	assertNoSecretOnDisk(t, dir, "SLICERKEY0123456789")
}

// assertNoSecretOnDisk: no file under dir holds secret.
func assertNoSecretOnDisk(t *testing.T, dir, secret string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds the client's API key", p)
			}
		}
		return nil
	})
}

// TestSpoolInterrupted: an upload stored and answered 202 whose delivery oeproxy did not finish (it stopped) is
// reported by the next start: state interrupted, a warning, and the g-code kept under undelivered/.
func TestSpoolInterrupted(t *testing.T) {
	dir := t.TempDir()
	sp, err := NewUploadSpool(UploadSpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// A printer that never answers: the delivery is still running when oeproxy stops.
	stall := make(chan struct{})
	e := startSimWith(t, oesim.Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}), func(o *Options, _ *Printer) { o.Uploads = sp })
	defer close(stall)
	file, sum := gcodeFile(t, 100<<10)
	out, err := curlUpload(t, e.url("/api/files/local"), file)
	if err != nil || !strings.HasSuffix(out, "\n202") {
		t.Fatalf("curl: %v: %s", err, out)
	}
	waitUpload(t, sp, UploadSending)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace left: stop at once
	sp.Close(ctx)

	log, logs := observed()
	sp2, err := NewUploadSpool(UploadSpoolOptions{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer sp2.Close(context.Background())
	rs := sp2.Records()
	if len(rs) != 1 || rs[0].State != UploadInterrupted || rs[0].File != "part.gcode" || rs[0].Kept == "" {
		t.Fatalf("records after restart %+v, want one interrupted upload with its file kept", rs)
	}
	b, err := os.ReadFile(rs[0].Kept)
	if got := sha256.Sum256(b); err != nil || hex.EncodeToString(got[:]) != sum {
		t.Errorf("kept file %s is not the uploaded g-code: %v", rs[0].Kept, err)
	}
	if !strings.Contains(logText(logs), "oeproxy stopped before the printer got it") {
		t.Errorf("no warning after restart:\n%s", logText(logs))
	}
	assertSpoolEmpty(t, dir)
	assertNoSecretOnDisk(t, dir, "SLICERKEY0123456789")
}

// TestSpoolRetriesOfflinePrinter: 601 (printer offline) means the printer cannot have the file, so the spool tries
// again, and the upload is delivered once the printer is back.
func TestSpoolRetriesOfflinePrinter(t *testing.T) {
	dir := t.TempDir()
	var e *simEnv
	sp, err := NewUploadSpool(UploadSpoolOptions{Dir: dir, RetryDelays: []time.Duration{time.Millisecond}, OnChange: func(r UploadRecord) {
		if r.State == UploadStored && r.Status == 601 {
			e.printer.SetOnline(true)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	e = startSimWith(t, oesim.Options{}, nil, func(o *Options, _ *Printer) { o.Uploads = sp })
	file, _ := gcodeFile(t, 64<<10)
	e.printer.SetOnline(false)
	out, err := curlUpload(t, e.url("/api/files/local"), file)
	if err != nil || !strings.HasSuffix(out, "\n202") {
		t.Fatalf("curl: %v: %s", err, out)
	}
	rec := waitUpload(t, sp, UploadDelivered)
	sp.Close(context.Background())
	if rec.Attempts != 2 || rec.Status != 201 || len(e.printer.OctoPrint().Uploads()) != 1 {
		t.Errorf("record %+v, printer uploads %d; want delivered on the second attempt", rec, len(e.printer.OctoPrint().Uploads()))
	}
	assertSpoolEmpty(t, dir)
}

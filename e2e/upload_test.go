package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
)

const (
	mib = int64(1) << 20
	// prusaSlicerUA is what PrusaSlicer 2.8 sends (libcurl underneath, as here); it must arrive unchanged.
	prusaSlicerUA = "PrusaSlicer/2.8.1"
	// maxRSSGrowth bounds how much the daemon's peak RSS may grow during the big upload: a proxy that buffered
	// the body would grow by the upload size (64 MiB or 1 GiB).
	maxRSSGrowth = 64 * mib
)

// uploadSize is 1 GiB under OEPROXY_E2E=1 (CI, `make e2e`) and 64 MiB otherwise, so `make test` stays quick.
func uploadSize() int64 {
	if strict() {
		return 1024 * mib
	}
	return 64 * mib
}

// TestUploadPrusaSlicer uploads a G-code file through the daemon the way PrusaSlicer's OctoPrint host does
// (multipart file, path and print fields, X-Api-Key, Content-Length) with curl, and checks that the printer
// got it byte-exact, that the relay saw the client's Content-Length, and that the daemon's peak memory did not
// grow with the size of the upload.
func TestUploadPrusaSlicer(t *testing.T) {
	curl := need(t, "curl")
	size := uploadSize()
	work := t.TempDir()
	// The file and oesim's spool (the relay stores the whole body before forwarding, as OctoEverywhere's
	// plugin does) each take size bytes on disk.
	if avail, err := freeDisk(work); err == nil && avail < 2*size+256*mib {
		msg := fmt.Sprintf("%s has %d MiB free; the %d MiB upload needs %d MiB", work, avail/mib, size/mib, (2*size+256*mib)/mib)
		if strict() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := startStack(t, oesim.Options{
		TempDir: t.TempDir(),
		// OctoEverywhere's observed 500 MiB limit would answer 608; this test is about oeproxy.
		Limits: oesim.Limits{MaxUploadFileSizeBytes: 4 * 1024 * mib},
	})
	var p *oesim.Printer
	for _, sp := range s.sim.Printers() {
		if sp.Kind == oesim.KindOctoPrint {
			p = sp
		}
	}
	if p == nil {
		t.Fatal("oesim has no OctoPrint printer")
	}
	l := s.connect(t, p, "mk4")
	pid := s.cmd.Process.Pid

	// A small upload first, so the baseline includes the TLS connection, the buffers and the code of the path.
	warm := filepath.Join(work, "warmup.gcode")
	if _, err := writeGcode(warm, 1*mib); err != nil {
		t.Fatal(err)
	}
	if r := runCurlUpload(t, curl, l.url, warm); r.status != 201 {
		t.Fatalf("warm-up upload: HTTP %d: %s", r.status, r.body)
	}
	hwmBefore, rssBefore, err := memory(pid)
	if err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(work, fmt.Sprintf("benchy-%dMiB.gcode", size/mib))
	start := time.Now()
	sum, err := writeGcode(file, size)
	if err != nil {
		t.Fatalf("write the %d MiB test file: %v", size/mib, err)
	}
	t.Logf("wrote %s (%d bytes, sha256 %s) in %v", filepath.Base(file), size, sum, time.Since(start).Round(time.Millisecond))

	l.conn.ResetRequests()
	r := runCurlUpload(t, curl, l.url, file)
	_ = os.Remove(file) // do not keep 1 GiB on disk while checking
	hwmAfter, rssAfter, err := memory(pid)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 201 {
		t.Fatalf("upload: HTTP %d, want 201: %s", r.status, r.body)
	}
	t.Logf("upload of %d MiB through oeproxy: %d body bytes in %.2f s, %.1f MB/s (curl, end to end incl. oesim's store-and-forward)",
		size/mib, r.sent, r.seconds, float64(r.sent)/r.seconds/1e6)
	t.Logf("daemon memory: VmHWM %.1f -> %.1f MiB (growth %.1f MiB), VmRSS %.1f -> %.1f MiB",
		float64(hwmBefore)/float64(mib), float64(hwmAfter)/float64(mib), float64(hwmAfter-hwmBefore)/float64(mib),
		float64(rssBefore)/float64(mib), float64(rssAfter)/float64(mib))

	// What the printer got.
	ups := p.OctoPrint().Uploads()
	if len(ups) != 2 {
		t.Fatalf("the printer recorded %d uploads, want 2 (warm-up and the big one)", len(ups))
	}
	u := ups[1]
	if u.Filename != filepath.Base(file) || u.Root != "local" || u.Path != "" || u.Print {
		t.Errorf("printer upload: filename %q root %q path %q print %v; want %q, local, \"\", false",
			u.Filename, u.Root, u.Path, u.Print, filepath.Base(file))
	}
	if u.Size != size || u.SHA256 != sum {
		t.Errorf("printer got %d bytes with sha256 %s; want %d bytes with sha256 %s", u.Size, u.SHA256, size, sum)
	}
	if u.ContentLength != r.sent {
		t.Errorf("printer request Content-Length %d, want curl's %d", u.ContentLength, r.sent)
	}

	// What the relay got from oeproxy: the client's Content-Length, not a re-chunked body.
	var found bool
	want := wantAuthorization(l.conn)
	for _, rq := range l.conn.Requests() {
		if rq.Method != "POST" || rq.Path != "/api/files/local" {
			continue
		}
		found = true
		if cl := rq.Header.Get("Content-Length"); cl != strconv.FormatInt(r.sent, 10) {
			t.Errorf("relay got Content-Length %q, want curl's %d", cl, r.sent)
		}
		if te := rq.Header.Values("Transfer-Encoding"); len(te) > 0 {
			t.Errorf("relay got Transfer-Encoding %q: oeproxy re-chunked the upload", te)
		}
		if rq.BodySize != r.sent {
			t.Errorf("relay read %d body bytes, want %d", rq.BodySize, r.sent)
		}
		if ua := rq.Header.Get("User-Agent"); ua != prusaSlicerUA {
			t.Errorf("relay got User-Agent %q, want %q", ua, prusaSlicerUA)
		}
		if k := rq.Header.Get("X-Api-Key"); k != "k" {
			t.Errorf("relay got X-Api-Key %q, want the client's %q", k, "k")
		}
		if got := rq.Header.Values("Authorization"); len(got) != 1 || got[0] != want {
			t.Errorf("relay got %d Authorization headers, not exactly the App Connection credential", len(got))
		}
		if rq.Status != 201 {
			t.Errorf("relay answered %d", rq.Status)
		}
	}
	if !found {
		t.Error("the relay recorded no POST /api/files/local")
	}
	if growth := hwmAfter - hwmBefore; growth >= maxRSSGrowth {
		t.Errorf("daemon peak RSS grew by %.1f MiB during a %d MiB upload (limit %d MiB): the body is buffered",
			float64(growth)/float64(mib), size/mib, maxRSSGrowth/mib)
	}
	s.checkNoSecrets(t, l)
}

type curlResult struct {
	status  int
	sent    int64   // request body bytes (curl's size_upload: its Content-Length)
	seconds float64 // time_total
	body    string
}

// runCurlUpload posts file as PrusaSlicer does: POST /api/files/local with the multipart fields file, path
// (empty: the root folder) and print=false, and X-Api-Key.
func runCurlUpload(t *testing.T, curl, base, file string) curlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bodyFile := file + ".response"
	defer os.Remove(bodyFile)
	cmd := exec.CommandContext(ctx, curl, "-sS", "--max-time", "280", "-o", bodyFile,
		"-w", "%{http_code} %{size_upload} %{time_total}",
		"-A", prusaSlicerUA, "-H", "X-Api-Key: k",
		"-F", "file=@"+file+";type=application/octet-stream", "-F", "path=", "-F", "print=false",
		base+"/api/files/local")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("curl: %v: %s", err, stderr)
	}
	var r curlResult
	if _, err := fmt.Sscanf(string(out), "%d %d %g", &r.status, &r.sent, &r.seconds); err != nil {
		t.Fatalf("curl -w output %q: %v", out, err)
	}
	b, _ := os.ReadFile(bodyFile)
	r.body = strings.TrimSpace(string(b))
	if r.seconds <= 0 {
		r.seconds = 1e-6
	}
	return r
}

// writeGcode writes size bytes of G-code-like text: 1 MiB blocks, each starting with its own number, so that
// lost, repeated or reordered blocks change the SHA-256 it returns.
func writeGcode(path string, size int64) (string, error) {
	var body strings.Builder
	for i := 0; body.Len() < int(mib); i++ {
		fmt.Fprintf(&body, "G1 X%.3f Y%.3f E%.5f F1800\n", float64(i%2000)/10, float64(i%1700)/10, float64(i)/1e4)
	}
	base := body.String()
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	for written, n := int64(0), 0; written < size; n++ {
		block := fmt.Sprintf("; oeproxy e2e block %d\n", n) + base
		if rest := size - written; int64(len(block)) > min(rest, mib) {
			block = block[:min(rest, mib)]
		}
		if _, err := w.WriteString(block); err != nil {
			f.Close()
			return "", err
		}
		written += int64(len(block))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func freeDisk(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

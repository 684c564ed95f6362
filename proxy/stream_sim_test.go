package proxy

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMJPEGStreams: the first frame reaches the client before the printer produces the second, and a client
// that goes away ends the printer's request.
func TestMJPEGStreams(t *testing.T) {
	b := newTestBackend()
	var streams, ended atomic.Int32
	e := startSim(t, b, func(o *Options, _ *Printer) {
		o.Hooks.Stream = func(open bool) {
			if open {
				streams.Add(1)
			} else {
				ended.Add(1)
			}
		}
	})
	resp, err := localClient().Get(e.url("/mjpeg"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/x-mixed-replace") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	readFrame := func() string {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			if strings.HasPrefix(line, "frame ") {
				return strings.TrimSpace(line)
			}
		}
	}
	// The printer is blocked before frame 2 until frameNext: reading frame 1 proves it was not held back.
	if got := readFrame(); got != "frame 1" {
		t.Fatalf("got %q", got)
	}
	b.frameNext <- struct{}{}
	if got := readFrame(); got != "frame 2" {
		t.Fatalf("got %q", got)
	}
	resp.Body.Close()
	select {
	case <-b.streamGone:
	case <-time.After(20 * time.Second):
		t.Fatal("the printer's stream request did not end after the client went away")
	}
	waitFor(t, func() bool { return ended.Load() == 1 })
	if n := streams.Load(); n != 1 {
		t.Errorf("stream hook saw %d streams", n)
	}
}

// TestStreamingUpload sends a body generated on the fly (never held in memory) and checks it arrives byte-exact,
// with its Content-Length, at the printer; a chunked upload stays chunked up to the relay.
func TestStreamingUpload(t *testing.T) {
	size := int64(256 << 20)
	if raceEnabled || testing.Short() {
		size = 24 << 20
	}
	b := newTestBackend()
	e := startSim(t, b, nil)

	for _, chunked := range []bool{false, true} {
		sum := sha256.New()
		body := io.TeeReader(io.LimitReader(&patternReader{}, size), sum)
		r := newReq(t, "POST", e.url("/upload"), io.NopCloser(body))
		r.Header.Set("Content-Type", "application/octet-stream")
		r.Header.Set("User-Agent", "PrusaSlicer/2.8.1")
		if chunked {
			r.ContentLength = -1
		} else {
			r.ContentLength = size
		}
		e.conn.ResetRequests()
		resp, msg := do(t, localClient(), r)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("chunked=%v: %d %s", chunked, resp.StatusCode, msg)
		}
		ups := b.seenUploads()
		got := ups[len(ups)-1]
		if want := hex.EncodeToString(sum.Sum(nil)); got.SHA256 != want || got.Size != size {
			t.Errorf("chunked=%v: printer got %d bytes sha %s, want %d bytes sha %s", chunked, got.Size, got.SHA256, size, want)
		}
		reqs := e.conn.Requests()
		if len(reqs) != 1 {
			t.Fatalf("relay recorded %d requests", len(reqs))
		}
		rq := reqs[0]
		cl := rq.Header.Get("Content-Length")
		if chunked {
			if cl != "" {
				t.Errorf("a chunked upload reached the relay with Content-Length %s", cl)
			}
		} else if cl != strconv.FormatInt(size, 10) {
			t.Errorf("relay saw Content-Length %q, want %d", cl, size)
		}
		if rq.BodySize != size || rq.Header.Get("User-Agent") != "PrusaSlicer/2.8.1" {
			t.Errorf("relay read %d bytes, User-Agent %q", rq.BodySize, rq.Header.Get("User-Agent"))
		}
	}
}

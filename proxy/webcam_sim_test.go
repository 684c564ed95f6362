package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/webcam"
)

// readMJPEG reads a viewer's stream as a browser would, checks every part (a whole JPEG that decodes, with a
// Content-Length that matches) and counts the frames, until ctx ends or the stream does.
func readMJPEG(ctx context.Context, t *testing.T, url string, frames *atomic.Int64, failed chan<- string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := localClient().Do(req)
	if err != nil {
		failed <- err.Error()
		return
	}
	defer resp.Body.Close()
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		failed <- "content type " + resp.Header.Get("Content-Type")
		return
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err != nil {
			if ctx.Err() == nil {
				failed <- "stream ended: " + err.Error()
			} else {
				failed <- ""
			}
			return
		}
		b, err := io.ReadAll(p)
		if err != nil {
			if ctx.Err() == nil {
				failed <- "part: " + err.Error()
			} else {
				failed <- ""
			}
			return
		}
		if _, err := jpeg.Decode(bytes.NewReader(b)); err != nil || p.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
			failed <- "a part is not a whole JPEG: " + p.Header.Get("Content-Length") + " " + strconv.Itoa(len(b))
			return
		}
		frames.Add(1)
	}
}

// TestWebcamSharedAndContinuedThroughRelay: three viewers of the simulated OctoPrint webcam cost one relay
// stream, which oesim cuts at its time limit; the viewers' streams go on across the cuts with one relay request
// per cut, and a snapshot is answered from the stream without a relay request.
func TestWebcamSharedAndContinuedThroughRelay(t *testing.T) {
	var continued atomic.Int64
	hub := webcam.New(webcam.Options{Continue: true, Linger: 100 * time.Millisecond,
		Hooks: webcam.Hooks{Continued: func() { continued.Add(1) }}})
	defer hub.Close()
	e := startSim(t, nil, func(o *Options, _ *Printer) { o.Webcams = hub })
	e.conn.SetLimits(oesim.Limits{MaxSingleWebcamStreamLength: 700 * time.Millisecond})

	frames := watchAcrossCuts(t, e, &continued, 2)
	streams, snapshots := 0, 0
	for _, rq := range e.conn.Requests() {
		switch {
		case strings.Contains(rq.RawQuery, "action=stream"):
			streams++
		case strings.Contains(rq.RawQuery, "action=snapshot"):
			snapshots++
		}
	}
	c := int(continued.Load())
	t.Logf("3 viewers: %d relay stream requests, %d continuations, frames %d/%d/%d", streams, c, frames[0], frames[1], frames[2])
	if streams > c+1 {
		t.Errorf("%d relay stream requests for 3 viewers and %d cuts: want %d", streams, c, c+1)
	}
	if snapshots != 0 {
		t.Errorf("the snapshot went to the relay")
	}
}

// TestWebcamViewersArrivingTogether: viewers that open the webcam at the same moment (a page with several
// <img>, apps started together) cost one relay stream, not one each.
func TestWebcamViewersArrivingTogether(t *testing.T) {
	hub := webcam.New(webcam.Options{Linger: 100 * time.Millisecond})
	defer hub.Close()
	e := startSim(t, nil, func(o *Options, _ *Printer) { o.Webcams = hub })
	ctx, cancel := context.WithCancel(context.Background())
	var frames [6]atomic.Int64
	failed := make(chan string, len(frames))
	for i := range frames {
		go readMJPEG(ctx, t, e.url("/webcam/?action=stream"), &frames[i], failed)
	}
	for i := range frames {
		waitFor(t, func() bool { return frames[i].Load() > 1 })
	}
	cancel()
	for range frames {
		if msg := <-failed; msg != "" {
			t.Error(msg)
		}
	}
	streams := 0
	for _, rq := range e.conn.Requests() {
		if strings.Contains(rq.RawQuery, "action=stream") {
			streams++
		}
	}
	if streams != 1 {
		t.Errorf("%d relay stream requests for %d viewers that arrived together, want 1", streams, len(frames))
	}
}

// TestWebcamDiscoveryPointsAtOeproxy: the webcam URLs in OctoPrint's /api/settings lead back through oeproxy:
// the relative stream URL stays as it is, and OctoPi's absolute snapshot URL on the printer's own localhost
// (mjpg-streamer on 8080) becomes /webcam/... .
func TestWebcamDiscoveryPointsAtOeproxy(t *testing.T) {
	e := startSim(t, nil, nil)
	req := newReq(t, "GET", e.url("/api/settings"), nil)
	resp, body := do(t, localClient(), req)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var s struct {
		Webcam struct{ StreamURL, SnapshotURL string } `json:"webcam"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Webcam.StreamURL != "/webcam/?action=stream" || s.Webcam.SnapshotURL != "/webcam/?action=snapshot" {
		t.Errorf("webcam URLs %+v", s.Webcam)
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %s for %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
}

func TestLocalWebcamURL(t *testing.T) {
	h := &Handler{printer: Printer{LANHosts: []string{"192.168.1.5"}}}
	for raw, want := range map[string]string{
		"http://127.0.0.1:8080/?action=snapshot":   "/webcam/?action=snapshot",
		"http://localhost:8080/webcam/?action=x":   "/webcam/?action=x",
		"http://192.168.1.5/webcam/?action=stream": "/webcam/?action=stream",
		"http://192.168.1.5:8081/stream":           "/stream",
		"http://[::1]/cam":                         "/cam",
		"http://192.168.1.6/webcam/?action=stream": "",
		"/webcam/?action=stream":                   "",
		"rtsp://127.0.0.1/stream":                  "",
	} {
		got, ok := h.localWebcamURL(raw)
		if ok != (want != "") || got != want {
			t.Errorf("localWebcamURL(%q) = %q, %v; want %q", raw, got, ok, want)
		}
	}
}

// watchAcrossCuts has three viewers watch e's /webcam/ stream until the hub continued it at least cuts times and
// the last viewer got frames after that, checks a snapshot taken meanwhile (a whole JPEG) and every viewer's parts,
// and returns the frames each viewer got.
func watchAcrossCuts(t *testing.T, e *simEnv, continued *atomic.Int64, cuts int64) [3]int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var frames [3]atomic.Int64
	failed := make(chan string, len(frames))
	for i := range frames {
		go readMJPEG(ctx, t, e.url("/webcam/?action=stream"), &frames[i], failed)
		waitFor(t, func() bool { return frames[i].Load() > 0 })
	}
	resp, body := do(t, localClient(), newReq(t, "GET", e.url("/webcam/?action=snapshot"), nil))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("snapshot: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	} else if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil {
		t.Errorf("snapshot is not a JPEG: %v", err)
	}
	waitFor(t, func() bool { return continued.Load() >= cuts })
	before := frames[2].Load()
	waitFor(t, func() bool { return frames[2].Load() > before+2 })
	cancel()
	for range frames {
		if msg := <-failed; msg != "" {
			t.Error(msg)
		}
	}
	return [3]int64{frames[0].Load(), frames[1].Load(), frames[2].Load()}
}

package printer

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestJPEGFrame(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for _, n := range []int{0, 1, 9, 10, 123, 99999} {
		b := JPEGFrame(n)
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		if r := img.Bounds(); r.Dx() != frameW || r.Dy() != frameH {
			t.Fatalf("frame %d is %v", n, r)
		}
		if prev, dup := seen[string(b)]; dup {
			t.Fatalf("frames %d and %d are identical", prev, n)
		}
		seen[string(b)] = n
		if !bytes.Equal(JPEGFrame(n), b) {
			t.Fatalf("frame %d is not stable", n)
		}
	}
	b := JPEGFrame(5)
	b[0] = 0
	if JPEGFrame(5)[0] == 0 {
		t.Fatal("JPEGFrame returned the cached slice itself")
	}
}

// openStream starts a webcam stream and returns its multipart reader.
func openStream(t *testing.T, ctx context.Context, url string) (*http.Response, *multipart.Reader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != 200 || err != nil || mt != "multipart/x-mixed-replace" || params["boundary"] == "" {
		t.Fatalf("status %d content type %q: %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	return resp, multipart.NewReader(resp.Body, params["boundary"])
}

// readFrame reads one part, checks its headers and that it is a valid JPEG, and returns it.
func readFrame(t *testing.T, mr *multipart.Reader) []byte {
	t.Helper()
	part, err := mr.NextPart()
	if err != nil {
		t.Fatalf("next part: %v", err)
	}
	b, err := io.ReadAll(part)
	if err != nil {
		t.Fatalf("part body: %v", err)
	}
	if ct := part.Header.Get("Content-Type"); ct != "image/jpeg" {
		t.Fatalf("part Content-Type %q", ct)
	}
	if cl := part.Header.Get("Content-Length"); cl != strconv.Itoa(len(b)) {
		t.Fatalf("part Content-Length %q, body %d bytes", cl, len(b))
	}
	if _, err := jpeg.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("part is not a JPEG: %v", err)
	}
	return b
}

func TestWebcamStream(t *testing.T) {
	t.Parallel()
	_, op := newOctoPrint(t, OctoPrintOptions{FrameInterval: 20 * time.Millisecond})
	_, _, fe := newMoonraker(t, MoonrakerOptions{FrameInterval: 20 * time.Millisecond})
	for _, base := range []string{op.URL + "/webcam/", op.URL + "/webcam", fe.URL + "/webcam/"} {
		t.Run(base, func(t *testing.T) {
			_, mr := openStream(t, testCtx(t), base+"?action=stream")
			// One frame per tick, in order: the parts are frames 0, 1, 2, ... of this stream.
			for n := range 4 {
				if b := readFrame(t, mr); !bytes.Equal(b, JPEGFrame(n)) {
					t.Fatalf("part %d is not frame %d", n, n)
				}
			}
		})
	}
}

// With an interval far longer than any test, the second frame is never produced, so receiving
// the first proves it was flushed on its own rather than buffered with later frames.
func TestWebcamFirstFrameBeforeSecond(t *testing.T) {
	t.Parallel()
	p, srv := newOctoPrint(t, OctoPrintOptions{FrameInterval: time.Hour})
	resp, mr := openStream(t, testCtx(t), srv.URL+"/webcam/?action=stream")
	if !bytes.Equal(readFrame(t, mr), JPEGFrame(0)) {
		t.Fatal("first part is not frame 0")
	}
	// Close ends the live stream: the client sees the body end instead of waiting an hour.
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Logf("stream ended with %v", err)
	}
	select {
	case <-closed:
	case <-time.After(deadline):
		t.Fatal("Close did not return")
	}
	if resp, _ := do(t, http.MethodGet, srv.URL+"/webcam/?action=stream", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("stream after Close: %d", resp.StatusCode)
	}
}

// A client that goes away ends the handler: Close (which waits for handlers) then returns.
func TestWebcamClientGoesAway(t *testing.T) {
	t.Parallel()
	p := NewOctoPrint(OctoPrintOptions{FrameInterval: time.Hour})
	srv := httptest.NewServer(p)
	defer srv.Close()
	ctx, cancel := context.WithCancel(testCtx(t))
	_, mr := openStream(t, ctx, srv.URL+"/webcam/?action=stream")
	readFrame(t, mr)
	cancel()
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(deadline):
		t.Fatal("the stream handler outlived its client")
	}
}

func TestWebcamSnapshot(t *testing.T) {
	t.Parallel()
	_, srv := newOctoPrint(t, OctoPrintOptions{})
	resp, body := do(t, http.MethodGet, srv.URL+"/webcam/?action=snapshot", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("status %d type %q length %d/%d", resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, len(body))
	}
	if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil {
		t.Fatalf("snapshot is not a JPEG: %v", err)
	}
	if resp, _ := do(t, http.MethodGet, srv.URL+"/webcam/?action=nope", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("unknown action: %d", resp.StatusCode)
	}
}

// Close ends open WebSockets of both kinds with 1001 (going away).
func TestCloseEndsWebSockets(t *testing.T) {
	t.Parallel()
	p := NewOctoPrint(OctoPrintOptions{})
	op := httptest.NewServer(p)
	defer op.Close()
	m := NewMoonraker(MoonrakerOptions{})
	mr := httptest.NewServer(m.API())
	defer mr.Close()

	conns := map[string]*websocket.Conn{
		"raw":    dialWS(t, wsURL(op, "/sockjs/websocket"), nil),
		"framed": dialWS(t, wsURL(op, "/sockjs/1/abc/websocket"), nil),
		"rpc":    dialWS(t, wsURL(mr, "/websocket"), nil),
	}
	readText(t, conns["raw"])    // connected: the handler is running
	readText(t, conns["framed"]) // o
	done := make(chan struct{})
	go func() { p.Close(); m.Close(); close(done) }()
	// Read every socket at once: a close handshake needs the peer to read, and reading one socket after the
	// other lets the server's close of the unread ones time out under load.
	var wg sync.WaitGroup
	for name, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			for err == nil { // drain pushes until the close arrives
				_, _, err = c.Read(testCtx(t))
			}
			if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
				t.Errorf("%s: ended with %v (status %v), want 1001", name, err, st)
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatal("Close did not return")
	}
}

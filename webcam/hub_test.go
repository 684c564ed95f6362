package webcam

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// camera is an upstream MJPEG server in mjpg-streamer's format. Every request continues the frame count, so a
// viewer can check that frames arrive in order across cuts. It ends a response after cutAfter frames (the
// relay's time limit), in the middle of a part when tornCut is set.
type camera struct {
	interval time.Duration
	cutAfter int
	pad      int // bytes of padding per frame; default 3000
	tornCut  bool
	status   atomic.Int32 // answer this status instead of a stream when set

	n        atomic.Int64
	requests atomic.Int64
	open     atomic.Int64
	gone     chan struct{} // receives when a request's context ended
}

func newCamera(t *testing.T, interval time.Duration, cutAfter int) (*camera, *httptest.Server) {
	c := &camera{interval: interval, cutAfter: cutAfter, gone: make(chan struct{}, 100)}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv
}

func (c *camera) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	c.open.Add(1)
	defer func() { c.open.Add(-1); c.gone <- struct{}{} }()
	if s := c.status.Load(); s != 0 {
		w.WriteHeader(int(s))
		return
	}
	w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary=boundarydonotcross")
	w.Header().Set("Set-Cookie", "first=viewer")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	_, _ = io.WriteString(w, "\r\n--boundarydonotcross\r\n")
	for i := 0; c.cutAfter == 0 || i < c.cutAfter; i++ {
		pad := c.pad
		if pad == 0 {
			pad = 3000
		}
		data := []byte(fmt.Sprintf("frame %d %s", c.n.Add(1), strings.Repeat("x", pad)))
		if c.tornCut && c.cutAfter > 0 && i == c.cutAfter-1 {
			fmt.Fprintf(w, "Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s", len(data), data[:100])
			_ = rc.Flush()
			return
		}
		fmt.Fprintf(w, "Content-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: 1.0\r\n\r\n", len(data))
		_, _ = w.Write(data)
		_, _ = io.WriteString(w, "\r\n--boundarydonotcross\r\n")
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(c.interval):
		}
	}
}

// front is what the proxy does with a hub, reduced to the upstream call: join a running stream, else ask
// upstream with a request that outlives this viewer, and hand an MJPEG answer to the hub.
func front(hub *Hub, upstream string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key, ok := SnapshotKey(r); ok && hub.ServeSnapshot(w, r, key) {
			return
		}
		key := Key(r)
		if hub.Join(w, r, key) {
			return
		}
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		stop := context.AfterFunc(r.Context(), cancel)
		req, _ := http.NewRequestWithContext(ctx, r.Method, upstream+r.URL.RequestURI(), nil)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			cancel()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		open := func(c context.Context) (*http.Response, error) { return http.DefaultTransport.RoundTrip(req.Clone(c)) }
		if hub.Adopt(r.Context(), key, resp, open, cancel) {
			stop() // the hub owns the upstream request now
		} else {
			defer cancel()
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		rc := http.NewResponseController(w)
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				_ = rc.Flush()
			}
			if err != nil {
				return
			}
		}
	})
}

// watch reads a viewer's stream as a client would (mime/multipart with the boundary of the answer) and sends
// each frame's number, checking each part: its own Content-Type and a Content-Length that matches the image.
func watch(t *testing.T, ctx context.Context, url string, frames chan<- int) (http.Header, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/x-mixed-replace" || params["boundary"] == "" {
		return resp.Header, fmt.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bufio.NewReader(resp.Body), params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err != nil {
			return resp.Header, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return resp.Header, err
		}
		if p.Header.Get("Content-Type") != "image/jpeg" || p.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
			return resp.Header, fmt.Errorf("part header %v for %d bytes", p.Header, len(b))
		}
		var n int
		if _, err := fmt.Sscanf(string(b), "frame %d ", &n); err != nil || len(b) < 3000 {
			return resp.Header, fmt.Errorf("torn or foreign part (%d bytes): %.40q", len(b), b)
		}
		select {
		case frames <- n:
		case <-ctx.Done():
			return resp.Header, ctx.Err()
		}
	}
}

func recv(t *testing.T, ch <-chan int) int {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10 s")
		return 0
	}
}

func TestPartReaderFormats(t *testing.T) {
	frame := "\xff\xd8 some jpeg \r\n--not-the-boundary \xff\xd9"
	if len(frame) != 36 {
		t.Fatalf("the test's frame is %d bytes", len(frame))
	}
	for _, tc := range []struct {
		name, stream string
		want         []string
		end          error
	}{
		{"mjpg-streamer", "\r\n--b\r\nContent-Type: image/jpeg\r\nContent-Length: 36\r\n\r\n" + frame + "\r\n--b\r\n" +
			"Content-Type: image/jpeg\r\nContent-Length: 36\r\n\r\n" + frame + "\r\n--b\r\n", []string{frame, frame}, io.ErrUnexpectedEOF},
		{"ustreamer", "--b\r\nContent-Type: image/jpeg\r\nContent-Length: 36\r\nX-Timestamp: 1.5\r\n\r\n" + frame +
			"\r\n--b\r\nContent-Type: image/jpeg\r\nContent-Length: 36\r\n\r\n" + frame + "\r\n--b--\r\n", []string{frame, frame}, io.EOF},
		{"no length", "--b\r\nContent-Type: image/jpeg\r\n\r\n" + frame + "\r\n--b\r\nContent-Type: image/jpeg\r\n\r\n" + frame + "\r\n--b--\r\n",
			[]string{frame}, io.EOF},
		{"torn at the end", "--b\r\nContent-Type: image/jpeg\r\nContent-Length: 36\r\n\r\n" + frame + "\r\n--b\r\nContent-Type: image/jpeg\r\nContent-Length: 36\r\n\r\n\xff\xd8 so",
			[]string{frame}, io.ErrUnexpectedEOF},
		{"dashes in the parameter", "\r\n--b\r\nContent-Length: 36\r\n\r\n" + frame + "\r\n--b\r\n", []string{frame}, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := newPartReader(strings.NewReader(tc.stream), "b", 1<<20)
			var got []string
			var err error
			for {
				var f *Frame
				if f, err = pr.next(); err != nil {
					break
				}
				if f.ContentType != "image/jpeg" || !strings.Contains(string(f.head), "Content-Length: "+strconv.Itoa(len(f.Data))+"\r\n") {
					t.Errorf("frame %q head %q", f.ContentType, f.head)
				}
				got = append(got, string(f.Data))
			}
			if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
				t.Errorf("frames %q, want %q", got, tc.want)
			}
			if err != tc.end {
				t.Errorf("ended with %v, want %v", err, tc.end)
			}
		})
	}
	if _, err := newPartReader(strings.NewReader("--b\r\nContent-Length: 99999999\r\n\r\n"), "b", 1<<20).next(); err != errTooBig {
		t.Errorf("an oversized part: %v", err)
	}
	if _, err := newPartReader(strings.NewReader(strings.Repeat("x", 2<<20)), "b", 1<<20).next(); err != errTooBig {
		t.Errorf("a body with no boundary: %v", err)
	}
}

// Several viewers, joining and leaving, share one upstream; each sees a well-formed stream of its own with
// frames in order, and the first viewer leaving does not end the others' stream.
func TestViewersShareOneUpstream(t *testing.T) {
	cam, up := newCamera(t, 20*time.Millisecond, 0)
	var upstreams, viewers atomic.Int64
	hub := New(Options{Linger: 50 * time.Millisecond, Hooks: Hooks{
		Upstream: func(o bool) { upstreams.Add(map[bool]int64{true: 1, false: -1}[o]) },
		Viewer:   func(j bool) { viewers.Add(map[bool]int64{true: 1, false: -1}[j]) }}})
	defer hub.Close()
	srv := httptest.NewServer(front(hub, up.URL))
	defer srv.Close()
	url := srv.URL + "/webcam/?action=stream"

	type v struct {
		cancel context.CancelFunc
		frames chan int
		done   chan error
		hdr    chan http.Header
	}
	start := func() *v {
		ctx, cancel := context.WithCancel(context.Background())
		x := &v{cancel: cancel, frames: make(chan int, 1000), done: make(chan error, 1), hdr: make(chan http.Header, 1)}
		go func() { h, err := watch(t, ctx, url, x.frames); x.hdr <- h; x.done <- err }()
		return x
	}
	first := start()
	recv(t, first.frames)
	var others []*v
	for range 4 {
		x := start()
		joined := time.Now()
		recv(t, x.frames)
		t.Logf("a joining viewer's first frame after %v", time.Since(joined))
		others = append(others, x)
	}
	first.cancel()
	<-first.done
	for _, x := range others {
		last := recv(t, x.frames)
		for range 5 {
			n := recv(t, x.frames)
			if n <= last {
				t.Fatalf("frame %d after %d", n, last)
			}
			last = n
		}
	}
	if n := cam.requests.Load(); n != 1 {
		t.Errorf("%d upstream requests for 5 viewers, want 1", n)
	}
	if upstreams.Load() != 1 {
		t.Errorf("shared upstreams %d", upstreams.Load())
	}
	for _, x := range others {
		x.cancel()
		if err := <-x.done; err != context.Canceled && !strings.Contains(fmt.Sprint(err), "canceled") {
			t.Errorf("viewer ended with %v", err)
		}
		if h := <-x.hdr; h.Get("Set-Cookie") != "" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("a joining viewer's header: %v", h)
		}
	}
	// After the last viewer, the upstream closes within the linger time (and a bit).
	select {
	case <-cam.gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream stayed open after every viewer left")
	}
	if viewers.Load() != 0 {
		t.Errorf("%d viewers counted after all left", viewers.Load())
	}
}

// The relay ends each stream after a few frames (once in the middle of a part): a viewer's response goes on,
// with one upstream request per cut, frames in order and no torn part.
func TestContinuedAcrossCuts(t *testing.T) {
	for _, torn := range []bool{false, true} {
		t.Run(fmt.Sprintf("torn=%v", torn), func(t *testing.T) {
			cam, up := newCamera(t, 20*time.Millisecond, 5)
			cam.tornCut = torn
			var continued atomic.Int64
			hub := New(Options{Continue: true, Linger: 20 * time.Millisecond, Hooks: Hooks{Continued: func() { continued.Add(1) }}})
			defer hub.Close()
			srv := httptest.NewServer(front(hub, up.URL))
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			frames := make(chan int, 1000)
			done := make(chan error, 1)
			go func() { _, err := watch(t, ctx, srv.URL+"/webcam/?action=stream", frames); done <- err }()
			last := recv(t, frames)
			prev := time.Now()
			var worst time.Duration
			for range 20 {
				n := recv(t, frames)
				if n <= last {
					t.Fatalf("frame %d after %d", n, last)
				}
				if gap := time.Since(prev); gap > worst {
					worst = gap
				}
				last, prev = n, time.Now()
			}
			cancel()
			<-done
			reqs, cuts := cam.requests.Load(), continued.Load()
			t.Logf("camera interval 20ms: longest gap between frames %v over %d cuts", worst, cuts)
			if cuts < 3 || reqs != cuts+1 {
				t.Errorf("%d upstream requests for %d continuations", reqs, cuts)
			}
		})
	}
}

// A viewer that stops reading skips frames; the others keep getting every one.
func TestSlowViewerDoesNotSlowOthers(t *testing.T) {
	cam, up := newCamera(t, 5*time.Millisecond, 0)
	cam.pad = 64 << 10 // 400 frames are 25 MiB, far more than the socket buffers of the viewer that does not read
	var dropped atomic.Int64
	hub := New(Options{Hooks: Hooks{Dropped: func() { dropped.Add(1) }}})
	defer hub.Close()
	srv := httptest.NewServer(front(hub, up.URL))
	defer srv.Close()
	url := srv.URL + "/webcam/?action=stream"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fast := make(chan int, 10000)
	fastDone := make(chan error, 1)
	go func() { _, err := watch(t, ctx, url, fast); fastDone <- err }()
	recv(t, fast)
	// The slow viewer reads its header and then nothing: its socket buffers fill and its writes block.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	slow, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	first := recv(t, fast)
	last := first
	for range 400 {
		n := recv(t, fast)
		if n <= last {
			t.Fatalf("frame %d after %d", n, last)
		}
		last = n
	}
	// A loaded machine may make even the reading viewer skip now and then; a blocked one would skip nearly all.
	if missed := last - first - 400; missed > 40 {
		t.Errorf("the reading viewer missed %d of %d frames while another viewer did not read", missed, last-first)
	}
	if dropped.Load() == 0 {
		t.Error("no frame was skipped for the viewer that does not read")
	}
	t.Logf("frames skipped for the slow viewer: %d", dropped.Load())
	cancel()
	<-fastDone
}

// A reopen that OctoEverywhere refuses for good ends the viewers' responses at once; repeated failures back
// off and then end them: never a hang.
func TestReopenFailuresEndViewers(t *testing.T) {
	for _, tc := range []struct {
		status   int
		attempts int64
	}{{604, 1}, {609, 3}, {http.StatusBadGateway, 3}} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			cam, up := newCamera(t, 10*time.Millisecond, 3)
			hub := New(Options{Continue: true, RetryWait: 10 * time.Millisecond, MaxRetries: 3})
			defer hub.Close()
			srv := httptest.NewServer(front(hub, up.URL))
			defer srv.Close()
			frames := make(chan int, 100)
			done := make(chan error, 1)
			go func() {
				_, err := watch(t, context.Background(), srv.URL+"/webcam/?action=stream", frames)
				done <- err
			}()
			recv(t, frames)
			cam.status.Store(int32(tc.status))
			select {
			case err := <-done:
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Logf("viewer ended with %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the viewer's response hangs after the upstream failed for good")
			}
			if got := cam.requests.Load() - 1; got != tc.attempts {
				t.Errorf("%d reopen attempts after %d, want %d", got, tc.status, tc.attempts)
			}
		})
	}
}

// A snapshot is answered from the running stream without a request upstream; without a stream it goes upstream.
func TestSnapshotFromRunningStream(t *testing.T) {
	cam, up := newCamera(t, 20*time.Millisecond, 0)
	hub := New(Options{})
	defer hub.Close()
	srv := httptest.NewServer(front(hub, up.URL))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	frames := make(chan int, 1000)
	done := make(chan error, 1)
	go func() { _, err := watch(t, ctx, srv.URL+"/webcam/?action=stream", frames); done <- err }()
	recv(t, frames)
	resp, err := http.Get(srv.URL + "/webcam/?action=snapshot")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || !strings.HasPrefix(string(b), "frame ") {
		t.Errorf("snapshot %d %q %.20q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if n := cam.requests.Load(); n != 1 {
		t.Errorf("the snapshot went upstream: %d requests", n)
	}
	// Another client's credential is another stream: its snapshot is not served from this one.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/webcam/?action=snapshot", nil)
	req.Header.Set("X-Api-Key", "someone else")
	if _, ok := SnapshotKey(req); !ok {
		t.Fatal("not recognised as a snapshot")
	}
	k1, _ := SnapshotKey(req)
	req.Header.Del("X-Api-Key")
	k2, _ := SnapshotKey(req)
	if k1 == k2 {
		t.Error("the client's key is not part of the stream's identity")
	}
	cancel()
	<-done
}

func TestSnapshotKeyMapping(t *testing.T) {
	stream := func(u string) string { r := httptest.NewRequest("GET", u, nil); return Key(r) }
	for snap, want := range map[string]string{
		"/webcam/?action=snapshot":                                  "/webcam/?action=stream",
		"/octoeverywhere-command-api/webcam/snapshot?index=1":       "/octoeverywhere-command-api/webcam/stream?index=1",
		"/webcam2/?action=snapshot&cam=2":                           "/webcam2/?action=stream&cam=2",
		"/server/files/timelapse/x.jpg":                             "",
		"/octoeverywhere-command-api/webcam/snapshot?index=0&x=y+z": "/octoeverywhere-command-api/webcam/stream?index=0&x=y+z",
	} {
		k, ok := SnapshotKey(httptest.NewRequest("GET", snap, nil))
		if ok != (want != "") || (ok && k != stream(want)) {
			t.Errorf("SnapshotKey(%s) = %q, %v; want the key of %q", snap, k, ok, want)
		}
	}
}

// JoinOrClaim: the first request for a key is sent upstream with a done; a second one waits for it, and when the
// first's answer was no stream it goes upstream unshared (done nil); a viewer that leaves while waiting is served.
func TestJoinOrClaim(t *testing.T) {
	h := New(Options{})
	defer h.Close()
	r := httptest.NewRequest(http.MethodGet, "/webcam/?action=stream", nil)
	key := Key(r)
	served, done := h.JoinOrClaim(httptest.NewRecorder(), r, key)
	if served || done == nil {
		t.Fatalf("first request: served %v, done %v; want upstream with a done", served, done != nil)
	}
	second := make(chan bool, 1)
	go func() {
		served, done := h.JoinOrClaim(httptest.NewRecorder(), r, key)
		second <- served || done != nil
	}()
	select {
	case <-second:
		t.Fatal("the second request did not wait for the first one's answer")
	case <-time.After(50 * time.Millisecond):
	}
	done() // the first answer was no stream
	if <-second {
		t.Fatal("after a first answer that was no stream, the second was served or claimed; want upstream unshared")
	}
	_, done = h.JoinOrClaim(httptest.NewRecorder(), r, key)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if served, d := h.JoinOrClaim(httptest.NewRecorder(), r.WithContext(ctx), key); !served || d != nil {
		t.Errorf("a viewer that left while waiting: served %v, done %v; want served", served, d != nil)
	}
	done()
}

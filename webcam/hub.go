// Package webcam owns webcam streams between the relay and local viewers: one upstream MJPEG stream per webcam
// (and per client credential) fanned out to every viewer, continued across the relay's time limit so that a
// viewer's response never ends there, and snapshots answered from the newest frame of a running stream.
//
// It does not decide where a stream comes from: the proxy hands it the upstream response it got (Adopt) and a
// function that opens the next one (Opener), so that the proxy stays the one place that decides what goes to
// the relay or the LAN and with which credential. The package knows nothing of OctoEverywhere beyond the
// status codes that say a reopen is pointless.
package webcam

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Opener opens the next upstream stream of a webcam after a cut, with the same request the first viewer made.
type Opener func(ctx context.Context) (*http.Response, error)

// Hooks let the daemon count what the hub does (metrics). Every field may be nil.
type Hooks struct {
	// Upstream is called with true when an upstream stream starts being shared and false when it ends.
	Upstream func(open bool)
	// Viewer is called with true when a viewer joins a shared stream and false when it leaves.
	Viewer func(join bool)
	// Dropped is called when a slow viewer skips a frame.
	Dropped func()
	// Continued is called when a stream was reopened after the relay ended it.
	Continued func()
}

// Options configure a Hub. The zero value shares streams but does not continue them.
type Options struct {
	// Continue reopens the upstream when it ends while viewers remain.
	Continue bool
	// Linger keeps an upstream open this long after its last viewer left, so that a page reload or a second
	// app opening the webcam a moment later does not start a new relay stream. Default 3 s.
	Linger time.Duration
	// MaxFrameBytes bounds one part of a stream. Default 8 MiB.
	MaxFrameBytes int
	// RetryWait is the first wait after a failed reopen; it doubles per failure up to 8 × RetryWait. Default 500 ms.
	RetryWait time.Duration
	// MaxRetries failed reopens in a row end the viewers' responses. Default 5.
	MaxRetries int
	Logger     *zap.Logger
	Hooks      Hooks
}

func (o *Options) defaults() {
	if o.Linger <= 0 {
		o.Linger = 3 * time.Second
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = 8 << 20
	}
	if o.RetryWait <= 0 {
		o.RetryWait = 500 * time.Millisecond
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 5
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Hub holds the shared streams of one printer.
type Hub struct {
	o       Options
	mu      sync.Mutex
	streams map[string]*stream
	opening map[string]chan struct{} // keys whose first request is on its way upstream
	closed  bool
	wg      sync.WaitGroup
}

// New returns a Hub. Close ends its streams.
func New(o Options) *Hub {
	o.defaults()
	return &Hub{o: o, streams: make(map[string]*stream), opening: make(map[string]chan struct{})}
}

// Claim makes the caller the one request for key that goes upstream while no stream of key runs, so that
// viewers arriving together (a page with two <img>, ten apps started at once) cost one relay stream. first is
// true for that caller, which must call done once its answer was adopted or not; any other caller gets wait,
// closed when the first one is done, and should then try Join before going upstream itself.
func (h *Hub) Claim(key string) (first bool, wait <-chan struct{}, done func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.opening[key]; ok {
		return false, ch, func() {}
	}
	ch := make(chan struct{})
	h.opening[key] = ch
	var once sync.Once
	return true, ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.opening, key)
			h.mu.Unlock()
			close(ch)
		})
	}
}

// JoinOrClaim serves r from the running stream of key, or from the one another viewer's request is opening
// (waiting for its answer), and reports served. Otherwise r must go upstream: with done non-nil it is the one
// request for key on its way (Claim), and done must be called once its answer was adopted or not; with done nil
// another viewer's request ended without a stream, and r goes upstream unshared. A viewer that leaves while
// waiting counts as served (there is nobody to answer).
func (h *Hub) JoinOrClaim(w http.ResponseWriter, r *http.Request, key string) (served bool, done func()) {
	if h.Has() && h.Join(w, r, key) {
		return true, nil
	}
	first, wait, done := h.Claim(key)
	if first {
		return false, done
	}
	select {
	case <-wait:
	case <-r.Context().Done():
		return true, nil
	}
	return h.Join(w, r, key), nil
}

// Key is the identity of a stream request: the path, the query and a digest of every header that can carry the
// client's own printer credential. Two requests share a stream only when all of them are equal, so that one
// client's key never serves another client.
func Key(r *http.Request) string {
	h := sha256.New()
	for _, k := range []string{"Authorization", "X-Api-Key", "Cookie"} {
		for _, v := range r.Header.Values(k) {
			fmt.Fprintf(h, "%s:%d:%s\n", k, len(v), v)
		}
	}
	// The query in canonical order: a snapshot URL and its stream URL may list parameters differently.
	return r.URL.Path + "?" + r.URL.Query().Encode() + "#" + hex.EncodeToString(h.Sum(nil)[:16])
}

// SnapshotKey is the Key of the stream whose newest frame answers a snapshot request, and false when r is not a
// snapshot request: `?action=snapshot` (mjpg-streamer, ustreamer, crowsnest; OctoPrint's and Moonraker's
// default snapshot URLs) maps to `?action=stream`, and a path ending in `/snapshot` (the plugin webcam API) to
// `/stream`, the rest of the request kept.
func SnapshotKey(r *http.Request) (string, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "", false
	}
	q := r.URL.Query()
	u := *r.URL
	switch {
	case q.Get("action") == "snapshot":
		q.Set("action", "stream")
		u.RawQuery = q.Encode()
	case strings.HasSuffix(u.Path, "/snapshot"):
		u.Path = strings.TrimSuffix(u.Path, "/snapshot") + "/stream"
	default:
		return "", false
	}
	r2 := *r
	r2.URL = &u
	return Key(&r2), true
}

// Has reports whether any stream is shared, so that a caller can skip computing keys for ordinary requests.
func (h *Hub) Has() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams) > 0 || len(h.opening) > 0
}

// Snapshot returns the newest frame of the running stream of key.
func (h *Hub) Snapshot(key string) (*Frame, bool) {
	h.mu.Lock()
	s := h.streams[key]
	h.mu.Unlock()
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest, s.latest != nil
}

// ServeSnapshot answers r with the newest frame of the running stream of key, and reports false (having
// written nothing) when there is none.
func (h *Hub) ServeSnapshot(w http.ResponseWriter, r *http.Request, key string) bool {
	f, ok := h.Snapshot(key)
	if !ok {
		return false
	}
	w.Header().Set("Content-Type", f.ContentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(f.Data)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(f.Data)
	}
	return true
}

// Adopt takes resp, an MJPEG answer to a viewer's request, as the upstream stream of key, and makes resp's
// body and header this viewer's share of it: the caller writes resp to the viewer as it would any response.
// viewerCtx is the viewer's own request context. release is called once the upstream is no longer needed (it
// ends the request that produced resp, which must not end with the first viewer). When a stream of key already
// runs, resp is closed and the viewer joins that one. Adopt reports false, leaving resp untouched, when resp is
// not a multipart stream with a boundary.
func (h *Hub) Adopt(viewerCtx context.Context, key string, resp *http.Response, reopen Opener, release func()) bool {
	boundary := Boundary(resp.Header.Get("Content-Type"))
	if boundary == "" || resp.StatusCode != http.StatusOK {
		return false
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	s := h.streams[key]
	fresh := s == nil
	if fresh {
		s = h.newStream(key, resp, boundary, reopen, release)
		h.streams[key] = s
		h.wg.Add(1)
	}
	v := s.join()
	h.mu.Unlock()
	if fresh {
		go s.run(resp.Body) // resp.Body becomes the viewer's below: the stream keeps the upstream's
	} else {
		_ = resp.Body.Close()
		if release != nil {
			release()
		}
	}
	v.header(resp.Header)
	resp.Body = &viewerBody{v: v, ctx: viewerCtx}
	resp.ContentLength = -1
	resp.TransferEncoding = nil
	return true
}

// Join serves r from the running stream of key until the viewer leaves or the stream ends, and reports false
// (having written nothing) when no stream of key runs: the caller then sends the request upstream.
func (h *Hub) Join(w http.ResponseWriter, r *http.Request, key string) bool {
	h.mu.Lock()
	s := h.streams[key]
	if s == nil || h.closed {
		h.mu.Unlock()
		return false
	}
	v := s.join()
	h.mu.Unlock()
	defer v.leave()
	v.header(w.Header())
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if _, err := io.WriteString(w, v.opening()); err != nil {
		return true
	}
	if err := rc.Flush(); err != nil {
		return true
	}
	ctx := r.Context()
	for {
		f, err := v.next(ctx)
		if err != nil {
			return true
		}
		if err := v.write(w, f); err != nil {
			return true
		}
		if err := rc.Flush(); err != nil {
			return true
		}
	}
}

// Close ends every stream and every viewer's response, and waits for the streams' goroutines.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	ss := make([]*stream, 0, len(h.streams))
	for _, s := range h.streams {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	for _, s := range ss {
		s.cancel()
	}
	h.wg.Wait()
}

// stream is one upstream MJPEG stream and its viewers.
type stream struct {
	h        *Hub
	key      string
	header   http.Header // the upstream's answer header, the template of every viewer's
	boundary string
	reopen   Opener
	ctx      context.Context
	cancel   context.CancelFunc

	mu      sync.Mutex
	viewers map[*viewer]struct{}
	latest  *Frame
	linger  *time.Timer
	ended   chan struct{}
}

// newStream is called with h.mu held.
func (h *Hub) newStream(key string, resp *http.Response, boundary string, reopen Opener, release func()) *stream {
	ctx, cancel := context.WithCancel(context.Background())
	hdr := resp.Header.Clone()
	// A cookie set for the first viewer is that viewer's; hop-by-hop and length headers describe one response.
	for _, k := range []string{"Set-Cookie", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Trailer"} {
		hdr.Del(k)
	}
	if release != nil {
		context.AfterFunc(ctx, release) // the first upstream request lives as long as the stream, not its viewer
	}
	s := &stream{h: h, key: key, header: hdr, boundary: boundary, reopen: reopen, ctx: ctx, cancel: cancel,
		viewers: make(map[*viewer]struct{}), ended: make(chan struct{})}
	if h.o.Hooks.Upstream != nil {
		h.o.Hooks.Upstream(true)
	}
	return s
}

// join adds a viewer, which gets the newest frame at once.
func (s *stream) join() *viewer {
	v := &viewer{s: s, wake: make(chan struct{}, 1), boundary: newBoundary()}
	s.mu.Lock()
	s.viewers[v] = struct{}{}
	if s.linger != nil {
		s.linger.Stop()
		s.linger = nil
	}
	if s.latest != nil {
		v.pending = s.latest
		v.wake <- struct{}{}
	}
	s.mu.Unlock()
	if s.h.o.Hooks.Viewer != nil {
		s.h.o.Hooks.Viewer(true)
	}
	return v
}

// leave removes a viewer; the last one leaving starts the linger timer that ends the upstream.
func (s *stream) leave(v *viewer) {
	s.mu.Lock()
	if _, ok := s.viewers[v]; !ok {
		s.mu.Unlock()
		return
	}
	delete(s.viewers, v)
	if len(s.viewers) == 0 && s.linger == nil {
		s.linger = time.AfterFunc(s.h.o.Linger, s.idle)
	}
	s.mu.Unlock()
	if s.h.o.Hooks.Viewer != nil {
		s.h.o.Hooks.Viewer(false)
	}
}

// idle ends the upstream if nobody joined during the linger time.
func (s *stream) idle() {
	s.mu.Lock()
	empty := len(s.viewers) == 0
	s.mu.Unlock()
	if empty {
		s.cancel()
	}
}

// publish hands a frame to every viewer. A viewer that has not taken the previous one yet skips it: only the
// newest frame waits, so a slow viewer neither slows the others nor grows memory.
func (s *stream) publish(f *Frame) {
	dropped := 0
	s.mu.Lock()
	s.latest = f
	for v := range s.viewers {
		v.mu.Lock()
		if v.pending != nil {
			dropped++
		}
		v.pending = f
		v.mu.Unlock()
		select {
		case v.wake <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	if d := s.h.o.Hooks.Dropped; d != nil {
		for range dropped {
			d()
		}
	}
}

// run reads the upstream until nobody watches, continuing it across cuts when asked to.
func (s *stream) run(body io.ReadCloser) {
	h := s.h
	log := h.o.Logger.With(zap.String("webcam", s.key[:strings.IndexByte(s.key, '?')]))
	defer func() {
		h.mu.Lock()
		if h.streams[s.key] == s {
			delete(h.streams, s.key)
		}
		h.mu.Unlock()
		s.cancel()
		close(s.ended)
		if h.o.Hooks.Upstream != nil {
			h.o.Hooks.Upstream(false)
		}
		h.wg.Done()
	}()
	boundary := s.boundary
	for {
		err := s.pump(body, boundary)
		_ = body.Close()
		if s.ctx.Err() != nil {
			return
		}
		if !h.o.Continue {
			log.Info("the webcam stream ended", zap.NamedError("reason", err))
			return
		}
		started := time.Now()
		resp, err := s.next(log)
		if err != nil {
			log.Warn("the webcam stream ended and could not be continued; viewers' streams end", zap.Error(err))
			return
		}
		body, boundary = resp.Body, Boundary(resp.Header.Get("Content-Type"))
		log.Debug("webcam stream continued after the relay ended it", zap.Duration("reopen", time.Since(started)))
		if h.o.Hooks.Continued != nil {
			h.o.Hooks.Continued()
		}
	}
}

// errGone is how a reopen that can never succeed is reported.
var errGone = errors.New("webcam: the relay refused the stream")

// next opens the following upstream stream: at once after a cut, then with a doubling wait after each failure.
// OctoEverywhere's answers after which a retry is pointless (the App Connection is gone, no Supporter Perks,
// the printer has no such webcam) end it at once; 609 (too many stream starts) waits like any failure.
func (s *stream) next(log *zap.Logger) (*http.Response, error) {
	wait := s.h.o.RetryWait
	for attempt := 1; ; attempt++ {
		resp, err := s.reopen(s.ctx)
		if err == nil {
			if resp.StatusCode == http.StatusOK && Boundary(resp.Header.Get("Content-Type")) != "" {
				return resp, nil
			}
			_ = resp.Body.Close()
			err = fmt.Errorf("%w: status %d (%s)", errGone, resp.StatusCode, resp.Header.Get("Content-Type"))
			switch c := resp.StatusCode; {
			case c == 603, c == 604, c == 605, c == 606, c == http.StatusNotFound, c == http.StatusUnauthorized, c == http.StatusForbidden:
				return nil, err
			}
		}
		if s.ctx.Err() != nil {
			return nil, s.ctx.Err()
		}
		if attempt >= s.h.o.MaxRetries {
			return nil, fmt.Errorf("%d reopens failed, the last: %w", attempt, err)
		}
		log.Info("reopening the webcam stream failed; trying again", zap.Error(err), zap.Duration("wait", wait))
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return nil, s.ctx.Err()
		case <-t.C:
		}
		if wait < 8*s.h.o.RetryWait {
			wait *= 2
		}
	}
}

// pump publishes the frames of one upstream response until it ends.
func (s *stream) pump(body io.Reader, boundary string) error {
	pr := newPartReader(body, boundary, s.h.o.MaxFrameBytes)
	for {
		f, err := pr.next()
		if err != nil {
			return err
		}
		s.publish(f)
	}
}

// viewer is one local client of a shared stream.
type viewer struct {
	s        *stream
	boundary string
	wake     chan struct{}
	once     sync.Once

	mu      sync.Mutex
	pending *Frame
}

// header writes this viewer's answer header: the upstream's, with the viewer's own boundary.
func (v *viewer) header(h http.Header) {
	for k := range h {
		delete(h, k)
	}
	for k, vs := range v.s.header {
		h[k] = append([]string(nil), vs...)
	}
	h.Set("Content-Type", "multipart/x-mixed-replace;boundary="+v.boundary)
}

// next waits for the next frame. It fails when ctx ends or the stream ended for good.
func (v *viewer) next(ctx context.Context) (*Frame, error) {
	for {
		v.mu.Lock()
		f := v.pending
		v.pending = nil
		v.mu.Unlock()
		if f != nil {
			return f, nil
		}
		select {
		case <-v.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-v.s.ended:
			return nil, io.EOF
		}
	}
}

// opening is what a viewer's body starts with: the first boundary line.
func (v *viewer) opening() string { return "--" + v.boundary + "\r\n" }

// write sends one part: the frame's header block, the image, and at once the next boundary line, as
// mjpg-streamer does: a client (a browser, ffmpeg, mime/multipart) knows that a part is complete only when it
// sees the next delimiter, so sending it with the next frame would show every frame one frame late.
func (v *viewer) write(w io.Writer, f *Frame) error {
	if _, err := w.Write(f.head); err != nil {
		return err
	}
	if _, err := w.Write(f.Data); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\r\n"+v.opening())
	return err
}

func (v *viewer) leave() { v.once.Do(func() { v.s.leave(v) }) }

// viewerBody is a viewer's share of a stream as a response body, for the proxy's own copy loop.
type viewerBody struct {
	v       *viewer
	ctx     context.Context
	buf     []byte // the part being read, reused for the next
	off     int
	started bool
}

func (b *viewerBody) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		b.buf = append(b.buf[:0], b.v.opening()...)
	} else if b.off == len(b.buf) {
		f, err := b.v.next(b.ctx)
		if err != nil {
			return 0, err
		}
		b.buf = append(b.buf[:0], f.head...)
		b.buf = append(b.buf, f.Data...)
		b.buf = append(b.buf, "\r\n"+b.v.opening()...)
		b.off = 0
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

func (b *viewerBody) Close() error {
	b.v.leave()
	return nil
}

// newBoundary gives each viewer a boundary of its own, which no image can be made to contain by chance.
func newBoundary() string {
	return "oeproxy" + strings.ToLower(rand.Text())
}

package reliability

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap/zapcore"
)

// loadSizes are the load case's sizes: the figures under OEPROXY_SOAK=1, a shorter and smaller run in
// `make test` (which runs under the race detector on a shared 2-core machine).
type loadSizes struct {
	duration                                 time.Duration
	requesters, websockets, viewers, uploads int
	uploadBytes                              int64
}

func currentLoad() loadSizes {
	if soak() {
		return loadSizes{10 * time.Minute, 1000, 200, 50, 5, 64 << 20}
	}
	if raceEnabled {
		// Under the race detector every TLS handshake costs ~10x: more clients at once only time out handshakes.
		return loadSizes{20 * time.Second, 100, 25, 5, 2, 8 << 20}
	}
	return loadSizes{60 * time.Second, 500, 100, 25, 3, 16 << 20}
}

// Everything at once: small requests, WebSockets exchanging messages, webcam viewers and uploads. No request
// may fail; afterwards goroutines and file descriptors come back to the baseline. RSS is printed.
func TestLoad(t *testing.T) {
	track(t)
	sz := currentLoad()
	r := newRig(t, rigOptions{})
	r.mustOK(t)
	base := takeBaseline()
	rss0 := rss()
	ctx, cancel := context.WithTimeout(context.Background(), sz.duration)
	defer cancel()

	var (
		wg                               sync.WaitGroup
		reqs, msgs, frames, uploads, bad atomic.Int64
		firstErr                         atomic.Value
	)
	fail := func(what string, err error) {
		if ctx.Err() != nil {
			return // the run ended under it (coder/websocket closes a connection whose read context ends)
		}
		bad.Add(1)
		firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", what, err))
	}
	// Clients arrive over the first seconds, as they do (and as a 2-core machine under the race detector can
	// take: hundreds of TLS handshakes to the relay at the same instant time out).
	ramp := func(i, n int) {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(i) * 3 * time.Second / time.Duration(n)):
		}
	}
	for i := range sz.requesters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ramp(i, sz.requesters)
			for ctx.Err() == nil {
				if err := getOK(ctx, r, "/small"); err != nil {
					fail("small GET", err)
					continue
				}
				reqs.Add(1)
			}
		}()
	}
	for i := range sz.websockets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ramp(i, sz.websockets)
			ws, _, err := r.dialWS(ctx, "/ws/echo", nil)
			if err != nil {
				fail("WebSocket dial", err)
				return
			}
			defer ws.CloseNow()
			msg := []byte(fmt.Sprintf("message from socket %d", i))
			for ctx.Err() == nil {
				if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
					fail("WebSocket write", err)
					return
				}
				_, got, err := ws.Read(ctx)
				if err != nil {
					fail("WebSocket read", err)
					return
				}
				if string(got) != string(msg) {
					fail("WebSocket echo", fmt.Errorf("got %q", got))
					return
				}
				msgs.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
			ws.Close(websocket.StatusNormalClosure, "")
		}()
	}
	for range sz.viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url("/mjpeg?ms=100&size=16384"), nil)
			resp, err := r.client.Do(req)
			if err != nil {
				fail("webcam", err)
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 16384)
			for {
				if _, err := io.ReadFull(resp.Body, buf); err != nil {
					fail("webcam read", err)
					return
				}
				frames.Add(1)
			}
		}()
	}
	for range sz.uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url("/upload"), io.LimitReader(zeros{}, sz.uploadBytes))
				req.ContentLength = sz.uploadBytes
				resp, err := r.client.Do(req)
				if err != nil {
					fail("upload", err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || string(body) != fmt.Sprintf(`{"bytes":%d}`, sz.uploadBytes) {
					fail("upload", fmt.Errorf("%s %q %v", resp.Status, body, err))
					continue
				}
				uploads.Add(1)
			}
		}()
	}
	// RSS is sampled every second; the figure after the first quarter (warm: every client connected, pools full)
	// is compared with the one at the end, when memory must have stopped growing.
	peak, warm := rss0, 0.0
	start := time.Now()
	tick := time.NewTicker(time.Second)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			now := rss()
			peak = max(peak, now)
			if warm == 0 && time.Since(start) >= sz.duration/4 {
				warm = now
			}
		}
	}
	tick.Stop()
	end := rss()
	wg.Wait()
	t.Logf("%s: %d small requests, %d WebSocket echoes, %d webcam frames, %d uploads of %d MiB; %d error(s)",
		sz.duration, reqs.Load(), msgs.Load(), frames.Load(), uploads.Load(), sz.uploadBytes>>20, bad.Load())
	fmt.Printf("reliability load: RSS of the test process (client, proxy, relay and origin together) %.0f MiB before, "+
		"%.0f MiB after a quarter of the run, %.0f MiB at the end, %.0f MiB peak\n", rss0, warm, end, peak)
	if soak() && end > warm*1.5+64 {
		// Only the 10-minute run is long enough to tell growth from warm-up.
		t.Errorf("RSS grew from %.0f MiB after a quarter of the run to %.0f MiB at the end: something keeps memory per request", warm, end)
	}
	if bad.Load() > 0 {
		t.Errorf("%d error(s) under load, first: %v", bad.Load(), firstErr.Load())
		for _, e := range r.logs.FilterLevelExact(zapcore.WarnLevel).All() {
			t.Logf("proxy warned: %s %v", e.Message, e.ContextMap())
		}
	}
	if reqs.Load() == 0 || msgs.Load() == 0 || frames.Load() == 0 || uploads.Load() == 0 {
		t.Errorf("some load did not run at all")
	}
	waitIdle(t)
	backTo(t, base, 60, r.ctr.CloseIdleConnections, r.tr.CloseIdleConnections, r.wstr.CloseIdleConnections)
}

func getOK(ctx context.Context, r *rig, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url(path), nil)
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// leakCycles is 10,000 under OEPROXY_SOAK=1, else 1,000.
func leakCycles() int {
	if soak() {
		return 10000
	}
	return 1000
}

// WebSockets opened and closed over and over: goroutines and file descriptors stay flat.
func TestLeakWebSocketCycles(t *testing.T) {
	track(t)
	r := newRig(t, rigOptions{})
	r.mustOK(t)
	base := takeBaseline()
	n := leakCycles()
	parallel(t, n, 8, func(ctx context.Context, i int) error {
		ws, _, err := r.dialWS(ctx, "/ws/echo", nil)
		if err != nil {
			return err
		}
		defer ws.CloseNow()
		if err := ws.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			return err
		}
		if _, _, err := ws.Read(ctx); err != nil {
			return err
		}
		if i%2 == 0 {
			return ws.Close(websocket.StatusNormalClosure, "") // a clean close half the time, an abrupt one otherwise
		}
		return nil
	})
	waitIdle(t)
	backTo(t, base, 60, r.ctr.CloseIdleConnections, r.tr.CloseIdleConnections, r.wstr.CloseIdleConnections)
}

// Requests aborted by the client at various points: goroutines and file descriptors stay flat.
func TestLeakAbortedRequests(t *testing.T) {
	track(t)
	r := newRig(t, rigOptions{})
	r.mustOK(t)
	base := takeBaseline()
	n := leakCycles()
	parallel(t, n, 8, func(ctx context.Context, i int) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var req *http.Request
		switch i % 3 {
		case 0: // mid-download
			req, _ = http.NewRequestWithContext(ctx, http.MethodGet, r.url("/bytes?n=67108864"), nil)
		case 1: // mid-stream
			req, _ = http.NewRequestWithContext(ctx, http.MethodGet, r.url("/mjpeg?ms=10&size=8192"), nil)
		default: // mid-upload
			req, _ = http.NewRequestWithContext(ctx, http.MethodPost, r.url("/upload"), io.LimitReader(zeros{}, 64<<20))
			req.ContentLength = 64 << 20
			go func() { time.Sleep(5 * time.Millisecond); cancel() }()
		}
		resp, err := r.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil // aborted, as intended
			}
			return err
		}
		_, _ = io.CopyN(io.Discard, resp.Body, 32<<10)
		cancel()
		resp.Body.Close()
		return nil
	})
	waitIdle(t)
	backTo(t, base, 60, r.ctr.CloseIdleConnections, r.tr.CloseIdleConnections, r.wstr.CloseIdleConnections)
}

// parallel runs f n times on `workers` goroutines and fails on the first error.
func parallel(t *testing.T, n, workers int, f func(ctx context.Context, i int) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var next atomic.Int64
	var bad atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				ictx, icancel := context.WithTimeout(ctx, 30*time.Second)
				err := f(ictx, i)
				icancel()
				if err != nil {
					bad.Add(1)
					first.CompareAndSwap(nil, fmt.Errorf("cycle %d: %w", i, err))
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d cycles, %d error(s)", n, bad.Load())
	if bad.Load() > 0 {
		t.Errorf("%d of %d cycles failed, first: %v", bad.Load(), n, first.Load())
	}
}

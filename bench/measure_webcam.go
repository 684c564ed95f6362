package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// webcamResult is what one path does with several viewers of one webcam.
type webcamResult struct {
	streams     int64   // stream requests the origin answered for the viewers
	rssPerView  float64 // KiB of proxy RSS per viewer beyond the first (0 on the direct path)
	hasRSS      bool
	snapshotP50 float64 // ms, while the stream runs
	cutGap      float64 // ms: the longest wait for a frame while the relay cut the stream
}

// webcamViewers measures the webcam figures on p: viewers of /webcam/stream (one first, then the others),
// the proxy's memory before and after the others joined, snapshot latency while they watch, and the stream
// requests the origin answered; then one viewer while the relay cuts each stream after cut.
func webcamViewers(ctx context.Context, p *Path, env *Env, viewers int, interval time.Duration, size int, cut time.Duration) (webcamResult, error) {
	var res webcamResult
	path := fmt.Sprintf("/webcam/stream?ms=%d&size=%d", interval.Milliseconds(), size)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := time.Now().Add(time.Hour) // the viewers end with ctx
	var wg sync.WaitGroup
	errs := make(chan error, viewers)
	frames := make(chan struct{}, 1)
	startStreams := env.Origin.MJPEGStreams.Load()
	view := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := readMJPEG(ctx, p, path, stop, func(int64) {
				select {
				case frames <- struct{}{}:
				default:
				}
			})
			if ctx.Err() == nil {
				errs <- fmt.Errorf("a viewer's stream ended: %v", err)
			}
		}()
	}
	waitFrame := func() error {
		select {
		case <-frames:
			return nil
		case err := <-errs:
			return err
		case <-time.After(10 * time.Second):
			return fmt.Errorf("no frame within 10 s")
		}
	}
	view()
	if err := waitFrame(); err != nil {
		return res, err
	}
	time.Sleep(500 * time.Millisecond)
	m1, ok, err := p.memory()
	if err != nil {
		return res, err
	}
	for range viewers - 1 {
		view()
	}
	time.Sleep(time.Second)
	if err := waitFrame(); err != nil {
		return res, err
	}
	if ok && viewers > 1 {
		mn, _, err := p.memory()
		if err != nil {
			return res, err
		}
		res.rssPerView, res.hasRSS = float64(mn.RSS-m1.RSS)/1024/float64(viewers-1), true
	}
	var lat []float64
	for range 20 {
		t0 := time.Now()
		req, err := p.newRequest(http.MethodGet, fmt.Sprintf("/webcam/snapshot?ms=%d&size=%d", interval.Milliseconds(), size))
		if err != nil {
			return res, err
		}
		resp, err := p.client().Do(req.WithContext(ctx))
		if err != nil {
			return res, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return res, fmt.Errorf("snapshot: %s %v", resp.Status, err)
		}
		lat = append(lat, float64(time.Since(t0))/float64(time.Millisecond))
	}
	res.snapshotP50 = percentile(lat, 50)
	cancel()
	wg.Wait()
	res.streams = env.Origin.MJPEGStreams.Load() - startStreams

	gap, err := cutGap(context.WithoutCancel(ctx), p, env, path, cut)
	res.cutGap = gap
	return res, err
}

// cutGap has the relay end every webcam stream after cut (OctoEverywhere's MaxSingleWebcamStreamLengthSeconds)
// and watches for 3×cut: the longest time without a frame. A viewer whose stream ended waits to the end of the
// window, which is what its user sees: a frozen image.
func cutGap(ctx context.Context, p *Path, env *Env, path string, cut time.Duration) (float64, error) {
	lim := env.Conn.Limits()
	short := lim
	short.MaxSingleWebcamStreamLength = cut
	env.Conn.SetLimits(short)
	defer env.Conn.SetLimits(lim)
	start := time.Now()
	stop := start.Add(3 * cut)
	last := time.Time{}
	var worst time.Duration
	err := readMJPEG(ctx, p, path, stop, func(int64) {
		now := time.Now()
		if !last.IsZero() && now.Sub(last) > worst {
			worst = now.Sub(last)
		}
		last = now
	})
	if last.IsZero() {
		return 0, fmt.Errorf("no frame while the relay cut streams: %v", err)
	}
	if rest := stop.Sub(last); rest > worst {
		worst = rest // the stream ended at a cut and stayed ended
	}
	return float64(worst) / float64(time.Millisecond), nil
}

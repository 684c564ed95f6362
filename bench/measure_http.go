package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses:\s+([0-9]+)`)
	wrkTotal  = regexp.MustCompile(`([0-9]+) requests in`)
)

// smallGETRate measures small GET requests/s at a fixed number of connections, with wrk when given, else with
// a Go closed-loop client (each connection sends its next request as soon as the last one answered).
func smallGETRate(ctx context.Context, wrk string, p *Path, conns int, d time.Duration) (float64, string, error) {
	if wrk == "" {
		rps, err := closedLoop(ctx, p, conns, d)
		return rps, "go", err
	}
	secs := int(math.Ceil(d.Seconds()))
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(secs) + "s"}
	args = append(args, p.WrkArgs...)
	args = append(args, p.WrkURL+"/small")
	out, err := exec.CommandContext(ctx, wrk, args...).CombinedOutput()
	if err != nil {
		return 0, "wrk", fmt.Errorf("wrk: %w\n%s", err, out)
	}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		return 0, "wrk", fmt.Errorf("wrk printed no Requests/sec:\n%s", out)
	}
	if bad := wrkNon2xx.FindSubmatch(out); bad != nil {
		return 0, "wrk", fmt.Errorf("wrk: %s responses were not 2xx", bad[1])
	}
	if t := wrkTotal.FindSubmatch(out); t == nil || string(t[1]) == "0" {
		return 0, "wrk", fmt.Errorf("wrk completed no request:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	return rps, "wrk", nil
}

// closedLoop is the fallback load generator when wrk is not installed.
func closedLoop(ctx context.Context, p *Path, conns int, d time.Duration) (float64, error) {
	client := p.client()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var done, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := getSmall(ctx, client, p); err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		return 0, fmt.Errorf("%d small GETs failed, first: %v", failed.Load(), firstErr.Load())
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

func getSmall(ctx context.Context, client *http.Client, p *Path) error {
	req, err := p.newRequest(http.MethodGet, "/small")
	if err != nil {
		return err
	}
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || n != int64(len(smallBody)) {
		return fmt.Errorf("small GET: %s with %d bytes", resp.Status, n)
	}
	return nil
}

// openLoop sends small GETs at a fixed rate whatever the answers do (no coordinated omission: each latency is
// measured from when the request was due, not from when it was sent) and returns p50 and p99 in ms.
func openLoop(ctx context.Context, p *Path, rate int, d time.Duration) (p50, p99 float64, err error) {
	// A second at the same rate first, not counted: it fills the keep-alive pools (client and proxy), so that
	// p99 measures the path, not the TLS handshakes of its first connections.
	if _, _, err := openLoopOnce(ctx, p, rate, time.Second); err != nil {
		return 0, 0, fmt.Errorf("warm-up: %w", err)
	}
	return openLoopOnce(ctx, p, rate, d)
}

func openLoopOnce(ctx context.Context, p *Path, rate int, d time.Duration) (p50, p99 float64, err error) {
	n := int(float64(rate) * d.Seconds())
	if n < 1 {
		n = 1
	}
	interval := time.Second / time.Duration(rate)
	client := p.client()
	lat := make([]float64, n)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := getSmall(ctx, client, p); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				lat[i] = math.NaN()
				return
			}
			lat[i] = float64(time.Since(due)) / float64(time.Millisecond)
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		return 0, 0, fmt.Errorf("%d of %d open-loop GETs failed, first: %v", failed.Load(), n, firstErr.Load())
	}
	if ctx.Err() != nil {
		return 0, 0, ctx.Err()
	}
	return percentile(lat, 50), percentile(lat, 99), nil
}

// percentile of xs (nearest rank); xs is sorted in place.
func percentile(xs []float64, pct float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	i := int(math.Ceil(pct/100*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

// errShort says a transfer ended before all bytes arrived.
var errShort = errors.New("transfer ended early")

// download fetches n bytes and returns MB/s (10^6 bytes per second).
func download(ctx context.Context, p *Path, n int64) (float64, error) {
	req, err := p.newRequest(http.MethodGet, "/bytes?n="+strconv.FormatInt(n, 10))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := p.client().Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("download: %s", resp.Status)
	}
	got, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 256<<10))
	if err != nil {
		return 0, fmt.Errorf("download after %d bytes: %w", got, err)
	}
	if got != n {
		return 0, fmt.Errorf("download: %d of %d bytes: %w", got, n, errShort)
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct {
	n    int64
	fill []byte
}

func (r *patternReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > r.n {
		b = b[:r.n]
	}
	k := 0
	for k < len(b) {
		k += copy(b[k:], r.fill)
	}
	r.n -= int64(k)
	return k, nil
}

// upload posts a multipart/form-data file of n bytes with a Content-Length, as a slicer does, and returns MB/s
// of the whole body.
func upload(ctx context.Context, p *Path, fill []byte, n int64) (float64, error) {
	const boundary = "oeproxybenchupload"
	pre := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.gcode\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n"
	post := "\r\n--" + boundary + "--\r\n"
	size := int64(len(pre)) + n + int64(len(post))
	req, err := p.newRequest(http.MethodPost, "/upload")
	if err != nil {
		return 0, err
	}
	req.Body = io.NopCloser(io.MultiReader(strings.NewReader(pre), &patternReader{n: n, fill: fill}, strings.NewReader(post)))
	req.ContentLength = size
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	start := time.Now()
	resp, err := p.client().Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(bufio.NewReader(io.LimitReader(resp.Body, 1<<10)))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("upload: %s: %s", resp.Status, body)
	}
	if want := fmt.Sprintf(`{"bytes":%d}`, size); string(body) != want {
		return 0, fmt.Errorf("upload: origin answered %s, want %s", body, want)
	}
	return float64(size) / 1e6 / time.Since(start).Seconds(), nil
}

package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/oeproxy/oeproxy/webcam"
)

// dialWS opens a WebSocket to the origin's path through p.
func dialWS(ctx context.Context, p *Path, path string) (*websocket.Conn, error) {
	u := "ws" + strings.TrimPrefix(p.BaseURL, "http") + path // http→ws, https→wss
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:      p.client(),
		HTTPHeader:      p.Header.Clone(),
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		status := ""
		if resp != nil {
			status = " (" + resp.Status + ")"
		}
		return nil, fmt.Errorf("WebSocket %s%s: %w", path, status, err)
	}
	c.SetReadLimit(64 << 20)
	return c, nil
}

// wsRoundTrips sends n small messages one at a time and waits for each echo; returns p50 and p99 in µs.
func wsRoundTrips(ctx context.Context, p *Path, n int) (p50, p99 float64, err error) {
	c, err := dialWS(ctx, p, "/ws/echo")
	if err != nil {
		return 0, 0, err
	}
	defer c.CloseNow()
	msg := []byte(strings.Repeat("x", 64))
	warm := min(50, n)
	lat := make([]float64, 0, n)
	for i := range n + warm {
		start := time.Now()
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return 0, 0, err
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			return 0, 0, err
		}
		if len(got) != len(msg) {
			return 0, 0, fmt.Errorf("echo of %d bytes came back with %d", len(msg), len(got))
		}
		if i >= warm {
			lat = append(lat, float64(time.Since(start))/float64(time.Microsecond))
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	return percentile(lat, 50), percentile(lat, 99), nil
}

// wsOneWay sends n small messages as fast as the path takes them and returns messages/s, measured until the
// origin confirmed it received all n.
func wsOneWay(ctx context.Context, p *Path, n int) (float64, error) {
	c, err := dialWS(ctx, p, "/ws/count")
	if err != nil {
		return 0, err
	}
	defer c.CloseNow()
	msg := []byte(strings.Repeat("y", 64))
	start := time.Now()
	for range n {
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return 0, err
		}
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("end")); err != nil {
		return 0, err
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	if string(got) != strconv.Itoa(n) {
		return 0, fmt.Errorf("origin counted %s messages, sent %d", got, n)
	}
	c.Close(websocket.StatusNormalClosure, "")
	return float64(n) / elapsed.Seconds(), nil
}

// idleWebSockets opens n WebSockets (each proven with one echo), lets them sit, and returns the growth of the
// proxy's RSS per connection in KiB. The connections are closed before it returns.
func idleWebSockets(ctx context.Context, p *Path, n int, settle time.Duration) (float64, error) {
	before, ok, err := p.memory()
	if err != nil || !ok {
		return 0, fmt.Errorf("idle WebSockets need a proxy process: %v", err)
	}
	conns := make([]*websocket.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
	}()
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	// A proxy that stops accepting (a connection cap) fails the group instead of hanging the bench.
	openCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialWS(openCtx, p, "/ws/echo")
			if err == nil {
				if err = c.Write(openCtx, websocket.MessageText, []byte("hi")); err == nil {
					_, _, err = c.Read(openCtx)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				conns[i] = c
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("opening %d WebSockets: %w", n, firstErr)
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	after, _, err := p.memory()
	if err != nil {
		return 0, err
	}
	return float64(after.RSS-before.RSS) / 1024 / float64(n), nil
}

// mjpegResult is what the viewers saw.
type mjpegResult struct {
	latencies []float64 // ms from a frame leaving the origin to its last byte reaching a viewer
	frames    int
	bytes     int64 // stream bytes the origin (and so the relay) sent during the test
}

// mjpegViewers runs several viewers of the origin's MJPEG stream through p for d.
func mjpegViewers(ctx context.Context, p *Path, o *Origin, viewers int, d, interval time.Duration, size int) (mjpegResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	path := fmt.Sprintf("/mjpeg?ms=%d&size=%d", interval.Milliseconds(), size)
	var mu sync.Mutex
	var res mjpegResult
	var firstErr error
	var wg sync.WaitGroup
	startBytes := o.MJPEGBytes.Load()
	stop := time.Now().Add(d)
	for range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, err := viewMJPEG(ctx, p, path, stop)
			mu.Lock()
			defer mu.Unlock()
			res.latencies = append(res.latencies, lat...)
			res.frames += len(lat)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	res.bytes = o.MJPEGBytes.Load() - startBytes
	return res, firstErr
}

// viewMJPEG reads parts until stop and returns each one's latency from the origin's timestamp, in ms.
func viewMJPEG(ctx context.Context, p *Path, path string, stop time.Time) ([]float64, error) {
	var lat []float64
	err := readMJPEG(ctx, p, path, stop, func(ts int64) { lat = append(lat, float64(time.Now().UnixNano()-ts)/1e6) })
	return lat, err
}

// readMJPEG reads parts by their Content-Length (a multipart.Reader would wait for the next boundary, a whole
// frame period later) until stop, and calls frame with each part's origin timestamp as its last byte arrives.
func readMJPEG(ctx context.Context, p *Path, path string, stop time.Time, frame func(ts int64)) error {
	req, err := p.newRequest(http.MethodGet, path)
	if err != nil {
		return err
	}
	resp, err := p.client().Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The boundary comes from the answer: a proxy that shares one stream among viewers gives each its own.
	boundary := webcam.Boundary(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || boundary == "" {
		return fmt.Errorf("MJPEG: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	tp := textproto.NewReader(br)
	for time.Now().Before(stop) {
		line, err := tp.ReadLine()
		if err != nil {
			return fmt.Errorf("MJPEG boundary: %w", err)
		}
		if line == "" {
			continue // the CRLF after a part
		}
		if line != "--"+boundary {
			return fmt.Errorf("MJPEG: expected the boundary, got %q", line)
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return fmt.Errorf("MJPEG part header: %w", err)
		}
		n, err1 := strconv.Atoi(h.Get("Content-Length"))
		ts, err2 := strconv.ParseInt(h.Get("X-Timestamp-Ns"), 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("MJPEG part without Content-Length or X-Timestamp-Ns: %v", h)
		}
		if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
			return fmt.Errorf("MJPEG frame: %w", err)
		}
		frame(ts)
	}
	return nil
}

// dripFirstByte asks the origin for n bytes written one per interval and returns the time in ms from sending the
// request to the first body byte (the whole body is read, so that the connection can be reused).
func dripFirstByte(ctx context.Context, p *Path, n int, interval time.Duration) (float64, error) {
	req, err := p.newRequest(http.MethodGet, fmt.Sprintf("/drip?n=%d&ms=%d", n, interval.Milliseconds()))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := p.client().Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(n) {
		return 0, fmt.Errorf("drip: %s, Content-Length %d", resp.Status, resp.ContentLength)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1)); err != nil {
		return 0, fmt.Errorf("drip first byte: %w", err)
	}
	first := time.Since(start)
	if m, err := io.Copy(io.Discard, resp.Body); err != nil || m != int64(n-1) {
		return 0, fmt.Errorf("drip: %d more bytes, %v", m, err)
	}
	return float64(first) / float64(time.Millisecond), nil
}

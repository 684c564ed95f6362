package printer

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// mjpegBoundary is mjpg-streamer's boundary; clients must read it from the Content-Type,
// but using the real one keeps byte-level comparisons with mjpg-streamer captures honest.
const mjpegBoundary = "boundarydonotcross"

const frameW, frameH = 160, 120

// digits is a 3x5 bitmap font for 0-9, one row per string.
var digits = [10][5]string{
	{"###", "#.#", "#.#", "#.#", "###"},
	{".#.", "##.", ".#.", ".#.", "###"},
	{"###", "..#", "###", "#..", "###"},
	{"###", "..#", "###", "..#", "###"},
	{"#.#", "#.#", "###", "..#", "..#"},
	{"###", "#..", "###", "..#", "###"},
	{"###", "#..", "###", "#.#", "###"},
	{"###", "..#", "..#", "..#", "..#"},
	{"###", "#.#", "###", "#.#", "###"},
	{"###", "#.#", "###", "..#", "###"},
}

var frameCache = struct {
	sync.Mutex
	m map[int][]byte
}{m: map[int][]byte{}}

// maxCachedFrames bounds the frame cache; streams ask for ever-increasing numbers, so the
// cache is simply dropped when full rather than tracking recency.
const maxCachedFrames = 256

// JPEGFrame returns a real baseline JPEG (160x120) showing the number n, so that a test or a
// screenshot can tell which frame it got. Frames are cached; the returned slice is a copy.
func JPEGFrame(n int) []byte {
	b := jpegFrame(n)
	return append([]byte(nil), b...)
}

// jpegFrame is JPEGFrame without the copy, for the stream writers (which only read it).
func jpegFrame(n int) []byte {
	frameCache.Lock()
	b, ok := frameCache.m[n]
	frameCache.Unlock()
	if ok {
		return b
	}
	b = encodeFrame(n)
	frameCache.Lock()
	if len(frameCache.m) >= maxCachedFrames {
		clear(frameCache.m)
	}
	frameCache.m[n] = b
	frameCache.Unlock()
	return b
}

func encodeFrame(n int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, frameW, frameH))
	// A background that changes with n makes a frozen stream visible to the eye.
	bg := color.RGBA{R: uint8(40 + (n*13)%60), G: uint8(60 + (n*7)%60), B: 110, A: 255}
	for y := 0; y < frameH; y++ {
		for x := 0; x < frameW; x++ {
			img.SetRGBA(x, y, bg)
		}
	}
	text := strconv.Itoa(n)
	const scale = 6
	charW := 4 * scale
	x0 := (frameW - len(text)*charW + scale) / 2
	if x0 < 2 {
		x0 = 2
	}
	y0 := (frameH - 5*scale) / 2
	fg := color.RGBA{R: 255, G: 240, B: 80, A: 255}
	for i, ch := range text {
		glyph := digits[ch-'0']
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if glyph[row][col] != '#' {
					continue
				}
				for dy := 0; dy < scale; dy++ {
					for dx := 0; dx < scale; dx++ {
						x, y := x0+i*charW+col*scale+dx, y0+row*scale+dy
						if x < frameW && y < frameH {
							img.SetRGBA(x, y, fg)
						}
					}
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		panic(fmt.Sprintf("encoding a JPEG into memory cannot fail: %v", err)) // bytes.Buffer never errors
	}
	return buf.Bytes()
}

// webcam serves mjpg-streamer's /?action=stream and /?action=snapshot under /webcam/.
type webcam struct {
	interval time.Duration
	life     *life
	start    time.Time
}

func (c *webcam) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("action") {
	case "stream":
		c.stream(w, r)
	case "snapshot":
		c.snapshot(w, r)
	default:
		// mjpg-streamer answers unknown actions with its own 404 page.
		http.Error(w, "404: Not Found!\nunknown action", http.StatusNotFound)
	}
}

func noCache(h http.Header) {
	h.Set("Cache-Control", "no-store, no-cache, must-revalidate, pre-check=0, post-check=0, max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "Mon, 3 Jan 2000 12:34:56 GMT")
	h.Set("Server", "MJPG-Streamer/0.2")
	h.Set("Access-Control-Allow-Origin", "*")
}

func (c *webcam) snapshot(w http.ResponseWriter, r *http.Request) {
	n := int(time.Since(c.start) / c.interval)
	b := jpegFrame(n)
	noCache(w.Header())
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// stream writes frame 0 at once and then one frame per interval, in mjpg-streamer's wire
// format: every part is followed by the next boundary at once, so a client knows the part is
// complete without waiting for the next frame. Each frame is flushed.
func (c *webcam) stream(w http.ResponseWriter, r *http.Request) {
	ctx, done, ok := c.life.begin(r.Context())
	if !ok {
		http.Error(w, "webcam stopped", http.StatusServiceUnavailable)
		return
	}
	defer done()
	rc := http.NewResponseController(w)
	// A client that stops reading would block a write forever; ending the handler on Close
	// (or on client departure) must not wait for it, so the deadline unblocks the write.
	stop := context.AfterFunc(ctx, func() { _ = rc.SetWriteDeadline(time.Now()) })
	defer stop()

	noCache(w.Header())
	w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary="+mjpegBoundary)
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "\r\n--%s\r\n", mjpegBoundary); err != nil {
		return
	}
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for n := 0; ; n++ {
		frame := jpegFrame(n)
		now := time.Now()
		if _, err := fmt.Fprintf(w, "Content-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %d.%06d\r\n\r\n",
			len(frame), now.Unix(), now.Nanosecond()/1000); err != nil {
			return
		}
		if _, err := w.Write(frame); err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "\r\n--%s\r\n", mjpegBoundary); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

package bench

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Origin is the fast printer behind the simulated relay: it answers as cheaply as it can so that the figures
// measure the paths, not the printer. Routes:
//
//	GET  /small            a fixed 128-byte JSON answer
//	GET  /bytes?n=N        N bytes generated on the fly, with Content-Length
//	POST /upload           reads the body to the end and answers {"bytes":N}
//	POST /api/files/local  the same, where a slicer posts (oeproxy's upload spool takes this path)
//	GET  /ws/echo          WebSocket: echoes every message, frame by frame
//	GET  /ws/count         WebSocket: counts messages until one reads "end", then answers the count
//	GET  /mjpeg?ms=I&size=S  multipart/x-mixed-replace, one S-byte JPEG-shaped part every I ms, each part carrying
//	                       X-Timestamp-Ns (the Unix time in ns when it left the origin)
//	GET  /webcam/stream?ms=I&size=S  the same stream at a webcam's path (snapshots map to it)
//	GET  /webcam/snapshot?size=S     one S-byte JPEG-shaped image
type Origin struct {
	// MJPEGStreams counts the stream requests the origin answered: one per viewer unless a proxy shares them.
	MJPEGStreams atomic.Int64
	// MJPEGBytes counts the stream bytes the origin wrote: what the relay had to send on to the viewers.
	MJPEGBytes atomic.Int64
	// UploadBytes counts request body bytes the upload sink read.
	UploadBytes atomic.Int64
	fill        []byte
}

// NewOrigin returns the origin handler.
func NewOrigin() *Origin {
	fill := make([]byte, 256<<10)
	for i := range fill {
		fill[i] = byte('a' + i%26)
	}
	return &Origin{fill: fill}
}

// smallBody is what /small answers: about the size of an OctoPrint /api/job answer's first line of fields.
var smallBody = []byte(`{"state":"Operational","job":{"file":{"name":"benchy.gcode"}},"progress":{"completion":42.0},"temp":21}` + "\n    ")

func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/small":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(smallBody)))
		_, _ = w.Write(smallBody)
	case "/bytes":
		o.serveBytes(w, r)
	case "/upload", "/api/files/local":
		n, err := io.Copy(io.Discard, r.Body)
		o.UploadBytes.Add(n)
		if err != nil {
			http.Error(w, "upload broke off: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"bytes":%d}`, n)
	case "/ws/echo":
		o.serveWS(w, r, echo)
	case "/ws/count":
		o.serveWS(w, r, count)
	case "/mjpeg", "/webcam/stream":
		o.MJPEGStreams.Add(1)
		o.serveMJPEG(w, r)
	case "/webcam/snapshot":
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		frame := o.frame(size)
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Length", strconv.Itoa(len(frame)))
		_, _ = w.Write(frame)
	case "/drip":
		o.serveDrip(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (o *Origin) serveBytes(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "n must be a byte count", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	for n > 0 {
		chunk := o.fill
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		m, err := w.Write(chunk)
		if err != nil {
			return
		}
		n -= int64(m)
	}
}

type wsMode int

const (
	echo wsMode = iota
	count
)

func (o *Origin) serveWS(w http.ResponseWriter, r *http.Request, mode wsMode) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 20)
	ctx := r.Context()
	if mode == count {
		n := 0
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if string(msg) == "end" {
				_ = c.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(n)))
				continue
			}
			n++
		}
	}
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return
		}
		if _, err := io.Copy(wr, rd); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}

const mjpegBoundary = "benchframe"

// frame is a JPEG-shaped image of size bytes (48 KiB when size is too small to be one).
func (o *Origin) frame(size int) []byte {
	if size < 4 {
		size = 48 << 10
	}
	frame := make([]byte, size)
	copy(frame, o.fill)
	frame[0], frame[1], frame[size-2], frame[size-1] = 0xFF, 0xD8, 0xFF, 0xD9 // SOI ... EOI
	return frame
}

func (o *Origin) serveMJPEG(w http.ResponseWriter, r *http.Request) {
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	size, _ := strconv.Atoi(r.URL.Query().Get("size"))
	if ms <= 0 {
		ms = 100
	}
	frame := o.frame(size)
	size = len(frame)
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+mjpegBoundary)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	t := time.NewTicker(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	for {
		head := fmt.Sprintf("--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp-Ns: %d\r\n\r\n",
			mjpegBoundary, size, time.Now().UnixNano())
		n1, err := io.WriteString(w, head)
		if err != nil {
			return
		}
		n2, err := w.Write(frame)
		if err != nil {
			return
		}
		n3, err := io.WriteString(w, "\r\n")
		if err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		o.MJPEGBytes.Add(int64(n1 + n2 + n3))
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// serveDrip answers n bytes (query n) with a Content-Length, writing and flushing one byte every ms
// milliseconds: a slow printer or a long poll, which a proxy must pass on as it arrives.
func (o *Origin) serveDrip(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	if n <= 0 || ms <= 0 {
		http.Error(w, "n and ms must be positive", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	t := time.NewTicker(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	for i := range n {
		if i > 0 {
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		if _, err := w.Write(o.fill[i%len(o.fill) : i%len(o.fill)+1]); err != nil {
			return
		}
		_ = rc.Flush()
	}
}

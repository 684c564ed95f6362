package webcam

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"strconv"
	"strings"
)

// Frame is one complete part of an MJPEG stream: what the camera sent as one image.
type Frame struct {
	// ContentType is the part's own Content-Type (image/jpeg for every camera seen so far).
	ContentType string
	// Data is the image. Frames are shared by every viewer: never modify it.
	Data []byte
	// head is the part's header block as every viewer writes it (after its own boundary line).
	head []byte
}

// errTooBig ends a stream whose part is larger than the configured bound: a camera does not send 8 MiB frames,
// and a body that never shows a boundary must not grow memory.
var errTooBig = errors.New("webcam: a part of the stream is larger than the frame bound")

// Boundary returns the boundary of a multipart/x-mixed-replace Content-Type, or "" if ct is not one.
func Boundary(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/x-mixed-replace" {
		return ""
	}
	return params["boundary"]
}

// partReader reads the parts of an MJPEG stream. It reads exactly Content-Length bytes when the part says how
// long it is, so that a frame is complete as soon as its last byte arrives (ustreamer and mjpg-streamer send the
// next boundary only with the next frame: waiting for it, as mime/multipart does, would show every frame one
// frame late). Parts without a length are read up to the next delimiter.
type partReader struct {
	br        *bufio.Reader
	tp        *textproto.Reader
	boundary  string
	delim     []byte // "\r\n--" + boundary
	max       int
	atHeaders bool // the boundary line was consumed with the previous body
}

func newPartReader(r io.Reader, boundary string, max int) *partReader {
	// Some cameras put the dashes into the parameter as well; the lines then read "--" + parameter or the
	// parameter alone. Both are accepted below.
	br := bufio.NewReaderSize(r, 16<<10)
	return &partReader{br: br, tp: textproto.NewReader(br), boundary: boundary,
		delim: []byte("\r\n--" + boundary), max: max}
}

// next returns the next complete frame. A stream that ends in the middle of a part returns an error and no
// frame: a torn image is never handed to a viewer.
func (p *partReader) next() (*Frame, error) {
	if !p.atHeaders {
		if err := p.skipToBoundary(); err != nil {
			return nil, err
		}
	}
	p.atHeaders = false
	hdr, err := p.tp.ReadMIMEHeader()
	if err != nil {
		return nil, unexpected(err)
	}
	var data []byte
	if n, err := strconv.Atoi(strings.TrimSpace(hdr.Get("Content-Length"))); err == nil && n >= 0 {
		if n > p.max {
			return nil, errTooBig
		}
		data = make([]byte, n)
		if _, err := io.ReadFull(p.br, data); err != nil {
			return nil, unexpected(err)
		}
	} else {
		if data, err = p.readToDelimiter(); err != nil {
			return nil, err
		}
		p.atHeaders = true // readToDelimiter read the boundary line whole
	}
	ct := hdr.Get("Content-Type")
	if ct == "" {
		ct = "image/jpeg"
	}
	return newFrame(ct, data, hdr), nil
}

// newFrame formats the part's header block once for every viewer: its own Content-Type and Content-Length,
// and the camera's other part headers (X-Timestamp and the like), never a second length.
func newFrame(ct string, data []byte, hdr textproto.MIMEHeader) *Frame {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n", ct, len(data))
	for k, vs := range hdr {
		if k == "Content-Type" || k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	return &Frame{ContentType: ct, Data: data, head: b.Bytes()}
}

// skipToBoundary reads lines up to and including the next boundary line (the preamble and the CRLF after a
// body are skipped). The closing delimiter ends the stream.
func (p *partReader) skipToBoundary() error {
	for skipped := 0; ; {
		line, err := p.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			skipped += len(line)
			if skipped > p.max {
				return errTooBig
			}
			continue
		}
		if err != nil {
			return unexpected(err)
		}
		skipped += len(line)
		if skipped > p.max {
			return errTooBig
		}
		s := strings.TrimRight(string(line), " \t\r\n")
		switch s {
		case "--" + p.boundary, p.boundary:
			return nil
		case "--" + p.boundary + "--", p.boundary + "--":
			return io.EOF
		}
	}
}

// readToDelimiter reads a body of unknown length up to "\r\n--boundary" (consumed).
func (p *partReader) readToDelimiter() ([]byte, error) {
	var body []byte
	for {
		b, err := p.br.ReadSlice('\n')
		body = append(body, b...)
		if i := bytes.Index(body, p.delim); i >= 0 {
			rest := body[i+len(p.delim):]
			// What followed the boundary on its line ("--" closes the stream; spaces and CRLF do not matter).
			if bytes.HasPrefix(rest, []byte("--")) {
				return body[:i], io.EOF
			}
			return body[:i], nil
		}
		if len(body) > p.max+len(p.delim) {
			return nil, errTooBig
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, unexpected(err)
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

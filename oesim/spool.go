package oesim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

var errBodyTooLarge = errors.New("request body exceeds MaxUploadFileSizeBytes")

// spooledBody is a request body the relay has received in full: in memory when small, else in a temporary file
// (the plugin's uploadbody.py also uses a temp file), so a GiB upload never sits in memory.
type spooledBody struct {
	mem  bytes.Buffer
	file *os.File
	size int64
}

// spoolBody reads r to the end. More than limit bytes gives errBodyTooLarge (608); any other error means the
// client stopped sending. The returned body (non-nil whenever anything was allocated) must be closed.
func spoolBody(r io.Reader, limit int64, dir string) (*spooledBody, error) {
	b := &spooledBody{}
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			b.size += int64(n)
			if b.size > limit {
				return b, errBodyTooLarge
			}
			if werr := b.write(buf[:n], dir); werr != nil {
				return b, werr
			}
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func (b *spooledBody) write(p []byte, dir string) error {
	if b.file == nil && b.mem.Len()+len(p) <= spoolMemoryThreshold {
		b.mem.Write(p)
		return nil
	}
	if b.file == nil {
		f, err := os.CreateTemp(dir, "oesim-upload-*")
		if err != nil {
			return fmt.Errorf("spool upload to %s: %w (set Options.TempDir to a writable directory)", dir, err)
		}
		b.file = f
		if _, err := f.Write(b.mem.Bytes()); err != nil {
			return fmt.Errorf("spool upload: %w", err)
		}
		b.mem = bytes.Buffer{}
	}
	if _, err := b.file.Write(p); err != nil {
		return fmt.Errorf("spool upload: %w", err)
	}
	return nil
}

// reader returns the stored body from its start and its length.
func (b *spooledBody) reader() (io.ReadCloser, int64) {
	if b.file != nil {
		return io.NopCloser(io.NewSectionReader(b.file, 0, b.size)), b.size
	}
	return io.NopCloser(bytes.NewReader(b.mem.Bytes())), b.size
}

// Close removes the temporary file, if any.
func (b *spooledBody) Close() error {
	if b.file == nil {
		return nil
	}
	name := b.file.Name()
	err := b.file.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}

// pacedReader hands out r's bytes no faster than rate bytes per second on average since start (Options.
// PrinterLinkRate): the printer's home link over which the plugin fetches a stored body. Reads are cut to a tenth
// of a second's worth, so the pace is even rather than one burst and a long wait.
type pacedReader struct {
	r     io.ReadCloser
	rate  int64
	ctx   context.Context
	start time.Time
	n     int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if max := p.rate / 10; max > 0 && int64(len(b)) > max {
		b = b[:max]
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	due := p.start.Add(time.Duration(float64(p.n) / float64(p.rate) * float64(time.Second)))
	if wait := time.Until(due); wait > 0 && !sleep(p.ctx, wait) {
		return n, p.ctx.Err()
	}
	return n, err
}

func (p *pacedReader) Close() error { return p.r.Close() }

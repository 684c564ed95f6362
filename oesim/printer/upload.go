package printer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxFieldBytes bounds the non-file form fields (path, print, root, ...): they are short
// strings, and a bound keeps a bad client from making the printer buffer a large field.
const maxFieldBytes = 64 << 10

// errNoLength is returned when the request has no Content-Length. OctoPrint's upload API
// documents that a Content-Length for the whole body is required, and PrusaSlicer relies on
// it; a proxy that re-chunks an upload must fail here.
var errNoLength = errors.New("a Content-Length header specifying the full length of the request body is required")

// multipartUpload is what parseUpload read from a multipart/form-data request.
type multipartUpload struct {
	fields    map[string]string
	fileField bool // a part named fileName was present
	filename  string
	size      int64
	sha256    string
}

// parseUpload streams a multipart/form-data body: the part named fileName goes through a
// SHA-256 hash and a byte counter and is never held in memory; other parts are read as small
// strings. Status is the HTTP status to answer on error.
func parseUpload(r *http.Request, fileName string) (up multipartUpload, status int, err error) {
	if r.Header.Get("Content-Length") == "" || r.ContentLength < 0 {
		return up, http.StatusLengthRequired, errNoLength
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return up, http.StatusBadRequest, fmt.Errorf("expected a multipart/form-data body: %w", err)
	}
	up.fields = map[string]string{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return up, http.StatusBadRequest, fmt.Errorf("reading the multipart body: %w", err)
		}
		name := part.FormName()
		if name == fileName && part.FileName() != "" {
			h := sha256.New()
			n, err := io.Copy(h, part)
			if err != nil {
				return up, http.StatusBadRequest, fmt.Errorf("reading the file part: %w", err)
			}
			up.fileField, up.filename, up.size, up.sha256 = true, part.FileName(), n, hex.EncodeToString(h.Sum(nil))
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
		if err != nil {
			return up, http.StatusBadRequest, fmt.Errorf("reading form field %q: %w", name, err)
		}
		if len(b) > maxFieldBytes {
			return up, http.StatusBadRequest, fmt.Errorf("form field %q is longer than %d bytes", name, maxFieldBytes)
		}
		up.fields[name] = string(b)
	}
	return up, 0, nil
}

// formBool reads a boolean form field the way OctoPrint and Moonraker do ("true", "yes", "1").
func formBool(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "y", "1", "on":
		return true
	}
	return false
}

// cleanFolder normalises an upload folder: no leading/trailing slashes, no "..".
func cleanFolder(p string) (string, bool) {
	p = strings.Trim(strings.ReplaceAll(p, "\\", "/"), "/")
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", false
		}
	}
	return p, true
}

func joinPath(folder, name string) string {
	if folder == "" {
		return name
	}
	return folder + "/" + name
}

// externalBase returns scheme://host as the client saw it, honouring X-Forwarded-Proto/Host
// as OctoPrint's and Moonraker's reverse-proxy support does; the OctoEverywhere plugin sets
// both, so Location headers name the public host.
func externalBase(r *http.Request) string {
	scheme := "http"
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = strings.TrimSpace(strings.Split(p, ",")[0])
	} else if p := r.Header.Get("X-Scheme"); p != "" {
		scheme = p
	}
	host := r.Host
	if h := r.Header.Get("X-Forwarded-Host"); h != "" {
		host = strings.TrimSpace(strings.Split(h, ",")[0])
	}
	return scheme + "://" + host
}

package front

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strings"

	"go.uber.org/zap"
)

// maxFieldBytes bounds a non-file form field (print, select, path): they are words, not files.
const maxFieldBytes = 4 << 10

// uploadExtensions are what the plugin's printers print: Bambu takes .3mf (and plain .gcode), Elegoo .gcode.
var uploadExtensions = map[string]bool{".gcode": true, ".gco": true, ".g": true, ".3mf": true, ".bgcode": true}

// errTooLarge is returned by the counting reader when the file part passes the upload limit.
var errTooLarge = errors.New("upload larger than the account's upload limit")

// limitedPart passes the file part on to the relay, counting it and failing once it passes the limit.
type limitedPart struct {
	r     io.Reader
	n     int64
	limit int64 // 0: none
}

func (l *limitedPart) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.limit > 0 && l.n > l.limit {
		return n, errTooLarge
	}
	return n, err
}

// upload is POST /api/files/local: OctoPrint's multipart form (file, print, select, path) becomes a PUT of the
// file part's bytes to files/upload?path=gcode/<name>, streamed as they arrive, then a start when print=true.
// Fields may come before or after the file (PrusaSlicer sends print and path first; curl -F keeps the user's order).
func (f *Front) upload(w http.ResponseWriter, r *http.Request) {
	if !isMultipart(r) {
		octoError(w, http.StatusBadRequest, "Expected multipart/form-data with a file field")
		return
	}
	limit := int64(0)
	if f.opts.UploadLimit != nil {
		limit = f.opts.UploadLimit()
	}
	if limit > 0 && r.ContentLength > limit {
		// The file part is the request less a few hundred bytes of form; a request this large cannot fit.
		w.Header().Set("Connection", "close") // the body is left unread
		octoError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("This upload (%d bytes) is larger than the OctoEverywhere account's upload limit of %d bytes; OctoEverywhere would refuse it with 608, so oeproxy refused it before sending.", r.ContentLength, limit))
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		octoError(w, http.StatusBadRequest, "Expected multipart/form-data with a file field")
		return
	}
	fields := map[string]string{}
	var uploaded string // VirtualPath, once stored
	var size int64
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			octoError(w, http.StatusBadRequest, "The multipart body broke off or is malformed")
			return
		}
		name := part.FormName()
		if name == "file" && part.FileName() != "" {
			if uploaded != "" {
				octoError(w, http.StatusBadRequest, "Only one file per upload")
				return
			}
			vp, n, perr := f.sendFile(r, part, fields["path"], limit)
			if perr != nil {
				if perr.status == http.StatusRequestEntityTooLarge || perr.code == 608 {
					w.Header().Set("Connection", "close")
				}
				f.fail(w, perr)
				return
			}
			uploaded, size = vp, n
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
		if err != nil || len(v) > maxFieldBytes {
			octoError(w, http.StatusBadRequest, "Form field "+name+" is malformed or too long")
			return
		}
		fields[name] = string(v)
	}
	if uploaded == "" {
		octoError(w, http.StatusBadRequest, "No file included")
		return
	}
	name := strings.TrimPrefix(uploaded, "gcode/")
	if formBool(fields["select"]) || formBool(fields["print"]) || f.noSelection() {
		f.mu.Lock()
		f.selected = uploaded
		f.mu.Unlock()
	}
	printing := formBool(fields["print"])
	if printing {
		if err := f.start(r.Context(), uploaded); err != nil {
			// The file is on the printer; say so, as the print is what failed.
			err.msg = "The file was uploaded, but starting the print failed: " + err.msg
			f.fail(w, err)
			return
		}
	}
	f.log.Info("upload stored on the printer", zap.String("printer", f.opts.PrinterName), zap.String("file", name),
		zap.Int64("bytes", size), zap.Bool("print", printing))
	loc := "http://" + r.Host + "/api/files/local/" + url.PathEscape(name)
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, map[string]any{
		"files": map[string]any{"local": map[string]any{"name": name, "display": name, "path": name, "origin": "local",
			"refs": map[string]string{"resource": loc}}},
		"done": true, "effectiveSelect": formBool(fields["select"]) || printing, "effectivePrint": printing,
	})
}

func (f *Front) noSelection() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.selected == ""
}

// sendFile streams one file part to files/upload and returns its VirtualPath and size.
func (f *Front) sendFile(r *http.Request, part *multipart.Part, folder string, limit int64) (string, int64, *pluginError) {
	name := path.Base(strings.ReplaceAll(part.FileName(), "\\", "/"))
	if name == "." || name == "/" || name == "" || strings.HasPrefix(name, ".") {
		return "", 0, &pluginError{status: http.StatusBadRequest, msg: "The file name is empty or hidden"}
	}
	if !uploadExtensions[strings.ToLower(path.Ext(name))] {
		return "", 0, &pluginError{status: http.StatusUnsupportedMediaType, msg: "Only .gcode, .3mf and .bgcode files can be sent to this printer, not " + name}
	}
	// The plugin's gcode root has no folders for these printers: a path field is accepted and ignored.
	_ = folder
	vp := "gcode/" + name
	body := &limitedPart{r: part, limit: limit}
	perr := f.call(r.Context(), http.MethodPut, "files/upload", url.Values{"path": {vp}}, body, nil)
	if errors.Is(unwrapBodyErr(body), errTooLarge) || (perr != nil && perr.code == 608) {
		return "", 0, &pluginError{status: http.StatusRequestEntityTooLarge, code: 608,
			msg: fmt.Sprintf("The file is larger than the OctoEverywhere account's upload limit (%d bytes)", limit)}
	}
	if perr != nil {
		return "", 0, perr
	}
	return vp, body.n, nil
}

// unwrapBodyErr reports errTooLarge when the body passed its limit (the transport only says the body failed).
func unwrapBodyErr(l *limitedPart) error {
	if l.limit > 0 && l.n > l.limit {
		return errTooLarge
	}
	return nil
}

// formBool reads OctoPrint's boolean form values.
func formBool(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "1", "on":
		return true
	}
	return false
}

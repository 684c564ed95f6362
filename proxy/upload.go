package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/oeproxy/oeproxy/internal/oe"
	"go.uber.org/zap"
)

// Uploads over a slow link (README "Uploads over a slow link"). OctoEverywhere stores a whole upload before the
// plugin passes it to the printer over the printer's home connection, so a slicer hears nothing between its last
// byte and the printer's answer. PrusaSlicer and OrcaSlicer wait (libcurl with no low-speed limit and no total
// timeout), and then oeproxy passes the printer's answer on as it comes: that is the default. A client with a
// low-speed limit (curl --speed-limit, scripts) gives up during the silence, and an interim 1xx answer does not
// help: libcurl's low-speed check counts only body bytes, and Python's http.client takes a 102 as the final
// answer. The UploadSpool is the opt-in answer to that (upload.answer_when_stored): the upload is stored on disk
// first, the client gets 202 Accepted at once, and the spool passes the file on and records the printer's outcome.
// It reports to the client an upload the printer does not have yet, which is why the user must turn it on.

// UploadState is where a spooled upload stands.
type UploadState string

const (
	UploadStored      UploadState = "stored"      // on disk, the client answered 202, not sent yet
	UploadSending     UploadState = "sending"     // being passed to the relay
	UploadDelivered   UploadState = "delivered"   // the printer answered 2xx; the file is removed from the spool
	UploadFailed      UploadState = "failed"      // the printer or relay refused it; the file is kept (Kept)
	UploadInterrupted UploadState = "interrupted" // oeproxy stopped before it was delivered; found and kept at start
)

// UploadRecord describes one spooled upload. It holds no secret: the client's headers (its X-Api-Key) live only in
// memory while the upload is sent, and the query is never recorded.
type UploadRecord struct {
	ID      string `json:"id"`
	Printer string `json:"printer"`
	Path    string `json:"path"` // the request's URL path, e.g. /api/files/local
	File    string `json:"file"` // the multipart file part's name, when there is one
	Size    int64  `json:"size"` // request body bytes
	// ContentType is the request's (multipart/form-data with its boundary), to take the file out of the body.
	ContentType string      `json:"content_type,omitempty"`
	State       UploadState `json:"state"`
	Status      int         `json:"status,omitempty"` // the last answer of the printer or relay (0: none)
	Attempts    int         `json:"attempts,omitempty"`
	Error       string      `json:"error,omitempty"`
	Kept        string      `json:"kept,omitempty"` // where an undelivered file is kept, to send again
	Stored      time.Time   `json:"stored"`
	Done        time.Time   `json:"done,omitzero"`
}

// UploadSpoolOptions configures NewUploadSpool.
type UploadSpoolOptions struct {
	// Dir holds stored uploads (created 0700 if missing) and, under undelivered/, those the printer did not get.
	Dir string
	// Logger gets one line per outcome; default no-op.
	Logger *zap.Logger
	// RetryDelays are the waits before each new attempt when the relay or printer could not be reached (no
	// answer, 502, 503, 504, 601 printer offline); default 10s then 1m. Any other answer is final.
	RetryDelays []time.Duration
	// OnChange is called with every new state (metrics, admin page); it must be quick.
	OnChange func(UploadRecord)
}

// UploadSpool stores slicer uploads on disk, answers the client, and passes them on. One spool serves every
// printer's handler (Options.Uploads); the daemon owns it and closes it after the listeners.
type UploadSpool struct {
	dir      string
	log      *zap.Logger
	retries  []time.Duration
	onChange func(UploadRecord)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	records []UploadRecord // oldest first, at most maxUploadRecords
	seq     int
}

const maxUploadRecords = 100

// NewUploadSpool opens the spool in o.Dir. Uploads left there by an oeproxy that stopped before delivering them
// are reported (state interrupted, logged as a warning) and their files kept under undelivered/: they cannot be
// resumed, since the client's headers (its API key) are never written to disk, so the user sends them again.
func NewUploadSpool(o UploadSpoolOptions) (*UploadSpool, error) {
	if o.Dir == "" {
		return nil, errors.New("proxy: UploadSpoolOptions.Dir is required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.RetryDelays == nil {
		o.RetryDelays = []time.Duration{10 * time.Second, time.Minute}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "undelivered"), 0o700); err != nil {
		return nil, fmt.Errorf("upload spool %s: %w (set upload.spool_dir to a writable directory)", o.Dir, err)
	}
	s := &UploadSpool{dir: o.Dir, log: o.Logger.Named("upload"), retries: o.RetryDelays, onChange: o.OnChange}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.recover(); err != nil {
		return nil, err
	}
	return s, nil
}

// recover reports what a previous run left: a .body with its .json was answered 202 and never delivered; a .part
// was never answered (the client saw the upload fail), so it goes.
func (s *UploadSpool) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("upload spool %s: %w", s.dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".part"):
			_ = os.Remove(filepath.Join(s.dir, name))
		case strings.HasSuffix(name, ".json"):
			id := strings.TrimSuffix(name, ".json")
			rec, err := readUploadRecord(filepath.Join(s.dir, name))
			if err != nil {
				rec = UploadRecord{ID: id, Error: "its record was unreadable: " + err.Error()}
			}
			rec.State, rec.Done = UploadInterrupted, time.Now()
			rec.Error = strings.TrimSpace("oeproxy stopped before the printer got it. " + rec.Error)
			rec.Kept = s.keep(rec)
			_ = os.Remove(filepath.Join(s.dir, name))
			s.log.Warn("upload not delivered: oeproxy stopped before the printer got it; send it again",
				zap.String("printer", rec.Printer), zap.String("file", rec.File), zap.Int64("size", rec.Size),
				zap.String("kept", rec.Kept), zap.Time("stored", rec.Stored))
			s.add(rec)
		}
	}
	return nil
}

func readUploadRecord(path string) (UploadRecord, error) {
	var rec UploadRecord
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	return rec, err
}

// Records returns the latest uploads (at most 100), oldest first.
func (s *UploadSpool) Records() []UploadRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]UploadRecord(nil), s.records...)
}

// Close waits for the uploads being passed on until ctx ends, then stops the rest: they stay on disk and are
// reported by the next NewUploadSpool.
func (s *UploadSpool) Close(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
}

func (s *UploadSpool) add(rec UploadRecord) {
	s.mu.Lock()
	s.records = append(s.records, rec)
	if len(s.records) > maxUploadRecords {
		s.records = append(s.records[:0:0], s.records[len(s.records)-maxUploadRecords:]...)
	}
	s.mu.Unlock()
	if s.onChange != nil {
		s.onChange(rec)
	}
}

func (s *UploadSpool) update(rec UploadRecord) {
	s.mu.Lock()
	for i := range s.records {
		if s.records[i].ID == rec.ID {
			s.records[i] = rec
		}
	}
	s.mu.Unlock()
	if s.onChange != nil {
		s.onChange(rec)
	}
}

func (s *UploadSpool) bodyPath(id string) string { return filepath.Join(s.dir, id+".body") }

// store writes r's body to disk (synced) with its record and returns the record. Memory stays flat: the body is
// copied through one buffer.
func (s *UploadSpool) store(r *http.Request, printer string) (UploadRecord, error) {
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("%s-%d", time.Now().UTC().Format("20060102T150405.000"), s.seq)
	s.mu.Unlock()
	part := filepath.Join(s.dir, id+".part")
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return UploadRecord{}, fmt.Errorf("store upload in %s: %w (check upload.spool_dir)", s.dir, err)
	}
	buf := copyBuffers{}.Get()
	n, err := io.CopyBuffer(f, r.Body, buf)
	copyBuffers{}.Put(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, s.bodyPath(id))
	}
	if err != nil {
		_ = os.Remove(part)
		return UploadRecord{}, err
	}
	rec := UploadRecord{ID: id, Printer: printer, Path: r.URL.Path, Size: n, ContentType: r.Header.Get("Content-Type"),
		State: UploadStored, Stored: time.Now()}
	rec.File, _ = multipartFile(s.bodyPath(id), rec.ContentType, nil)
	if err := s.writeRecord(rec); err != nil {
		_ = os.Remove(s.bodyPath(id))
		return UploadRecord{}, err
	}
	s.add(rec)
	return rec, nil
}

// writeRecord saves rec beside its body (atomically, synced), so that a restart can report it.
func (s *UploadSpool) writeRecord(rec UploadRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, rec.ID+".json.part")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store upload record: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, rec.ID+".json"))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("store upload record: %w", err)
	}
	return nil
}

// multipartFile finds the name of the first file part of the stored multipart body at path and, when dst is not
// nil, copies that part's content to it.
func multipartFile(path, contentType string, dst io.Writer) (string, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return "", errors.New("not a multipart body")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	mr := multipart.NewReader(f, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return "", err
		}
		if p.FileName() == "" {
			continue
		}
		name := filepath.Base(strings.ReplaceAll(p.FileName(), "\\", "/"))
		if dst != nil {
			_, err = io.Copy(dst, p)
		}
		return name, err
	}
}

// keep moves an undelivered upload's file to undelivered/<id>-<file name> (the file part alone, which the user can
// send again; the whole request body when it is not multipart) and returns where it went ("" when it is gone).
func (s *UploadSpool) keep(rec UploadRecord) string {
	body := s.bodyPath(rec.ID)
	if _, err := os.Stat(body); err != nil {
		return ""
	}
	defer os.Remove(body)
	name := rec.File
	if name == "" || name == "." || name == "/" {
		name = "upload.bin"
	}
	dst := filepath.Join(s.dir, "undelivered", rec.ID+"-"+name)
	if ct := rec.ContentType; ct != "" {
		if f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			_, err = multipartFile(body, ct, f)
			if cerr := f.Close(); err == nil && cerr == nil {
				return dst
			}
			_ = os.Remove(dst)
		}
	}
	dst = filepath.Join(s.dir, "undelivered", rec.ID+".request-body")
	if err := os.Rename(body, dst); err != nil {
		s.log.Error("could not keep an undelivered upload", zap.String("file", rec.File), zap.Error(err))
		return ""
	}
	return dst
}

// deliver passes rec on with send until the relay answers for good, then records the outcome.
func (s *UploadSpool) deliver(rec UploadRecord, send func(ctx context.Context) int) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for attempt := 0; ; attempt++ {
			rec.State, rec.Attempts = UploadSending, attempt+1
			s.update(rec)
			rec.Status = send(s.ctx)
			if s.ctx.Err() != nil {
				// oeproxy is stopping: the file and its record stay, and the next start reports it.
				s.log.Warn("upload not delivered before oeproxy stopped; it is reported at the next start",
					zap.String("printer", rec.Printer), zap.String("file", rec.File))
				return
			}
			if rec.Status >= 200 && rec.Status < 300 {
				rec.State, rec.Done, rec.Error = UploadDelivered, time.Now(), ""
				_ = os.Remove(s.bodyPath(rec.ID))
				_ = os.Remove(filepath.Join(s.dir, rec.ID+".json"))
				s.log.Info("upload delivered to the printer", zap.String("printer", rec.Printer), zap.String("file", rec.File),
					zap.Int64("size", rec.Size), zap.Int("status", rec.Status), zap.Duration("after", rec.Done.Sub(rec.Stored)))
				s.update(rec)
				return
			}
			if !retryableUpload(rec.Status) || attempt >= len(s.retries) {
				rec.State, rec.Done = UploadFailed, time.Now()
				rec.Error = uploadFailure(rec.Status)
				rec.Kept = s.keep(rec)
				_ = os.Remove(filepath.Join(s.dir, rec.ID+".json"))
				s.log.Error("upload not delivered to the printer; send it again", zap.String("printer", rec.Printer),
					zap.String("file", rec.File), zap.Int64("size", rec.Size), zap.Int("status", rec.Status),
					zap.Int("attempts", rec.Attempts), zap.String("reason", rec.Error), zap.String("kept", rec.Kept))
				s.update(rec)
				return
			}
			rec.State, rec.Error = UploadStored, uploadFailure(rec.Status)+"; trying again"
			s.update(rec)
			if !sleepCtx(s.ctx, s.retries[attempt]) {
				return
			}
		}
	}()
}

// retryableUpload: the answers after which the printer cannot have the file (nothing reached it, or the relay
// says it is offline), so sending again cannot make a second copy.
func retryableUpload(status int) bool {
	switch status {
	case 0, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, 601:
		return true
	}
	return false
}

func uploadFailure(status int) string {
	switch {
	case status == 0:
		return "no answer from the relay"
	case status >= 600:
		return fmt.Sprintf("OctoEverywhere answered %d (%s)", status, oe.Lookup(status).Meaning)
	default:
		return fmt.Sprintf("the printer answered %d %s", status, http.StatusText(status))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// spoolPaths are the upload endpoints slicers post to: OctoPrint's (and Moonraker's octoprint_compat) and
// Moonraker's own.
var spoolPaths = map[string]bool{
	"/api/files/local": true, "/api/files/sdcard": true, "/api/files/printer": true, "/server/files/upload": true,
}

// spools reports whether r is an upload the spool answers once stored (only when the user turned it on).
func (h *Handler) spools(r *http.Request) bool {
	if h.opts.Uploads == nil || r.Method != http.MethodPost || !spoolPaths[r.URL.Path] {
		return false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/form-data"
}

// serveSpooled stores the upload, answers 202 Accepted, and has the spool pass it on through the same relay
// path as any request (Rewrite sets the credential; the relay slots apply).
func (h *Handler) serveSpooled(cw *countingWriter, r *http.Request) {
	sp := h.opts.Uploads
	rec, err := sp.store(r, h.printer.Name)
	if err != nil {
		if berr := clientOf(r.Context()).body.err(); berr != nil || r.Context().Err() != nil {
			h.log.Info("upload not stored: the client stopped sending", zap.String("path", r.URL.Path), zap.Error(berr))
			if isTimeout(berr) {
				http.Error(cw, "oeproxy: the upload stopped arriving", http.StatusRequestTimeout)
			}
			return
		}
		h.log.Error("upload not stored", zap.String("path", r.URL.Path), zap.Error(err))
		http.Error(cw, "oeproxy could not store the upload on disk: "+err.Error(), http.StatusInsufficientStorage)
		return
	}
	tmpl := r.Clone(context.WithoutCancel(r.Context())) // the headers, kept in memory only, for every attempt
	tmpl.Header.Del("Expect")
	sp.deliver(rec, func(ctx context.Context) int { return h.sendStored(ctx, tmpl, rec) })

	cw.Header().Set("Content-Type", "application/json")
	cw.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(cw).Encode(map[string]any{
		"done": false,
		"oeproxy": map[string]any{
			"upload": rec.ID, "state": rec.State, "file": rec.File, "size": rec.Size,
			"message": "oeproxy stored the upload and is passing it on to the printer through OctoEverywhere; " +
				"its outcome is in oeproxy's log, metrics and admin page (upload.answer_when_stored)",
		},
	})
}

// sendStored sends the stored body of rec as tmpl (a clone of the client's request) through the relay and returns
// the status of the answer (0 when there was none).
func (h *Handler) sendStored(ctx context.Context, tmpl *http.Request, rec UploadRecord) int {
	f, err := os.Open(h.opts.Uploads.bodyPath(rec.ID))
	if err != nil {
		h.log.Error("stored upload unreadable", zap.String("file", rec.File), zap.Error(err))
		return 0
	}
	ci := clientOf(tmpl.Context())
	out := tmpl.Clone(context.WithValue(ctx, ctxKey{}, clientInfo{host: ci.host, remoteIP: ci.remoteIP}))
	out.Body, out.ContentLength, out.TransferEncoding = f, rec.Size, nil
	if !h.opts.RelaySlots.acquire(out, h.opts.RelayWait) {
		f.Close()
		return http.StatusServiceUnavailable
	}
	defer h.opts.RelaySlots.release()
	w := &answerWriter{header: http.Header{}}
	h.rp.ServeHTTP(w, out)
	return w.status
}

// answerWriter takes the relay's answer to a spooled upload: its status (the client was answered already).
type answerWriter struct {
	header http.Header
	status int
}

func (a *answerWriter) Header() http.Header { return a.header }

func (a *answerWriter) WriteHeader(code int) {
	if a.status == 0 && code >= 200 {
		a.status = code
	}
}

func (a *answerWriter) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return len(p), nil
}

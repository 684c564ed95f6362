// Package front owns the OctoPrint-compatible face of a printer that has no HTTP API of its own (Bambu Lab, and
// any printer whose user asks for it): the subset of OctoPrint's REST API that slicers and simple clients use
// (PrusaSlicer, OrcaSlicer, Cura, curl scripts), translated to OctoEverywhere's plugin command APIs
// (/octoeverywhere-command-api/, research §7): GET /api/version, /api/server, /api/files, /api/job,
// /api/printer, /api/settings and /api/connection, POST /api/files/local (multipart upload, print=true starts
// it), POST /api/job (start, pause, resume, cancel), and the webcam under /webcam/?action=stream|snapshot.
//
// It demands an API key of its own (X-Api-Key, ?apikey= or Authorization: Bearer), as OctoPrint does: without it
// a request under /api/ is refused with 403 and nothing is sent to the relay, so that another local program cannot
// print. The webcam, like OctoPi's mjpg-streamer behind haproxy, needs no key.
//
// It must not decide what the relay sees: every request it makes goes out through Options.Relay, which
// proxy.Handler supplies (its transport, its relay view, the App Connection credential). It never buffers a
// body whole: an upload streams from the slicer's multipart body to the relay as it arrives.
package front

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/oeproxy/oeproxy/internal/oe"
	"github.com/oeproxy/oeproxy/webcam"
	"go.uber.org/zap"
)

// OctoPrintVersion is the OctoPrint release the front claims to implement (slicers check the "OctoPrint" prefix
// of /api/version's text and that "api" is present).
const OctoPrintVersion = "1.10.3"

// commandAPI is the root of the plugin command APIs on the relay host.
const commandAPI = "/octoeverywhere-command-api/"

// Options configures New. Relay and APIKey are required.
type Options struct {
	// Relay sends a request whose URL holds only a path and query (/octoeverywhere-command-api/...) to the
	// printer's relay host and returns the relay's answer. proxy.Handler supplies it; it sets the host and the
	// credential and removes every header the relay must not see.
	Relay func(*http.Request) (*http.Response, error)
	// APIKey is the key clients must send; it is the front's own, never the App Connection's credential.
	APIKey string
	// UploadLimit, when set, returns the account's upload limit in bytes (0: unknown). An upload whose request is
	// larger is answered 413 before anything is sent; the relay would answer 608 only after receiving all of it.
	UploadLimit func() int64
	// PrinterName names the printer in errors and logs.
	PrinterName string
	Logger      *zap.Logger
	// Webcams, when set, shares the webcam stream among viewers, continues it across the relay's cuts and
	// answers snapshots from it, as for printers with a webcam of their own (package webcam). The caller owns it.
	Webcams *webcam.Hub
}

// Front is an http.Handler for the paths Handles reports.
type Front struct {
	opts Options
	log  *zap.Logger

	mu       sync.Mutex
	selected string // VirtualPath of the file the last upload selected (POST /api/job start prints it)
}

// New checks the options and returns the front.
func New(o Options) (*Front, error) {
	if o.Relay == nil {
		return nil, errors.New("front: Options.Relay is required")
	}
	if o.APIKey == "" {
		return nil, errors.New("front: Options.APIKey is required: a front without a key would let any local program print")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Front{opts: o, log: o.Logger.Named("front")}, nil
}

// Handles reports whether the front answers path: OctoPrint's /api/ and the OctoPi webcam under /webcam.
// Every other path (the plugin APIs themselves, /websocket of an Elegoo) goes to the relay as it is.
func Handles(p string) bool {
	return p == "/api" || strings.HasPrefix(p, "/api/") || p == "/webcam" || strings.HasPrefix(p, "/webcam/")
}

// ServeHTTP answers one OctoPrint request.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/webcam" || strings.HasPrefix(r.URL.Path, "/webcam/") {
		f.webcam(w, r)
		return
	}
	if !f.keyOK(r) {
		// OctoPrint 1.x answers 403 to an API request without a valid key.
		octoError(w, http.StatusForbidden, "Invalid or missing API key: oeproxy's OctoPrint front for this printer needs the key `oeproxy connect` showed (X-Api-Key)")
		return
	}
	switch route := r.Method + " " + strings.TrimSuffix(r.URL.Path, "/"); route {
	case "GET /api/version":
		writeJSON(w, http.StatusOK, map[string]any{"api": "0.1", "server": OctoPrintVersion, "text": "OctoPrint " + OctoPrintVersion + " (oeproxy front)"})
	case "GET /api/server":
		writeJSON(w, http.StatusOK, map[string]any{"version": OctoPrintVersion, "safemode": nil})
	case "GET /api/connection":
		writeJSON(w, http.StatusOK, map[string]any{"current": map[string]any{"state": "Operational", "port": "VIRTUAL", "baudrate": 0, "printerProfile": "_default"},
			"options": map[string]any{"ports": []string{"VIRTUAL"}, "baudrates": []int{}, "printerProfiles": []any{}}})
	case "GET /api/files", "GET /api/files/local":
		f.listFiles(w, r)
	case "POST /api/files/local", "POST /api/files/sdcard", "POST /api/files/printer":
		f.upload(w, r)
	case "GET /api/printerprofiles":
		// Cura reads the current profile; the plugin does not report one, so this is a plain single extruder.
		writeJSON(w, http.StatusOK, map[string]any{"profiles": map[string]any{"_default": map[string]any{
			"id": "_default", "name": f.opts.PrinterName, "default": true, "current": true, "heatedBed": true,
			"heatedChamber": false, "extruder": map[string]any{"count": 1}}}})
	case "GET /api/job":
		f.job(w, r)
	case "POST /api/job":
		f.jobCommand(w, r)
	case "GET /api/printer":
		f.printer(w, r)
	case "GET /api/settings":
		f.settings(w, r)
	default:
		if name, ok := strings.CutPrefix(r.URL.Path, "/api/files/local/"); ok && name != "" {
			f.fileEntry(w, r, name)
			return
		}
		octoError(w, http.StatusNotFound, "The requested URL was not found on the server (oeproxy's OctoPrint front implements the API slicers use, not all of OctoPrint's).")
	}
}

// keyOK checks the front's key in X-Api-Key, ?apikey= or Authorization: Bearer, in constant time.
func (f *Front) keyOK(r *http.Request) bool {
	key := r.Header.Get("X-Api-Key")
	if key == "" {
		key = r.URL.Query().Get("apikey")
	}
	if key == "" {
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			key = strings.TrimSpace(a[7:])
		}
	}
	return key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(f.opts.APIKey)) == 1
}

// pluginError is a failed plugin call, with the HTTP status the OctoPrint client gets.
type pluginError struct {
	status int    // HTTP status for the client
	code   int    // plugin status or OE code
	msg    string // what happened, for the client
}

func (e *pluginError) Error() string { return e.msg }

// httpStatusOf maps a plugin command status (research §7) to the status OctoPrint would give.
func httpStatusOf(code int) int {
	switch {
	case code == 751:
		return http.StatusBadRequest
	case code == 754, code == 788:
		return http.StatusNotImplemented
	case code == 786:
		return http.StatusConflict // OctoPrint: 409 when the job state does not allow the command
	case code == 785, code == 787:
		return http.StatusServiceUnavailable
	case code >= 750 && code < 800:
		return http.StatusBadGateway
	case code >= 400 && code < 600:
		return code
	}
	return http.StatusBadGateway
}

var pluginMeanings = map[int]string{
	750: "the OctoEverywhere plugin failed (unknown failure)",
	751: "the OctoEverywhere plugin could not parse the command's arguments",
	752: "the OctoEverywhere plugin could not execute the command",
	753: "the OctoEverywhere plugin could not serialise its answer",
	754: "the OctoEverywhere plugin does not know this command (update the plugin)",
	785: "the OctoEverywhere plugin is not connected to the printer",
	786: "the printer's state does not allow this command",
	787: "the printer has too many clients",
	788: "this printer does not support this feature",
	789: "the OctoEverywhere plugin lacks the printer's credentials (check the access code in the companion)",
}

// relayFailure turns a relay answer that is not a plugin envelope (a 6xx of OctoEverywhere, a 5xx) into an error.
func (f *Front) relayFailure(resp *http.Response) *pluginError {
	if oe.IsCode(resp.StatusCode) {
		c := oe.Lookup(resp.StatusCode)
		return &pluginError{status: resp.StatusCode, code: resp.StatusCode,
			msg: fmt.Sprintf("OctoEverywhere %d: %s %s", resp.StatusCode, c.Meaning, c.ActionFor(f.opts.PrinterName))}
	}
	return &pluginError{status: http.StatusBadGateway, code: resp.StatusCode,
		msg: fmt.Sprintf("the relay answered HTTP %d to a plugin command", resp.StatusCode)}
}

// call runs one plugin command and decodes its Result into out (nil: ignore it).
func (f *Front) call(ctx context.Context, method, cmd string, query url.Values, body io.Reader, out any) *pluginError {
	u := &url.URL{Path: commandAPI + cmd}
	if query != nil {
		u.RawQuery = query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return &pluginError{status: http.StatusInternalServerError, msg: "building the plugin request failed"}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := f.opts.Relay(req)
	if err != nil {
		if ctx.Err() != nil {
			return &pluginError{status: 499, msg: "the client went away"}
		}
		var pe *pluginError
		if errors.As(err, &pe) {
			return pe
		}
		f.log.Warn("plugin command failed: relay unreachable", zap.String("command", cmd), zap.Error(err))
		return &pluginError{status: http.StatusBadGateway, msg: "the OctoEverywhere relay could not be reached: check the network, then try again"}
	}
	defer resp.Body.Close()
	if oe.IsCode(resp.StatusCode) {
		// OctoEverywhere itself answered (its 6xx body looks like an envelope, but the code is the status).
		return f.relayFailure(resp)
	}
	var env struct {
		Status int
		Result json.RawMessage
		Error  string
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&env); err != nil || env.Status == 0 {
		if resp.StatusCode != http.StatusOK {
			return f.relayFailure(resp)
		}
		return &pluginError{status: http.StatusBadGateway, msg: "the plugin's answer to " + cmd + " is not its JSON envelope"}
	}
	if env.Status != http.StatusOK {
		meaning := pluginMeanings[env.Status]
		if meaning == "" {
			meaning = "the plugin refused the command"
		}
		msg := fmt.Sprintf("%s (plugin status %d", meaning, env.Status)
		if env.Error != "" {
			msg += ": " + env.Error
		}
		f.log.Info("plugin command refused", zap.String("command", cmd), zap.Int("plugin_status", env.Status))
		return &pluginError{status: httpStatusOf(env.Status), code: env.Status, msg: msg + ")"}
	}
	if out != nil && len(env.Result) > 0 {
		if err := json.Unmarshal(env.Result, out); err != nil {
			return &pluginError{status: http.StatusBadGateway, msg: "the plugin's " + cmd + " result could not be read"}
		}
	}
	return nil
}

func (f *Front) fail(w http.ResponseWriter, e *pluginError) {
	if e.status == 499 {
		return
	}
	if oe.IsCode(e.code) {
		w.Header().Set("X-Oeproxy-Error", strconv.Itoa(e.code))
	}
	octoError(w, e.status, e.msg)
}

// status is the part of the plugin's status Result the front uses.
type status struct {
	JobStatus struct {
		State        string
		Error        *string
		CurrentPrint struct {
			Progress                 float64
			DurationSec, TimeLeftSec float64
			FileName                 string
			Temps                    struct{ BedActual, BedTarget, HotendActual, HotendTarget float64 }
		}
	}
	PlatformVersion string
}

func (f *Front) status(ctx context.Context) (status, *pluginError) {
	var st status
	err := f.call(ctx, http.MethodGet, "status", nil, nil, &st)
	return st, err
}

// stateText is OctoPrint's state text for a plugin JobStatus.State.
func stateText(s string) string {
	switch s {
	case "printing", "warmingup", "cleaningnozzle", "autobedlevel", "resuming":
		return "Printing"
	case "paused", "pausing":
		return "Paused"
	case "cancelling":
		return "Cancelling"
	case "error":
		return "Error"
	}
	return "Operational"
}

func (f *Front) job(w http.ResponseWriter, r *http.Request) {
	st, err := f.status(r.Context())
	if err != nil {
		f.fail(w, err)
		return
	}
	cp := st.JobStatus.CurrentPrint
	var file any = map[string]any{"name": nil, "origin": nil, "path": nil}
	if cp.FileName != "" {
		file = map[string]any{"name": cp.FileName, "origin": "local", "path": cp.FileName, "display": cp.FileName}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"job":      map[string]any{"file": file, "estimatedPrintTime": nullIfZero(cp.DurationSec + cp.TimeLeftSec), "user": nil},
		"progress": map[string]any{"completion": cp.Progress, "printTime": cp.DurationSec, "printTimeLeft": cp.TimeLeftSec, "printTimeLeftOrigin": "estimate"},
		"state":    stateText(st.JobStatus.State),
		"error":    st.JobStatus.Error,
	})
}

func nullIfZero(v float64) any {
	if v == 0 {
		return nil
	}
	return v
}

func (f *Front) printer(w http.ResponseWriter, r *http.Request) {
	st, err := f.status(r.Context())
	if err != nil {
		f.fail(w, err)
		return
	}
	s := st.JobStatus.State
	text := stateText(s)
	t := st.JobStatus.CurrentPrint.Temps
	writeJSON(w, http.StatusOK, map[string]any{
		"temperature": map[string]any{
			"tool0": map[string]any{"actual": t.HotendActual, "target": t.HotendTarget, "offset": 0},
			"bed":   map[string]any{"actual": t.BedActual, "target": t.BedTarget, "offset": 0},
		},
		"sd": map[string]any{"ready": false},
		"state": map[string]any{"text": text, "flags": map[string]bool{
			"operational": text != "Error", "printing": text == "Printing", "paused": text == "Paused",
			"pausing": s == "pausing", "cancelling": s == "cancelling", "sdReady": false, "error": text == "Error",
			"ready": text == "Operational", "closedOrError": text == "Error",
		}},
	})
}

// jobCommand maps OctoPrint's job commands to the plugin's: start (the last uploaded file), cancel, pause with
// action pause/resume/toggle, restart (start again).
func (f *Front) jobCommand(w http.ResponseWriter, r *http.Request) {
	var req struct{ Command, Action string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		octoError(w, http.StatusBadRequest, "Expected a JSON body {\"command\": ...}")
		return
	}
	ctx := r.Context()
	var err *pluginError
	switch req.Command {
	case "start", "restart":
		f.mu.Lock()
		sel := f.selected
		f.mu.Unlock()
		if sel == "" {
			octoError(w, http.StatusConflict, "No file selected: upload one with POST /api/files/local first")
			return
		}
		err = f.start(ctx, sel)
	case "cancel":
		err = f.call(ctx, http.MethodPost, "cancel", nil, strings.NewReader("{}"), nil)
	case "pause":
		action := req.Action
		if action == "" || action == "toggle" {
			st, serr := f.status(ctx)
			if serr != nil {
				f.fail(w, serr)
				return
			}
			action = "pause"
			if stateText(st.JobStatus.State) == "Paused" {
				action = "resume"
			}
		}
		switch action {
		case "pause":
			err = f.call(ctx, http.MethodPost, "pause", nil, strings.NewReader(`{"SmartPause":false}`), nil)
		case "resume":
			err = f.call(ctx, http.MethodPost, "resume", nil, strings.NewReader("{}"), nil)
		default:
			octoError(w, http.StatusBadRequest, "Unknown pause action "+strconv.Quote(req.Action))
			return
		}
	default:
		octoError(w, http.StatusBadRequest, "Unknown command "+strconv.Quote(req.Command)+": use start, cancel, pause or restart")
		return
	}
	if err != nil {
		f.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *Front) start(ctx context.Context, virtualPath string) *pluginError {
	b, _ := json.Marshal(map[string]string{"Path": virtualPath})
	return f.call(ctx, http.MethodPost, "start", nil, strings.NewReader(string(b)), nil)
}

// fileNode is one entry of the plugin's files/list tree.
type fileNode struct {
	Type, Name, Path, VirtualPath, PlatformPath string
	SizeBytes                                   int64
	ModifiedTimeSec                             float64
	Children                                    []fileNode
}

func flatten(nodes []fileNode, out []fileNode) []fileNode {
	for _, n := range nodes {
		if n.Type == "file" {
			out = append(out, n)
		}
		out = flatten(n.Children, out)
	}
	return out
}

func (f *Front) listFiles(w http.ResponseWriter, r *http.Request) {
	var res struct{ Root []fileNode }
	if err := f.call(r.Context(), http.MethodGet, "files/list", nil, nil, &res); err != nil {
		f.fail(w, err)
		return
	}
	base := "http://" + r.Host
	files := []map[string]any{}
	for _, n := range flatten(res.Root, nil) {
		name := path.Base(n.Path)
		files = append(files, map[string]any{
			"name": name, "display": name, "path": name, "origin": "local", "type": "machinecode",
			"typePath": []string{"machinecode", "gcode"}, "size": n.SizeBytes, "date": int64(n.ModifiedTimeSec),
			"refs": map[string]string{"resource": base + "/api/files/local/" + url.PathEscape(name)},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"files": files, "free": nil, "total": nil})
}

// fileEntry answers GET (the file's entry, where an upload's Location points) and DELETE of /api/files/local/<name>.
func (f *Front) fileEntry(w http.ResponseWriter, r *http.Request, name string) {
	if strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		octoError(w, http.StatusNotFound, "File not found")
		return
	}
	vp := "gcode/" + name
	switch r.Method {
	case http.MethodDelete:
		if err := f.call(r.Context(), http.MethodPost, "files/delete", url.Values{"path": {vp}}, strings.NewReader("{}"), nil); err != nil {
			f.fail(w, err)
			return
		}
		f.mu.Lock()
		if f.selected == vp {
			f.selected = ""
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet, http.MethodHead:
		var res struct{ Root []fileNode }
		if err := f.call(r.Context(), http.MethodGet, "files/list", nil, nil, &res); err != nil {
			f.fail(w, err)
			return
		}
		for _, n := range flatten(res.Root, nil) {
			if n.Path == vp {
				loc := "http://" + r.Host + "/api/files/local/" + url.PathEscape(name)
				writeJSON(w, http.StatusOK, map[string]any{"name": name, "display": name, "path": name, "origin": "local",
					"type": "machinecode", "typePath": []string{"machinecode", "gcode"}, "size": n.SizeBytes,
					"date": int64(n.ModifiedTimeSec), "refs": map[string]string{"resource": loc}})
				return
			}
		}
		octoError(w, http.StatusNotFound, "File not found")
	default:
		w.Header().Set("Allow", "GET, HEAD, DELETE")
		octoError(w, http.StatusMethodNotAllowed, "Use GET or DELETE on a file")
	}
}

// webcamList is the plugin's webcam/list Result.
type webcamList struct {
	DefaultIndex int
	Webcams      []struct {
		Name         string
		FlipH, FlipV bool
		Rotation     int
		Enabled      bool
	}
}

// settings answers the webcam part of OctoPrint's settings (Cura reads streamUrl, flips and rotation from it).
func (f *Front) settings(w http.ResponseWriter, r *http.Request) {
	var wl webcamList
	if err := f.call(r.Context(), http.MethodGet, "webcam/list", nil, nil, &wl); err != nil {
		f.fail(w, err)
		return
	}
	cam := map[string]any{"webcamEnabled": len(wl.Webcams) > 0, "streamUrl": "/webcam/?action=stream",
		"snapshotUrl": "http://" + r.Host + "/webcam/?action=snapshot", "flipH": false, "flipV": false, "rotate90": false}
	if i := wl.DefaultIndex; i >= 0 && i < len(wl.Webcams) {
		c := wl.Webcams[i]
		cam["flipH"], cam["flipV"] = c.FlipH, c.FlipV
		// OctoPrint knows only a 90° counter-clockwise rotation; the plugin's Rotation is in degrees.
		cam["rotate90"] = c.Rotation == 90 || c.Rotation == 270
	}
	writeJSON(w, http.StatusOK, map[string]any{"webcam": cam, "api": map[string]any{"allowCrossOrigin": false}})
}

// webcam relays the plugin's webcam stream or snapshot, keeping x-oe-webcam-transform.
func (f *Front) webcam(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		octoError(w, http.StatusMethodNotAllowed, "the webcam answers GET")
		return
	}
	cmd := "webcam/snapshot"
	if r.URL.Query().Get("action") == "stream" {
		cmd = "webcam/stream"
	}
	q := url.Values{"index": {"0"}}
	if i := r.URL.Query().Get("index"); i != "" {
		q.Set("index", i)
	}
	target := commandAPI + cmd + "?" + q.Encode()
	hub := f.opts.Webcams
	claimDone := func() {}
	if hub != nil && r.Method == http.MethodGet {
		if cmd == "webcam/snapshot" {
			if key, ok := webcam.SnapshotKey(r); ok && hub.ServeSnapshot(w, r, key) {
				return
			}
		} else {
			served, done := hub.JoinOrClaim(w, r, webcam.Key(r))
			if served {
				return
			}
			if done != nil {
				claimDone = done
			}
		}
	}
	// A stream's relay request must outlive this viewer when the hub adopts it (other viewers may join), so it
	// gets a context of its own that ends with the viewer unless adopted.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	stop := context.AfterFunc(r.Context(), cancel)
	adopted := false
	defer func() {
		if !adopted {
			stop()
			cancel()
		}
	}()
	req, err := http.NewRequestWithContext(ctx, r.Method, target, nil)
	if err != nil {
		octoError(w, http.StatusInternalServerError, "building the webcam request failed")
		return
	}
	resp, err := f.opts.Relay(req)
	if err != nil {
		if r.Context().Err() == nil {
			octoError(w, http.StatusBadGateway, "the OctoEverywhere relay could not be reached for the webcam")
		}
		claimDone()
		return
	}
	if hub != nil && cmd == "webcam/stream" && r.Method == http.MethodGet {
		reopen := func(ctx context.Context) (*http.Response, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				return nil, err
			}
			return f.opts.Relay(req)
		}
		if hub.Adopt(r.Context(), webcam.Key(r), resp, reopen, cancel) {
			adopted = true
			stop()
		}
	}
	claimDone()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if oe.IsCode(resp.StatusCode) {
			f.fail(w, f.relayFailure(resp))
			return
		}
		octoError(w, httpStatusOf(resp.StatusCode), fmt.Sprintf("the printer's webcam answered HTTP %d", resp.StatusCode))
		return
	}
	for _, k := range []string{"Content-Type", "Content-Length", "X-Oe-Webcam-Transform", "Cache-Control"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush() // MJPEG: each frame as it comes
		}
		if rerr != nil {
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// octoError answers OctoPrint's error shape {"error": "..."}.
func octoError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// isMultipart reports whether r carries multipart/form-data.
func isMultipart(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/form-data"
}

var nopLogger = zap.NewNop()

package printer

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

const (
	moonrakerVersion = "v0.9.3-12-g1a2b3c4d"
	klipperVersion   = "v0.12.0-301-g5e6f7a8b"
	oneshotTokenLife = 5 * time.Second // Moonraker's oneshot tokens expire after 5 s
)

// Moonraker is a Moonraker-flavoured printer: API is Moonraker's own port (HTTP and JSON-RPC
// WebSocket), Frontend is a Mainsail-like page with the webcam, laid out as MainsailOS's nginx
// does (it also forwards Moonraker's paths to the API, so the page works on its own port).
type Moonraker struct {
	opts     MoonrakerOptions
	log      *zap.Logger
	life     *life
	machine  *machine
	webcam   *webcam
	api      http.Handler
	frontend http.Handler
	connIDs  atomic.Int64
	wsCount  atomic.Int64

	mu      sync.Mutex
	uploads []Upload
	tokens  map[string]time.Time      // oneshot token → expiry
	db      map[string]map[string]any // writable namespaces: namespace → key → value
}

// NewMoonraker returns a Moonraker-flavoured printer. Call Close when done.
func NewMoonraker(o MoonrakerOptions) *Moonraker {
	o.Name = orDefault(o.Name, "Klipper")
	o.FrameInterval = orDefault(o.FrameInterval, DefaultFrameInterval)
	o.PluginVersion = orDefault(o.PluginVersion, DefaultPluginVersion)
	m := &Moonraker{opts: o, log: orDefault(o.Logger, zap.NewNop()), life: newLife(), machine: newMachine(),
		tokens: map[string]time.Time{}, db: map[string]map[string]any{}}
	m.webcam = &webcam{interval: o.FrameInterval, life: m.life, start: time.Now()}

	api := http.NewServeMux()
	api.HandleFunc("GET /server/info", m.authed(m.httpResult(func(*http.Request) (any, error) { return m.serverInfo(), nil })))
	api.HandleFunc("GET /printer/info", m.authed(m.httpResult(func(*http.Request) (any, error) { return m.printerInfo(), nil })))
	api.HandleFunc("GET /printer/objects/list", m.authed(m.httpResult(func(*http.Request) (any, error) {
		return map[string]any{"objects": objectNames}, nil
	})))
	api.HandleFunc("/printer/objects/query", m.authed(m.httpResult(m.queryHTTP)))
	api.HandleFunc("POST /printer/print/{action}", m.authed(m.httpResult(m.printHTTP)))
	api.HandleFunc("POST /server/files/upload", m.authed(m.upload))
	api.HandleFunc("GET /server/database/item", m.authed(m.httpResult(func(r *http.Request) (any, error) {
		q := r.URL.Query()
		return m.dbGetItem(q.Get("namespace"), q.Get("key"))
	})))
	api.HandleFunc("POST /server/database/item", m.authed(m.httpResult(m.dbPostHTTP)))
	api.HandleFunc("DELETE /server/database/item", m.authed(m.httpResult(func(r *http.Request) (any, error) {
		q := r.URL.Query()
		return m.dbDeleteItem(q.Get("namespace"), q.Get("key"))
	})))
	api.HandleFunc("GET /access/oneshot_token", m.authed(m.httpResult(func(*http.Request) (any, error) {
		return m.newOneshotToken(), nil
	})))
	api.HandleFunc("GET /websocket", m.authed(m.websocket))
	api.HandleFunc("GET /api/version", m.authed(m.compatVersion))
	api.HandleFunc("POST /api/files/local", m.authed(m.compatUpload))
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		moonrakerError(w, &rpcError{Code: http.StatusNotFound, Message: "Not Found"})
	})
	m.api = api

	fe := http.NewServeMux()
	fe.Handle("/webcam/", m.webcam)
	fe.Handle("/webcam", m.webcam)
	for _, p := range []string{"/websocket", "/printer/", "/api/", "/access/", "/machine/", "/server/"} {
		fe.Handle(p, api) // MainsailOS's nginx sends these to Moonraker
	}
	fe.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		servePage(w, r, pageData{Title: m.opts.Name, Kind: "moonraker", Software: "Mainsail · Moonraker " + moonrakerVersion})
	})
	m.frontend = fe
	return m
}

// API is Moonraker's own port: /server/*, /printer/*, /access/*, /websocket.
func (m *Moonraker) API() http.Handler { return m.api }

// Frontend is the Mainsail-like page plus /webcam/; Moonraker's paths are forwarded to API.
func (m *Moonraker) Frontend() http.Handler { return m.frontend }

// Close ends every webcam stream and WebSocket and waits for their handlers to return.
func (m *Moonraker) Close() { m.life.close() }

// Uploads returns the uploads received so far, in order.
func (m *Moonraker) Uploads() []Upload {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Upload(nil), m.uploads...)
}

// SetPrinting starts or ends the simulated print.
func (m *Moonraker) SetPrinting(on bool) { m.machine.setPrinting(on) }

// Printing reports whether a print is active.
func (m *Moonraker) Printing() bool { return m.machine.snapshot().Printing }

// rpcError is Moonraker's error: HTTP answers {"error":{"code","message"}} with status code,
// JSON-RPC answers it as the error member.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return e.Message }

func moonrakerError(w http.ResponseWriter, e *rpcError) {
	status := e.Code
	if status < 400 || status > 599 {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, map[string]any{"error": e})
}

// httpResult wraps a result in Moonraker's {"result": ...} envelope.
func (m *Moonraker) httpResult(f func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		if err != nil {
			e, ok := err.(*rpcError)
			if !ok {
				e = &rpcError{Code: http.StatusInternalServerError, Message: err.Error()}
			}
			moonrakerError(w, e)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": v})
	}
}

// authed enforces the API key when one is set: X-Api-Key, or a oneshot ?token= (which is how
// browsers and the WebSocket authenticate without headers). Moonraker answers 401.
func (m *Moonraker) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if m.opts.APIKey != "" && !keyEqual(r.Header.Get("X-Api-Key"), m.opts.APIKey) &&
			!m.useOneshotToken(r.URL.Query().Get("token")) {
			moonrakerError(w, &rpcError{Code: http.StatusUnauthorized, Message: "Unauthorized"})
			return
		}
		h(w, r)
	}
}

func (m *Moonraker) newOneshotToken() string {
	t := rand.Text()
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, exp := range m.tokens {
		if now.After(exp) {
			delete(m.tokens, k)
		}
	}
	m.tokens[t] = now.Add(oneshotTokenLife)
	return t
}

// useOneshotToken consumes a valid token: each works once, within its lifetime.
func (m *Moonraker) useOneshotToken(t string) bool {
	if t == "" {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.tokens[t]
	delete(m.tokens, t)
	return ok && time.Now().Before(exp)
}

func (m *Moonraker) serverInfo() map[string]any {
	return map[string]any{
		"klippy_connected": true, "klippy_state": "ready",
		"components":                  []string{"secrets", "template", "klippy_connection", "jsonrpc", "internal_transport", "application", "websockets", "database", "dbus_manager", "file_manager", "authorization", "klippy_apis", "webcam", "history", "octoprint_compat", "data_store", "proc_stats", "job_state", "job_queue", "machine", "update_manager"},
		"failed_components":           []string{},
		"registered_directories":      []string{"config", "logs", "gcodes", "config_examples", "docs"},
		"warnings":                    []string{},
		"websocket_count":             m.wsCount.Load(),
		"moonraker_version":           moonrakerVersion,
		"missing_klippy_requirements": []string{},
		"api_version":                 []int{1, 5, 0},
		"api_version_string":          "1.5.0",
	}
}

func (m *Moonraker) printerInfo() map[string]any {
	return map[string]any{
		"state": "ready", "state_message": "Printer is ready", "hostname": m.opts.Name,
		"software_version": klipperVersion, "cpu_info": "4 core ARMv7 Processor rev 4 (v7l)",
		"klipper_path": "/home/pi/klipper", "python_path": "/home/pi/klippy-env/bin/python",
		"log_file": "/home/pi/printer_data/logs/klippy.log", "config_file": "/home/pi/printer_data/config/printer.cfg",
		"app": "Klipper",
	}
}

// dbGetItem reads Moonraker's database: the OctoEverywhere plugin stores its printer id under
// namespace "octoeverywhere", key "public.printerId" (research §6.2); other namespaces hold what clients wrote.
func (m *Moonraker) dbGetItem(namespace, key string) (any, error) {
	if namespace == "" {
		return nil, &rpcError{Code: http.StatusBadRequest, Message: "No data for argument: namespace"}
	}
	if namespace != "octoeverywhere" {
		m.mu.Lock()
		ns, ok := m.db[namespace]
		var v any
		found := false
		if ok {
			v, found = ns[key]
			if key == "" {
				v, found = maps.Clone(ns), true
			}
		}
		m.mu.Unlock()
		if !ok {
			return nil, &rpcError{Code: http.StatusNotFound, Message: fmt.Sprintf("Namespace '%s' not found", namespace)}
		}
		if !found {
			return nil, &rpcError{Code: http.StatusNotFound, Message: fmt.Sprintf("Key '%s' in namespace '%s' not found", key, namespace)}
		}
		return dbResult(namespace, key, v), nil
	}
	if m.opts.PrinterID == "" {
		return nil, &rpcError{Code: http.StatusNotFound, Message: fmt.Sprintf("Namespace '%s' not found", namespace)}
	}
	public := map[string]any{"printerId": m.opts.PrinterID, "pluginVersion": m.opts.PluginVersion}
	var v any
	switch key {
	case "":
		v = map[string]any{"public": public}
	case "public":
		v = public
	case "public.printerId":
		v = public["printerId"]
	case "public.pluginVersion":
		v = public["pluginVersion"]
	default:
		return nil, &rpcError{Code: http.StatusNotFound, Message: fmt.Sprintf("Key '%s' in namespace '%s' not found", key, namespace)}
	}
	return dbResult(namespace, key, v), nil
}

func dbResult(namespace, key string, v any) map[string]any {
	res := map[string]any{"namespace": namespace, "value": v}
	if key != "" {
		res["key"] = key
	}
	return res
}

// readOnlyNamespaces refuse writes: Moonraker's own, and (a choice of the sim) the plugin's, whose keys "must
// never change" (research §6.2), so that a test cannot fake a printer id by writing it.
var readOnlyNamespaces = map[string]bool{"moonraker": true, "octoeverywhere": true}

// dbPostHTTP is POST /server/database/item: namespace, key and value from a JSON body or from the query.
func (m *Moonraker) dbPostHTTP(r *http.Request) (any, error) {
	var p struct {
		Namespace string `json:"namespace"`
		Key       string `json:"key"`
		Value     any    `json:"value"`
	}
	if strings.Contains(r.Header.Get("Content-Type"), "json") {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
			return nil, &rpcError{Code: http.StatusBadRequest, Message: "Invalid JSON body: " + err.Error()}
		}
	} else {
		q := r.URL.Query()
		p.Namespace, p.Key = q.Get("namespace"), q.Get("key")
		if q.Has("value") {
			p.Value = q.Get("value")
		}
	}
	return m.dbPostItem(p.Namespace, p.Key, p.Value)
}

func (m *Moonraker) dbPostItem(namespace, key string, value any) (any, error) {
	switch {
	case namespace == "":
		return nil, &rpcError{Code: http.StatusBadRequest, Message: "No data for argument: namespace"}
	case key == "":
		return nil, &rpcError{Code: http.StatusBadRequest, Message: "No data for argument: key"}
	case value == nil:
		return nil, &rpcError{Code: http.StatusBadRequest, Message: "No data for argument: value"}
	case readOnlyNamespaces[namespace]:
		return nil, &rpcError{Code: http.StatusForbidden, Message: fmt.Sprintf("Write access to namespace '%s' is forbidden", namespace)}
	}
	m.mu.Lock()
	if m.db[namespace] == nil {
		m.db[namespace] = map[string]any{}
	}
	m.db[namespace][key] = value
	m.mu.Unlock()
	return dbResult(namespace, key, value), nil
}

func (m *Moonraker) dbDeleteItem(namespace, key string) (any, error) {
	if readOnlyNamespaces[namespace] {
		return nil, &rpcError{Code: http.StatusForbidden, Message: fmt.Sprintf("Write access to namespace '%s' is forbidden", namespace)}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.db[namespace][key]
	if !ok {
		return nil, &rpcError{Code: http.StatusNotFound, Message: fmt.Sprintf("Key '%s' in namespace '%s' not found", key, namespace)}
	}
	delete(m.db[namespace], key)
	if len(m.db[namespace]) == 0 {
		delete(m.db, namespace)
	}
	return dbResult(namespace, key, v), nil
}

func (m *Moonraker) printHTTP(r *http.Request) (any, error) {
	return m.printAction(r.PathValue("action"), r.URL.Query().Get("filename"))
}

// printAction is /printer/print/{start,pause,resume,cancel}; Klipper answers "ok".
func (m *Moonraker) printAction(action, filename string) (any, error) {
	s := m.machine.snapshot()
	switch action {
	case "start":
		if s.Printing {
			return nil, &rpcError{Code: http.StatusBadRequest, Message: "Print already in progress"}
		}
		if filename != "" {
			m.machine.selectFile(filename, 0)
		}
		m.machine.setPrinting(true)
	case "cancel":
		m.machine.setPrinting(false)
	case "pause":
		m.machine.setPaused(true)
	case "resume":
		m.machine.setPaused(false)
	default:
		return nil, &rpcError{Code: http.StatusNotFound, Message: "Not Found"}
	}
	return "ok", nil
}

// storedFile is an upload Moonraker accepted.
type storedFile struct {
	root, path string // path is relative to root
	size       int64
	started    bool // the upload started a print
}

// receive streams a Moonraker upload (form fields file, root, path, checksum, print) into an
// Upload record; the body is hashed, never kept.
func (m *Moonraker) receive(r *http.Request) (storedFile, *rpcError) {
	up, status, err := parseUpload(r, "file")
	if err != nil {
		return storedFile{}, &rpcError{Code: status, Message: err.Error()}
	}
	if !up.fileField {
		return storedFile{}, &rpcError{Code: http.StatusBadRequest, Message: "No file name specified in upload form"}
	}
	root := orDefault(up.fields["root"], "gcodes")
	if root != "gcodes" && root != "config" {
		return storedFile{}, &rpcError{Code: http.StatusBadRequest, Message: fmt.Sprintf("Invalid root request: %s", root)}
	}
	if sum := up.fields["checksum"]; sum != "" && sum != up.sha256 {
		return storedFile{}, &rpcError{Code: http.StatusUnprocessableEntity, Message: fmt.Sprintf("File checksum mismatch: expected %s, calculated %s", sum, up.sha256)}
	}
	folder, ok := cleanFolder(up.fields["path"])
	if !ok {
		return storedFile{}, &rpcError{Code: http.StatusBadRequest, Message: "Invalid path"}
	}
	name := path.Base(up.filename)
	print := formBool(up.fields["print"])
	m.mu.Lock()
	m.uploads = append(m.uploads, Upload{Path: folder, Filename: name, Root: root, Size: up.size,
		SHA256: up.sha256, Print: print, ContentLength: r.ContentLength})
	m.mu.Unlock()
	f := storedFile{root: root, path: joinPath(folder, name), size: up.size}
	m.log.Debug("upload received", zap.String("file", root+"/"+f.path), zap.Int64("size", up.size), zap.Bool("print", print))
	if print && root == "gcodes" && !m.machine.snapshot().Printing {
		m.machine.selectFile(f.path, up.size)
		m.machine.setPrinting(true)
		f.started = true
	}
	return f, nil
}

// upload is POST /server/files/upload: 201, Location, and Moonraker's create_file result.
func (m *Moonraker) upload(w http.ResponseWriter, r *http.Request) {
	f, err := m.receive(r)
	if err != nil {
		moonrakerError(w, err)
		return
	}
	w.Header().Set("Location", externalBase(r)+"/server/files/"+f.root+"/"+f.path)
	writeJSON(w, http.StatusCreated, map[string]any{"result": map[string]any{
		"item": map[string]any{"path": f.path, "root": f.root, "modified": float64(time.Now().UnixMilli()) / 1000,
			"size": f.size, "permissions": "rw"},
		"print_started": f.started, "print_queued": false, "action": "create_file",
	}})
}

// compatVersion is [octoprint_compat]'s /api/version, which slicers' OctoPrint host type checks.
func (m *Moonraker) compatVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"server": "1.5.0", "api": "0.1", "text": "OctoPrint (Moonraker " + moonrakerVersion + ")"})
}

// compatUpload is [octoprint_compat]'s POST /api/files/local: stored under gcodes, answered
// in OctoPrint's shape, so PrusaSlicer/Cura's OctoPrint host type works against Klipper.
func (m *Moonraker) compatUpload(w http.ResponseWriter, r *http.Request) {
	f, err := m.receive(r)
	if err != nil {
		moonrakerError(w, err)
		return
	}
	w.Header().Set("Location", externalBase(r)+"/server/files/"+f.root+"/"+f.path)
	writeJSON(w, http.StatusCreated, map[string]any{
		"files": map[string]any{"local": map[string]any{"name": path.Base(f.path), "origin": "local"}},
		"done":  true,
	})
}

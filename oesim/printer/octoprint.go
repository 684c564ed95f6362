package printer

import (
	"crypto/rand"
	"encoding/json"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// octoPrintVersion is the OctoPrint release the simulation claims to be.
const octoPrintVersion = "1.10.3"

// uploadExtensions are the file types OctoPrint accepts on /api/files/local (gcode and its
// aliases, plus .ufp which Cura sends when the UFP plugin is present); others get 415.
var uploadExtensions = map[string]bool{".gcode": true, ".gco": true, ".g": true, ".ufp": true, ".stl": true}

// OctoPrint is an OctoPrint-flavoured printer server: the REST API slicers and apps use,
// SockJS push, the OctoPi webcam under /webcam/ and a small page. It is an http.Handler.
type OctoPrint struct {
	opts    OctoPrintOptions
	log     *zap.Logger
	mux     *http.ServeMux
	life    *life
	machine *machine
	webcam  *webcam

	mu      sync.Mutex
	uploads []Upload
}

// NewOctoPrint returns an OctoPrint-flavoured server. Call Close when done.
func NewOctoPrint(o OctoPrintOptions) *OctoPrint {
	o.Name = orDefault(o.Name, "OctoPrint")
	o.FrameInterval = orDefault(o.FrameInterval, DefaultFrameInterval)
	o.PluginVersion = orDefault(o.PluginVersion, DefaultPluginVersion)
	p := &OctoPrint{opts: o, log: orDefault(o.Logger, zap.NewNop()), life: newLife(), machine: newMachine()}
	p.webcam = &webcam{interval: o.FrameInterval, life: p.life, start: time.Now()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/version", p.keyed(p.version))
	mux.HandleFunc("POST /api/files/{location}", p.keyed(p.upload))
	mux.HandleFunc("GET /api/job", p.keyed(p.jobGet))
	mux.HandleFunc("POST /api/job", p.keyed(p.jobPost))
	mux.HandleFunc("GET /api/printer", p.keyed(p.printerGet))
	mux.HandleFunc("GET /api/settings", p.keyed(p.settings))
	mux.HandleFunc("POST /api/login", p.login)
	// Since plugin 4.3.1 the OctoEverywhere plugin API is not protected (research §6.1).
	mux.HandleFunc("GET /api/plugin/octoeverywhere", p.plugin)
	mux.HandleFunc("/api/", p.keyed(func(w http.ResponseWriter, r *http.Request) {
		octoPrintError(w, http.StatusNotFound, "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.")
	}))
	mux.HandleFunc("GET /sockjs/info", p.sockjsInfo)
	mux.HandleFunc("GET /sockjs/websocket", p.sockjsRaw)
	mux.HandleFunc("GET /sockjs/{server}/{session}/websocket", p.sockjsFramed)
	// The OE plugin normalises /webcam?action to /webcam/?action; accept both.
	mux.Handle("/webcam/", p.webcam)
	mux.Handle("/webcam", p.webcam)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		servePage(w, r, pageData{Title: p.opts.Name, Kind: "octoprint", Software: "OctoPrint " + octoPrintVersion})
	})
	p.mux = mux
	return p
}

// ServeHTTP serves the OctoPrint API, SockJS, the webcam and the page.
func (o *OctoPrint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Clacks-Overhead", "GNU Terry Pratchett") // OctoPrint sends it; the OE plugin drops it
	o.mux.ServeHTTP(w, r)
}

// Close ends every webcam stream and WebSocket and waits for their handlers to return.
func (o *OctoPrint) Close() { o.life.close() }

// Uploads returns the uploads received so far, in order.
func (o *OctoPrint) Uploads() []Upload {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Upload(nil), o.uploads...)
}

// SetPrinting starts or ends the simulated print (what oesim's Printer.SetPrinting models).
func (o *OctoPrint) SetPrinting(on bool) { o.machine.setPrinting(on) }

// Printing reports whether a print is active.
func (o *OctoPrint) Printing() bool { return o.machine.snapshot().Printing }

// keyed enforces the API key when one is configured: OctoPrint treats a request without a
// valid key as anonymous, and anonymous gets 403 with werkzeug's wording.
func (o *OctoPrint) keyed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o.opts.APIKey != "" && !keyEqual(octoPrintKey(r), o.opts.APIKey) {
			octoPrintError(w, http.StatusForbidden, octoPrintForbidden)
			return
		}
		h(w, r)
	}
}

func (o *OctoPrint) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"api": "0.1", "server": octoPrintVersion, "text": "OctoPrint " + octoPrintVersion,
	})
}

func (o *OctoPrint) plugin(w http.ResponseWriter, r *http.Request) {
	if o.opts.PrinterID == "" { // plugin not installed: OctoPrint has no such route
		octoPrintError(w, http.StatusNotFound, "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"PluginVersion": o.opts.PluginVersion, "PrinterId": o.opts.PrinterID})
}

func (o *OctoPrint) upload(w http.ResponseWriter, r *http.Request) {
	location := r.PathValue("location")
	if location == "sdcard" { // deprecated alias
		location = "printer"
	}
	if location != "local" && location != "printer" {
		octoPrintError(w, http.StatusNotFound, "Unknown location: "+location)
		return
	}
	up, status, err := parseUpload(r, "file")
	if err != nil {
		octoPrintError(w, status, err.Error())
		return
	}
	if !up.fileField {
		if up.fields["foldername"] != "" {
			octoPrintError(w, http.StatusBadRequest, "folder creation is not simulated")
			return
		}
		octoPrintError(w, http.StatusBadRequest, "No file to upload and no folder to create")
		return
	}
	name := path.Base(strings.ReplaceAll(up.filename, "\\", "/"))
	if !uploadExtensions[strings.ToLower(path.Ext(name))] {
		octoPrintError(w, http.StatusUnsupportedMediaType, "Could not upload file, invalid type")
		return
	}
	folder, ok := cleanFolder(up.fields["path"])
	if !ok {
		octoPrintError(w, http.StatusBadRequest, "Path must not contain '..'")
		return
	}
	print := formBool(up.fields["print"])
	u := Upload{Path: folder, Filename: name, Root: location, Size: up.size, SHA256: up.sha256,
		Print: print, ContentLength: r.ContentLength}
	o.mu.Lock()
	o.uploads = append(o.uploads, u)
	o.mu.Unlock()
	o.log.Debug("upload received", zap.String("file", joinPath(folder, name)), zap.Int64("size", up.size), zap.Bool("print", print))

	full := joinPath(folder, name)
	if formBool(up.fields["select"]) || print {
		o.machine.selectFile(full, up.size)
	}
	if print {
		o.machine.setPrinting(true)
	}
	base := externalBase(r)
	resource := base + "/api/files/" + location + "/" + full
	w.Header().Set("Location", resource)
	writeJSON(w, http.StatusCreated, map[string]any{
		"files": map[string]any{
			location: map[string]any{
				"name": name, "display": name, "path": full, "origin": location,
				"refs": map[string]string{
					"resource": resource,
					"download": base + "/downloads/files/" + location + "/" + full,
				},
			},
		},
		"done":            true,
		"effectiveSelect": formBool(up.fields["select"]) || print,
		"effectivePrint":  print,
	})
}

func (o *OctoPrint) stateText(s machineState) string {
	switch {
	case s.Paused:
		return "Paused"
	case s.Printing:
		return "Printing"
	}
	return "Operational"
}

func (o *OctoPrint) jobJSON(s machineState) map[string]any {
	var file map[string]any = map[string]any{"name": nil, "path": nil, "display": nil, "origin": nil, "size": nil, "date": nil}
	if s.File != "" {
		file = map[string]any{"name": path.Base(s.File), "path": s.File, "display": path.Base(s.File),
			"origin": "local", "size": s.Size, "date": time.Now().Unix()}
	}
	progress := map[string]any{"completion": nil, "filepos": nil, "printTime": nil, "printTimeLeft": nil, "printTimeLeftOrigin": nil}
	if s.Printing {
		progress = map[string]any{"completion": 1.0, "filepos": 0, "printTime": int(s.PrintTime),
			"printTimeLeft": 3600, "printTimeLeftOrigin": "estimate"}
	}
	return map[string]any{
		"job":      map[string]any{"file": file, "estimatedPrintTime": nil, "filament": nil, "user": nil, "lastPrintTime": nil},
		"progress": progress,
		"state":    o.stateText(s),
	}
}

func (o *OctoPrint) jobGet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, o.jobJSON(o.machine.snapshot()))
}

func isJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

func (o *OctoPrint) jobPost(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r) {
		octoPrintError(w, http.StatusBadRequest, "Expected content-type JSON")
		return
	}
	var cmd struct{ Command, Action string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFieldBytes)).Decode(&cmd); err != nil {
		octoPrintError(w, http.StatusBadRequest, "Malformed JSON body in request")
		return
	}
	s := o.machine.snapshot()
	switch cmd.Command {
	case "start":
		if s.File == "" {
			octoPrintError(w, http.StatusConflict, "Printer is not operational or no file is selected")
			return
		}
		if s.Printing {
			octoPrintError(w, http.StatusConflict, "Printer already printing, use restart instead")
			return
		}
		o.machine.setPrinting(true)
	case "cancel":
		if !s.Printing {
			octoPrintError(w, http.StatusConflict, "Printer is neither printing nor paused, 'cancel' command cannot be performed")
			return
		}
		o.machine.setPrinting(false)
	case "pause":
		if !s.Printing {
			octoPrintError(w, http.StatusConflict, "Printer is neither printing nor paused, 'pause' command cannot be performed")
			return
		}
		switch cmd.Action {
		case "pause":
			o.machine.setPaused(true)
		case "resume":
			o.machine.setPaused(false)
		case "", "toggle":
			o.machine.setPaused(!s.Paused)
		default:
			octoPrintError(w, http.StatusBadRequest, "Unknown action "+cmd.Action)
			return
		}
	default:
		octoPrintError(w, http.StatusBadRequest, "Unknown command: "+cmd.Command)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (o *OctoPrint) temperatures(s machineState) map[string]any {
	tool, toolT, bed, bedT := s.temps()
	return map[string]any{
		"tool0": map[string]any{"actual": tool, "target": toolT, "offset": 0},
		"bed":   map[string]any{"actual": bed, "target": bedT, "offset": 0},
	}
}

func (o *OctoPrint) stateJSON(s machineState) map[string]any {
	return map[string]any{
		"text": o.stateText(s),
		"flags": map[string]bool{
			"operational": true, "printing": s.Printing && !s.Paused, "paused": s.Paused,
			"cancelling": false, "pausing": false, "sdReady": false, "error": false,
			"ready": !s.Printing, "closedOrError": false,
		},
	}
}

func (o *OctoPrint) printerGet(w http.ResponseWriter, r *http.Request) {
	s := o.machine.snapshot()
	writeJSON(w, http.StatusOK, map[string]any{
		"temperature": o.temperatures(s),
		"sd":          map[string]bool{"ready": false},
		"state":       o.stateJSON(s),
	})
}

// settings is the part of /api/settings that Cura and apps read: the webcam URLs (the OctoPi
// layout) and the OctoEverywhere plugin's PrinterKey (the fallback for finding the printer id).
func (o *OctoPrint) settings(w http.ResponseWriter, r *http.Request) {
	plugins := map[string]any{}
	if o.opts.PrinterID != "" {
		plugins["octoeverywhere"] = map[string]any{"PrinterKey": o.opts.PrinterID}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"api": map[string]any{"allowCrossOrigin": false},
		"webcam": map[string]any{
			"webcamEnabled": true, "streamUrl": "/webcam/?action=stream",
			"snapshotUrl": "http://127.0.0.1:8080/?action=snapshot",
		},
		"plugins": plugins,
	})
}

// login handles the passive login apps use to get a session for SockJS `auth`: with a valid
// key (or none configured) it returns the API user; otherwise 403 as OctoPrint does.
func (o *OctoPrint) login(w http.ResponseWriter, r *http.Request) {
	if o.opts.APIKey != "" && !keyEqual(octoPrintKey(r), o.opts.APIKey) {
		octoPrintError(w, http.StatusForbidden, octoPrintForbidden)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "_api", "active": true, "admin": true, "user": true,
		"apikey": nil, "session": rand.Text(), "_is_external_client": false,
		"groups": []string{"admins", "users"}, "permissions": []string{},
	})
}

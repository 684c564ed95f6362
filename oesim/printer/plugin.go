package printer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/zap"
)

// Platforms a PluginPrinter can play.
const (
	PlatformBambu  = "bambu"  // Bambu Lab (via the "Bambu Connect" companion): no HTTP of its own, MQTT
	PlatformElegoo = "elegoo" // Elegoo Centauri Carbon (via "Elegoo Connect"): SDCP WebSocket on /websocket
)

// Plugin command status codes (research §7). 200 is success.
const (
	PluginUnknownFailure   = 750
	PluginArgParseFailure  = 751
	PluginExecutionFailure = 752
	PluginUnknownCommand   = 754
	PluginHostNotConnected = 785
	PluginInvalidState     = 786
	PluginTooManyClients   = 787
	PluginNotSupported     = 788
	PluginNoPrinterAuth    = 789
)

// CommandAPIPrefix is where the OctoEverywhere plugin answers its own command APIs on every relay host.
const CommandAPIPrefix = "/octoeverywhere-command-api/"

// pluginBoundary is the plugin webcam pipeline's MJPEG boundary (P Webcam/webcamstreaminstance.py).
const pluginBoundary = "oestreamboundary"

// PluginOptions configures NewPluginPrinter.
type PluginOptions struct {
	Platform  string // PlatformBambu or PlatformElegoo
	Name      string // printer name; default "Bambu Lab X1C" or "Centauri Carbon"
	PrinterID string // OctoEverywhere printer id
	// Serial is the Bambu serial number in the MQTT topics device/<Serial>/report|request; default 01S00C000000001.
	Serial string
	// WebcamTransform is what the plugin's webcam settings say (x-oe-webcam-transform): "" or "none", or
	// space-separated "fliph", "flipv", "rotate=<deg>".
	WebcamTransform string
	FrameInterval   time.Duration // webcam frame period; default DefaultFrameInterval
	// FilesDir keeps the uploaded files (the printer's storage); default a fresh temporary directory, removed on Close.
	FilesDir string
	Logger   *zap.Logger
}

// PluginPrinter is a printer that OctoEverywhere reaches only through its companion plugin: the plugin command
// APIs under /octoeverywhere-command-api/ (status, ping, webcam list/snapshot/stream, files list/upload/
// download/delete, start/pause/resume/cancel), for Bambu the MQTT-over-WebSocket proxy at proxy/mqtt in front of
// the printer's MQTT broker (mochi-mqtt), and for Elegoo the printer's SDCP WebSocket on /websocket.
// It is an http.Handler: the relay routes every path of the printer's App Connection to it.
type PluginPrinter struct {
	opts    PluginOptions
	log     *zap.Logger
	life    *life
	start   time.Time
	dir     string
	ownDir  bool
	broker  *mqtt.Server // nil for Elegoo
	version string

	mu       sync.Mutex
	state    string // the plugin's JobStatus.State: idle, printing, paused, complete, cancelled
	file     string // VirtualPath of the current print
	progress float64
	files    map[string]Upload // VirtualPath → what was stored
	starts   []string          // VirtualPaths of every print started, in order
	mqttFail int               // OE code closing MQTT proxy WebSockets; 0: fine
	sockets  map[*websocket.Conn]struct{}
	commands []string // every command received on the command API, in order (for tests)
	mqttReqs []string // payloads received on device/<serial>/request
}

// NewPluginPrinter starts the simulated printer (for Bambu its MQTT broker). Call Close when done.
func NewPluginPrinter(o PluginOptions) (*PluginPrinter, error) {
	switch o.Platform {
	case PlatformBambu:
		o.Name = orDefault(o.Name, "Bambu Lab X1C")
	case PlatformElegoo:
		o.Name = orDefault(o.Name, "Centauri Carbon")
	default:
		return nil, fmt.Errorf("printer: platform %q is not %q or %q", o.Platform, PlatformBambu, PlatformElegoo)
	}
	o.Serial = orDefault(o.Serial, "01S00C000000001")
	o.FrameInterval = orDefault(o.FrameInterval, DefaultFrameInterval)
	p := &PluginPrinter{
		opts: o, log: orDefault(o.Logger, zap.NewNop()), life: newLife(), start: time.Now(),
		state: "idle", files: map[string]Upload{}, sockets: map[*websocket.Conn]struct{}{},
	}
	// PlatformVersion as the companions build it: "<firmware>-<model>" (bambucommandhandler GetPlatformVersionStr).
	if o.Platform == PlatformBambu {
		p.version = "01.08.05.00-X1C"
	} else {
		p.version = "1.1.29-Centauri Carbon"
	}
	if o.FilesDir == "" {
		d, err := os.MkdirTemp("", "oesim-printer-files-")
		if err != nil {
			return nil, fmt.Errorf("printer: storage directory: %w", err)
		}
		o.FilesDir, p.ownDir = d, true
	}
	p.dir = o.FilesDir
	if o.Platform == PlatformBambu {
		if err := p.startBroker(); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// Platform is PlatformBambu or PlatformElegoo.
func (p *PluginPrinter) Platform() string { return p.opts.Platform }

// Serial is the printer's serial number (its MQTT topics).
func (p *PluginPrinter) Serial() string { return p.opts.Serial }

// PlatformVersion is what the status API reports as PlatformVersion.
func (p *PluginPrinter) PlatformVersion() string { return p.version }

// startBroker runs the printer's MQTT broker in-process. Clients reach it only through the MQTT proxy, where the
// plugin has already authenticated (the proxy needs no MQTT credentials), so it allows every client.
func (p *PluginPrinter) startBroker() error {
	b := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := b.AddHook(new(auth.AllowHook), nil); err != nil {
		return fmt.Errorf("printer: MQTT broker: %w", err)
	}
	if err := b.Serve(); err != nil {
		return fmt.Errorf("printer: MQTT broker: %w", err)
	}
	p.broker = b
	err := b.Subscribe("device/"+p.opts.Serial+"/request", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		p.onMQTTRequest(pk.Payload)
	})
	if err != nil {
		return fmt.Errorf("printer: MQTT broker subscribe: %w", err)
	}
	return nil
}

// onMQTTRequest answers Bambu's request topic: pushing.pushall publishes a full report; print.pause, resume and
// stop act on the print as on the real printer.
func (p *PluginPrinter) onMQTTRequest(payload []byte) {
	p.mu.Lock()
	p.mqttReqs = append(p.mqttReqs, string(payload))
	p.mu.Unlock()
	var req struct {
		Pushing *struct{ Command, SequenceID string } `json:"pushing"`
		Print   *struct {
			Command    string `json:"command"`
			SequenceID string `json:"sequence_id"`
		} `json:"print"`
	}
	if json.Unmarshal(payload, &req) != nil {
		return
	}
	switch {
	case req.Pushing != nil && req.Pushing.Command == "pushall":
		p.publishReport()
	case req.Print != nil:
		switch req.Print.Command {
		case "pause":
			_ = p.setState("paused", "printing")
		case "resume":
			_ = p.setState("printing", "paused")
		case "stop":
			_ = p.setState("cancelled", "printing", "paused")
		}
	}
}

// gcodeState is Bambu's print.gcode_state for a plugin state.
func gcodeState(s string) string {
	switch s {
	case "printing":
		return "RUNNING"
	case "paused":
		return "PAUSE"
	case "complete":
		return "FINISH"
	case "cancelled":
		return "FAILED"
	}
	return "IDLE"
}

// Report is the print object of a Bambu device/<serial>/report message (the fields the sim fills).
type Report struct {
	Print struct {
		Command         string  `json:"command"` // push_status
		Msg             int     `json:"msg"`     // 0: a full report
		SequenceID      string  `json:"sequence_id"`
		GcodeState      string  `json:"gcode_state"`
		GcodeFile       string  `json:"gcode_file"`
		SubtaskName     string  `json:"subtask_name"`
		McPercent       int     `json:"mc_percent"`
		McRemainingTime int     `json:"mc_remaining_time"`
		NozzleTemper    float64 `json:"nozzle_temper"`
		BedTemper       float64 `json:"bed_temper"`
		LayerNum        int     `json:"layer_num"`
		TotalLayerNum   int     `json:"total_layer_num"`
	} `json:"print"`
}

func (p *PluginPrinter) report() Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	var r Report
	r.Print.Command, r.Print.SequenceID = "push_status", "0"
	r.Print.GcodeState = gcodeState(p.state)
	r.Print.GcodeFile = path.Base(p.file)
	r.Print.SubtaskName = strings.TrimSuffix(path.Base(p.file), path.Ext(p.file))
	if p.file == "" {
		r.Print.GcodeFile, r.Print.SubtaskName = "", ""
	}
	r.Print.McPercent = int(p.progress)
	r.Print.NozzleTemper, r.Print.BedTemper = 24, 23
	if p.state == "printing" || p.state == "paused" {
		r.Print.NozzleTemper, r.Print.BedTemper, r.Print.TotalLayerNum, r.Print.McRemainingTime = 220, 60, 100, 42
	}
	return r
}

// publishReport publishes the full state on device/<serial>/report, as the printer does on pushall and on
// every state change.
func (p *PluginPrinter) publishReport() {
	if p.broker == nil {
		return
	}
	b, err := json.Marshal(p.report())
	if err != nil {
		return
	}
	_ = p.broker.Publish("device/"+p.opts.Serial+"/report", b, false, 0)
}

// setState moves the print to state if it is in one of from (any when from is empty); it reports whether it did.
func (p *PluginPrinter) setState(state string, from ...string) bool {
	p.mu.Lock()
	if len(from) > 0 && !slices.Contains(from, p.state) {
		p.mu.Unlock()
		return false
	}
	p.state = state
	p.mu.Unlock()
	p.publishReport()
	return true
}

// State is the plugin's JobStatus.State now.
func (p *PluginPrinter) State() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Starts returns the VirtualPath of every print started so far, in order.
func (p *PluginPrinter) Starts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.starts)
}

// Commands returns every command-API call received ("GET status", "PUT files/upload", ...), in order.
func (p *PluginPrinter) Commands() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.commands)
}

// MQTTRequests returns every payload the printer received on device/<serial>/request, in order.
func (p *PluginPrinter) MQTTRequests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.mqttReqs)
}

// File returns what was stored at a VirtualPath ("gcode/name.3mf"), and whether anything was.
func (p *PluginPrinter) File(virtualPath string) (Upload, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.files[virtualPath]
	return u, ok
}

// SetMQTTFailure makes the plugin's MQTT connection to the printer fail with an OE code (e.g. 601): open MQTT
// proxy WebSockets are closed with it and new ones are closed at once after the handshake. 0 heals it.
// How the real proxy puts the code in the close frame is undocumented (research §3.6); the sim closes with
// status 4000+code and the reason "<code> <meaning>", and clients should read both.
func (p *PluginPrinter) SetMQTTFailure(code int) {
	p.mu.Lock()
	p.mqttFail = code
	var open []*websocket.Conn
	if code != 0 {
		for c := range p.sockets {
			open = append(open, c)
		}
	}
	p.mu.Unlock()
	for _, c := range open {
		closeWithOECode(c, code)
	}
}

func closeWithOECode(c *websocket.Conn, code int) {
	_ = c.Close(websocket.StatusCode(4000+code), fmt.Sprintf("%d printer MQTT connection failed", code))
}

// Close ends streams and MQTT proxy sessions, stops the broker and removes a temporary storage directory.
func (p *PluginPrinter) Close() {
	p.life.close()
	if p.broker != nil {
		_ = p.broker.Close()
	}
	if p.ownDir {
		_ = os.RemoveAll(p.dir)
	}
}

// envelope answers the command APIs' JSON: HTTP 200 with {"Status":200,"Result":...} or {"Status":code,"Error":...}.
func envelope(w http.ResponseWriter, status int, result any, errMsg string) {
	if status == http.StatusOK {
		writeJSON(w, http.StatusOK, map[string]any{"Status": status, "Result": result})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"Status": status, "Error": errMsg})
}

// ServeHTTP routes the command APIs; any other path is the printer's own port 80 (Bambu: nothing there) or its
// SDCP WebSocket (Elegoo).
func (p *PluginPrinter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cmd, ok := strings.CutPrefix(r.URL.Path, CommandAPIPrefix)
	if !ok {
		switch {
		case p.opts.Platform == PlatformElegoo && r.URL.Path == "/websocket":
			p.serveSDCP(w, r)
		case p.opts.Platform == PlatformElegoo && r.URL.Path == "/":
			// The printer's own page on 3030; OrcaSlicer's ElegooLink test looks for "ELEGOO" in it.
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = fmt.Fprintf(w, "<!doctype html><title>ELEGOO %s</title><p>ELEGOO %s (simulated): SDCP on /websocket</p>\n", p.opts.Name, p.opts.Name)
		case r.URL.Path == "/" && p.opts.PrinterID != "":
			// The companion's optional local web API (research §6.3), which printer-ID discovery asks.
			NewCompanionAPI(p.opts.PrinterID).ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
		return
	}
	cmd = strings.ToLower(strings.Trim(cmd, "/"))
	p.mu.Lock()
	p.commands = append(p.commands, r.Method+" "+cmd)
	p.mu.Unlock()
	switch cmd {
	case "ping":
		envelope(w, http.StatusOK, map[string]string{"Message": "Pong"}, "")
	case "status":
		envelope(w, http.StatusOK, p.status(), "")
	case "webcam/list", "list-webcam":
		envelope(w, http.StatusOK, p.webcams(), "")
	case "webcam/snapshot":
		p.snapshot(w, r)
	case "webcam/stream":
		p.stream(w, r)
	case "files/list":
		envelope(w, http.StatusOK, p.fileList(), "")
	case "files/upload":
		p.upload(w, r)
	case "files/download":
		p.download(w, r)
	case "files/delete":
		p.deleteFile(w, r)
	case "start", "pause", "resume", "cancel":
		p.control(w, r, cmd)
	case "proxy/mqtt":
		p.serveMQTTProxy(w, r)
	default:
		envelope(w, PluginUnknownCommand, nil, "unknown command")
	}
}

// Features is the status bitmask: 1 light, 2 axis move, 4 homing, 8 extrusion, 16 temperature, 32 print start.
const pluginFeatures = 1 | 2 | 4 | 8 | 16 | 32

func (p *PluginPrinter) status() map[string]any {
	p.mu.Lock()
	state, file, progress := p.state, p.file, p.progress
	p.mu.Unlock()
	name := strings.TrimSuffix(path.Base(file), path.Ext(file))
	if file == "" {
		name = ""
	}
	hot, bed := 24.0, 23.0
	if state == "printing" || state == "paused" {
		hot, bed = 220, 60
	}
	return map[string]any{
		"JobStatus": map[string]any{
			"State": state, "SubState": nil, "Error": nil, "Lights": []map[string]any{{"Name": "chamber", "On": true}},
			"CurrentPrint": map[string]any{
				"Progress": progress, "DurationSec": 0, "TimeLeftSec": 0, "FileName": name,
				"EstTotalFilUsedMm": 0, "EstTotalFilWeightMg": 0, "CurrentLayer": 0, "TotalLayers": 100,
				"Temps": map[string]any{"BedActual": bed, "BedTarget": bed, "HotendActual": hot, "HotendTarget": hot},
			},
		},
		"OctoEverywhereStatus": map[string]any{"MostRecentPrintIdStr": "", "PrintStartTimeSec": 0, "Gadget": map[string]any{}},
		"PlatformVersion":      p.version,
		"Features":             pluginFeatures,
		"ListWebcams":          p.webcams(),
	}
}

func (p *PluginPrinter) webcams() map[string]any {
	t := p.opts.WebcamTransform
	rot := 0
	for _, f := range strings.Fields(t) {
		if v, ok := strings.CutPrefix(f, "rotate="); ok {
			rot, _ = strconv.Atoi(v)
		}
	}
	return map[string]any{"DefaultIndex": 0, "Webcams": []map[string]any{{
		"Name": "Chamber", "FlipH": strings.Contains(t, "fliph"), "FlipV": strings.Contains(t, "flipv"),
		"Rotation": rot, "Enabled": true, "SnapshotUrl": "", "StreamUrl": "",
	}}}
}

func (p *PluginPrinter) transformHeader(h http.Header) {
	t := strings.TrimSpace(p.opts.WebcamTransform)
	if t == "" {
		t = "none"
	}
	h.Set("x-oe-webcam-transform", t)
}

// webcamIndex checks ?index= (default 0); the sim has one webcam.
func webcamIndex(w http.ResponseWriter, r *http.Request) bool {
	if v := r.URL.Query().Get("index"); v != "" && v != "0" {
		http.Error(w, "no webcam at that index", http.StatusNotFound)
		return false
	}
	return true
}

func (p *PluginPrinter) snapshot(w http.ResponseWriter, r *http.Request) {
	if !webcamIndex(w, r) {
		return
	}
	b := jpegFrame(int(time.Since(p.start) / p.opts.FrameInterval))
	p.transformHeader(w.Header())
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

func (p *PluginPrinter) stream(w http.ResponseWriter, r *http.Request) {
	if !webcamIndex(w, r) {
		return
	}
	ctx, done, ok := p.life.begin(r.Context())
	if !ok {
		http.Error(w, "webcam stopped", http.StatusServiceUnavailable)
		return
	}
	defer done()
	rc := http.NewResponseController(w)
	stop := context.AfterFunc(ctx, func() { _ = rc.SetWriteDeadline(time.Now()) })
	defer stop()
	p.transformHeader(w.Header())
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+pluginBoundary)
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(p.opts.FrameInterval)
	defer tick.Stop()
	for n := 0; ; n++ {
		frame := jpegFrame(n)
		if _, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", pluginBoundary, len(frame)); err != nil {
			return
		}
		if _, err := w.Write(frame); err != nil {
			return
		}
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// virtualPath checks a files API path: under the gcode virtual root, one level, no dot segments.
func virtualPath(raw string) (string, bool) {
	name, ok := strings.CutPrefix(raw, "gcode/")
	if !ok || name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return "", false
	}
	return "gcode/" + name, true
}

func (p *PluginPrinter) fileList() map[string]any {
	p.mu.Lock()
	names := make([]string, 0, len(p.files))
	for k := range p.files {
		names = append(names, k)
	}
	slices.Sort(names)
	children := make([]map[string]any, 0, len(names))
	for _, k := range names {
		u := p.files[k]
		children = append(children, map[string]any{
			"Type": "file", "Name": u.Filename, "Path": k, "PlatformPath": u.Filename,
			"SizeBytes": u.Size, "ModifiedTimeSec": float64(time.Now().Unix()), "Permissions": "rw",
		})
	}
	p.mu.Unlock()
	return map[string]any{"Root": []map[string]any{{"Type": "folder", "Name": "gcode", "VirtualPath": "gcode", "Children": children}}}
}

// upload stores the raw request body at ?path= (the relay has already taken the whole body, store and forward).
func (p *PluginPrinter) upload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		envelope(w, PluginArgParseFailure, nil, "files/upload needs PUT with the file as the body")
		return
	}
	vp, ok := virtualPath(r.URL.Query().Get("path"))
	if !ok {
		envelope(w, PluginArgParseFailure, nil, "path must be a file under the gcode virtual root, like gcode/name.3mf")
		return
	}
	f, err := os.CreateTemp(p.dir, "upload-")
	if err != nil {
		envelope(w, PluginExecutionFailure, nil, "printer storage unavailable")
		return
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r.Body)
	cerr := f.Close()
	if err != nil || cerr != nil {
		_ = os.Remove(f.Name())
		envelope(w, PluginExecutionFailure, nil, "upload broke off")
		return
	}
	name := strings.TrimPrefix(vp, "gcode/")
	if err := os.Rename(f.Name(), filepath.Join(p.dir, name)); err != nil {
		_ = os.Remove(f.Name())
		envelope(w, PluginExecutionFailure, nil, "printer storage unavailable")
		return
	}
	u := Upload{Path: "gcode", Filename: name, Root: "gcode", Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), ContentLength: r.ContentLength}
	p.mu.Lock()
	p.files[vp] = u
	p.mu.Unlock()
	envelope(w, http.StatusOK, map[string]any{"VirtualPath": vp, "PlatformPath": name, "SizeBytes": n, "PrinterResponse": map[string]any{}}, "")
}

func (p *PluginPrinter) download(w http.ResponseWriter, r *http.Request) {
	vp, ok := virtualPath(r.URL.Query().Get("path"))
	if !ok {
		envelope(w, PluginArgParseFailure, nil, "path must be a file under the gcode virtual root")
		return
	}
	p.mu.Lock()
	_, known := p.files[vp]
	p.mu.Unlock()
	if !known {
		// A raw endpoint: a real HTTP status with the common error body (research §7).
		writeJSON(w, http.StatusNotFound, map[string]any{"Status": http.StatusNotFound, "Error": "file not found"})
		return
	}
	http.ServeFile(w, r, filepath.Join(p.dir, strings.TrimPrefix(vp, "gcode/")))
}

func (p *PluginPrinter) deleteFile(w http.ResponseWriter, r *http.Request) {
	vp, ok := virtualPath(r.URL.Query().Get("path"))
	p.mu.Lock()
	_, known := p.files[vp]
	delete(p.files, vp)
	p.mu.Unlock()
	if !ok || !known {
		envelope(w, http.StatusNotFound, nil, "file not found")
		return
	}
	_ = os.Remove(filepath.Join(p.dir, strings.TrimPrefix(vp, "gcode/")))
	envelope(w, http.StatusOK, map[string]any{"VirtualPath": vp, "PlatformPath": strings.TrimPrefix(vp, "gcode/"), "PrinterResponse": map[string]any{}}, "")
}

// control runs start (body {"Path":"<VirtualPath>"}: the start body is undocumented; our choice), pause, resume
// and cancel, answering 786 when the printer's state does not allow the command.
func (p *PluginPrinter) control(w http.ResponseWriter, r *http.Request, cmd string) {
	if r.Method != http.MethodPost {
		envelope(w, PluginArgParseFailure, nil, cmd+" needs POST")
		return
	}
	switch cmd {
	case "start":
		var body struct{ Path string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil {
			envelope(w, PluginArgParseFailure, nil, "start needs a JSON body {\"Path\":\"gcode/<file>\"}")
			return
		}
		vp, ok := virtualPath(body.Path)
		p.mu.Lock()
		_, known := p.files[vp]
		busy := p.state == "printing" || p.state == "paused"
		if ok && known && !busy {
			p.state, p.file, p.progress = "printing", vp, 0
			p.starts = append(p.starts, vp)
		}
		p.mu.Unlock()
		switch {
		case !ok || !known:
			envelope(w, http.StatusNotFound, nil, "file not found")
			return
		case busy:
			envelope(w, PluginInvalidState, nil, "Printer is already printing.")
			return
		}
		p.publishReport()
	case "pause":
		if !p.setState("paused", "printing") {
			envelope(w, PluginInvalidState, nil, "Printer state is not printing.")
			return
		}
	case "resume":
		if !p.setState("printing", "paused") {
			envelope(w, PluginInvalidState, nil, "Printer state is not paused.")
			return
		}
	case "cancel":
		if !p.setState("cancelled", "printing", "paused") {
			envelope(w, PluginInvalidState, nil, "Printer state is not printing.")
			return
		}
	}
	envelope(w, http.StatusOK, map[string]any{}, "")
}

// serveMQTTProxy is the plugin's MQTT-over-WebSocket proxy (MQTT 3.1.1, subprotocol mqtt, binary frames): each
// WebSocket becomes one client of the printer's broker. The real plugin terminates MQTT itself and shares one
// printer connection among its clients; an in-process broker behaves the same way toward each client.
func (p *PluginPrinter) serveMQTTProxy(w http.ResponseWriter, r *http.Request) {
	if p.broker == nil {
		envelope(w, PluginNotSupported, nil, "this printer has no MQTT server")
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{"mqtt"}, InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	ctx, done, ok := p.life.begin(r.Context())
	if !ok {
		_ = c.Close(websocket.StatusGoingAway, "plugin stopping")
		return
	}
	defer done()
	p.mu.Lock()
	fail := p.mqttFail
	if fail == 0 {
		p.sockets[c] = struct{}{}
	}
	p.mu.Unlock()
	if fail != 0 {
		closeWithOECode(c, fail)
		return
	}
	defer func() {
		p.mu.Lock()
		delete(p.sockets, c)
		p.mu.Unlock()
	}()
	conn := websocket.NetConn(ctx, c, websocket.MessageBinary)
	stop := context.AfterFunc(ctx, func() { _ = c.CloseNow() })
	defer stop()
	if err := p.broker.EstablishConnection("oe-plugin", conn); err != nil && !errors.Is(err, io.EOF) {
		p.log.Debug("MQTT proxy client ended", zap.Error(err))
	}
	_ = conn.Close()
}

// serveSDCP is a small SDCP v3 WebSocket (Elegoo): "ping" → "pong", and any JSON request on
// sdcp/request/<MainboardID> answered on sdcp/response/<MainboardID> with Ack 0.
func (p *PluginPrinter) serveSDCP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	ctx, done, ok := p.life.begin(r.Context())
	if !ok {
		_ = c.Close(websocket.StatusGoingAway, "printer stopping")
		return
	}
	defer done()
	defer c.CloseNow()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if string(msg) == "ping" {
			if c.Write(ctx, websocket.MessageText, []byte("pong")) != nil {
				return
			}
			continue
		}
		var req struct {
			Data struct {
				Cmd         int
				RequestID   string
				MainboardID string
			}
			Topic string
		}
		if json.Unmarshal(msg, &req) != nil {
			continue
		}
		resp, _ := json.Marshal(map[string]any{
			"Id": "", "Topic": "sdcp/response/" + p.opts.Serial,
			"Data": map[string]any{"Cmd": req.Data.Cmd, "RequestID": req.Data.RequestID, "MainboardID": p.opts.Serial,
				"Data": map[string]any{"Ack": 0}},
		})
		if c.Write(ctx, websocket.MessageText, resp) != nil {
			return
		}
	}
}

package oesim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/oesim/printer"
)

// PrinterKind says which printer software a simulated printer runs, and so how the relay routes paths (§3.4).
type PrinterKind int

const (
	// KindOctoPrint: every path goes to the one OctoPrint server.
	KindOctoPrint PrinterKind = iota
	// KindMoonraker: /websocket, /printer/, /api/, /access/, /machine/, /server/ and /debug/ go to Moonraker's
	// API server, every other path to the Mainsail-like frontend.
	KindMoonraker
	// KindGeneric: every path goes to PrinterOptions.Handler (required).
	KindGeneric
	// KindBambu: a Bambu Lab printer behind the "Bambu Connect" companion. It has no HTTP server: the plugin
	// command APIs (printer.PluginPrinter) and the MQTT proxy in front of its broker are all there is.
	KindBambu
	// KindElegoo: an Elegoo Centauri Carbon behind "Elegoo Connect": the plugin command APIs, and its SDCP
	// WebSocket on /websocket (no MQTT proxy: that is the CC2's).
	KindElegoo
)

func (k PrinterKind) String() string {
	switch k {
	case KindOctoPrint:
		return "octoprint"
	case KindMoonraker:
		return "moonraker"
	case KindGeneric:
		return "generic"
	case KindBambu:
		return "bambu"
	case KindElegoo:
		return "elegoo"
	}
	return fmt.Sprintf("PrinterKind(%d)", int(k))
}

// PrinterOptions describes one simulated printer.
type PrinterOptions struct {
	Name string
	Kind PrinterKind
	// ID is the OctoEverywhere printer id; default 60 random [A-Z0-9] (the plugin's format).
	ID string
	// APIKey is the X-Api-Key the printer requires when set. The portal hands it out as octoPrintApiKey (the
	// built-in OctoPrint knows one key only); when empty the portal mints a fresh random key.
	APIKey string
	// LocalIP is reported as printerLastKnownLocalIp and PrinterLocalIp; default "127.0.0.1", where the
	// backend really listens.
	LocalIP string
	// Handler replaces the built-in backend (e.g. go-httpbin for differential tests); Kind then only affects
	// routing. For KindMoonraker it serves the API paths.
	Handler http.Handler
	// Frontend is the Moonraker kind's Mainsail-like frontend; default the built-in one.
	Frontend http.Handler
	// FrameInterval is the built-in webcam's frame period; default 200 ms.
	FrameInterval time.Duration
	// LAN makes the printer answer on its LAN address too: 127.0.0.2 on a port of its own (Printer.LANURL), with
	// the same backend the relay reaches and no relay in between (see SetLAN). LocalIP then defaults to 127.0.0.2.
	LAN bool
	// Companion, with LAN, runs the OctoEverywhere companion's optional local web API on the LAN as well
	// (127.0.0.2 on a port of its own, Printer.CompanionURL; research §6.3: GET on any path answers the printer
	// id), as a companion with local_web_api_port set does. SetLAN switches it with the printer: an impostor
	// network's companion serves another printer (or copies the id); LANGone refuses.
	Companion bool
	// Serial is the Bambu serial number (MQTT topics device/<Serial>/...), for KindBambu and KindElegoo.
	Serial string
	// WebcamTransform is the x-oe-webcam-transform the plugin reports (KindBambu, KindElegoo), e.g. "flipv rotate=90".
	WebcamTransform string
}

// Printer is one simulated printer and its plugin's connection to OctoEverywhere.
type Printer struct {
	ID, Name string
	Kind     PrinterKind
	// BackendURL is the printer's "LAN address" (http://127.0.0.1:port): OctoPrint, Moonraker's API, or Handler.
	// FrontendURL is the Moonraker kind's frontend; empty for other kinds.
	BackendURL, FrontendURL string
	// LANURL is http://127.0.0.2:port with PrinterOptions.LAN: every path of the printer, as the relay routes
	// them, without the relay. Empty without LAN.
	LANURL string
	// CompanionURL is the companion's local web API with PrinterOptions.Companion; empty otherwise.
	CompanionURL string

	sim       *Sim
	apiKey    string
	localIP   string
	backend   *url.URL
	frontend  *url.URL
	octo      *printer.OctoPrint
	moon      *printer.Moonraker
	plugin    *printer.PluginPrinter
	servers   []*http.Server
	lan       *lanSide
	companion *lanSide

	mu             sync.Mutex
	online         bool
	printing       bool
	lastConnect    time.Time
	lastDisconnect time.Time
}

// AddPrinter starts a printer's backend server(s) on 127.0.0.1 and brings its plugin online.
func (s *Sim) AddPrinter(o PrinterOptions) (*Printer, error) {
	if o.Kind < KindOctoPrint || o.Kind > KindElegoo {
		return nil, fmt.Errorf("oesim: printer %q: unknown kind %d: use KindOctoPrint, KindMoonraker, KindGeneric, KindBambu or KindElegoo", o.Name, int(o.Kind))
	}
	if o.Kind == KindGeneric && o.Handler == nil {
		return nil, fmt.Errorf("oesim: printer %q: KindGeneric needs PrinterOptions.Handler", o.Name)
	}
	if o.Companion && !o.LAN {
		return nil, fmt.Errorf("oesim: printer %q: Companion needs LAN (the companion answers on the LAN address)", o.Name)
	}
	if o.ID == "" {
		o.ID = randomString(60, upperAlnum)
	}
	if o.Name == "" {
		o.Name = "Printer " + o.ID[:6]
	}
	if o.LocalIP == "" {
		o.LocalIP = "127.0.0.1"
		if o.LAN {
			o.LocalIP = LANAddr
		}
	}
	p := &Printer{
		ID: o.ID, Name: o.Name, Kind: o.Kind,
		sim: s, apiKey: o.APIKey, localIP: o.LocalIP,
		online: true, lastConnect: time.Now(),
	}
	logger := s.log.Named("printer").With(zap.String("printer", o.Name))

	main, front := o.Handler, http.Handler(nil)
	switch o.Kind {
	case KindOctoPrint:
		if main == nil {
			p.octo = printer.NewOctoPrint(printer.OctoPrintOptions{
				Name: o.Name, PrinterID: o.ID, APIKey: o.APIKey, FrameInterval: o.FrameInterval, Logger: logger,
			})
			main = p.octo
		}
	case KindMoonraker:
		front = o.Frontend
		if main == nil || front == nil {
			p.moon = printer.NewMoonraker(printer.MoonrakerOptions{
				Name: o.Name, PrinterID: o.ID, APIKey: o.APIKey, FrameInterval: o.FrameInterval, Logger: logger,
			})
			if main == nil {
				main = p.moon.API()
			}
			if front == nil {
				front = p.moon.Frontend()
			}
		}
	case KindBambu, KindElegoo:
		if main == nil {
			platform := printer.PlatformBambu
			if o.Kind == KindElegoo {
				platform = printer.PlatformElegoo
			}
			var err error
			p.plugin, err = printer.NewPluginPrinter(printer.PluginOptions{
				Platform: platform, Name: o.Name, PrinterID: o.ID, Serial: o.Serial,
				WebcamTransform: o.WebcamTransform, FrameInterval: o.FrameInterval, Logger: logger,
			})
			if err != nil {
				return nil, fmt.Errorf("oesim: printer %q: %w", o.Name, err)
			}
			main = p.plugin
		}
	}

	var err error
	if p.backend, err = s.serveBackend(p, main); err == nil && front != nil {
		p.frontend, err = s.serveBackend(p, front)
	}
	if err == nil && o.LAN {
		err = s.startLAN(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p.Kind == KindMoonraker && front != nil && !isMoonrakerAPIPath(r.URL.Path) {
				front.ServeHTTP(w, r)
				return
			}
			main.ServeHTTP(w, r)
		}), o.Companion)
	}
	if err != nil {
		p.close()
		return nil, err
	}
	p.BackendURL = p.backend.String()
	if p.frontend != nil {
		p.FrontendURL = p.frontend.String()
	}

	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.printers = append(s.printers, p)
	}
	s.mu.Unlock()
	if closed {
		p.close()
		return nil, errors.New("oesim: AddPrinter after Close")
	}
	return p, nil
}

// serveBackend runs h as a plain-HTTP server on 127.0.0.1:0, the printer's "LAN address".
func (s *Sim) serveBackend(p *Printer, h http.Handler) (*url.URL, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("oesim: printer %q: listen on 127.0.0.1: %w", p.Name, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ErrorLog:          zap.NewStdLog(s.log.Named("backend")),
	}
	p.servers = append(p.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = srv.Serve(ln)
	}()
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}, nil
}

func (p *Printer) close() {
	if p.lan != nil {
		p.lan.close()
	}
	if p.companion != nil {
		p.companion.close()
	}
	for _, srv := range p.servers {
		_ = srv.Close()
	}
	if p.octo != nil {
		p.octo.Close()
	}
	if p.moon != nil {
		p.moon.Close()
	}
	if p.plugin != nil {
		p.plugin.Close()
	}
}

// target is where the plugin sends a relayed path (§3.4 routing).
func (p *Printer) target(path string) *url.URL {
	if p.Kind == KindMoonraker && p.frontend != nil && !isMoonrakerAPIPath(path) {
		return p.frontend
	}
	return p.backend
}

var moonrakerAPIPrefixes = []string{"/websocket", "/printer/", "/api/", "/access/", "/machine/", "/server/", "/debug/"}

// isMoonrakerAPIPath is the plugin's moonrakerapirouter rule: these paths go straight to Moonraker.
func isMoonrakerAPIPath(path string) bool {
	for _, pre := range moonrakerAPIPrefixes {
		if strings.HasPrefix(path, pre) {
			return true
		}
	}
	return false
}

// SetOnline connects or disconnects the printer's plugin. Offline, every relay request of its connections gets
// 601, their WebSockets are closed (as when the plugin drops), and Info reports IsOnline false.
func (p *Printer) SetOnline(online bool) {
	p.mu.Lock()
	changed := p.online != online
	p.online = online
	if changed && online {
		p.lastConnect = time.Now()
	} else if changed {
		p.lastDisconnect = time.Now()
	}
	p.mu.Unlock()
	if changed && !online {
		for _, c := range p.sim.Connections() {
			if c.printer == p {
				c.closeWebSockets(true)
			}
		}
	}
}

// SetPrinting says whether a print is running (Live Links with EndWhenCurrentPrintIsComplete need one).
func (p *Printer) SetPrinting(printing bool) {
	p.mu.Lock()
	p.printing = printing
	p.mu.Unlock()
}

func (p *Printer) state() (online, printing bool, lastConnect, lastDisconnect time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.online, p.printing, p.lastConnect, p.lastDisconnect
}

// OctoPrint is the built-in OctoPrint backend; nil unless KindOctoPrint without a Handler.
func (p *Printer) OctoPrint() *printer.OctoPrint { return p.octo }

// Moonraker is the built-in Moonraker backend; nil unless KindMoonraker uses it (for the API or the frontend).
func (p *Printer) Moonraker() *printer.Moonraker { return p.moon }

// Plugin is the built-in Bambu or Elegoo printer behind the OctoEverywhere companion plugin; nil for other kinds.
func (p *Printer) Plugin() *printer.PluginPrinter { return p.plugin }

// Printers returns the printers in the order they were added.
func (s *Sim) Printers() []*Printer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Printer(nil), s.printers...)
}

// userFacingURL is the OctoEverywhere page of the printer (needs the user's login, not app auth).
func (s *Sim) userFacingURL(p *Printer) string {
	return "https://" + s.Domain + "/view/" + url.PathEscape(p.Name)
}

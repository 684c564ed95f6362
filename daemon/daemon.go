package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/admin"
	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/mqttbridge"
	"github.com/oeproxy/oeproxy/proxy"
)

// Options configure a Daemon.
type Options struct {
	Config config.Config
	// Store must already be open: serve takes the store's lock before binding any port, so a second daemon on
	// the same data directory fails on the lock, not on a port.
	Store  *credstore.Store
	Logger *zap.Logger
	// Transport reaches OctoEverywhere (oenet.Options.Transport()).
	Transport http.RoundTripper
	// WebSocketTransport carries WebSocket handshakes to the relays (oenet.Options.WebSocketTransport());
	// default Transport.
	WebSocketTransport http.RoundTripper
	// Ready, when set, is called once every listener is up.
	Ready func(*Daemon)
	// API calls the App APIs; default: a client of octoeverywhere.api_url over Transport.
	API *appapi.Client
	// Health is the template of every printer's health tracker (timings, clock); Name, API, Store and Logger are
	// filled in per printer.
	Health health.Options
}

// Daemon serves every stored printer on its own port, plus the control socket and the admin listener.
type Daemon struct {
	o       Options
	log     *zap.Logger
	control *Printers

	mu       sync.Mutex
	printers map[string]*printerServer
	unserved map[string]*unserved // stored printers without a listener, with why (unserved.go)
	retryNow chan struct{}        // closed and replaced to make every unserved printer try again
	quit     chan struct{}        // closed when Run starts shutting down
	closing  bool
	wg       sync.WaitGroup

	adminAddr string

	// Service parts: metrics.go, reload.go, adminpage.go.
	metrics  *Metrics
	live     atomic.Pointer[config.Config] // the configuration in effect after Reload (nil: Options.Config)
	reloadMu sync.Mutex
	admin    *admin.Page

	// connBudget is shared by every printer listener (newConnBudget; nil: no limit).
	connBudget chan struct{}

	routing routing // routing.go

	// spool holds stored uploads (uploads.go); uploads is the same spool when upload.answer_when_stored is on,
	// the one the handlers get.
	spool, uploads *proxy.UploadSpool
}

type printerServer struct {
	rec     credstore.Record
	addr    string
	srv     *http.Server
	handler *printerHandler
	done    chan struct{}
	health  *health.Health
	// stopHealth ends the health poller and the webhook renewal, and waits for them.
	stopHealth func()
	// mqtt is the printer's MQTT bridge (bambu.go); nil without one.
	mqttMu sync.Mutex
	mqtt   *mqttbridge.Bridge
}

// New checks the options. Nothing is bound until Run.
func New(o Options) (*Daemon, error) {
	if o.Store == nil || o.Transport == nil {
		return nil, errors.New("daemon: Store and Transport are required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.API == nil {
		api, err := appapi.New(appapi.Options{BaseURL: o.Config.OctoEverywhere.APIURL, Transport: o.Transport, Logger: o.Logger.Named("appapi")})
		if err != nil {
			return nil, err
		}
		o.API = api
	}
	d := &Daemon{o: o, log: o.Logger, printers: map[string]*printerServer{}, unserved: map[string]*unserved{},
		retryNow: make(chan struct{}), quit: make(chan struct{}), connBudget: newConnBudget(o.Logger)}
	d.metrics = newMetrics(d)
	d.control = &Printers{
		Store: o.Store, PortBase: o.Config.Listen.PortBase, ListenHost: o.Config.Listen.Host,
		RelayDomain: o.Config.OctoEverywhere.RelayDomain,
		OnAdd:       d.servePrinter,
		OnRemove:    d.unservePrinter,
		OnChange:    d.changePrinter,
		NotServed:   d.NotServed,
		Uploads:     d.uploadsOf,
		API:         o.API,
		Health:      d.healthOf,
		// LAN-first routing (routing.go).
		DefaultRoute: func() string { return d.cfg().Route }, Routes: d.routeStatus, OnLANChange: d.setLANRoute,
		// Bambu Lab and Elegoo (bambu.go): the platform from the plugin, and MQTT bridges turned on and off.
		DetectPlatform: d.detectPlatform,
		OnMQTT:         d.setMQTT,
	}
	return d, nil
}

// Control is the daemon's Control (the same one the socket serves).
func (d *Daemon) Control() control.Control { return d.control }

// SocketPath is where the control socket lives.
func (d *Daemon) SocketPath() string { return control.SocketPath(d.o.Config.DataDir) }

// PrinterAddr returns the address a printer's listener is bound to ("" when not serving).
func (d *Daemon) PrinterAddr(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.printers[name]; p != nil {
		return p.addr
	}
	return ""
}

// AdminAddr is the bound admin address.
func (d *Daemon) AdminAddr() string { return d.adminAddr }

// Run serves until ctx ends, then drains in-flight requests for shutdown_grace.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.o.Config
	if !config.IsLoopbackHost(cfg.Listen.Host) {
		d.log.Warn("printer listeners bind beyond loopback: anyone who can reach these ports controls the printers",
			zap.String("listen.host", cfg.Listen.Host))
	}
	if cfg.OctoEverywhere.AppID == config.DevTestAppID {
		d.log.Info("using OctoEverywhere's public test App ID devtest", zap.String("key", "octoeverywhere.app_id"))
	}

	ctl, err := control.Listen(d.SocketPath())
	if err != nil {
		return err
	}
	ctlSrv := &http.Server{Handler: control.Handler(d.control), ReadHeaderTimeout: 10 * time.Second}

	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		ctl.Close()
		return fmt.Errorf("admin listener %s: %w (set admin.listen to a free address)", cfg.Admin.Listen, err)
	}
	d.adminAddr = adminLn.Addr().String()
	adminSrv := &http.Server{Handler: d.adminPage(), ReadHeaderTimeout: 10 * time.Second}
	d.goServe("admin", func() error { return adminSrv.Serve(adminLn) })

	if err := d.openUploads(cfg.Upload); err != nil {
		ctl.Close()
		adminSrv.Close()
		return err
	}
	recs, damaged, err := d.o.Store.Scan()
	if err != nil {
		ctl.Close()
		adminSrv.Close()
		return err
	}
	for _, bad := range damaged {
		// One unreadable record must not take the other printers down: it is reported and the rest are served.
		d.log.Error("printer record cannot be read; it is not served", zap.String("record", bad.Name),
			zap.String("cause", bad.Cause), zap.String("fix", bad.Fix()))
	}
	for _, r := range recs {
		if err := d.servePrinter(r); err != nil {
			d.log.Error("printer not served", zap.String("printer", r.Name), zap.Error(err))
		}
	}
	// The control socket answers only now: a client (or a test) that reached it finds every printer port bound.
	// Its listener was opened first, so a ping during start-up waits in the backlog instead of being refused.
	d.goServe("control", func() error { return ctlSrv.Serve(ctl) })
	d.log.Info("oeproxy serving", zap.Int("printers", len(recs)), zap.String("admin", "http://"+d.adminAddr),
		zap.String("control_socket", d.SocketPath()))
	if d.o.Ready != nil {
		d.o.Ready(d)
	}

	<-ctx.Done()
	close(d.quit)
	cfg = d.cfg() // shutdown_grace may have been reloaded
	d.log.Info("shutting down: draining in-flight requests", zap.Duration("grace", cfg.ShutdownGrace))
	grace, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	d.mu.Lock()
	d.closing = true
	servers := make([]*printerServer, 0, len(d.printers))
	for _, p := range d.printers {
		servers = append(servers, p)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.shutdownPrinter(grace, p)
		}()
	}
	wg.Wait()
	d.closeUploads(grace)
	_ = ctlSrv.Shutdown(grace)
	_ = adminSrv.Shutdown(grace)
	d.admin.Close()
	d.wg.Wait()
	d.routing.close()
	d.log.Info("oeproxy stopped")
	return nil
}

func (d *Daemon) goServe(what string, serve func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			d.log.Error("listener stopped", zap.String("listener", what), zap.Error(err))
		}
	}()
}

// MaxHeaderBytes is the request header size a printer listener accepts: 64 KiB, what Tornado (OctoPrint,
// Moonraker) accepts itself, and far more than any slicer or printer UI sends (a few KiB with cookies). With
// 1 MiB, a few hundred connections holding unfinished headers took hundreds of MiB.
const MaxHeaderBytes = 64 << 10

// startPrinter binds the printer's port and serves its proxy handler. A busy port fails only this printer.
func (d *Daemon) startPrinter(rec credstore.Record) error {
	cfg := d.cfg()
	relay, err := url.Parse(rec.URL)
	if err != nil {
		return fmt.Errorf("stored relay URL of %q does not parse: %w (remove and connect the printer again)", rec.Name, err)
	}
	addr := net.JoinHostPort(cfg.Listen.Host, strconv.Itoa(rec.Port))
	tracker := d.newHealth(rec.Name)
	h, err := d.newPrinterHandler(rec, relay, addr, tracker)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		h.Close()
		return errors.New("daemon is shutting down")
	}
	if _, ok := d.printers[rec.Name]; ok {
		h.Close()
		return fmt.Errorf("printer %q is already served", rec.Name)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		h.Close()
		return fmt.Errorf("port %d for printer %q is busy or not allowed: %w (free it, or give the printer another port with `oeproxy remove %s` and `oeproxy connect --port`)", rec.Port, rec.Name, err, rec.Name)
	}
	addrStr := l.Addr().String()
	// A cap per port, and the shared budget, so that one port flooded with connections cannot take the memory or
	// the file descriptors the other printers, the admin page and the control socket need.
	l = newLimitListener(l, cfg.Listen.MaxConnections, d.connBudget)
	ps := &printerServer{rec: rec, addr: addrStr, handler: h, done: make(chan struct{}), health: tracker,
		stopHealth: d.runHealth(tracker, d.newRenewer(rec.Name)),
		srv: &http.Server{
			Handler: d.metrics.wrap(rec.Name, h),
			// No ReadTimeout/WriteTimeout: uploads and webcam streams last as long as they last.
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          zap.NewStdLog(d.log.With(zap.String("printer", rec.Name))),
		}}
	d.printers[rec.Name] = ps
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(ps.done)
		if err := ps.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("printer listener stopped", zap.String("printer", rec.Name), zap.Error(err))
		}
	}()
	d.log.Info("printer serving", zap.String("printer", rec.Name), zap.String("local_url", "http://"+ps.addr),
		zap.String("relay_host", relay.Host))
	d.startMQTT(ps)
	d.serveFixedPorts(ps)
	return nil
}

// unservePrinter stops a removed printer: its listener, or its wait for a busy port.
func (d *Daemon) unservePrinter(rec credstore.Record) {
	d.mu.Lock()
	d.forgetUnservedLocked(rec.Name)
	d.mu.Unlock()
	d.stopPrinter(rec)
}

// changePrinter serves a renamed or re-ported printer under its new record; its open connections end.
func (d *Daemon) changePrinter(old, rec credstore.Record) error {
	d.unservePrinter(old)
	return d.servePrinter(rec)
}

// stopPrinter stops one printer's listener without touching the others.
func (d *Daemon) stopPrinter(rec credstore.Record) {
	d.mu.Lock()
	p := d.printers[rec.Name]
	delete(d.printers, rec.Name)
	d.mu.Unlock()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.shutdownPrinter(ctx, p)
	d.log.Info("printer removed", zap.String("printer", rec.Name))
}

func (d *Daemon) shutdownPrinter(ctx context.Context, p *printerServer) {
	// WebSockets are hijacked connections that Shutdown does not track: close them (1001) first.
	p.stopMQTT()
	p.handler.Close()
	p.stopHealth()
	if err := p.srv.Shutdown(ctx); err != nil {
		d.log.Warn("grace time over: closing remaining connections", zap.String("printer", p.rec.Name))
		p.srv.Close()
	}
	<-p.done
}

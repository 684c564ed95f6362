package daemon

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/internal/logging"
	"github.com/oeproxy/oeproxy/proxy"
	"github.com/oeproxy/oeproxy/webcam"
)

// reloadable are the keys Reload applies while the daemon runs. Every other key keeps its value until oeproxy
// restarts, because changing it would mean closing listeners (listen.*, admin.listen), reopening the store
// (data_dir, store.key_file) or rebuilding the connections to OctoEverywhere (octoeverywhere.*, tls.ca_file).
var reloadable = map[string]bool{
	"log.level":                   true,
	"listen.allowed_hosts":        true,
	"websocket.ping_interval":     true,
	"websocket.max_message_bytes": true,
	"shutdown_grace":              true,
	"route":                       true,
}

// ReloadReport says what Reload changed.
type ReloadReport struct {
	// Applied are the changed keys now in effect (WebSocket settings for new WebSockets only).
	Applied []string
	// NeedRestart are the changed keys that keep their old value until oeproxy restarts.
	NeedRestart []string
}

// cfg is the configuration in effect: Options.Config with the keys Reload changed.
func (d *Daemon) cfg() config.Config {
	if c := d.live.Load(); c != nil {
		return *c
	}
	return d.o.Config
}

// Reload applies a newly loaded configuration without dropping any connection: log.level (through level; nil
// leaves the level alone and reports the key as needing a restart), listen.allowed_hosts, the WebSocket
// settings for new WebSockets, and shutdown_grace. Each printer gets a new proxy handler built with the new
// settings for new requests; the old one keeps serving the WebSockets it holds. Every other changed key is
// logged as needing a restart.
func (d *Daemon) Reload(next config.Config, level *zap.AtomicLevel) ReloadReport {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.retryUnserved() // a SIGHUP is also the user saying "the port is free now"
	cur := d.cfg()
	var rep ReloadReport
	applied := cur
	for _, key := range changedKeys(cur, next) {
		if !reloadable[key] || (key == "log.level" && level == nil) {
			rep.NeedRestart = append(rep.NeedRestart, key)
			continue
		}
		rep.Applied = append(rep.Applied, key)
	}
	if slices.Contains(rep.Applied, "log.level") {
		lvl, err := logging.ParseLevel(next.Log.Level)
		if err != nil { // config.Load validated it; keep the old level if not
			d.log.Warn("log.level not changed", zap.Error(err))
			rep.Applied = slices.DeleteFunc(rep.Applied, func(k string) bool { return k == "log.level" })
		} else {
			level.SetLevel(lvl)
			applied.Log.Level = next.Log.Level
		}
	}
	applied.Listen.AllowedHosts = slices.Clone(next.Listen.AllowedHosts)
	applied.WebSocket = next.WebSocket
	applied.ShutdownGrace = next.ShutdownGrace
	applied.Route = next.Route
	d.live.Store(&applied)
	if slices.Contains(rep.Applied, "route") {
		d.reroute()
	}

	if slices.ContainsFunc(rep.Applied, func(k string) bool { return k != "log.level" && k != "shutdown_grace" }) {
		d.mu.Lock()
		servers := make([]*printerServer, 0, len(d.printers))
		for _, p := range d.printers {
			servers = append(servers, p)
		}
		d.mu.Unlock()
		for _, p := range servers {
			if err := p.handler.rebuild(); err != nil {
				d.log.Error("printer keeps its old settings", zap.String("printer", p.rec.Name), zap.Error(err))
			}
		}
	}
	for _, k := range rep.Applied {
		d.log.Info("configuration reloaded", zap.String("key", k), zap.String("value", keyValue(applied, k)))
	}
	for _, k := range rep.NeedRestart {
		d.log.Warn("configuration key changed but takes effect only after a restart of oeproxy", zap.String("key", k))
	}
	if len(rep.Applied)+len(rep.NeedRestart) == 0 {
		d.log.Info("configuration reloaded: nothing changed")
	}
	return rep
}

// reroute gives every served printer a router for the route now in effect (the config key, unless the printer
// has its own). Open WebSockets and streams stay on the route they started on.
func (d *Daemon) reroute() {
	d.mu.Lock()
	names := make([]string, 0, len(d.printers))
	for name := range d.printers {
		names = append(names, name)
	}
	d.mu.Unlock()
	for _, name := range names {
		rec, err := d.o.Store.Get(name)
		if err == nil {
			err = d.setLANRoute(rec)
		}
		if err != nil {
			d.log.Error("printer keeps its old route", zap.String("printer", name), zap.Error(err))
		}
	}
}

// changedKeys lists the config keys (mapstructure names) whose values differ, walking the struct so that a new
// key is covered without touching this file.
func changedKeys(a, b config.Config) []string {
	var out []string
	var walk func(prefix string, va, vb reflect.Value)
	walk = func(prefix string, va, vb reflect.Value) {
		t := va.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			fa, fb := va.Field(i), vb.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
				walk(key, fa, fb)
				continue
			}
			if !equalValue(fa, fb) {
				out = append(out, key)
			}
		}
	}
	walk("", reflect.ValueOf(a), reflect.ValueOf(b))
	return out
}

func equalValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true // nil and empty lists mean the same
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// keyValue renders a reloadable key's value for the log (none of them is secret).
func keyValue(c config.Config, key string) string {
	switch key {
	case "log.level":
		return c.Log.Level
	case "listen.allowed_hosts":
		return "[" + strings.Join(c.Listen.AllowedHosts, ", ") + "]"
	case "websocket.ping_interval":
		return c.WebSocket.PingInterval.String()
	case "websocket.max_message_bytes":
		return fmt.Sprint(c.WebSocket.MaxMessageBytes)
	case "shutdown_grace":
		return c.ShutdownGrace.String()
	}
	return ""
}

// printerHandler is a printer's http.Handler that can be rebuilt with new settings while it serves. New requests
// go to the current proxy.Handler; a replaced one keeps its WebSockets until they end or Close.
type printerHandler struct {
	build func() (*proxy.Handler, error)
	cur   atomic.Pointer[proxy.Handler]
	// cams outlives the handlers it is given to: a reload must not end the webcam viewers.
	cams *webcam.Hub
	// routes is the printer's LAN-first router, shared by the handlers a reload builds (routing.go).
	routes printerRouter

	mu      sync.Mutex
	retired []*proxy.Handler
	closed  bool
}

// newPrinterHandler builds a printer's proxy handler from the configuration in effect; Reload rebuilds it.
func (d *Daemon) newPrinterHandler(rec credstore.Record, relay *url.URL, addr string, tracker *health.Health) (*printerHandler, error) {
	hooks := d.routeHooks(rec.Name, d.metrics.hooks(rec.Name, tracker.Hooks()))
	// Shared by every handler a reload builds for this printer, so that the cap holds across a reload.
	slots := proxy.NewRelaySlots(d.o.Config.OctoEverywhere.MaxConnections)
	ph := &printerHandler{}
	if cfg := d.cfg(); cfg.Webcam.ShareStreams {
		ph.cams = webcam.New(webcam.Options{Continue: cfg.Webcam.ContinueStreams, Linger: cfg.Webcam.Linger,
			Logger: d.log.With(zap.String("printer", rec.Name)), Hooks: d.metrics.webcamHooks(rec.Name)})
	}
	ph.routes.set(d.newRouter(rec, relay, tracker))
	ph.build = func() (*proxy.Handler, error) {
		cfg := d.cfg()
		return proxy.New(proxy.Printer{
			Name: rec.Name, RelayURL: relay, Auth: cfg.OctoEverywhere.Auth,
			BasicUser: rec.BasicUser, BasicPassword: rec.BasicPassword, BearerToken: rec.BearerToken,
			LANHosts: lanHosts(rec), FrontAPIKey: rec.FrontAPIKey,
		}, proxy.Options{
			Transport:          d.o.Transport,
			WebSocketTransport: d.o.WebSocketTransport,
			Logger:             d.log, // proxy.New names the printer on every line it logs
			ListenAddr:         addr,
			AllowedHosts:       cfg.Listen.AllowedHosts,
			AppID:              cfg.OctoEverywhere.AppID,
			PortalURL:          cfg.OctoEverywhere.PortalURL,
			PingInterval:       cfg.WebSocket.PingInterval,
			MaxMessageBytes:    cfg.WebSocket.MaxMessageBytes,
			Gate:               tracker,
			RelaySlots:         slots,
			Hooks:              hooks,
			Webcams:            ph.cams,
			Router:             ph.routes.get(),
			LANTransport:       d.routing.lanTransport(),
			UploadLimit:        tracker.UploadLimit,
			Uploads:            d.uploads,
		})
	}
	h, err := ph.build()
	if err != nil {
		ph.routes.close()
		if ph.cams != nil {
			ph.cams.Close()
		}
		return nil, err
	}
	ph.cur.Store(h)
	return ph, nil
}

func (p *printerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.cur.Load().ServeHTTP(w, r)
}

// rebuild swaps in a handler built from the configuration in effect. The old one is kept (not closed): its
// WebSockets stay open, and Close ends them at shutdown; once it holds none, a later rebuild lets it go.
func (p *printerHandler) rebuild() error {
	h, err := p.build()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed { // shutting down: the handler being closed stays the only one
		h.Close()
		return nil
	}
	// Replaced handlers are kept only while they may still hold WebSockets, or every SIGHUP would keep one for
	// good. The one replaced just now always stays until the next rebuild: a WebSocket handshake that reached it
	// before the swap may still be dialling the relay.
	kept := p.retired[:0]
	for _, old := range p.retired {
		if old.OpenWebSockets() > 0 {
			kept = append(kept, old)
		} else {
			old.Close()
		}
	}
	clear(p.retired[len(kept):])
	p.retired = append(kept, p.cur.Swap(h))
	return nil
}

// OpenWebSockets counts the WebSockets of the current and the replaced handlers.
func (p *printerHandler) OpenWebSockets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.cur.Load().OpenWebSockets()
	for _, h := range p.retired {
		n += h.OpenWebSockets()
	}
	return n
}

// Close closes the WebSockets of every handler, current and replaced (proxy.Handler.Close).
func (p *printerHandler) Close() {
	p.mu.Lock()
	p.closed = true
	all := append([]*proxy.Handler{p.cur.Load()}, p.retired...)
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, h := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Close()
		}()
	}
	wg.Wait()
	p.routes.close()
	if p.cams != nil {
		p.cams.Close()
	}
}

// lanHosts are the addresses by which the printer's own JSON may name itself.
func lanHosts(rec credstore.Record) []string {
	if rec.LastKnownLocalIP == "" {
		return nil
	}
	return []string{rec.LastKnownLocalIP}
}

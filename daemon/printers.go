package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/portalflow"
	"github.com/oeproxy/oeproxy/proxy"
	"github.com/oeproxy/oeproxy/route"
)

// Printers is the store-backed control.Control: it names, allocates ports, validates and stores. The daemon wraps it
// to start and stop listeners; the command line uses it directly when no daemon runs.
type Printers struct {
	Store       *credstore.Store
	PortBase    int
	ListenHost  string
	RelayDomain string
	// Now defaults to time.Now.
	Now func() time.Time
	// OnAdd and OnRemove run after the store changed (the daemon starts or stops the printer's listener).
	OnAdd    func(credstore.Record) error
	OnRemove func(credstore.Record)
	// OnChange runs after a rename or a new port was stored (the daemon serves the printer under its new record).
	OnChange func(old, rec credstore.Record) error
	// NotServed, set by the daemon, says why a stored printer has no listener ("" when served); List and Status
	// report it.
	NotServed func(name string) string
	// Uploads, when set, returns the printer's latest uploads answered once stored (uploads.go), for status.
	Uploads func(name string) []proxy.UploadRecord
	// API calls OctoEverywhere's App APIs for status, livelink, gadget and webhook (appcontrol.go); nil: those fail.
	API *appapi.Client
	// Health, set by the daemon, returns a served printer's health tracker (nil when it has none).
	Health func(name string) *health.Health
	// DefaultRoute returns the config key route in force (the daemon's follows a reload); nil: "". Routes, set by
	// the daemon, a served printer's routing state; OnLANChange runs after SetLAN changed the store (the daemon
	// re-proves the printer's LAN host).
	DefaultRoute func() string
	Routes       func(name string) (route.Status, bool)
	OnLANChange  func(credstore.Record) error
	// DetectPlatform, when set, asks the plugin of a new record which platform it runs (bambu.go).
	DetectPlatform func(ctx context.Context, rec credstore.Record) (string, error)
	// OnMQTT runs after a printer's MQTT port changed (the daemon opens or closes its bridge).
	OnMQTT func(credstore.Record) error

	mu sync.Mutex // serialises name and port allocation
}

func (p *Printers) defaultRoute() string {
	if p.DefaultRoute == nil {
		return ""
	}
	return p.DefaultRoute()
}

// List implements Control.
// A record that cannot be read is listed too, after the others, with Damaged saying how to remove it.
func (p *Printers) List(context.Context) ([]credstore.PublicRecord, error) {
	recs, damaged, err := p.Store.Scan()
	if err != nil {
		return nil, err
	}
	out := make([]credstore.PublicRecord, 0, len(recs)+len(damaged))
	for _, r := range recs {
		pub := r.PublicWithHost(p.ListenHost)
		if p.NotServed != nil {
			served := true
			if pub.NotServed = p.NotServed(r.Name); pub.NotServed != "" {
				served = false
			}
			pub.Served = &served
		}
		fillRoute(&pub, r, p.defaultRoute(), p.Routes)
		out = append(out, pub)
	}
	for _, d := range damaged {
		out = append(out, d.Public())
	}
	return out, nil
}

// Add implements Control. The completion is validated again here because the control socket may be reached by
// any program of the same user.
func (p *Printers) Add(ctx context.Context, req control.AddRequest) (credstore.PublicRecord, error) {
	if err := portalflow.Validate(req.Completion, p.RelayDomain); err != nil {
		return credstore.PublicRecord{}, fmt.Errorf("%w: %w", control.ErrInvalid, err)
	}
	if req.Port < 0 || req.Port > 65535 {
		return credstore.PublicRecord{}, fmt.Errorf("%w: port %d is not a TCP port (1..65535)", control.ErrInvalid, req.Port)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	existing, err := p.Store.List()
	if err != nil {
		return credstore.PublicRecord{}, err
	}
	name := req.Name
	if name == "" {
		name = uniqueName(credstore.Slug(req.Completion.PrinterName), existing)
	} else if err := credstore.ValidateName(name); err != nil {
		return credstore.PublicRecord{}, fmt.Errorf("%w: %w", control.ErrInvalid, err)
	}
	port := req.Port
	if port == 0 {
		port = p.freePort(existing)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	c := req.Completion
	rec := credstore.Record{
		Name: name, ConnectionID: c.ID, URL: c.URL,
		BasicUser: c.BasicUser, BasicPassword: c.BasicPassword, BearerToken: c.BearerToken,
		AppAPIToken: c.AppAPIToken, OctoPrintAPIKey: c.OctoPrintAPIKey,
		PrinterName: c.PrinterName, UserPrinterAccessURL: c.UserPrinterAccessURL,
		LastKnownLocalIP: c.PrinterLastKnownLocalIP, PrinterID: req.PrinterID,
		Port: port, Route: req.Route, LANURL: req.LANURL, CreatedAt: now().UTC().Truncate(time.Second),
	}
	if err := checkLANRequest(&control.LANRequest{URL: rec.LANURL, Route: rec.Route}); err != nil {
		return credstore.PublicRecord{}, err
	}
	if rec.LANURL != "" {
		u, _ := route.ParseLANURL(rec.LANURL)
		rec.LANURL = u.String()
	}
	if err := p.preparePlatform(ctx, &rec, req, existing); err != nil {
		return credstore.PublicRecord{}, err
	}
	if _, err := p.Store.Add(rec); err != nil {
		return credstore.PublicRecord{}, err
	}
	if p.OnAdd != nil {
		if err := p.OnAdd(rec); err != nil {
			// The record is kept: the secrets cannot be fetched again. The listener problem is reported.
			return rec.PublicWithHost(p.ListenHost), fmt.Errorf("printer %q stored, but its listener did not start: %w", name, err)
		}
	}
	return rec.PublicWithHost(p.ListenHost), nil
}

// Remove implements Control.
func (p *Printers) Remove(_ context.Context, name string) (credstore.PublicRecord, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rec, err := p.Store.Get(name)
	if errors.Is(err, credstore.ErrCorrupt) {
		rec = credstore.Record{Name: name} // a damaged record is removed without reading it
	} else if err != nil {
		return credstore.PublicRecord{}, err
	}
	if err := p.Store.Delete(name); err != nil {
		return credstore.PublicRecord{}, err
	}
	if p.OnRemove != nil {
		p.OnRemove(rec)
	}
	return rec.PublicWithHost(p.ListenHost), nil
}

// Change implements Control: it renames a printer or gives it another port, checked like Add (a name or port
// another printer has is refused, naming it). A running daemon moves the listener at once.
func (p *Printers) Change(_ context.Context, name string, ch control.Change) (credstore.PublicRecord, error) {
	if ch.Name == "" && ch.Port == 0 {
		return credstore.PublicRecord{}, fmt.Errorf("%w: nothing to change", control.ErrInvalid)
	}
	if ch.Name != "" {
		if err := credstore.ValidateName(ch.Name); err != nil {
			return credstore.PublicRecord{}, fmt.Errorf("%w: %w", control.ErrInvalid, err)
		}
	}
	if ch.Port < 0 || ch.Port > 65535 {
		return credstore.PublicRecord{}, fmt.Errorf("%w: port %d is not a TCP port (1..65535)", control.ErrInvalid, ch.Port)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old, err := p.Store.Get(name)
	if err != nil {
		return credstore.PublicRecord{}, err
	}
	rec := old
	if err := p.Store.Update(name, func(r *credstore.Record) error {
		if ch.Name != "" {
			r.Name = ch.Name
		}
		if ch.Port != 0 {
			r.Port = ch.Port
		}
		rec = *r
		return nil
	}); err != nil {
		return credstore.PublicRecord{}, err
	}
	if p.OnChange != nil {
		if err := p.OnChange(old, rec); err != nil {
			return rec.PublicWithHost(p.ListenHost), fmt.Errorf("printer %q changed, but its listener did not start: %w", rec.Name, err)
		}
	}
	return rec.PublicWithHost(p.ListenHost), nil
}

func uniqueName(base string, existing []credstore.Record) string {
	if base == "" {
		base = "printer"
	}
	taken := map[string]bool{}
	for _, r := range existing {
		taken[r.Name] = true
	}
	name := base
	for i := 2; taken[name]; i++ {
		// The suffix must fit in the name's 63 characters: a 63-character slug gives way, not the rule.
		suffix := "-" + strconv.Itoa(i)
		name = strings.TrimRight(base[:min(len(base), credstore.MaxNameLen-len(suffix))], "-") + suffix
	}
	return name
}

// freePort returns the first port from PortBase that no stored printer owns and that can be bound now.
func (p *Printers) freePort(existing []credstore.Record) int {
	owned := map[int]bool{}
	for _, r := range existing {
		owned[r.Port], owned[r.MQTTPort] = true, true
	}
	host := p.ListenHost
	if host == "" {
		host = "127.0.0.1"
	}
	for port := max(p.PortBase, 1); port <= 65535; port++ {
		if owned[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port)))
		if err != nil {
			continue // used by another program
		}
		l.Close()
		return port
	}
	return 0
}

// StateDamaged is the state of a stored record that cannot be read: it is not served until it is removed (and
// the printer connected again).
const StateDamaged health.State = "damaged"

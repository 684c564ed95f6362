package daemon

import (
	"context"
	"fmt"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/route"
)

// checkLANRequest normalises req: the URL parsed, the route known.
func checkLANRequest(req *control.LANRequest) error {
	if req.URL != "" {
		u, err := route.ParseLANURL(req.URL)
		if err != nil {
			return fmt.Errorf("%w: %w", control.ErrInvalid, err)
		}
		req.URL = u.String()
	}
	if req.Companion != "" {
		u, err := route.ParseLANURL(req.Companion)
		if err != nil {
			return fmt.Errorf("%w: companion: %w", control.ErrInvalid, err)
		}
		req.Companion = u.String()
	}
	switch req.Route {
	case "", "default", credstore.RouteRelay, credstore.RouteLAN, credstore.RouteAuto:
	default:
		return fmt.Errorf("%w: route %q is not relay, lan, auto or default", control.ErrInvalid, req.Route)
	}
	return nil
}

// SetLAN implements LANControl: the store changes, and a running daemon proves the new address at once.
func (p *Printers) SetLAN(_ context.Context, name string, req control.LANRequest) (credstore.PublicRecord, error) {
	if err := checkLANRequest(&req); err != nil {
		return credstore.PublicRecord{}, err
	}
	var rec credstore.Record
	err := p.Store.Update(name, func(r *credstore.Record) error {
		if req.Clear {
			r.LANURL, r.CompanionURL = "", ""
		}
		if req.Companion != "" {
			r.CompanionURL = req.Companion
		}
		if req.URL != "" {
			r.LANURL = req.URL
			if r.Route == credstore.RouteRelay && req.Route == "" {
				// Setting a LAN address asks for the LAN: a printer stored with route relay before LAN routing
				// existed would otherwise never use it.
				r.Route = ""
			}
		}
		switch req.Route {
		case "":
		case "default":
			r.Route = ""
		default:
			r.Route = req.Route
		}
		rec = *r
		return nil
	})
	if err != nil {
		return credstore.PublicRecord{}, err
	}
	if p.OnLANChange != nil {
		if err := p.OnLANChange(rec); err != nil {
			return credstore.PublicRecord{}, fmt.Errorf("printer %q updated, but the running daemon could not apply it: %w", name, err)
		}
	}
	pub := rec.PublicWithHost(p.ListenHost)
	fillRoute(&pub, rec, p.defaultRoute(), p.Routes)
	return pub, nil
}

// statusRoute fills the routing part of a printer's status line.
func (p *Printers) statusRoute(st *control.PrinterStatus, rec credstore.Record) {
	pub := credstore.PublicRecord{}
	fillRoute(&pub, rec, p.defaultRoute(), p.Routes)
	st.Route, st.ActiveRoute, st.LastProof = pub.Route, pub.ActiveRoute, pub.LastProof
	if p.Routes != nil {
		if rs, ok := p.Routes(rec.Name); ok {
			st.RouteReason = rs.Reason
		}
	}
}

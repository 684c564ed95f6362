package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/route"
)

// LANControl is the part of Control that sets a printer's LAN address and route (`oeproxy lan set`, `lan clear`).
type LANControl interface {
	SetLAN(ctx context.Context, name string, req LANRequest) (credstore.PublicRecord, error)
}

// LANRequest changes a printer's LAN settings. An empty URL with Clear false leaves the address as it is; an
// empty Route leaves the route as it is.
type LANRequest struct {
	// URL is the printer's LAN address (http://host[:port]); Clear forgets it (the last known local IP is still
	// tried in auto mode).
	URL   string `json:"url,omitempty"`
	Clear bool   `json:"clear,omitempty"`
	// Companion is the OctoEverywhere companion's local web API (http://host:port), the identity proof for a
	// printer behind a companion (PrusaLink, Elegoo); Clear forgets it too. Empty: as it is.
	Companion string `json:"companion,omitempty"`
	// Route is relay, lan, auto, or "default" (follow the config key route).
	Route string `json:"route,omitempty"`
}

// checkLANRequest normalises req: the URL parsed, the route known.
func checkLANRequest(req *LANRequest) error {
	if req.URL != "" {
		u, err := route.ParseLANURL(req.URL)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		req.URL = u.String()
	}
	if req.Companion != "" {
		u, err := route.ParseLANURL(req.Companion)
		if err != nil {
			return fmt.Errorf("%w: companion: %w", ErrInvalid, err)
		}
		req.Companion = u.String()
	}
	switch req.Route {
	case "", "default", credstore.RouteRelay, credstore.RouteLAN, credstore.RouteAuto:
	default:
		return fmt.Errorf("%w: route %q is not relay, lan, auto or default", ErrInvalid, req.Route)
	}
	return nil
}

// SetLAN implements LANControl: the store changes, and a running daemon proves the new address at once.
func (p *Printers) SetLAN(_ context.Context, name string, req LANRequest) (credstore.PublicRecord, error) {
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

// lanRoutes adds the LANControl route to the control API.
func lanRoutes(mux *http.ServeMux, c Control) {
	mux.HandleFunc("PUT /v1/printers/{name}/lan", func(w http.ResponseWriter, r *http.Request) {
		var b LANRequest
		if !decodeBody(w, r, &b) {
			return
		}
		rec, err := c.SetLAN(r.Context(), r.PathValue("name"), b)
		reply(w, rec, err)
	})
}

// SetLAN implements LANControl.
func (c *ControlClient) SetLAN(ctx context.Context, name string, req LANRequest) (credstore.PublicRecord, error) {
	var out credstore.PublicRecord
	return out, c.do(ctx, http.MethodPut, "/v1/printers/"+url.PathEscape(name)+"/lan", req, &out)
}

// statusRoute fills the routing part of a printer's status line.
func (p *Printers) statusRoute(st *PrinterStatus, rec credstore.Record) {
	pub := credstore.PublicRecord{}
	fillRoute(&pub, rec, p.defaultRoute(), p.Routes)
	st.Route, st.ActiveRoute, st.LastProof = pub.Route, pub.ActiveRoute, pub.LastProof
	if p.Routes != nil {
		if rs, ok := p.Routes(rec.Name); ok {
			st.RouteReason = rs.Reason
		}
	}
}

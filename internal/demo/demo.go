// Package demo owns `oeproxy demo`: an offline end-to-end run that starts oesim (OctoEverywhere and three
// simulated printers: OctoPrint, Moonraker and Bambu Lab), links them through the real portal flow and the real
// loopback callback, stores the credentials encrypted in a temporary data directory, and serves them with the
// real daemon. The Moonraker printer is also on the "LAN" (127.0.0.2), so its port goes there once it proved it
// is the same printer; the OctoPrint printer's last known address is unreachable from here, so it stays on the
// relay.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/front"
	"github.com/oeproxy/oeproxy/internal/bootstrap"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/portalflow"
)

// Options configure a demo run.
type Options struct {
	Out    io.Writer
	Logger *zap.Logger
	// PortBase is the first local port tried (default 5001; the next free ones are used when busy).
	PortBase int
	// Check fetches each printer's API through oeproxy and reports the result.
	Check bool
	// ExitAfter, when set, is when the demo stops by itself (the caller's deadline): the summary says so
	// instead of asking for Ctrl-C.
	ExitAfter time.Duration
	// Ready, when set, is called with the printers once they are served (tests).
	Ready func(printers []credstore.PublicRecord)
}

// Run runs the demo until ctx ends, then removes everything it created.
func Run(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.PortBase == 0 {
		o.PortBase = 5001
	}
	out := o.Out
	sim, err := oesim.Start(ctx, oesim.Options{AutoApprove: true, Logger: o.Logger.Named("oesim"), Printers: []oesim.PrinterOptions{
		// 192.0.2.10 is TEST-NET-1: the printer is "at home" while this machine is away.
		{Name: "Prusa MK4", Kind: oesim.KindOctoPrint, LocalIP: "192.0.2.10"},
		{Name: "Voron 2.4", Kind: oesim.KindMoonraker, LAN: true},
		{Name: "Bambu Lab X1C", Kind: oesim.KindBambu, Serial: "01S00C000000001"},
	}})
	if err != nil {
		return fmt.Errorf("start the OctoEverywhere simulation: %w", err)
	}
	defer sim.Close()

	dir, err := os.MkdirTemp("", "oeproxy-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	caFile := filepath.Join(dir, "oesim-ca.pem")
	if err := os.WriteFile(caFile, sim.CACertPEM, 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(config.LoadOptions{File: os.DevNull,
		LookupEnv: func(string) (string, bool) { return "", false }, Environ: func() []string { return nil }, Home: dir})
	if err != nil {
		return err
	}
	c := cfg.Config
	c.DataDir = filepath.Join(dir, "data")
	c.Store.KeyFile = filepath.Join(c.DataDir, "master.key")
	c.Listen.PortBase = o.PortBase
	c.Admin.Listen = "127.0.0.1:0"
	c.OctoEverywhere.PortalURL = sim.PortalURL
	c.OctoEverywhere.APIURL = sim.APIURL
	c.OctoEverywhere.RelayDomain = sim.Domain
	c.OctoEverywhere.ConnectTo = sim.Addr
	c.TLS.CAFile = caFile
	c.ShutdownGrace = 2 * time.Second

	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	// The demo's store takes its key from its own key file only: a master key in this shell's environment
	// belongs to the user's real store.
	st, err := bootstrap.OpenStore(&c, true, func(string) string { return "" })
	if err != nil {
		return err
	}
	defer st.Close()
	net, err := bootstrap.Net(&c)
	if err != nil {
		return err
	}
	transport, wsTransport := net.Transport(), net.WebSocketTransport()
	defer transport.CloseIdleConnections()
	defer wsTransport.CloseIdleConnections()

	ready := make(chan *daemon.Daemon, 1)
	d, err := daemon.New(daemon.Options{Config: c, Store: st, Logger: o.Logger, Transport: transport,
		WebSocketTransport: wsTransport, Ready: func(d *daemon.Daemon) { ready <- d }})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(runCtx) }()
	select {
	case <-ready:
	case err := <-runErr:
		return err
	}

	fmt.Fprintf(out, "OctoEverywhere simulation on %s (portal %s)\n\n", sim.Addr, sim.PortalURL)
	var linked []credstore.PublicRecord
	keys := map[string]string{} // printer → the OctoPrint front's key, for printers that have the front
	for _, p := range sim.Printers() {
		key, err := front.NewAPIKey()
		if err != nil {
			return err
		}
		rec, err := link(ctx, sim, &c, d.Control(), p, key, o.Logger)
		if err != nil {
			stop()
			<-runErr
			return fmt.Errorf("link %s: %w", p.Name, err)
		}
		linked = append(linked, rec)
		if rec.HasFrontAPIKey {
			keys[rec.Name] = key
		}
	}
	linked = waitRoutes(ctx, d.Control(), linked)
	// The first health checks log a line per printer: let them come before the summary, not through it.
	for settle := time.Now().Add(3 * time.Second); !d.HealthSettled() && time.Now().Before(settle); {
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintln(out)
	for _, r := range linked {
		fmt.Fprintf(out, "%s (%s)\n", r.PrinterName, r.Name)
		if key, ok := keys[r.Name]; ok {
			fmt.Fprintf(out, "  slicer host:        %s   (host type OctoPrint, API key %s)\n", r.LocalURL, key)
			fmt.Fprintf(out, "  webcam:             %s/webcam/?action=stream\n", r.LocalURL)
		} else {
			fmt.Fprintf(out, "  open in a browser:  %s/   (printer page: live webcam and WebSocket readout)\n", r.LocalURL)
			fmt.Fprintf(out, "  slicer host:        %s\n", r.LocalURL)
		}
		if r.MQTTPort != 0 {
			fmt.Fprintf(out, "  MQTT:               mosquitto_sub -h 127.0.0.1 -p %d -t 'device/+/report'\n", r.MQTTPort)
		}
		fmt.Fprintf(out, "  relay host:         %s\n", r.RelayHost)
		fmt.Fprintf(out, "  route:              %s, now %s%s\n\n", r.Route, r.ActiveRoute, lanNote(r))
	}
	fmt.Fprintln(out, "PrusaSlicer/OrcaSlicer: add a physical printer, host type OctoPrint (or Klipper for the Moonraker")
	fmt.Fprintln(out, "printer), and paste the slicer host above; any API key works on the simulated printers.")
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Admin page (one-time login):  %s\n", d.AdminLoginURL())
	fmt.Fprintln(out, "Try the CLI against this demo, in another terminal:")
	fmt.Fprintf(out, "  oeproxy --data-dir %s list\n", c.DataDir)
	fmt.Fprintf(out, "  oeproxy --data-dir %s status\n", c.DataDir)
	fmt.Fprintf(out, "  oeproxy --data-dir %s admin\n\n", c.DataDir)
	if o.Check {
		if err := check(ctx, out, linked, keys); err != nil {
			stop()
			<-runErr
			return err
		}
	}
	if o.Ready != nil {
		o.Ready(linked)
	}
	if o.ExitAfter > 0 {
		fmt.Fprintf(out, "The demo stops by itself after %s (--exit-after); the temporary data directory is removed then.\n", o.ExitAfter)
	} else {
		fmt.Fprintln(out, "Press Ctrl-C to stop; the temporary data directory is removed on exit.")
	}
	select {
	case <-ctx.Done():
	case err := <-runErr:
		return err
	}
	stop()
	return <-runErr
}

// link runs the real portal flow for one simulated printer: discovery on its LAN address, the portal
// (auto-approved, with the simulation's client playing the browser), the loopback callback, and the store.
func link(ctx context.Context, sim *oesim.Sim, c *config.Config, ctl control.Control, p *oesim.Printer, frontKey string, log *zap.Logger) (credstore.PublicRecord, error) {
	var rec credstore.PublicRecord
	req := control.AddRequest{FrontAPIKey: frontKey}
	_, err := portalflow.Link(ctx, portalflow.LinkOptions{
		Flow: portalflow.FlowOptions{
			PortalURL: c.OctoEverywhere.PortalURL, AppID: c.OctoEverywhere.AppID, RelayDomain: c.OctoEverywhere.RelayDomain,
			ListenAddr: "127.0.0.1:0", Logger: log,
		},
		PrinterURL: p.BackendURL,
		Discovered: func(id string, warn error) {
			req.PrinterID = id
			if warn != nil {
				log.Warn("printer ID not discovered", zap.String("printer", p.Name), zap.Error(warn))
			}
		},
		Show: func(ctx context.Context, _ *portalflow.Flow, portal string) error {
			return browse(ctx, sim.HTTPClient(), portal)
		},
		Keep: func(ctx context.Context, comp portalflow.Completion) (string, error) {
			req.Completion = comp
			req.LANURL = p.LANURL
			var err error
			rec, err = ctl.Add(ctx, req)
			return "", err
		},
		Timeout: 10 * time.Second,
	})
	return rec, err
}

// browse follows the portal's redirect to the loopback callback, as a browser would.
func browse(ctx context.Context, simClient *http.Client, portal string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, portal, nil)
	if err != nil {
		return err
	}
	resp, err := simClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || loc == "" {
		return fmt.Errorf("portal answered %s without a redirect", resp.Status)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return err
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("callback answered %s", resp.Status)
	}
	return nil
}

// check fetches each printer's version endpoint through oeproxy (with the front's key where it has one).
func check(ctx context.Context, out io.Writer, printers []credstore.PublicRecord, keys map[string]string) error {
	var errs []error
	for _, p := range printers {
		for _, path := range []string{"/api/version", "/server/info"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.LocalURL+path, nil)
			if key, ok := keys[p.Name]; ok {
				req.Header.Set("X-Api-Key", key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s%s: %w", p.LocalURL, path, err))
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintf(out, "check: GET %s%s through oeproxy: %s\n", p.LocalURL, path, resp.Status)
				break
			}
			if path == "/server/info" {
				errs = append(errs, fmt.Errorf("%s: no API answered (last %s)", p.LocalURL, resp.Status))
			}
		}
	}
	return errors.Join(errs...)
}

// waitRoutes waits (up to 10 s) until every printer that may use the LAN had its first LAN proof, and returns
// the printers as listed then, so that the demo shows the route each one really uses.
func waitRoutes(ctx context.Context, ctl control.Control, linked []credstore.PublicRecord) []credstore.PublicRecord {
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := ctl.List(ctx)
		if err != nil {
			return linked
		}
		done := true
		for _, p := range list {
			if p.Route != "relay" && p.LastProof == nil {
				done = false
			}
		}
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			byName := map[string]credstore.PublicRecord{}
			for _, p := range list {
				byName[p.Name] = p
			}
			for i, r := range linked {
				if p, ok := byName[r.Name]; ok {
					linked[i] = p
				}
			}
			return linked
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lanNote(r credstore.PublicRecord) string {
	switch {
	case r.ActiveRoute == "lan":
		return " (straight to " + r.LANURL + ", proved the same printer)"
	case r.Route != "relay":
		return " (its LAN address does not answer from here)"
	}
	return ""
}

package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"time"

	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/proxy"
	"github.com/oeproxy/oeproxy/route"
)

// LANFigures are the LAN route's figures (LAN-first routing), measured in process with oesim: a Moonraker
// printer on the simulated LAN (127.0.0.2) and behind the simulated relay, one proxy.Handler with a Router in
// auto mode and one without (always the relay). They sit beside, not inside, the child-process figures of Run.
type LANFigures struct {
	// LANGet and RelayGet are the median small GET through oeproxy on each route.
	LANGet, RelayGet time.Duration
	// Fallback is the time from the LAN printer vanishing to the first request answered through the relay,
	// that request included (its LAN connect is refused and it goes on to the relay in the same request).
	Fallback time.Duration
	// ProofTime is how long the first proof took (LAN id read, relay id read, nonce write and read back).
	ProofTime time.Duration
}

// MeasureLAN measures LANFigures with n small GETs per route.
func MeasureLAN(ctx context.Context, n int) (LANFigures, error) {
	var f LANFigures
	sim, err := oesim.Start(ctx, oesim.Options{TempDir: "", Printers: []oesim.PrinterOptions{{Name: "Voron", Kind: oesim.KindMoonraker, LAN: true}}})
	if err != nil {
		return f, err
	}
	defer sim.Close()
	pr := sim.Printers()[0]
	cr := sim.Connect(pr).Credentials()
	relayURL, _ := url.Parse(cr.URL)
	tr := oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	defer tr.CloseIdleConnections()
	lanTr := route.NewLANTransport()
	defer lanTr.CloseIdleConnections()
	p := proxy.Printer{Name: "voron", RelayURL: relayURL, BasicUser: cr.BasicUser, BasicPassword: cr.BasicPassword}
	relayRT, err := proxy.RelayTransport(p, tr)
	if err != nil {
		return f, err
	}
	proved := make(chan route.Proof, 8)
	r, err := route.New(route.Options{Printer: "voron", Mode: route.ModeAuto, LANURLs: []string{pr.LANURL}, Relay: relayRT,
		LAN: lanTr, Hooks: route.Hooks{Proof: func(p route.Proof) { proved <- p }}})
	if err != nil {
		return f, err
	}
	start := time.Now()
	r.Start(ctx)
	defer r.Close()
	select {
	case p := <-proved:
		f.ProofTime = time.Since(start)
		if !p.OK {
			return f, fmt.Errorf("LAN proof failed: %s", p.Reason)
		}
	case <-time.After(10 * time.Second):
		return f, fmt.Errorf("no LAN proof within 10 s")
	}
	for r.Decide().Route != route.LAN { // the hook runs just before the proof is applied
		time.Sleep(time.Millisecond)
	}

	serve := func(rt *route.Router) (*httptest.Server, *proxy.Handler, error) {
		srv := httptest.NewUnstartedServer(nil)
		h, err := proxy.New(p, proxy.Options{Transport: tr, ListenAddr: srv.Listener.Addr().String(), Router: rt, LANTransport: lanTr})
		if err != nil {
			return nil, nil, err
		}
		srv.Config.Handler = h
		srv.Start()
		return srv, h, nil
	}
	lanSrv, lanH, err := serve(r)
	if err != nil {
		return f, err
	}
	defer lanSrv.Close()
	defer lanH.Close()
	relaySrv, relayH, err := serve(nil)
	if err != nil {
		return f, err
	}
	defer relaySrv.Close()
	defer relayH.Close()

	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	get := func(base string) (time.Duration, error) {
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/server/info", nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET %s/server/info: %s", base, resp.Status)
		}
		return time.Since(t0), nil
	}
	median := func(base string) (time.Duration, error) {
		ds := make([]time.Duration, 0, n)
		for range n {
			d, err := get(base)
			if err != nil {
				return 0, err
			}
			ds = append(ds, d)
		}
		slices.Sort(ds)
		return ds[len(ds)/2], nil
	}
	if f.LANGet, err = median(lanSrv.URL); err != nil {
		return f, err
	}
	if f.RelayGet, err = median(relaySrv.URL); err != nil {
		return f, err
	}
	t0 := time.Now()
	if err := pr.SetLAN(oesim.LANGone); err != nil {
		return f, err
	}
	if _, err := get(lanSrv.URL); err != nil {
		return f, fmt.Errorf("the first request after the LAN printer vanished: %w", err)
	}
	f.Fallback = time.Since(t0)
	return f, nil
}

// String renders the figures for a report.
func (f LANFigures) String() string {
	return fmt.Sprintf("LAN route: small GET %s (relay %s), first proof %s, LAN printer vanished → answered by the relay in %s (target < 1 s)",
		f.LANGet.Round(time.Microsecond), f.RelayGet.Round(time.Microsecond), f.ProofTime.Round(time.Microsecond), f.Fallback.Round(time.Microsecond))
}

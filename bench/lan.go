package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
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
	// PrinterGet is the same small GET from the client to the printer's LAN address itself: the baseline that
	// the LAN route adds to.
	PrinterGet time.Duration
	// Upload (MB/s) and WSRoundTrip (median JSON-RPC round trip on Moonraker's /websocket), for the printer
	// itself, the LAN route and the relay route.
	PrinterUpload, LANUpload, RelayUpload          float64
	PrinterWSRoundTrip, LANWSRoundTrip, RelayWSRTT time.Duration
	// UploadBytes is the size of each upload.
	UploadBytes int64
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
	if f.PrinterGet, err = median(pr.LANURL); err != nil {
		return f, err
	}
	f.UploadBytes = lanUploadBytes
	for _, m := range []struct {
		base string
		up   *float64
		rtt  *time.Duration
	}{{pr.LANURL, &f.PrinterUpload, &f.PrinterWSRoundTrip}, {lanSrv.URL, &f.LANUpload, &f.LANWSRoundTrip}, {relaySrv.URL, &f.RelayUpload, &f.RelayWSRTT}} {
		if *m.up, err = lanUpload(ctx, client, m.base, f.UploadBytes); err != nil {
			return f, err
		}
		if *m.rtt, err = wsRoundTrip(ctx, m.base, n); err != nil {
			return f, err
		}
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

// lanUploadBytes is each upload's size: large enough that the connection's start does not count.
const lanUploadBytes = 64 << 20

// lanUpload posts size bytes as a Moonraker upload (multipart, streamed with a Content-Length) and returns MB/s.
func lanUpload(ctx context.Context, client *http.Client, base string, size int64) (float64, error) {
	boundary := "benchlanupload"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.gcode\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	body := io.MultiReader(strings.NewReader(head), &patternReader{n: size, fill: []byte("G1 X10 Y10 E0.5\n")}, strings.NewReader(tail))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/server/files/upload", body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = int64(len(head)) + size + int64(len(tail))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("upload to %s: %s", base, resp.Status)
	}
	return float64(size) / 1e6 / time.Since(t0).Seconds(), nil
}

// wsRoundTrip is the median of n JSON-RPC calls (server.info) on Moonraker's /websocket at base.
func wsRoundTrip(ctx context.Context, base string, n int) (time.Duration, error) {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/websocket", nil)
	if err != nil {
		return 0, fmt.Errorf("WebSocket to %s: %w", base, err)
	}
	defer c.CloseNow()
	ds := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		msg := fmt.Sprintf(`{"jsonrpc":"2.0","method":"server.info","id":%d}`, i+1)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			return 0, err
		}
		for { // notifications may come first
			_, b, err := c.Read(ctx)
			if err != nil {
				return 0, err
			}
			var m struct {
				ID int `json:"id"`
			}
			if json.Unmarshal(b, &m) == nil && m.ID == i+1 {
				break
			}
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

// Markdown is the LAN route's table for RESULTS.md.
func (f LANFigures) Markdown() string {
	var b strings.Builder
	b.WriteString("## The LAN route\n\n")
	b.WriteString("LAN-first routing (`bench.MeasureLAN`, in process): a Moonraker printer on the simulated LAN (127.0.0.2) and behind\n" +
		"oesim's relay; the client talks to the printer's LAN address itself (**printer**), to oeproxy on the proven LAN\n" +
		"route (**LAN route**), and to oeproxy on the relay route (**relay route**). oesim's relay is on this machine, so the\n" +
		"relay column lacks the internet round trip a real one adds (see the WAN tables).\n\n")
	b.WriteString("| figure | unit | printer | LAN route | relay route |\n|---|---|---:|---:|---:|\n")
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }
	fmt.Fprintf(&b, "| small GET p50 | µs | %s | %s | %s |\n", us(f.PrinterGet), us(f.LANGet), us(f.RelayGet))
	fmt.Fprintf(&b, "| upload (%d MiB, multipart) | MB/s | %.0f | %.0f | %.0f |\n", f.UploadBytes>>20, f.PrinterUpload, f.LANUpload, f.RelayUpload)
	fmt.Fprintf(&b, "| WebSocket JSON-RPC round trip p50 | µs | %s | %s | %s |\n", us(f.PrinterWSRoundTrip), us(f.LANWSRoundTrip), us(f.RelayWSRTT))
	fmt.Fprintf(&b, "\nFirst proof %s; the LAN printer vanishing → the next request answered by the relay in %s (that request\n"+
		"included: its refused LAN connect goes on to the relay within it; target < 1 s).\n",
		f.ProofTime.Round(time.Millisecond), f.Fallback.Round(100*time.Microsecond))
	return b.String()
}

// String renders the figures for a report.
func (f LANFigures) String() string {
	return fmt.Sprintf("LAN route: small GET %s (relay %s, printer %s), upload %.0f MB/s (relay %.0f, printer %.0f), WebSocket round trip %s (relay %s, printer %s), first proof %s, LAN printer vanished → answered by the relay in %s (target < 1 s)",
		f.LANGet.Round(time.Microsecond), f.RelayGet.Round(time.Microsecond), f.PrinterGet.Round(time.Microsecond),
		f.LANUpload, f.RelayUpload, f.PrinterUpload,
		f.LANWSRoundTrip.Round(time.Microsecond), f.RelayWSRTT.Round(time.Microsecond), f.PrinterWSRoundTrip.Round(time.Microsecond),
		f.ProofTime.Round(time.Microsecond), f.Fallback.Round(time.Microsecond))
}

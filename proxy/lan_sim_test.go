package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/route"
)

// lanEnv is a printer reachable both through the simulated relay and on its LAN address (127.0.0.2), with a
// Handler whose Router proves the LAN host.
type lanEnv struct {
	*simEnv
	router *route.Router
	proofs chan route.Proof
	lan    *http.Transport

	mu    sync.Mutex
	stats []RequestStats
}

const clientKey = "client-own-api-key-8d1e"

func startLANSim(t *testing.T, kind oesim.PrinterKind, mode route.Mode) *lanEnv {
	t.Helper()
	sim, err := oesim.Start(context.Background(), oesim.Options{TempDir: t.TempDir(),
		Printers: []oesim.PrinterOptions{{Name: "LAN printer", Kind: kind, LAN: true}}})
	if err != nil {
		t.Fatal(err)
	}
	e := &lanEnv{simEnv: &simEnv{sim: sim, printer: sim.Printers()[0]}, proofs: make(chan route.Proof, 16)}
	e.conn = sim.Connect(e.printer)
	e.creds = e.conn.Credentials()
	relayURL, _ := url.Parse(e.creds.URL)
	e.transport = oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	e.lan = route.NewLANTransport()
	log, logs := observed()
	e.logs = logs
	p := Printer{Name: "lanprinter", RelayURL: relayURL, Auth: "basic", BasicUser: e.creds.BasicUser,
		BasicPassword: e.creds.BasicPassword, BearerToken: e.creds.BearerToken}
	relay, err := RelayTransport(p, e.transport)
	if err != nil {
		t.Fatal(err)
	}
	e.router, err = route.New(route.Options{Printer: p.Name, Mode: mode, LANURLs: []string{e.printer.LANURL},
		Relay: relay, LAN: e.lan, Logger: log, Hooks: route.Hooks{Proof: func(pr route.Proof) { e.proofs <- pr }}})
	if err != nil {
		t.Fatal(err)
	}
	e.local = httptest.NewUnstartedServer(nil)
	o := Options{Transport: e.transport, Logger: log, ListenAddr: e.local.Listener.Addr().String(), AppID: "testapp",
		PortalURL: sim.PortalURL, Router: e.router, LANTransport: e.lan,
		Hooks: Hooks{RequestDone: func(st RequestStats) { e.mu.Lock(); e.stats = append(e.stats, st); e.mu.Unlock() }}}
	e.h, err = New(p, o)
	if err != nil {
		t.Fatal(err)
	}
	e.local.Config.Handler = e.h
	e.local.Start()
	t.Cleanup(func() {
		e.router.Close()
		e.h.Close()
		e.local.Close()
		_ = sim.Close()
		e.transport.CloseIdleConnections()
		e.lan.CloseIdleConnections()
		assertNoSecrets(t, e.logs, e.secrets()...)
		e.assertNoCredentialOnLAN(t)
	})
	return e
}

// prove starts the router and waits for its first proof to be applied.
func (e *lanEnv) prove(t *testing.T) route.Proof {
	t.Helper()
	e.router.Start(context.Background())
	return e.nextProof(t)
}

func (e *lanEnv) nextProof(t *testing.T) route.Proof {
	t.Helper()
	select {
	case p := <-e.proofs:
		// The hook runs just before the proof is applied: wait for the status to show it.
		deadline := time.Now().Add(5 * time.Second)
		for e.router.Status().LastProof.IsZero() || e.router.Status().ProofOK != (p.OK && e.router.Status().Strength == p.Strength) {
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no proof within 10 s")
	}
	return route.Proof{}
}

// assertNoCredentialOnLAN: no request that reached the LAN address carried the App Connection credential.
func (e *lanEnv) assertNoCredentialOnLAN(t *testing.T) {
	t.Helper()
	for _, r := range e.printer.LANRequests() {
		for _, v := range r.Header.Values("Authorization") {
			for _, s := range e.secrets() {
				if strings.Contains(v, s) {
					t.Errorf("the App Connection credential reached the LAN address on %s %s", r.Method, r.Path)
				}
			}
		}
	}
}

// clientLANRequests are the LAN requests that were not the proof's own (they carry the client's key).
func (e *lanEnv) clientLANRequests() []oesim.LANRequest {
	var out []oesim.LANRequest
	for _, r := range e.printer.LANRequests() {
		if r.Header.Get("X-Api-Key") != "" || !isProofPath(r.Path) {
			out = append(out, r)
		}
	}
	return out
}

func isProofPath(p string) bool {
	return p == "/server/database/item" || p == "/api/plugin/octoeverywhere"
}

func (e *lanEnv) relayCount() int { return len(e.conn.Requests()) }

func (e *lanEnv) lastStats() RequestStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats[len(e.stats)-1]
}

func (e *lanEnv) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	r := newReq(t, "GET", e.url(path), nil)
	r.Header.Set("X-Api-Key", clientKey)
	return do(t, localClient(), r)
}

func TestLANOnlyAfterAGoodProof(t *testing.T) {
	t.Parallel()
	for _, kind := range []oesim.PrinterKind{oesim.KindMoonraker, oesim.KindOctoPrint} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			e := startLANSim(t, kind, route.ModeAuto)
			path := "/api/version"
			if kind == oesim.KindMoonraker {
				path = "/server/info"
			}
			// No proof yet: the relay.
			if resp, b := e.get(t, path); resp.StatusCode != 200 || e.lastStats().Route != "relay" {
				t.Fatalf("before the proof: %d %s via %s", resp.StatusCode, b, e.lastStats().Route)
			}
			if n := len(e.printer.LANRequests()); n != 0 {
				t.Fatalf("%d requests reached the LAN before any proof", n)
			}
			if p := e.prove(t); !p.OK {
				t.Fatalf("proof failed: %s", p.Reason)
			}
			before := e.relayCount()
			resp, b := e.get(t, path)
			if resp.StatusCode != 200 || e.lastStats().Route != "lan" {
				t.Fatalf("after the proof: %d %s via %s", resp.StatusCode, b, e.lastStats().Route)
			}
			if e.relayCount() != before {
				t.Fatal("a request on the LAN route also went to the relay")
			}
			got := e.clientLANRequests()
			if len(got) != 1 || got[0].Path != path || got[0].Header.Get("X-Api-Key") != clientKey {
				t.Fatalf("LAN requests of the client: %+v", got)
			}
			if st := e.router.Status(); st.Active != route.LAN || st.LastProof.IsZero() {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

func TestLANClientAuthorizationPasses(t *testing.T) {
	t.Parallel()
	e := startLANSim(t, oesim.KindOctoPrint, route.ModeAuto)
	e.prove(t)
	r := newReq(t, "GET", e.url("/api/version"), nil)
	r.SetBasicAuth("prusa", "printer-own-digest-pw")
	r.Header.Set("X-Forwarded-For", "6.6.6.6")
	do(t, localClient(), r)
	got := e.clientLANRequests()
	if len(got) != 1 {
		t.Fatalf("%d client requests on the LAN", len(got))
	}
	if u, p, ok := (&http.Request{Header: got[0].Header}).BasicAuth(); !ok || u != "prusa" || p != "printer-own-digest-pw" {
		t.Fatal("the client's own Basic auth did not reach the printer on the LAN")
	}
	if got[0].Header.Get("X-Forwarded-For") != "" {
		t.Fatal("a forwarding header reached the LAN")
	}
}

func TestLANImpostorGetsNoClientRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind oesim.PrinterKind
		host oesim.LANHost
	}{
		{oesim.KindOctoPrint, oesim.LANImpostorOtherID},
		{oesim.KindMoonraker, oesim.LANImpostorOtherID},
		{oesim.KindMoonraker, oesim.LANImpostorSameID},
	} {
		t.Run(tc.kind.String()+"/"+tc.host.String(), func(t *testing.T) {
			t.Parallel()
			e := startLANSim(t, tc.kind, route.ModeAuto)
			if err := e.printer.SetLAN(tc.host); err != nil {
				t.Fatal(err)
			}
			if p := e.prove(t); p.OK || !p.Mismatch {
				t.Fatalf("the impostor passed: %+v", p)
			}
			for _, path := range []string{"/", "/api/version", "/server/info"} {
				e.get(t, path)
				if e.lastStats().Route != "relay" {
					t.Fatalf("%s went %s", path, e.lastStats().Route)
				}
			}
			for _, r := range e.printer.LANRequests() {
				if !isProofPath(r.Path) || r.Header.Get("X-Api-Key") != "" || r.Header.Get("Cookie") != "" {
					t.Fatalf("the impostor received a client request or header: %s %s %v", r.Method, r.Path, r.Header)
				}
			}
		})
	}
}

func TestLANFallbackWithinOneRequest(t *testing.T) {
	t.Parallel()
	e := startLANSim(t, oesim.KindMoonraker, route.ModeAuto)
	if p := e.prove(t); !p.OK {
		t.Fatal(p.Reason)
	}
	if err := e.printer.SetLAN(oesim.LANGone); err != nil { // the router is not told
		t.Fatal(err)
	}
	body := `{"namespace":"oeproxy","key":"fallback","value":"posted-once"}`
	r := newReq(t, "POST", e.url("/server/database/item"), strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", e.local.URL)
	resp, b := do(t, localClient(), r)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "posted-once") {
		t.Fatalf("the request did not fall back to the relay: %d %s", resp.StatusCode, b)
	}
	if st := e.lastStats(); st.Route != "relay" || st.BytesIn != int64(len(body)) {
		t.Fatalf("stats %+v", st)
	}
	posts := 0
	for _, q := range e.conn.Requests() {
		if q.Method == "POST" && strings.Contains(q.Header.Get("Content-Type"), "json") && q.BodySize == int64(len(body)) {
			posts++ // the proof's nonce write has another size
		}
	}
	if posts != 1 {
		t.Fatalf("the relay got the client's POST %d times, want once with the whole body", posts)
	}
	if st := e.router.Status(); st.Active != route.Relay {
		t.Fatalf("after a failed LAN connect the router still says %s", st.Active)
	}
}

func TestLANPartlySentBodyIsNotReplayed(t *testing.T) {
	t.Parallel()
	e := startLANSim(t, oesim.KindOctoPrint, route.ModeAuto)
	e.prove(t)
	relayBefore := e.relayCount()
	pr, pw := io.Pipe()
	r := newReq(t, "POST", e.url("/api/files/local"), pr)
	r.ContentLength = 64 << 20
	r.Header.Set("Content-Type", "multipart/form-data; boundary=XyZ")
	r.Header.Set("X-Api-Key", clientKey)
	r.Header.Set("Origin", e.local.URL)
	go func() {
		head := "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.gcode\"\r\nContent-Type: application/octet-stream\r\n\r\n"
		if _, err := pw.Write([]byte(head)); err != nil {
			return
		}
		chunk := bytes.Repeat([]byte("G1 X1\n"), 10000)
		for {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
	}()
	defer pw.CloseWithError(io.ErrUnexpectedEOF)
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := localClient().Do(r)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	// Wait for the upload to reach the printer on the LAN, then make the printer vanish mid-body.
	deadline := time.Now().Add(10 * time.Second)
	for len(e.clientLANRequests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the upload never reached the LAN")
		}
		time.Sleep(time.Millisecond)
	}
	if err := e.printer.SetLAN(oesim.LANGone); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("the client got no answer: %v", res.err)
	}
	if res.status != http.StatusBadGateway || !strings.Contains(res.body, "does not send a request twice") {
		t.Fatalf("a partly sent upload: %d %s", res.status, res.body)
	}
	for _, q := range e.conn.Requests()[relayBefore:] {
		if q.Path == "/api/files/local" {
			t.Fatal("the partly sent upload was replayed on the relay")
		}
	}
}

func TestLANModeNeverUsesTheRelay(t *testing.T) {
	t.Parallel()
	e := startLANSim(t, oesim.KindOctoPrint, route.ModeLAN)
	if err := e.printer.SetLAN(oesim.LANGone); err != nil {
		t.Fatal(err)
	}
	before := e.relayCount()
	r := newReq(t, "GET", e.url("/api/version"), nil)
	r.Header.Set("Accept", "text/html")
	resp, b := do(t, localClient(), r)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "route is lan") {
		t.Fatalf("lan mode, printer gone: %d %s", resp.StatusCode, b)
	}
	if e.relayCount() != before {
		t.Fatal("lan mode used the relay")
	}
}

func TestLANWebSocketIsNotMoved(t *testing.T) {
	t.Parallel()
	e := startLANSim(t, oesim.KindMoonraker, route.ModeAuto)
	e.prove(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url("/websocket"), "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	rpc := func(id int) {
		t.Helper()
		msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "server.info", "id": id})
		if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var m struct{ ID int }
			if json.Unmarshal(b, &m) == nil && m.ID == id {
				return
			}
		}
	}
	rpc(1)
	if n := len(e.clientLANRequests()); n != 1 {
		t.Fatalf("the WebSocket did not open on the LAN (%d client LAN requests)", n)
	}
	relayWS := func() int {
		n := 0
		for _, q := range e.conn.Requests() {
			if q.WebSocket {
				n++
			}
		}
		return n
	}
	// The laptop moves: the router goes to the relay; the open WebSocket stays where it is and keeps working.
	if err := e.printer.SetLAN(oesim.LANImpostorOtherID); err != nil {
		t.Fatal(err)
	}
	e.router.Recheck()
	if p := e.nextProof(t); p.OK {
		t.Fatal("the impostor passed")
	}
	rpc(2)
	if relayWS() != 0 {
		t.Fatal("the open WebSocket was moved to the relay")
	}
	// A new WebSocket starts on the relay.
	ws2, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url("/websocket"), "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws2.CloseNow()
	if relayWS() != 1 {
		t.Fatal("a new WebSocket after the switch did not go to the relay")
	}
	ws.Close(websocket.StatusNormalClosure, "")
}

package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/oesim"
)

func TestChangedKeys(t *testing.T) {
	base := config.Config{Listen: config.Listen{Host: "127.0.0.1", PortBase: 5001}, ShutdownGrace: time.Second}
	for _, tc := range []struct {
		name string
		mod  func(*config.Config)
		want []string
	}{
		{"nothing", func(*config.Config) {}, nil},
		{"empty list is no list", func(c *config.Config) { c.Listen.AllowedHosts = []string{} }, nil},
		{"nested keys", func(c *config.Config) {
			c.Listen.AllowedHosts = []string{"pi.lan"}
			c.OctoEverywhere.AppID = "other"
			c.WebSocket.PingInterval = time.Minute
		}, []string{"listen.allowed_hosts", "octoeverywhere.app_id", "websocket.ping_interval"}},
		{"top-level keys", func(c *config.Config) { c.DataDir = "/x"; c.ShutdownGrace = time.Minute },
			[]string{"data_dir", "shutdown_grace"}},
	} {
		next := base
		tc.mod(&next)
		if got := changedKeys(base, next); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestReloadKeepsConnections: a reload changes the log level, the allowed hosts (printer ports and admin page)
// and the WebSocket settings, while a WebSocket and a webcam stream opened before it keep working; keys that
// need a restart are reported and keep their value.
func TestReloadKeepsConnections(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	mk4, voron := e.Sim.Printers()[0], e.Sim.Printers()[1]
	addServed(t, e, "mk4", mk4)
	addServed(t, e, "voron", voron)

	// Checked after the daemon stopped (cleanups run last-registered first): shutdown closes the WebSocket that
	// the replaced handler still holds, with 1001.
	var ws *websocket.Conn
	wsEnd := make(chan error, 1)
	t.Cleanup(func() {
		if ws == nil {
			return
		}
		defer ws.CloseNow()
		select {
		case err := <-wsEnd:
			if s := websocket.CloseStatus(err); s != websocket.StatusGoingAway {
				t.Errorf("after shutdown the old WebSocket ended with %v (%v), want 1001", s, err)
			}
		case <-time.After(10 * time.Second):
			t.Error("shutdown did not close the WebSocket of the replaced handler")
		}
	})

	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	var cfg config.Config
	d, logs := serviceDaemon(t, e, func(c *config.Config) { cfg = *c }, &level)
	cfg.Admin.Listen = "127.0.0.1:0"
	mk4URL, voronURL := "http://"+d.PrinterAddr("mk4"), "http://"+d.PrinterAddr("voron")
	_, mk4Port, _ := net.SplitHostPort(d.PrinterAddr("mk4"))
	_, adminPort, _ := net.SplitHostPort(d.AdminAddr())

	withHost := func(url, host string) int {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := withHost(mk4URL+"/api/version", "printer.lan:"+mk4Port); st != http.StatusMisdirectedRequest {
		t.Fatalf("before reload, Host printer.lan: %d", st)
	}
	if st := withHost("http://"+d.AdminAddr()+"/", "printer.lan:"+adminPort); st != http.StatusMisdirectedRequest {
		t.Fatalf("before reload, admin Host printer.lan: %d", st)
	}

	stream := openStream(t, mk4URL+"/webcam/?action=stream")
	defer stream.Close()
	ws = dialWS(t, "ws"+strings.TrimPrefix(voronURL, "http")+"/websocket")
	rpc(t, ws, 1, "server.info")

	next := cfg
	next.Log.Level = "debug"
	next.Listen.AllowedHosts = []string{"printer.lan"}
	next.WebSocket.PingInterval = 7 * time.Second
	next.ShutdownGrace = 3 * time.Second
	next.Listen.PortBase = cfg.Listen.PortBase + 1
	next.Admin.Listen = "127.0.0.1:7999"
	next.OctoEverywhere.AppID = "another-app"
	rep := d.Reload(next, &level)

	wantApplied := []string{"listen.allowed_hosts", "shutdown_grace", "websocket.ping_interval", "log.level"}
	wantRestart := []string{"listen.port_base", "admin.listen", "octoeverywhere.app_id"}
	for _, k := range wantApplied {
		if !slices.Contains(rep.Applied, k) {
			t.Errorf("applied %v lacks %s", rep.Applied, k)
		}
	}
	for _, k := range wantRestart {
		if !slices.Contains(rep.NeedRestart, k) {
			t.Errorf("need restart %v lacks %s", rep.NeedRestart, k)
		}
	}
	if len(rep.Applied) != len(wantApplied) || len(rep.NeedRestart) != len(wantRestart) {
		t.Errorf("report %+v", rep)
	}
	if level.Level() != zapcore.DebugLevel {
		t.Errorf("log level %v after reload", level.Level())
	}
	live := d.cfg()
	if live.ShutdownGrace != 3*time.Second || live.WebSocket.PingInterval != 7*time.Second ||
		live.Listen.PortBase != cfg.Listen.PortBase || live.Admin.Listen != cfg.Admin.Listen || live.OctoEverywhere.AppID != cfg.OctoEverywhere.AppID {
		t.Errorf("configuration in effect: %+v", live)
	}
	text := logText(logs)
	for _, k := range wantRestart {
		if !strings.Contains(text, "takes effect only after a restart of oeproxy map[key:"+k+"]") {
			t.Errorf("no restart notice for %s in\n%s", k, text)
		}
	}

	// New settings for new requests, on the printer ports and the admin page.
	if st := withHost(mk4URL+"/api/version", "printer.lan:"+mk4Port); st != 200 {
		t.Errorf("after reload, Host printer.lan: %d", st)
	}
	// The admin page wants a session; a logged-in browser on the new Host gets the page.
	b := newBrowser(t, d)
	if r := b.do(http.MethodGet, "/", nil, func(r *http.Request) {
		r.Host = "printer.lan:" + adminPort
		for _, c := range b.hc.Jar.Cookies(r.URL) { // the jar keys cookies by the Host sent, not the address dialled
			r.AddCookie(c)
		}
	}); r.status != 200 {
		t.Errorf("after reload, admin Host printer.lan: %d %s", r.status, r.body)
	}
	// The WebSocket and the stream opened before the reload still work.
	rpc(t, ws, 2, "server.info")
	if _, err := io.ReadAtLeast(stream, make([]byte, 4096), 4096); err != nil {
		t.Errorf("webcam stream after reload: %v", err)
	}
	// A new WebSocket works too, and the old one is still counted.
	ws2 := dialWS(t, "ws"+strings.TrimPrefix(voronURL, "http")+"/websocket")
	rpc(t, ws2, 3, "server.info")
	d.mu.Lock()
	open := d.printers["voron"].handler.OpenWebSockets()
	d.mu.Unlock()
	if open != 2 {
		t.Errorf("open WebSockets of voron: %d, want 2 (old and new handler)", open)
	}
	ws2.Close(websocket.StatusNormalClosure, "")

	// From now on the old WebSocket is only read, as a browser would, until shutdown closes it.
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				wsEnd <- err
				return
			}
		}
	}()

	// A debug line is now logged.
	before := logs.FilterLevelExact(zapcore.DebugLevel).Len()
	d.log.Debug("debug after reload")
	if logs.FilterLevelExact(zapcore.DebugLevel).Len() != before+1 {
		t.Error("debug lines are still dropped after the reload")
	}
	// Reloading the same file again changes nothing.
	if rep := d.Reload(next, &level); len(rep.Applied) != 0 || len(rep.NeedRestart) != 3 {
		t.Errorf("second reload: %+v", rep)
	}
}

func TestReloadWithoutLevelControl(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	var cfg config.Config
	d, _ := serviceDaemon(t, e, func(c *config.Config) { cfg = *c }, nil)
	next := cfg
	next.Log.Level = "error"
	rep := d.Reload(next, nil)
	if !slices.Equal(rep.NeedRestart, []string{"log.level"}) || len(rep.Applied) != 0 {
		t.Errorf("report %+v", rep)
	}
}

// Each reload replaces every printer's handler; the replaced ones are let go once they hold no WebSocket, so a
// daemon reloaded every hour does not grow.
func TestReloadLetsReplacedHandlersGo(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	addServed(t, e, "voron", e.Sim.Printers()[1])
	var cfg config.Config
	d, _ := serviceDaemon(t, e, func(c *config.Config) { cfg = *c }, nil)
	cfg.Admin.Listen = "127.0.0.1:0"
	url := "ws" + strings.TrimPrefix("http://"+d.PrinterAddr("voron"), "http") + "/websocket"
	ws := dialWS(t, url) // held by the first handler through every reload
	defer ws.CloseNow()
	rpc(t, ws, 1, "server.info")
	retired := func() int {
		d.mu.Lock()
		ph := d.printers["voron"].handler
		d.mu.Unlock()
		ph.mu.Lock()
		defer ph.mu.Unlock()
		return len(ph.retired)
	}
	next := cfg
	for i := range 6 {
		next.Listen.AllowedHosts = []string{fmt.Sprintf("printer%d.lan", i)}
		if rep := d.Reload(next, nil); !slices.Contains(rep.Applied, "listen.allowed_hosts") {
			t.Fatalf("reload %d: %+v", i, rep)
		}
	}
	// The first handler (its WebSocket is open) and the one replaced last.
	if n := retired(); n != 2 {
		t.Errorf("after 6 reloads with one WebSocket open: %d replaced handlers kept, want 2", n)
	}
	rpc(t, ws, 2, "server.info")
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.mu.Lock()
		open := d.printers["voron"].handler.OpenWebSockets()
		d.mu.Unlock()
		if open == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	next.Listen.AllowedHosts = nil
	d.Reload(next, nil)
	if n := retired(); n != 1 {
		t.Errorf("after the WebSocket ended and one more reload: %d replaced handlers kept, want 1", n)
	}
	// Requests still work on the current handler.
	resp, err := http.Get("http://" + d.PrinterAddr("voron") + "/server/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the reloads: %s", resp.Status)
	}
}

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/proxy"
)

// appEnv is an oeproxy installation (see newEnv) with printers linked through the paste flow, and a webhook
// receiver the sim trusts.
type appEnv struct {
	*env
	hookURL string
	hooks   func() int
}

func newAppEnv(t *testing.T, o oesim.Options) *appEnv {
	t.Helper()
	var mu sync.Mutex
	n := 0
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	o.WebhookClient = recv.Client()
	return &appEnv{env: newEnv(t, o), hookURL: recv.URL, hooks: func() int { mu.Lock(); defer mu.Unlock(); return n }}
}

// link stores a new connection to printer p under name (paste flow) and returns it.
func (e *appEnv) link(name string, p *oesim.Printer) *oesim.Connection {
	e.t.Helper()
	c := e.sim.Connect(p)
	e.mustRun(completionURL(c.Credentials(), p.Name, nil)+"\n", "connect", "--completion-url", "-", "--name", name, "--port", "0")
	return c
}

func (e *appEnv) status(args ...string) []control.PrinterStatus {
	e.t.Helper()
	var st []control.PrinterStatus
	out := e.mustRun("", append([]string{"status", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// TestStatusStates: every state `status` can show, from oesim's answers, in the table, in --json and in the
// advice lines, without a daemon.
func TestStatusStates(t *testing.T) {
	e := newAppEnv(t, oesim.Options{Printers: []oesim.PrinterOptions{
		{Name: "Prusa MK4", Kind: oesim.KindOctoPrint, LocalIP: "192.168.1.50"},
		{Name: "Voron", Kind: oesim.KindMoonraker, LocalIP: "192.168.1.51"}}})
	mk4, voron := e.sim.Printers()[0], e.sim.Printers()[1]
	e.link("online", mk4)
	e.link("offline", voron)
	voron.SetOnline(false)
	e.link("deleted", mk4).Delete()
	e.link("revoked", mk4).Revoke()
	e.link("nosupport", mk4).SetSupporter(false)

	want := map[string]struct {
		state health.State
		code  int
	}{
		"online":    {health.StateOnline, 0},
		"offline":   {health.StatePrinterOffline, 0},
		"deleted":   {health.StateNeedsRelink, 603},
		"revoked":   {health.StateNeedsRelink, 604},
		"nosupport": {health.StateNoSupporterPerks, 605},
	}
	st := e.status()
	if len(st) != len(want) {
		t.Fatalf("status lists %d printers, want %d", len(st), len(want))
	}
	for _, s := range st {
		w := want[s.Name]
		code := 0
		if s.LastError != nil {
			code = s.LastError.Code
		}
		if s.State != w.state || code != w.code || s.Daemon || s.CheckedAt == nil {
			t.Errorf("%s: state %q code %d daemon %v, want %q %d", s.Name, s.State, code, s.Daemon, w.state, w.code)
		}
		if s.State == health.StateOnline && (!s.Online || s.LocalIP != "192.168.1.50" || s.Limits == nil || s.Limits.MaxUploadFileSizeBytes != 500<<20) {
			t.Errorf("online printer: %+v", s)
		}
	}
	table := e.mustRun("", "status")
	for _, s := range []string{"NAME", "online", "printer_offline", "needs_relink", "no_supporter_perks", "192.168.1.50", "500 MiB",
		"603 App Connection not found", "604 App Connection revoked", "605 no Supporter Perks",
		"revoked: Link the printer again: oeproxy remove revoked && oeproxy connect --name revoked"} {
		if !strings.Contains(table, s) {
			t.Errorf("status table lacks %q:\n%s", s, table)
		}
	}
	one := e.status("online")
	if len(one) != 1 || one[0].Name != "online" {
		t.Errorf("status online: %+v", one)
	}
	code, _, errOut := e.run(context.Background(), "", "status", "nope")
	if code != 1 || !strings.Contains(errOut, "nope") {
		t.Errorf("status nope: exit %d %q", code, errOut)
	}
	e.assertNoSecrets(table)
}

// TestAppCommands runs status, livelink, gadget and webhook against oesim without a daemon and through a running
// daemon, and searches every output for every secret oesim issued (and for the webhook URL's secret).
func TestAppCommands(t *testing.T) {
	for _, mode := range []string{"no daemon", "daemon"} {
		t.Run(mode, func(t *testing.T) {
			e := newAppEnv(t, oesim.Options{Printers: []oesim.PrinterOptions{{Name: "Prusa MK4", Kind: oesim.KindOctoPrint, LocalIP: "192.168.1.50"}}})
			p := e.sim.Printers()[0]
			conn := e.link("mk4", p)
			if mode == "daemon" {
				e.serveInBackground()
			}
			var outs []string
			run := func(wantCode int, args ...string) (string, string) {
				t.Helper()
				code, out, errOut := e.run(context.Background(), "", args...)
				outs = append(outs, out, errOut)
				if code != wantCode {
					t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, out, errOut)
				}
				return out, errOut
			}

			st := e.status("mk4")
			if len(st) != 1 || st[0].State != health.StateOnline || st[0].Daemon != (mode == "daemon") {
				t.Fatalf("status: %+v", st)
			}

			out, _ := run(0, "livelink", "mk4", "--hours", "48")
			links := conn.LiveLinks()
			if len(links) != 1 || links[0].ExpirationHours != 48 ||
				!strings.Contains(out, "Url:      "+links[0].URL) || !strings.Contains(out, "ShortUrl: "+links[0].ShortURL) {
				t.Errorf("livelink output %q, sim links %+v", out, links)
			}
			_, errOut := run(1, "livelink", "mk4", "--until-print-done")
			if !strings.Contains(errOut, "613") {
				t.Errorf("livelink without a print: %q", errOut)
			}
			p.SetPrinting(true)
			run(0, "livelink", "mk4", "--until-print-done")
			if l := conn.LiveLinks(); len(l) != 2 || !l[1].EndWithPrint {
				t.Errorf("sim links %+v", l)
			}
			run(2, "livelink", "mk4", "--hours", "0")
			run(2, "livelink", "mk4", "--hours", "5", "--until-print-done")

			conn.SetGadget(oesim.GadgetStatus{State: 3, Status: "Looking Good", StatusColor: "y", Rating: 5})
			out, _ = run(0, "gadget", "mk4")
			for _, s := range []string{"State:", "Active", "Looking Good", "yellow", "5/10"} {
				if !strings.Contains(out, s) {
					t.Errorf("gadget output lacks %q:\n%s", s, out)
				}
			}
			// A second call within 10 s: the daemon's client holds it back; without a daemon each command has its
			// own client, so the call reaches OctoEverywhere (oesim), which refuses it.
			_, errOut = run(1, "gadget", "mk4")
			wantGadget := map[string]string{"daemon": "held back by oeproxy", "no daemon": "429"}[mode]
			if !strings.Contains(errOut, "rate limited") || !strings.Contains(errOut, wantGadget) {
				t.Errorf("second gadget call: %q (want %q)", errOut, wantGadget)
			}

			hook := e.hookURL + "/oe?key=whsecret-1234"
			run(2, "webhook", "set", "mk4", "http://example.com/hook")
			run(2, "webhook", "set", "mk4", hook, "--events", "print-complete,bogus")
			out, _ = run(0, "webhook", "set", "mk4", hook, "--events", "print-complete,3")
			if u, f, _ := conn.Webhook(); u != hook || len(f) != 2 || f[0] != 2 || f[1] != 3 {
				t.Errorf("sim webhook %q %v", u, f)
			}
			if !strings.Contains(out, "2 PrintComplete, 3 PrintFailed") {
				t.Errorf("webhook set output: %q", out)
			}
			if l := e.list(); l[0].WebhookSetAt == nil {
				t.Error("list shows no webhook_set_at after webhook set")
			}
			if st := e.status("mk4"); st[0].WebhookSetAt == nil || st[0].WebhookExpiresAt == nil {
				t.Errorf("status lacks the webhook dates: %+v", st[0])
			}
			out, _ = run(0, "webhook", "test", "mk4")
			if !strings.Contains(out, "answered 200") || e.hooks() != 1 {
				t.Errorf("webhook test: %q, receiver called %d times", out, e.hooks())
			}
			run(0, "webhook", "delete", "mk4")
			if u, _, _ := conn.Webhook(); u != "" {
				t.Error("webhook still set at OctoEverywhere after delete")
			}

			conn.Revoke()
			out, _ = run(0, "status", "mk4")
			if !strings.Contains(out, "needs_relink") || !strings.Contains(out, "oeproxy remove mk4 && oeproxy connect --name mk4") {
				t.Errorf("status after revoke:\n%s", out)
			}
			_, errOut = run(1, "livelink", "mk4")
			if !strings.Contains(errOut, "604") {
				t.Errorf("livelink after revoke: %q", errOut)
			}

			e.assertNoSecrets(outs...)
			e.mu.Lock()
			logs := e.stderr.String()
			e.mu.Unlock()
			for _, o := range append(outs, logs) {
				if strings.Contains(o, "whsecret") {
					t.Errorf("the webhook URL's secret was printed or logged: %q", o)
				}
			}
		})
	}
}

// With OctoEverywhere unreachable, the table stays within 120 columns (the whole error is in --json) and the
// command fails: a script must not read "nobody answered" as success.
func TestStatusUnreachable(t *testing.T) {
	e := newAppEnv(t, oesim.Options{})
	e.link("mk4", e.sim.Printers()[0])
	e.link("voron-with-a-long-name", e.sim.Printers()[1])
	e.sim.Close()
	code, out, errOut := e.run(context.Background(), "", "status")
	if code != 1 || !strings.Contains(errOut, "could not be asked about any printer") {
		t.Errorf("exit %d, stderr %q; want 1 and the reason", code, errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if n := len([]rune(line)); n > 120 && !strings.Contains(line, ": ") {
			t.Errorf("table line of %d columns:\n%s", n, line)
		}
	}
	if !strings.Contains(out, "mk4") || !strings.Contains(out, "OctoEverywhere unreachable") {
		t.Errorf("table:\n%s", out)
	}
	code, out, _ = e.run(context.Background(), "", "status", "--json")
	if code != 1 || !strings.Contains(out, `"meaning"`) || !strings.Contains(out, `"unreachable": true`) {
		t.Errorf("--json: exit %d, %s", code, out)
	}
}

// TestUploadLines: status names every upload the slicer was told was done but the printer does not have, with
// where its file is kept, and counts those the printer has.
func TestUploadLines(t *testing.T) {
	s := control.PrinterStatus{Name: "mk4", Uploads: []proxy.UploadRecord{
		{File: "a.gcode", State: proxy.UploadDelivered},
		{File: "b.gcode", State: proxy.UploadFailed, Error: "the printer answered 415 Unsupported Media Type", Kept: "/d/undelivered/x-b.gcode"},
		{File: "c.gcode", State: proxy.UploadSending, Attempts: 2},
		{File: "d.gcode", State: proxy.UploadInterrupted, Error: "oeproxy stopped before the printer got it."},
	}}
	got := strings.Join(uploadLines(s), "\n")
	want := "mk4: upload b.gcode failed: the printer answered 415 Unsupported Media Type; kept at /d/undelivered/x-b.gcode: send it again\n" +
		"mk4: upload c.gcode being passed on to the printer (attempt 2)\n" +
		"mk4: upload d.gcode interrupted: oeproxy stopped before the printer got it.\n" +
		"mk4: 1 upload(s) answered once stored reached the printer"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if l := uploadLines(control.PrinterStatus{Name: "mk4"}); len(l) != 0 {
		t.Errorf("no uploads: %q", l)
	}
}

package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/oesim"
)

// A port that another program holds when the daemon starts is reported (list, status, admin page) with the
// reason and tried again until it is free; SIGHUP (Reload) tries at once.
func TestBusyPortIsRetried(t *testing.T) {
	old := retryFirst
	retryFirst = time.Hour // only the reload below can make the printer try again within the test
	defer func() { retryFirst = old }()
	e := newTestEnv(t, oesim.Options{})
	e.Add(t, "busy", e.Sim.Printers()[0])
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := e.Store.Update("busy", func(r *credstore.Record) error { r.Port = port; return nil }); err != nil {
		t.Fatal(err)
	}
	d, _ := serviceDaemon(t, e, nil, nil)
	list, err := d.Control().List(context.Background())
	if err != nil || len(list) != 1 || list[0].Served == nil || *list[0].Served || !strings.Contains(list[0].NotServed, "busy") {
		t.Fatalf("list with the port held elsewhere: %+v %v", list, err)
	}
	st, err := d.Control().Status(context.Background(), "busy")
	if err != nil || len(st) != 1 || st[0].NotServed == "" {
		t.Errorf("status: %+v %v", st, err)
	}
	body, _ := newBrowser(t, d).page()
	if !strings.Contains(body, "oeproxy keeps trying") {
		t.Error("the admin page does not say the port is retried")
	}
	l.Close()
	d.Reload(d.cfg(), nil) // what SIGHUP does
	waitFor(t, "busy served after the port came free", func() bool { return d.NotServed("busy") == "" && d.PrinterAddr("busy") != "" })
	if a := send(t, http.MethodGet, "http://"+d.PrinterAddr("busy")+"/api/version", ""); a.status != 200 {
		t.Errorf("GET after the port came free: %d", a.status)
	}
}

// rename and port are made at once through the running daemon: the old name and port stop, the new ones serve;
// a name or port another printer has is refused with its name.
func TestChangeNameAndPortWhileServing(t *testing.T) {
	e := newTestEnv(t, oesim.Options{})
	addServed(t, e, "mk4", e.Sim.Printers()[0])
	addServed(t, e, "voron", e.Sim.Printers()[1])
	d, _ := serviceDaemon(t, e, nil, nil)
	ctl := d.Control()
	ctx := context.Background()
	oldAddr := d.PrinterAddr("mk4")
	rec, err := ctl.Change(ctx, "mk4", control.Change{Name: "prusa"})
	if err != nil || rec.Name != "prusa" || d.PrinterAddr("mk4") != "" || d.PrinterAddr("prusa") != oldAddr {
		t.Fatalf("rename: %+v %v (mk4 at %q, prusa at %q)", rec, err, d.PrinterAddr("mk4"), d.PrinterAddr("prusa"))
	}
	if a := send(t, http.MethodGet, "http://"+oldAddr+"/api/version", ""); a.status != 200 {
		t.Errorf("GET after rename: %d", a.status)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	newPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	rec, err = ctl.Change(ctx, "prusa", control.Change{Port: newPort})
	if err != nil || rec.Port != newPort {
		t.Fatalf("port: %+v %v", rec, err)
	}
	if a := send(t, http.MethodGet, rec.LocalURL+"/api/version", ""); a.status != 200 {
		t.Errorf("GET on the new port: %d", a.status)
	}
	if c, err := net.Dial("tcp", oldAddr); err == nil {
		c.Close()
		t.Errorf("the old port %s still accepts connections", oldAddr)
	}
	voron, _ := e.Store.Get("voron")
	if _, err := ctl.Change(ctx, "prusa", control.Change{Port: voron.Port}); !errors.Is(err, credstore.ErrPortTaken) || !strings.Contains(err.Error(), "voron") {
		t.Errorf("taken port: %v", err)
	}
	if _, err := ctl.Change(ctx, "prusa", control.Change{Name: "voron"}); !errors.Is(err, credstore.ErrNameTaken) {
		t.Errorf("taken name: %v", err)
	}
	if _, err := ctl.Change(ctx, "prusa", control.Change{Name: "Bad Name"}); !errors.Is(err, control.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := ctl.Change(ctx, "nope", control.Change{Name: "x"}); !errors.Is(err, credstore.ErrNotFound) {
		t.Errorf("unknown printer: %v", err)
	}
}

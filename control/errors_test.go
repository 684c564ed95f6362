package control_test

import (
	"context"
	"errors"
	"testing"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/control/controltest"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/internal/simtest"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/portalflow"
)

// An error reads the same and matches the same sentinels whether a command reached the store directly (no
// daemon) or through the control socket: `remove nope` must not say one thing with the daemon and another
// without it, and callers' errors.Is checks must hold both ways.
func TestControlErrorsSurviveTheSocket(t *testing.T) {
	e := simtest.New(t, oesim.Options{})
	direct := &daemon.Printers{Store: e.Store, RelayDomain: e.Sim.Domain, PortBase: 41000}
	remote := controltest.Serve(t, direct)

	c := e.Sim.Connect(nil).Credentials()
	comp := portalflow.Completion{ID: c.ID, URL: c.URL, AppAPIToken: c.AppAPIToken, PrinterName: "MK4",
		BasicUser: c.BasicUser, BasicPassword: c.BasicPassword, BearerToken: c.BearerToken}
	if _, err := direct.Add(context.Background(), control.AddRequest{Completion: comp, Name: "mk4"}); err != nil {
		t.Fatal(err)
	}
	other := e.Sim.Connect(nil).Credentials()
	otherComp := comp
	otherComp.ID, otherComp.URL, otherComp.AppAPIToken = other.ID, other.URL, other.AppAPIToken
	otherComp.BasicUser, otherComp.BasicPassword, otherComp.BearerToken = other.BasicUser, other.BasicPassword, other.BearerToken

	cases := []struct {
		name string
		call func(control.Control) error
	}{
		{"remove a printer that is not there", func(c control.Control) error { _, err := c.Remove(context.Background(), "nope"); return err }},
		{"add a name that is taken", func(c control.Control) error {
			_, err := c.Add(context.Background(), control.AddRequest{Completion: otherComp, Name: "mk4"})
			return err
		}},
		{"add the same App Connection again", func(c control.Control) error {
			_, err := c.Add(context.Background(), control.AddRequest{Completion: comp, Name: "mk4-again"})
			return err
		}},
		{"add an invalid name", func(c control.Control) error {
			_, err := c.Add(context.Background(), control.AddRequest{Completion: otherComp, Name: "My Printer"})
			return err
		}},
		{"add a port that is not a port", func(c control.Control) error {
			_, err := c.Add(context.Background(), control.AddRequest{Completion: otherComp, Port: 70000})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dErr, rErr := tc.call(direct), tc.call(remote)
			if dErr == nil || rErr == nil {
				t.Fatalf("direct %v, through the socket %v: want both to fail", dErr, rErr)
			}
			if dErr.Error() != rErr.Error() {
				t.Errorf("messages differ:\n direct: %v\n socket: %v", dErr, rErr)
			}
			matched := 0
			for _, sentinel := range control.Sentinels {
				d, r := errors.Is(dErr, sentinel), errors.Is(rErr, sentinel)
				if d != r {
					t.Errorf("errors.Is(%v): direct %v, through the socket %v", sentinel, d, r)
				}
				if d {
					matched++
				}
			}
			if matched == 0 {
				t.Errorf("%v matches no sentinel a caller could check", dErr)
			}
		})
	}
}

package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
)

func newLANCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lan",
		Short: "Set or clear a printer's LAN address for LAN-first routing",
		Long: `A printer with a LAN address is reached on the LAN while the LAN host proves it is the same printer
(route auto), and through OctoEverywhere otherwise. The address comes from connect --printer-url,
else from the last known local IP OctoEverywhere reported (tried on ports 80, 7125 and 5000).

A printer behind an OctoEverywhere companion (PrusaLink, Elegoo) cannot say its printer id itself: give
the companion's local web API with --companion (local_web_api_port in octoeverywhere.conf, LOCAL_API_PORT
in the Docker image); the companion must report the printer's id before the LAN is used.

While serve runs, the change applies at once: the new address is proved before any request goes there,
and open WebSockets and webcam streams stay on the route they started on.`,
		Example: `  oeproxy lan set voron http://192.168.1.50:7125
  oeproxy lan set mk4 http://octopi.local --route lan
  oeproxy lan set core-one http://192.168.1.30 --companion http://192.168.1.5:8787
  oeproxy lan clear voron`,
		Args: args(cobra.NoArgs),
	}
	var route, companion string
	set := &cobra.Command{
		Use:   "set NAME URL",
		Short: "Set a printer's LAN address (http://host[:port])",
		Example: `  oeproxy lan set voron http://192.168.1.50:7125
  oeproxy lan set mk4 192.168.1.20 --route auto
  oeproxy lan set core-one http://192.168.1.30 --companion http://192.168.1.5:8787`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.setLAN(cmd.Context(), argv[0], control.LANRequest{URL: argv[1], Route: route, Companion: companion})
		},
	}
	set.Flags().StringVar(&route, "route", "", "also set the printer's route: relay, lan, auto or default (the config key route)")
	set.Flags().StringVar(&companion, "companion", "", "the OctoEverywhere companion's local web API (http://host:port): the identity proof for PrusaLink and Elegoo printers")
	var clearRoute string
	clearCmd := &cobra.Command{
		Use:     "clear NAME",
		Short:   "Forget a printer's LAN address and companion URL (the last known local IP is still tried in auto mode)",
		Example: "  oeproxy lan clear voron\n  oeproxy lan clear voron --route relay",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.setLAN(cmd.Context(), argv[0], control.LANRequest{Clear: true, Route: clearRoute})
		},
	}
	clearCmd.Flags().StringVar(&clearRoute, "route", "", "also set the printer's route: relay, lan, auto or default")
	cmd.AddCommand(set, clearCmd)
	return cmd
}

func (a *app) setLAN(ctx context.Context, name string, req control.LANRequest) error {
	ctl, done, err := a.control(ctx)
	if err != nil {
		return err
	}
	defer done()
	rec, err := ctl.SetLAN(ctx, name, req)
	if err != nil {
		return err
	}
	lan := rec.LANURL
	if lan == "" {
		lan = "none set"
	}
	fmt.Fprintf(a.out, "%s: LAN address %s, route %s.\n", rec.Name, lan, rec.Route)
	if rec.CompanionURL != "" {
		fmt.Fprintf(a.out, "The LAN host is proved through the companion at %s.\n", rec.CompanionURL)
	}
	if _, ok := ctl.(*control.Client); ok {
		fmt.Fprintln(a.out, "The running daemon checks the LAN host now; `oeproxy list` shows active_route.")
	}
	return nil
}

// SetLAN: without a store there is no printer to change.
func (n noStore) SetLAN(context.Context, string, control.LANRequest) (credstore.PublicRecord, error) {
	return credstore.PublicRecord{}, n.err
}

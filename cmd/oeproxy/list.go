package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/oeproxy/oeproxy/credstore"
)

func newListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the connected printers (never their secrets)",
		Long: `List the printers oeproxy knows: name, local port and URL, printer name and relay host.
Secrets are never shown. With --json, prints an array of objects with the keys name, port, local_url,
route, printer_name, app_connection_id, relay_host, created_at (RFC 3339), printer_id,
has_octoprint_api_key and webhook_set_at, plus damaged (what to do) for a stored record that cannot
be read, and, while the daemon runs, served (true or false) and not_served (why not). route is the
printer's route mode (relay, lan or auto); active_route the route in use now (lan or relay, "none"
when no daemon runs); lan_url the LAN address set (when one is), companion_url the companion's local
web API that proves it (lan set --companion), and last_proof when the daemon last checked the LAN host
(RFC 3339, when it did).`,
		Example: "  oeproxy list\n  oeproxy list --json | jq -r '.[].local_url'",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctl, done, err := a.control(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			list, err := ctl.List(cmd.Context())
			if err != nil {
				return err
			}
			if list == nil {
				list = []credstore.PublicRecord{}
			}
			if asJSON {
				return a.printJSON(list)
			}
			if len(list) == 0 {
				_, err := fmt.Fprintln(a.out, "No printers yet: run `oeproxy connect` to add one.")
				return err
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tLOCAL URL\tPRINTER\tRELAY HOST\tROUTE\tCREATED")
			for _, p := range list {
				if p.Damaged != "" {
					fmt.Fprintf(tw, "%s\t-\tDAMAGED (not served)\t-\t-\t-\n", p.Name)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.LocalURL, p.PrinterName, p.RelayHost, routeColumn(p), p.CreatedAt.Local().Format(time.DateTime))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, p := range list {
				if p.Damaged != "" {
					fmt.Fprintln(a.err, p.Damaged)
				}
				if p.NotServed != "" {
					fmt.Fprintf(a.out, "%s: not served: %s\n", p.Name, p.NotServed)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array (stable keys, see --help)")
	return cmd
}

// routeColumn is the route mode, and the route in use when a daemon answered ("auto→lan").
func routeColumn(p credstore.PublicRecord) string {
	if p.ActiveRoute == "" || p.ActiveRoute == "none" {
		return p.Route
	}
	return p.Route + "→" + p.ActiveRoute
}

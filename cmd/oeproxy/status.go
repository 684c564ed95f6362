package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/health"
	"github.com/oeproxy/oeproxy/internal/bootstrap"
	"github.com/oeproxy/oeproxy/proxy"
)

func newStatusCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show what OctoEverywhere says about each printer: online, limits, last error",
		Long: `Ask OctoEverywhere's App API about each printer (or only NAME) and show its state:

  online              the App Connection works and the printer is connected to OctoEverywhere
  printer_offline     the App Connection works but the printer (its OctoEverywhere plugin) is offline
  no_supporter_perks  the account owner is no longer an OctoEverywhere supporter (605)
  needs_relink        the App Connection is gone (603, 604) or its credential is refused (606, confirmed):
                      run the command shown; the daemon refuses the printer's requests until then
  unknown             OctoEverywhere could not be asked (see the last error)

While the daemon runs, the state also reflects the relay's answers to your traffic, and the daemon
logs each change once. Without a daemon, status asks OctoEverywhere once per printer.

With --json, prints an array of objects with the keys name, printer_name, state, state_since, online,
local_ip, last_connect, last_disconnect, limits (max_download_file_size_bytes,
max_upload_file_size_bytes, max_single_webcam_stream_length_seconds, and two undocumented fields that
may be null), last_error (code, meaning, source, at), checked_at, webhook_set_at, webhook_expires_at,
daemon, action, route (relay, lan or auto), active_route (lan, relay, or none without a daemon),
last_proof (when the daemon last proved the LAN host), route_reason, and uploads (with
upload.answer_when_stored: the uploads answered once stored, each with id, file, size, state stored,
sending, delivered, failed or interrupted, status, attempts, error, kept, stored and done). Times are
RFC 3339 in UTC or null. No secret is ever printed.`,
		Example: "  oeproxy status\n  oeproxy status mk4 --json | jq -r .[0].state",
		Args:    args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			name := ""
			if len(argv) == 1 {
				name = argv[0]
			}
			ctl, done, err := a.appControl(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			list, err := ctl.Status(cmd.Context(), name)
			if err != nil {
				return err
			}
			if list == nil {
				list = []control.PrinterStatus{}
			}
			asked := noneAsked(list)
			if asJSON {
				if err := a.printJSON(list); err != nil {
					return err
				}
				return asked
			}
			if len(list) == 0 {
				_, err := fmt.Fprintln(a.out, "No printers yet: run `oeproxy connect` to add one.")
				return err
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tLOCAL IP\tUPLOAD\tDOWNLOAD\tWEBCAM STREAM\tLAST ERROR\tCHECKED")
			for _, s := range list {
				up, down, cam := "-", "-", "-"
				if l := s.Limits; l != nil {
					up, down = limitBytes(l.MaxUploadFileSizeBytes), limitBytes(l.MaxDownloadFileSizeBytes)
					if l.MaxSingleWebcamStreamLengthSeconds > 0 {
						cam = (time.Duration(l.MaxSingleWebcamStreamLengthSeconds) * time.Second).String()
					}
				}
				lastErr := "-"
				if e := s.LastError; e != nil {
					lastErr = shortMeaning(e)
					if e.Code != 0 {
						lastErr = fmt.Sprintf("%d %s", e.Code, errName(e.Code))
					}
				}
				checked := "never"
				if s.CheckedAt != nil {
					checked = s.CheckedAt.Local().Format(time.TimeOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, orDash(s.LocalIP), up, down, cam, lastErr, checked)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, s := range list {
				if s.Action != "" {
					fmt.Fprintf(a.out, "%s: %s\n", s.Name, s.Action)
				}
				if s.NotServed != "" {
					fmt.Fprintf(a.out, "%s: not served: %s\n", s.Name, s.NotServed)
				}
			}
			for _, s := range list {
				if line := routeLine(s); line != "" {
					fmt.Fprintln(a.out, line)
				}
			}
			for _, s := range list {
				for _, line := range uploadLines(s) {
					fmt.Fprintln(a.out, line)
				}
			}
			return asked
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array (stable keys, see --help)")
	return cmd
}

// lastErrorWidth keeps the table within 120 columns with the other columns at their widest usual values; the
// whole text is in status --json.
const lastErrorWidth = 32

// clip shortens s to n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// noneAsked is status's error when OctoEverywhere answered for none of the printers (it is unreachable, or
// every answer failed): a script must not read that as success.
func noneAsked(list []control.PrinterStatus) error {
	if len(list) == 0 {
		return nil
	}
	for _, s := range list {
		if s.State != health.StateUnknown || s.LastError == nil || !s.LastError.Unreachable {
			return nil
		}
	}
	return fmt.Errorf("OctoEverywhere could not be asked about any printer (%s): check this computer's internet connection; the details are in oeproxy status --json",
		shortMeaning(list[0].LastError))
}

// shortMeaning is a failure that is not an OctoEverywhere code, in a table cell: what happened, not the chain of
// wrapped errors (status --json has that).
func shortMeaning(e *health.StatusError) string {
	if e.Unreachable {
		return "OctoEverywhere unreachable"
	}
	return clip(e.Meaning, lastErrorWidth)
}

func limitBytes(n int64) string {
	if n <= 0 {
		return "-"
	}
	return config.FormatBytes(n)
}

func errName(code int) string {
	if e, ok := appapi.Describe(code); ok {
		return e.Name
	}
	return "unknown code"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appControl is a.control for commands that call the App APIs: when no daemon runs, the store-backed Control
// gets an App API client of octoeverywhere.api_url that honours tls.ca_file and octoeverywhere.connect_to (the
// daemon has its own). Such a client lives as long as this command, so rules it keeps per connection (Gadget's
// one call per 10 s) hold only within this process.
func (a *app) appControl(ctx context.Context) (control.Control, func(), error) {
	ctl, done, err := a.control(ctx)
	if err != nil {
		return nil, nil, err
	}
	p, ok := ctl.(*daemon.Printers)
	if !ok || p.API != nil {
		return ctl, done, nil
	}
	api, closeAPI, err := a.apiClient()
	if err != nil {
		done()
		return nil, nil, err
	}
	p.API = api
	return p, func() { closeAPI(); done() }, nil
}

// apiClient builds the App API client from the configuration.
func (a *app) apiClient() (*appapi.Client, func(), error) {
	c, err := a.config()
	if err != nil {
		return nil, nil, err
	}
	log, err := a.log()
	if err != nil {
		return nil, nil, err
	}
	return bootstrap.API(&c.Config, log)
}

// routeLine is a printer's LAN-routing line, for printers that may use the LAN ("" for relay-only ones).
func routeLine(s control.PrinterStatus) string {
	if s.Route == "" || s.Route == "relay" {
		return ""
	}
	line := fmt.Sprintf("%s: route %s", s.Name, s.Route)
	if s.ActiveRoute != "" && s.ActiveRoute != "none" {
		line += ", now " + s.ActiveRoute
	}
	if s.LastProof != nil {
		line += ", last LAN proof " + s.LastProof.Local().Format(time.TimeOnly)
	} else if s.Daemon {
		line += ", no LAN proof yet"
	}
	if s.RouteReason != "" {
		line += " (" + s.RouteReason + ")"
	}
	return line
}

// uploadLines are a printer's uploads answered once stored that the printer does not have (yet), one line each,
// then how many it does have: the slicer was told "done" for all of them.
func uploadLines(s control.PrinterStatus) []string {
	var lines []string
	delivered := 0
	for _, u := range s.Uploads {
		switch u.State {
		case proxy.UploadDelivered:
			delivered++
		case proxy.UploadFailed, proxy.UploadInterrupted:
			line := fmt.Sprintf("%s: upload %s %s: %s", s.Name, orDash(u.File), u.State, u.Error)
			if u.Kept != "" {
				line += "; kept at " + u.Kept + ": send it again"
			}
			lines = append(lines, line)
		default:
			line := fmt.Sprintf("%s: upload %s being passed on to the printer (attempt %d)", s.Name, orDash(u.File), max(u.Attempts, 1))
			if u.Error != "" {
				line += ": " + u.Error
			}
			lines = append(lines, line)
		}
	}
	if delivered > 0 {
		lines = append(lines, fmt.Sprintf("%s: %d upload(s) answered once stored reached the printer", s.Name, delivered))
	}
	return lines
}

package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newGadgetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "gadget NAME",
		Short: "Show Gadget's view of the current print (OctoEverywhere's AI failure detection)",
		Long: `Ask OctoEverywhere for Gadget's status of the printer: its state (Disabled, DisabledForCurrentPrint,
Idle, Active, PausedDueToFailure), a few words of status, a colour and a rating from 1 (failure) to
10 (perfect). Status, colour and rating mean something only while Gadget is Active.

OctoEverywhere allows one Gadget call per 10 s per App Connection. oeproxy never sends a second one
sooner: it says how long to wait instead. While the daemon runs it keeps that rule for every command;
without a daemon each oeproxy command keeps it only for itself, so calling gadget in a tight loop from
a script can still reach OctoEverywhere's own limit.`,
		Example: "  oeproxy gadget mk4",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctl, done, err := a.appControl(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			g, err := ctl.Gadget(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 1, ' ', 0)
			fmt.Fprintf(tw, "State:\t%s\n", g.State)
			fmt.Fprintf(tw, "Status:\t%s\n", orDash(g.Status))
			fmt.Fprintf(tw, "Colour:\t%s\n", orDash(g.StatusColor.String()))
			if g.Rating == 0 {
				fmt.Fprintf(tw, "Rating:\t-\n")
			} else {
				fmt.Fprintf(tw, "Rating:\t%d/10 (%s)\n", int(g.Rating), g.Rating)
			}
			return tw.Flush()
		},
	}
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newRemoveCmd(a *app) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Forget a printer and its App Connection credentials",
		Long: `Forget a printer: its local port closes (at once when the daemon runs) and its credentials are
deleted from the store. The App Connection itself still exists at OctoEverywhere until you revoke it
on the OctoEverywhere website (printer settings, App Connections).

On a terminal, remove asks for confirmation; elsewhere pass --yes.`,
		Example: "  oeproxy remove mk4\n  oeproxy remove mk4 --yes",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			name := argv[0]
			if !yes {
				if !a.interactive {
					return usageError{errors.New("remove needs --yes when not run on a terminal")}
				}
				fmt.Fprintf(a.out, "Remove printer %q and delete its credentials? [y/N] ", name)
				line, _ := bufio.NewReader(a.in).ReadString('\n')
				if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
					return errors.New("not removed")
				}
			}
			ctl, done, err := a.control(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			rec, err := ctl.Remove(cmd.Context(), name)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "Removed %s (port %d, %s).\n", rec.Name, rec.Port, rec.PrinterName)
			fmt.Fprintln(a.out, "The App Connection still exists at OctoEverywhere: revoke it on the OctoEverywhere website")
			fmt.Fprintln(a.out, "(your printer's settings, App Connections) so that its credentials stop working.")
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

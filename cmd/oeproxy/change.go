package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
)

func newRenameCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rename NAME NEW",
		Short: "Give a printer another local name",
		Long: `Give a printer another local name (lower-case letters, digits and '-', at most 63 characters). Its
port and credentials stay; while the daemon runs the change is made at once, and the printer's open
connections (a web UI, a webcam) reconnect.`,
		Example: "  oeproxy rename prusa-mk4 mk4",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := credstore.ValidateName(argv[1]); err != nil {
				return usageError{err}
			}
			return a.change(cmd, argv[0], control.Change{Name: argv[1]})
		},
	}
}

func newPortCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "port NAME PORT",
		Short: "Give a printer another local port",
		Long: `Give a printer another local port. A port another printer has is refused; one another program holds
is accepted with a warning, and the daemon keeps trying it until it is free (status and list show the
printer as not served, and why). While the daemon runs the change is made at once; point your slicer
at the new address.`,
		Example: "  oeproxy port mk4 5101",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			port, err := strconv.Atoi(argv[1])
			if err != nil || port < 1 || port > 65535 {
				return usageError{fmt.Errorf("port %q is not a TCP port (1..65535)", argv[1])}
			}
			return a.change(cmd, argv[0], control.Change{Port: port})
		},
	}
}

func (a *app) change(cmd *cobra.Command, name string, ch control.Change) error {
	ctl, done, err := a.control(cmd.Context())
	if err != nil {
		return err
	}
	defer done()
	rec, err := ctl.Change(cmd.Context(), name, ch)
	if err != nil && rec.Name == "" {
		return err
	}
	fmt.Fprintf(a.out, "%s (%s): %s\n", rec.Name, rec.PrinterName, rec.LocalURL)
	return err
}

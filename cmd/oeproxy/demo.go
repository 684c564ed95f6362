package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/oeproxy/oeproxy/internal/demo"
)

func newDemoCmd(a *app) *cobra.Command {
	var (
		portBase  int
		check     bool
		exitAfter time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Offline end to end: a simulated OctoEverywhere and two printers, served through oeproxy",
		Long: `Run everything offline: oesim (a simulation of OctoEverywhere with an OctoPrint-flavoured and a
Moonraker-flavoured printer) starts on loopback, both printers are linked through the real portal flow
(auto-approved) and the real loopback callback, their credentials are stored encrypted in a temporary
data directory, and the real daemon serves them. Open the printed URLs in a browser (live webcam and
WebSocket readout) or paste them into a slicer. Ctrl-C stops everything and removes the temporary data.
Nothing here touches your own configuration, store or the internet.`,
		Example: "  oeproxy demo\n  oeproxy demo --check --exit-after 5s",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := a.log()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if exitAfter > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, exitAfter)
				defer cancel()
			}
			return demo.Run(ctx, demo.Options{Out: a.out, Logger: log, PortBase: portBase, Check: check, ExitAfter: exitAfter})
		},
	}
	cmd.Flags().IntVar(&portBase, "port-base", 5001, "first local port tried for the printers")
	cmd.Flags().BoolVar(&check, "check", false, "fetch each printer's API through oeproxy and report")
	cmd.Flags().DurationVar(&exitAfter, "exit-after", 0, "stop after this long (default: run until Ctrl-C)")
	return cmd
}

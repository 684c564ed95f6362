package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/internal/oe"
)

func newLiveLinkCmd(a *app) *cobra.Command {
	var (
		hours     int
		untilDone bool
	)
	cmd := &cobra.Command{
		Use:   "livelink NAME [--hours H | --until-print-done]",
		Short: "Create a Live Link: a public page with the printer's webcam and print progress",
		Long: fmt.Sprintf(`Create an OctoEverywhere Live Link for the printer and print its URLs. Anyone with the link sees the
webcam and the print's progress, without logging in.

The link lasts --hours (%d to %d, two years; default %d), or with --until-print-done it follows the
current print and then shows its result. --until-print-done fails with 613 when no print is running.`,
			oe.MinLiveLinkHours, oe.MaxLiveLinkHours, oe.DefaultLiveLinkHours),
		Example: "  oeproxy livelink mk4\n  oeproxy livelink mk4 --hours 72\n  oeproxy livelink mk4 --until-print-done",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			req := appapi.LiveLinkRequest{UntilPrintDone: untilDone}
			hoursSet := cmd.Flags().Changed("hours")
			switch {
			case hoursSet && untilDone:
				return usageError{errors.New("give either --hours or --until-print-done, not both")}
			case hoursSet && (hours < oe.MinLiveLinkHours || hours > oe.MaxLiveLinkHours):
				return usageError{fmt.Errorf("--hours %d is out of range: give %d to %d", hours, oe.MinLiveLinkHours, oe.MaxLiveLinkHours)}
			case hoursSet:
				req.Hours = hours
			}
			ctl, done, err := a.appControl(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			l, err := ctl.LiveLink(cmd.Context(), argv[0], req)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "Url:      %s\nShortUrl: %s\n", l.URL, l.ShortURL)
			return err
		},
	}
	cmd.Flags().IntVar(&hours, "hours", oe.DefaultLiveLinkHours, "how long the link lasts, in hours")
	cmd.Flags().BoolVar(&untilDone, "until-print-done", false, "the link follows the current print, then shows its result")
	return cmd
}

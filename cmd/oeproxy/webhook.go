package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/internal/oe"
)

func newWebhookCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Set, delete or test the printer's notification webhook",
		Long: `OctoEverywhere can POST the printer's notifications (print started, done, failed, Gadget warnings,
...) to one https URL per App Connection. The URL is called exactly as given, query included, so it
may carry a secret of yours: oeproxy stores it encrypted and never prints it.

A webhook lives 180 days after it was last set. oeproxy records when it set it, and the daemon
(oeproxy serve) sets it again after 150 days, logging a warning if that fails. Without a running
daemon, run webhook set again before the 180 days are over (oeproxy status shows the date).`,
		Args: args(cobra.NoArgs),
	}
	cmd.AddCommand(newWebhookSetCmd(a), newWebhookDeleteCmd(a), newWebhookTestCmd(a))
	return cmd
}

func newWebhookSetCmd(a *app) *cobra.Command {
	var events string
	cmd := &cobra.Command{
		Use:   "set NAME URL [--events 1,2,3]",
		Short: "Make OctoEverywhere POST the printer's notifications to URL (https only)",
		Long: `Set the printer's notification webhook. --events limits it to some event types, as numbers or names
(default: every event):

   1 print-started     5 print-resumed                  9 error                          13 non-supporter-notification-limit
   2 print-complete    6 print-progress                10 first-layer-complete           14 third-layer-complete
   3 print-failed      7 gadget-possible-failure       11 filament-change-required       15 bed-cool-down-complete
   4 print-paused      8 gadget-paused-print           12 user-interaction-required      16 test-notification

Setting again replaces the previous webhook.`,
		Example: "  oeproxy webhook set mk4 'https://hooks.example.com/oe?key=SECRET'\n  oeproxy webhook set mk4 https://hooks.example.com/oe --events print-complete,print-failed,7",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			name, raw := argv[0], argv[1]
			if err := oe.CheckWebhookURL(raw); err != nil {
				return usageError{err}
			}
			ev, err := parseEvents(events)
			if err != nil {
				return usageError{err}
			}
			ctl, done, err := a.appControl(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			info, err := ctl.SetWebhook(cmd.Context(), name, raw, ev)
			if err != nil {
				return err
			}
			which := "every event"
			if len(info.Events) > 0 {
				names := make([]string, 0, len(info.Events))
				for _, e := range info.Events {
					names = append(names, fmt.Sprintf("%d %s", e, appapi.EventType(e)))
				}
				which = strings.Join(names, ", ")
			}
			fmt.Fprintf(a.out, "Webhook of %s set to https://%s/... for %s.\n", info.Name, info.Host, which)
			fmt.Fprintf(a.out, "It lapses on %s unless set again; a running daemon renews it after 150 days.\n",
				info.ExpiresAt.Local().Format(time.DateOnly))
			fmt.Fprintf(a.out, "Try it: oeproxy webhook test %s\n", info.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&events, "events", "", "comma-separated event types (numbers or names); default every event")
	return cmd
}

// parseEvents reads "1,2,print-failed" into event types.
func parseEvents(s string) ([]appapi.EventType, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []appapi.EventType
	for _, part := range strings.Split(s, ",") {
		e, err := appapi.ParseEventType(part)
		if err != nil {
			return nil, fmt.Errorf("--events: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

func newWebhookDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Stop OctoEverywhere calling the printer's webhook",
		Example: "  oeproxy webhook delete mk4",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctl, done, err := a.appControl(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if err := ctl.DeleteWebhook(cmd.Context(), argv[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "Webhook of %s deleted.\n", argv[0])
			return err
		},
	}
}

func newWebhookTestCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "test NAME",
		Short: "Make OctoEverywhere send a test notification and show what the receiver answered",
		Long: `OctoEverywhere sends a test notification (event 16, whatever --events said) to the webhook and reports
the HTTP status your receiver answered. It must be 200 within 10 s: a receiver that keeps failing gets
the webhook disabled. Exits 1 when the receiver did not answer 200.`,
		Example: "  oeproxy webhook test mk4",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctl, done, err := a.appControl(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			t, err := ctl.TestWebhook(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			if t.StatusCode == 0 {
				fmt.Fprintln(a.out, "OctoEverywhere sent a test notification; the receiver gave no answer (unreachable, or the answer did not say).")
				return errors.New("the webhook receiver did not answer 200: check that it is reachable from the internet over https")
			}
			fmt.Fprintf(a.out, "OctoEverywhere sent a test notification; the receiver answered %d %s.\n", t.StatusCode, http.StatusText(t.StatusCode))
			if !t.OK() {
				return fmt.Errorf("the webhook receiver answered %d, not 200: OctoEverywhere disables webhooks that keep failing", t.StatusCode)
			}
			return nil
		},
	}
}

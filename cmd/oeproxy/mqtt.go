package main

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/internal/bootstrap"
)

func newMQTTCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mqtt",
		Short: "Turn a printer's local MQTT port (the bridge to OctoEverywhere's MQTT proxy) on or off",
		Long: `A Bambu Lab (or Elegoo Centauri Carbon 2) printer's MQTT server is reachable through its App Connection:
oeproxy gives the printer a plain MQTT 3.1.1 port on this machine (listen.host, from 1883 up) and carries
each client's connection over its own WebSocket to OctoEverywhere's MQTT proxy. Point Home Assistant's
Bambu Lab integration, mosquitto_sub or a farm tool at it; no MQTT user or password is needed.
Bambu printers get the port at connect; this command sets it for others, or moves or removes it.`,
		Args: args(cobra.NoArgs),
	}
	cmd.AddCommand(newMQTTEnableCmd(a), newMQTTDisableCmd(a))
	return cmd
}

func newMQTTEnableCmd(a *app) *cobra.Command {
	var port int
	var useTLS bool
	cmd := &cobra.Command{
		Use:     "enable NAME [--port P] [--tls]",
		Short:   "Give the printer a local MQTT port",
		Example: "  oeproxy mqtt enable x1c\n  oeproxy mqtt enable x1c --port 8883 --tls\n  mosquitto_sub -h 127.0.0.1 -p 1883 -t 'device/+/report'",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if port < 0 || port > 65535 {
				return usageError{fmt.Errorf("--port %d is not a TCP port (1..65535)", port)}
			}
			return a.setMQTT(cmd.Context(), argv[0], control.MQTTRequest{Enable: true, Port: port, TLS: useTLS})
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "local MQTT port (default: the printer's, or the first free one from 1883)")
	cmd.Flags().BoolVar(&useTLS, "tls", false, "speak TLS with a self-signed certificate made at each start (for clients that insist on TLS and do not verify it)")
	return cmd
}

func newMQTTDisableCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "disable NAME",
		Short:   "Close the printer's local MQTT port",
		Example: "  oeproxy mqtt disable x1c",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.setMQTT(cmd.Context(), argv[0], control.MQTTRequest{})
		},
	}
}

func (a *app) setMQTT(ctx context.Context, name string, req control.MQTTRequest) error {
	ctl, done, err := a.control(ctx)
	if err != nil {
		return err
	}
	defer done()
	rec, err := ctl.SetMQTT(ctx, name, req)
	if err != nil && rec.Name == "" {
		return err
	}
	if rec.MQTTPort == 0 {
		fmt.Fprintf(a.out, "%s has no MQTT port now.\n", rec.Name)
		return err
	}
	fmt.Fprintf(a.out, "%s: %s\n", rec.Name, mqttURL(a, rec))
	if _, ok := ctl.(*control.Client); !ok {
		fmt.Fprintln(a.out, "Start `oeproxy serve` (or the service) to open the port.")
	}
	return err
}

// mqttURL is where MQTT clients connect for a printer.
func mqttURL(a *app, rec credstore.PublicRecord) string {
	host := "127.0.0.1"
	if c, err := a.config(); err == nil && c.Listen.Host != "" {
		host = c.Listen.Host
	}
	scheme := "mqtt://"
	if rec.MQTTTLS {
		scheme = "mqtts://"
	}
	return scheme + net.JoinHostPort(host, strconv.Itoa(rec.MQTTPort))
}

// SetMQTT implements control.Control: there is no store to change.
func (n noStore) SetMQTT(context.Context, string, control.MQTTRequest) (credstore.PublicRecord, error) {
	return credstore.PublicRecord{}, n.err
}

// directDetector asks the plugin of a new printer for its platform when connect runs without a daemon.
func directDetector(c *config.Config) func(context.Context, credstore.Record) (string, error) {
	return func(ctx context.Context, rec credstore.Record) (string, error) {
		tr, err := bootstrap.APITransport(c)
		if err != nil {
			return "", err
		}
		defer tr.CloseIdleConnections()
		return daemon.PlatformDetector(tr, c.OctoEverywhere.Auth, nil)(ctx, rec)
	}
}

// printFront tells, once, what a printer without an HTTP API of its own got at connect: the OctoPrint front's
// key (never shown again) and the MQTT port.
func (a *app) printFront(rec credstore.PublicRecord, frontKey string) {
	if rec.Platform != "" {
		fmt.Fprintf(a.out, "Platform: %s\n", rec.Platform)
	}
	if rec.HasFrontAPIKey {
		fmt.Fprintf(a.out, "Slicers: add an OctoPrint host %s with this API key (shown only now; store it in the slicer):\n\n  %s\n\n",
			rec.LocalURL, frontKey)
	}
	if rec.MQTTPort != 0 {
		fmt.Fprintf(a.out, "MQTT (Home Assistant, mosquitto_sub): %s, no user or password\n", mqttURL(a, rec))
	}
	switch {
	case rec.LoopbackAddress != "":
		fmt.Fprintf(a.out, "Elegoo clients (OrcaSlicer's ElegooLink, SDCP tools): host %s, which answers on ports 3030, 80, 7125 and 8080\n",
			rec.LoopbackAddress)
	case rec.Platform == "elegoo":
		fmt.Fprintln(a.out, "No loopback address of its own could be bound for ElegooLink's fixed port 3030 (on macOS: sudo ifconfig lo0 alias 127.0.0.2 up, then connect again).")
	}
}

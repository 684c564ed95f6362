package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/front"
	"github.com/oeproxy/oeproxy/portalflow"
)

func init() { commands = append(commands, newConnectCmd) }

// openBrowser and headless are replaced in tests by functions that play the browser.
var (
	openBrowser = portalflow.OpenBrowser
	headless    = portalflow.Headless
)

type connectFlags struct {
	name, printerURL, completionURL, apiKey string
	platform                                string
	port                                    int
	noBrowser, noOctoPrintKey               bool
	timeout                                 time.Duration
}

func newConnectCmd(a *app) *cobra.Command {
	var f connectFlags
	cmd := &cobra.Command{
		Use:   "connect",
		Short: "Link a printer through the OctoEverywhere App Connection portal",
		Long: `Link a printer: oeproxy opens the OctoEverywhere App Connection portal in your browser, you log in
and pick the printer, and the portal hands the App Connection back to oeproxy on a one-time
loopback address (http://127.0.0.1:<random>/oeproxy/callback/<state>). The credentials are stored
encrypted and the printer gets a local port (listen.port_base and up, or --port).

With --printer-url (the printer's LAN address), oeproxy asks the OctoEverywhere plugin for the
printer's ID so the portal preselects it.

Over SSH or without a browser (--no-browser), the portal URL is printed: open it anywhere, finish the
setup, then copy the address of the page the portal ends on and paste it here, or run
  oeproxy connect --completion-url '<that address>'
(--completion-url - reads it from standard input).`,
		Example: `  oeproxy connect
  oeproxy connect --name mk4 --port 5001 --printer-url http://192.168.1.20
  oeproxy connect --no-browser
  pbpaste | oeproxy connect --completion-url - --name voron`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.connect(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "local name of the printer (default: from the printer's name)")
	fl.IntVar(&f.port, "port", 0, "local port (default: the first free one from listen.port_base)")
	fl.StringVar(&f.printerURL, "printer-url", "", "the printer's LAN URL, to discover its OctoEverywhere printer ID")
	fl.StringVar(&f.apiKey, "printer-api-key", "", "API key for --printer-url when the printer requires one")
	fl.BoolVar(&f.noBrowser, "no-browser", false, "print the portal URL instead of opening a browser")
	fl.BoolVar(&f.noOctoPrintKey, "no-octoprint-key", false, "do not ask the portal to create an OctoPrint API key")
	fl.StringVar(&f.completionURL, "completion-url", "", "store the App Connection from a completion URL you copied ('-': read it from stdin)")
	fl.DurationVar(&f.timeout, "timeout", 15*time.Minute, "how long to wait for the portal to finish")
	fl.StringVar(&f.platform, "platform", "", "the printer's platform, "+strings.Join(credstore.Platforms, "|")+" (default: what OctoEverywhere reports)")
	return cmd
}

func (a *app) connect(ctx context.Context, f connectFlags) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	log, err := a.log()
	if err != nil {
		return err
	}
	if f.port < 0 || f.port > 65535 {
		return usageError{fmt.Errorf("--port %d is not a TCP port (1..65535)", f.port)}
	}
	if f.platform != "" && !slices.Contains(credstore.Platforms, f.platform) {
		return usageError{fmt.Errorf("--platform %q is not one of %s", f.platform, strings.Join(credstore.Platforms, ", "))}
	}
	frontKey, err := front.NewAPIKey()
	if err != nil {
		return err
	}
	if err := daemon.ValidateName(f.name); f.name != "" && err != nil {
		return usageError{fmt.Errorf("--name: %w", err)}
	}
	oe := cfg.OctoEverywhere
	var comp portalflow.Completion
	printerID := ""
	if f.completionURL != "" {
		raw := f.completionURL
		if raw == "-" {
			line, err := bufio.NewReader(a.in).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read the completion URL from stdin: %w", err)
			}
			raw = line
		}
		comp, err = portalflow.ParseCompletion(raw, oe.RelayDomain)
		if err != nil {
			return a.explainPortalError(err)
		}
	} else {
		if f.printerURL != "" {
			id, warn := portalflow.DiscoverPrinterID(ctx, f.printerURL, f.apiKey, &http.Client{})
			if warn != nil {
				fmt.Fprintf(a.err, "note: %v; the portal will ask you to pick the printer\n", warn)
			}
			printerID = id
		}
		flow, err := portalflow.NewFlow(portalflow.FlowOptions{
			PortalURL: oe.PortalURL, AppID: oe.AppID, RelayDomain: oe.RelayDomain, AppLogoURL: oe.AppLogoURL,
			PrinterID: printerID, NoOctoPrintKey: f.noOctoPrintKey, ListenAddr: "127.0.0.1:0",
			Logger: log,
		})
		if err != nil {
			return err
		}
		defer flow.Close()
		portal, err := flow.Start(ctx)
		if err != nil {
			return err
		}
		if cfg.OctoEverywhere.AppID == "devtest" {
			log.Info("using OctoEverywhere's public test App ID devtest (octoeverywhere.app_id)")
		}
		opened := false
		if !f.noBrowser && !headless(os.Getenv) {
			if err := openBrowser(portal); err != nil {
				fmt.Fprintf(a.err, "could not open a browser (%v)\n", err)
			} else {
				opened = true
				fmt.Fprintln(a.out, "Opened the OctoEverywhere portal in your browser. Log in, pick the printer and authorize.")
			}
		}
		if !opened {
			fmt.Fprintf(a.out, "Open this address in a browser, log in, pick the printer and authorize:\n\n  %s\n\n", portal)
			fmt.Fprintln(a.out, "If that browser is on another machine, the last page will not load: copy its address")
			fmt.Fprintln(a.out, "from the address bar and paste it here (or run oeproxy connect --completion-url '<address>').")
		}
		wctx, cancel := context.WithTimeout(ctx, f.timeout)
		defer cancel()
		comp, err = a.waitCompletion(wctx, flow, oe.RelayDomain, !opened)
		if err != nil {
			return a.explainPortalError(err)
		}
	}
	ctl, done, err := a.controlCreate(ctx)
	if err != nil {
		return err
	}
	defer done()
	rec, err := ctl.Add(ctx, daemon.AddRequest{Completion: comp, Name: f.name, Port: f.port, PrinterID: printerID,
		Platform: f.platform, FrontAPIKey: frontKey})
	if err != nil && rec.Name == "" {
		return err
	}
	log.Info("printer connected", zap.String("printer", rec.Name), zap.String("relay_host", rec.RelayHost))
	fmt.Fprintf(a.out, "Connected %q as %s: %s\n", rec.PrinterName, rec.Name, rec.LocalURL)
	if rec.HasOctoPrintAPIKey {
		fmt.Fprintln(a.out, "The portal created an OctoPrint API key for oeproxy; it is stored encrypted.")
	}
	a.printFront(rec, frontKey)
	if _, ok := ctl.(*daemon.ControlClient); !ok {
		fmt.Fprintln(a.out, "Start `oeproxy serve` (or the service) to open the port.")
	}
	return err
}

// waitCompletion waits for the loopback callback or, on a terminal when the browser may be elsewhere, a pasted
// completion URL, whichever comes first.
func (a *app) waitCompletion(ctx context.Context, flow *portalflow.Flow, relayDomain string, paste bool) (portalflow.Completion, error) {
	if !paste || !a.interactive {
		return flow.Wait(ctx)
	}
	type result struct {
		c   portalflow.Completion
		err error
	}
	pasted := make(chan result, 1)
	go func() { // ends with the process: a terminal read cannot be cancelled
		sc := bufio.NewScanner(a.in)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			c, err := portalflow.ParseCompletion(line, relayDomain)
			if err != nil {
				fmt.Fprintf(a.err, "that is not a usable completion address: %v\npaste again, or press Ctrl-C\n", err)
				continue
			}
			pasted <- result{c, nil}
			return
		}
	}()
	got := make(chan result, 1)
	go func() { c, err := flow.Wait(ctx); got <- result{c, err} }()
	select {
	case r := <-pasted:
		return r.c, r.err
	case r := <-got:
		return r.c, r.err
	}
}

func (a *app) explainPortalError(err error) error {
	if errors.Is(err, portalflow.ErrPortalDeclined) {
		cfg, cerr := a.config()
		if cerr == nil {
			return fmt.Errorf("%w (supporter page: %s)", err, cfg.NoSupporterPerksURL())
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the portal did not finish in time: run oeproxy connect again, or use --completion-url: %w", err)
	}
	return err
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/front"
	"github.com/oeproxy/oeproxy/portalflow"
	"github.com/oeproxy/oeproxy/route"
)

// openBrowser and headless are replaced in tests by functions that play the browser.
var (
	openBrowser = portalflow.OpenBrowser
	headless    = portalflow.Headless
)

type connectFlags struct {
	name, printerURL, completionURL, apiKey string
	route                                   string
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
printer's ID so the portal preselects it, and keeps it as the printer's LAN address: with --route auto
(the default route) the port then goes straight to the printer on the LAN whenever the LAN host proves
it is the same printer, and through OctoEverywhere otherwise. --route relay or lan forces one.

Over SSH or without a browser (--no-browser), the portal URL is printed: open it anywhere, finish the
setup, then copy the address of the page the portal ends on and paste it into the waiting connect, or
run
  oeproxy connect --completion-url -
and paste it on standard input. The address holds the App Connection's secrets: given as
--completion-url '<address>' it works, but other users see it in ps and the shell keeps it in its history.`,
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
	fl.StringVar(&f.route, "route", "", "relay, lan or auto (default: the config key route)")
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
	if err := credstore.ValidateName(f.name); f.name != "" && err != nil {
		return usageError{fmt.Errorf("--name: %w", err)}
	}
	// Checked before the portal, so that a typo costs nothing (the completion cannot be fetched twice).
	if _, err := route.ParseMode(f.route); f.route != "" && err != nil {
		return usageError{fmt.Errorf("--route: %w", err)}
	}
	if _, err := route.ParseLANURL(f.printerURL); f.printerURL != "" && err != nil {
		return usageError{fmt.Errorf("--printer-url: %w", err)}
	}
	// The portal's answer is one-time: everything that can refuse it is checked before the portal opens.
	if err := a.connectPrecheck(ctx, f); err != nil {
		return err
	}
	oe := cfg.OctoEverywhere
	var (
		got added
		id  string
	)
	o := portalflow.LinkOptions{
		Flow: portalflow.FlowOptions{
			PortalURL: oe.PortalURL, AppID: oe.AppID, RelayDomain: oe.RelayDomain, AppLogoURL: oe.AppLogoURL,
			NoOctoPrintKey: f.noOctoPrintKey, ListenAddr: "127.0.0.1:0", Logger: log,
		},
		PrinterURL: f.printerURL, PrinterAPIKey: f.apiKey,
		Discovered: func(printerID string, warn error) {
			id = printerID
			if warn != nil {
				fmt.Fprintf(a.err, "note: %v; the portal will ask you to pick the printer\n", warn)
			}
		},
		Timeout: f.timeout,
		Keep: func(ctx context.Context, c portalflow.Completion) (string, error) {
			var err error
			got, err = a.addPrinter(ctx, control.AddRequest{Completion: c, Name: f.name, Port: f.port, PrinterID: id,
				Route: f.route, LANURL: f.printerURL, Platform: f.platform, FrontAPIKey: frontKey})
			if err != nil {
				return "", err
			}
			return "Its local address: " + got.rec.LocalURL, nil
		},
	}
	if f.completionURL != "" {
		o.Pasted = f.completionURL
		if o.Pasted != "-" {
			fmt.Fprintln(a.err, "warning: the completion address holds the App Connection's secrets, and on the command line other users"+
				" of this computer can read it (ps) and your shell keeps it in its history; next time use --completion-url -"+
				" and paste it on standard input")
		} else {
			line, err := bufio.NewReader(a.in).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read the completion URL from stdin: %w", err)
			}
			if o.Pasted = strings.TrimSpace(line); o.Pasted == "" {
				return usageError{errors.New("--completion-url -: standard input held no completion address")}
			}
		}
	} else {
		o.Show = func(_ context.Context, _ *portalflow.Flow, portal string) error {
			if oe.AppID == "devtest" {
				log.Info("using OctoEverywhere's public test App ID devtest (octoeverywhere.app_id)")
			}
			if !f.noBrowser && !headless(os.Getenv) {
				if err := openBrowser(portal); err != nil {
					fmt.Fprintf(a.err, "could not open a browser (%v)\n", err)
				} else {
					fmt.Fprintln(a.out, "Opened the OctoEverywhere portal in your browser. Log in, pick the printer and authorize.")
					return nil
				}
			}
			fmt.Fprintf(a.out, "Open this address in a browser, log in, pick the printer and authorize:\n\n  %s\n\n", portal)
			fmt.Fprintln(a.out, "If that browser is on another machine, the last page will not load: copy its address")
			fmt.Fprintln(a.out, "from the address bar and paste it here (or later into oeproxy connect --completion-url -).")
			return nil
		}
		if a.interactive {
			o.Pastes = a.readPastes(oe.RelayDomain)
		}
	}
	comp, err := portalflow.Link(ctx, o)
	var ke *portalflow.KeepError
	if errors.As(err, &ke) {
		return a.keepUnstored(comp, ke)
	}
	if err != nil {
		return a.explainPortalError(err)
	}
	rec := got.rec
	log.Info("printer connected", zap.String("printer", rec.Name), zap.String("relay_host", rec.RelayHost))
	fmt.Fprintf(a.out, "Connected %q as %s: %s\n", rec.PrinterName, rec.Name, rec.LocalURL)
	if rec.HasOctoPrintAPIKey {
		fmt.Fprintln(a.out, "The portal created an OctoPrint API key for oeproxy; it is stored encrypted.")
	}
	a.printFront(rec, frontKey)
	if !got.viaDaemon {
		fmt.Fprintln(a.out, "Start `oeproxy serve` (or the service) to open the port.")
	}
	return got.warn
}

// readPastes reads completion addresses pasted on the terminal while the portal runs; unusable ones are
// reported and the user may paste again.
func (a *app) readPastes(relayDomain string) <-chan portalflow.Completion {
	pasted := make(chan portalflow.Completion, 1)
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
			pasted <- c
			return
		}
	}()
	return pasted
}

// explainPortalError says what to do next when the portal did not finish (a declined portal's error already
// names the Supporter Perks page).
func (a *app) explainPortalError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the portal did not finish in time: run oeproxy connect again, or paste the address the portal ended on into oeproxy connect --completion-url -: %w", err)
	}
	return err
}

package portalflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/oeproxy/oeproxy/internal/oe"
)

// LinkOptions is one linking of a printer, whoever drives it: the CLI (a browser or a terminal), the admin page
// (a redirect), the demo (a simulated browser). Only how the portal is shown and how a completion is kept differ.
type LinkOptions struct {
	// Flow configures the portal flow. Its Keep is replaced by LinkOptions.Keep.
	Flow FlowOptions
	// PrinterURL (the printer's LAN address) and PrinterAPIKey, when set, find the printer's OctoEverywhere ID,
	// so that the portal preselects the printer. Not finding it is reported through Discovered, never fatal.
	PrinterURL, PrinterAPIKey string
	// Discovered, when set, hears the outcome of the discovery: the ID, or the warning that says why not.
	Discovered func(printerID string, warning error)
	// Pasted, when set, is a completion address the user already has: no portal is opened and it is kept.
	Pasted string
	// Show presents the portal to the user: open a browser, print the address, redirect a page. f is the
	// running flow (its State and Handler serve a callback mounted elsewhere). An error ends the link.
	Show func(ctx context.Context, f *Flow, portalURL string) error
	// Pastes delivers completions the user pasted while the portal runs (already parsed: the caller tells its
	// user about unusable ones); the first one is kept as the callback's would be.
	Pastes <-chan Completion
	// Keep stores a completion and returns a line for the browser page (the local address). Required.
	Keep func(ctx context.Context, c Completion) (string, error)
	// Timeout bounds the wait for the portal (default the flow's MaxAge).
	Timeout time.Duration
}

// Link links one printer: discovery, the portal flow, the user's browser or paste, the loopback callback and
// keeping the completion, in that order, the same for every caller. It returns the completion that was kept.
// When the portal's answer arrived but Keep failed, it returns that completion with a *KeepError, so that the
// caller can save the one-time answer; success=false gives ErrPortalDeclined with the Supporter Perks link.
func Link(ctx context.Context, o LinkOptions) (Completion, error) {
	if o.Keep == nil {
		return Completion{}, errors.New("portalflow.Link: Keep is required")
	}
	supporter := func(err error) error {
		if errors.Is(err, ErrPortalDeclined) {
			return fmt.Errorf("%w (Supporter Perks: %s)", err, oe.SupporterPageURL(o.Flow.PortalURL, o.Flow.AppID))
		}
		return err
	}
	if o.Pasted != "" {
		c, err := ParseCompletion(o.Pasted, o.Flow.RelayDomain)
		if err != nil {
			return Completion{}, supporter(err)
		}
		return keepPasted(ctx, o.Keep, c)
	}
	if o.PrinterURL != "" && o.Flow.PrinterID == "" {
		id, warn := DiscoverPrinterID(ctx, o.PrinterURL, o.PrinterAPIKey, &http.Client{})
		o.Flow.PrinterID = id
		if o.Discovered != nil {
			o.Discovered(id, warn)
		}
	}
	o.Flow.Keep = o.Keep
	f, err := NewFlow(o.Flow)
	if err != nil {
		return Completion{}, err
	}
	defer f.Close()
	portal, err := f.Start(ctx)
	if err != nil {
		return Completion{}, err
	}
	if o.Show != nil {
		if err := o.Show(ctx, f, portal); err != nil {
			return Completion{}, err
		}
	}
	wctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	type result struct {
		c   Completion
		err error
	}
	got := make(chan result, 1)
	go func() { c, err := f.Wait(wctx); got <- result{c, err} }()
	select {
	case r := <-got:
		return r.c, r.err
	case c := <-o.Pastes:
		f.Close() // no callback can start now: one answer is kept, not two
		if r := <-got; !errors.Is(r.err, ErrFlowClosed) {
			return r.c, r.err // the callback was there first
		}
		return keepPasted(ctx, o.Keep, c)
	}
}

func keepPasted(ctx context.Context, keep func(context.Context, Completion) (string, error), c Completion) (Completion, error) {
	if _, err := keep(ctx, c); err != nil {
		return c, &KeepError{Err: err}
	}
	return c, nil
}

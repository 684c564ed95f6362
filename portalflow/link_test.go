package portalflow

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func linkOptions() LinkOptions {
	return LinkOptions{Flow: FlowOptions{PortalURL: "https://octoeverywhere.com/appportal/v1/", AppID: "devtest",
		RelayDomain: "octoeverywhere.com"}, Timeout: 10 * time.Second}
}

// browserAt plays the user's browser: it returns from the portal to the callback with query, and reports the
// page it got.
func browserAt(query string, page chan<- string) func(context.Context, *Flow, string) error {
	return func(_ context.Context, _ *Flow, portal string) error {
		u, err := url.Parse(portal)
		if err != nil {
			return err
		}
		go func() {
			resp, err := http.Get(u.Query().Get("returnUrl") + "?" + query)
			if err != nil {
				page <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			page <- resp.Status + " " + string(b)
		}()
		return nil
	}
}

// The browser page says "Connected" only once Keep stored the completion, and shows Keep's line.
func TestLinkKeepsBeforeThePageSaysConnected(t *testing.T) {
	o := linkOptions()
	page := make(chan string, 1)
	var kept atomic.Int32
	o.Show = browserAt(strings.TrimPrefix(build(goodParams(), nil), "?"), page)
	o.Keep = func(ctx context.Context, c Completion) (string, error) {
		select {
		case p := <-page:
			t.Errorf("the page was answered before the completion was kept: %s", p)
		case <-time.After(50 * time.Millisecond):
		}
		kept.Add(1)
		return "Local address: http://127.0.0.1:5001", nil
	}
	c, err := Link(context.Background(), o)
	if err != nil || c.ID != wantCompletion().ID {
		t.Fatalf("Link = %v, %v", c, err)
	}
	p := <-page
	if kept.Load() != 1 || !strings.HasPrefix(p, "200") || !strings.Contains(p, "stored the App Connection for Prusa MK4") ||
		!strings.Contains(p, "http://127.0.0.1:5001") {
		t.Errorf("kept %d times; page %s", kept.Load(), p)
	}
}

// When storing fails after the portal, the page says the answer is not lost, and Link returns the completion
// with a *KeepError so that the caller can save it.
func TestLinkKeepFailureReturnsTheCompletion(t *testing.T) {
	o := linkOptions()
	page := make(chan string, 1)
	o.Show = browserAt(strings.TrimPrefix(build(goodParams(), nil), "?"), page)
	full := errors.New("port 5401 is taken by printer mk4")
	o.Keep = func(context.Context, Completion) (string, error) { return "", full }
	c, err := Link(context.Background(), o)
	var ke *KeepError
	if !errors.As(err, &ke) || !errors.Is(err, full) || c.AppAPIToken != tApp {
		t.Fatalf("Link = %v, %v; want the completion and a KeepError", c, err)
	}
	if p := <-page; !strings.HasPrefix(p, "500") || strings.Contains(p, "Connected") || !strings.Contains(p, "not lost") ||
		!strings.Contains(p, "port 5401 is taken") {
		t.Errorf("page: %s", p)
	}
}

func TestLinkPasted(t *testing.T) {
	o := linkOptions()
	var kept Completion
	o.Keep = func(_ context.Context, c Completion) (string, error) { kept = c; return "", nil }
	o.Show = func(context.Context, *Flow, string) error {
		t.Error("a pasted completion opened the portal")
		return nil
	}
	o.Pasted = build(goodParams(), nil)
	if c, err := Link(context.Background(), o); err != nil || kept.ID != c.ID || c.ID == "" {
		t.Fatalf("Link = %v, %v; kept %v", c, err, kept)
	}
	// success=false names the Supporter Perks page once.
	o.Pasted = build(goodParams(), map[string]string{"success": "false"})
	_, err := Link(context.Background(), o)
	if !errors.Is(err, ErrPortalDeclined) || strings.Count(err.Error(), "nosupporterperks") != 1 {
		t.Errorf("declined: %v", err)
	}
}

// The callback's success=false also names the Supporter Perks page exactly once.
func TestLinkDeclinedCallbackLinksOnce(t *testing.T) {
	o := linkOptions()
	page := make(chan string, 1)
	o.Show = browserAt(strings.TrimPrefix(build(goodParams(), map[string]string{"success": "false"}), "?"), page)
	o.Keep = func(context.Context, Completion) (string, error) { t.Error("declined answer kept"); return "", nil }
	_, err := Link(context.Background(), o)
	<-page
	if !errors.Is(err, ErrPortalDeclined) || strings.Count(err.Error(), "nosupporterperks") != 1 {
		t.Errorf("declined: %v", err)
	}
}

// A completion pasted while the portal runs is kept once, and the callback can no longer store a second one.
func TestLinkPasteWhileWaiting(t *testing.T) {
	o := linkOptions()
	pastes := make(chan Completion, 1)
	o.Pastes = pastes
	var cb string
	o.Show = func(_ context.Context, f *Flow, portal string) error {
		u, _ := url.Parse(portal)
		cb = u.Query().Get("returnUrl")
		if !strings.HasSuffix(cb, f.State()) || f.State() == "" {
			t.Errorf("State %q does not end the callback %q", f.State(), cb)
		}
		pastes <- wantCompletion()
		return nil
	}
	var kept atomic.Int32
	o.Keep = func(context.Context, Completion) (string, error) { kept.Add(1); return "", nil }
	if _, err := Link(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(cb + build(goodParams(), nil)); err == nil {
		resp.Body.Close()
	}
	if kept.Load() != 1 {
		t.Errorf("kept %d times", kept.Load())
	}
}

// Discovery runs once, with the package's own timeout, and the portal preselects the printer it found.
func TestLinkDiscoversThePrinter(t *testing.T) {
	printer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/plugin/octoeverywhere" {
			w.Write([]byte(`{"PrinterId":"PRINTERABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}`))
			return
		}
		http.NotFound(w, r)
	}))
	defer printer.Close()
	o := linkOptions()
	o.PrinterURL = printer.URL
	var found string
	o.Discovered = func(id string, warn error) { found = id }
	o.Show = func(_ context.Context, _ *Flow, portal string) error {
		if !strings.Contains(portal, "PRINTERABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") {
			t.Errorf("portal URL does not preselect the printer: %s", portal)
		}
		return errors.New("stop here")
	}
	o.Keep = func(context.Context, Completion) (string, error) { return "", nil }
	if _, err := Link(context.Background(), o); err == nil || err.Error() != "stop here" {
		t.Errorf("Link = %v", err)
	}
	if found != "PRINTERABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" {
		t.Errorf("Discovered heard %q", found)
	}
}

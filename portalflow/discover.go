package portalflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/oeproxy/oeproxy/internal/logging"
)

// ErrPrinterIDNotFound is wrapped by DiscoverPrinterID's warning: no OctoEverywhere plugin told us the printer
// ID. It is never fatal: the portal then asks the user to pick the printer.
var ErrPrinterIDNotFound = errors.New("OctoEverywhere printer ID not found")

// DiscoverTimeout bounds each of DiscoverPrinterID's requests.
const DiscoverTimeout = 2 * time.Second

// probe is one place an OctoEverywhere plugin publishes the printer ID.
type probe struct {
	name  string
	path  string                   // joined to the printer URL's path
	query string                   // raw query
	id    func(body []byte) string // extracts the ID from a 200 answer ("" if the shape is wrong)
	hint  func(status int) string  // what a non-200 status means, "" for the generic text
}

var probes = []probe{
	{
		name: "OctoPrint plugin", path: "/api/plugin/octoeverywhere",
		id: func(b []byte) string {
			var v struct{ PrinterId string }
			_ = json.Unmarshal(b, &v)
			return v.PrinterId
		},
		hint: func(status int) string {
			switch status {
			case http.StatusNotFound, http.StatusBadRequest:
				return "not installed"
			case http.StatusUnauthorized, http.StatusForbidden:
				return fmt.Sprintf("HTTP %d: an older plugin needs an OctoPrint API key (--printer-api-key)", status)
			}
			return ""
		},
	},
	{
		name: "Moonraker database", path: "/server/database/item", query: "namespace=octoeverywhere&key=public.printerId",
		id: func(b []byte) string {
			var v struct {
				Result struct{ Value any } `json:"result"`
			}
			_ = json.Unmarshal(b, &v)
			s, _ := v.Result.Value.(string)
			return s
		},
		hint: func(status int) string {
			switch status {
			case http.StatusNotFound:
				return "no octoeverywhere entry"
			case http.StatusUnauthorized, http.StatusForbidden:
				return fmt.Sprintf("HTTP %d: Moonraker needs an API key (--printer-api-key)", status)
			}
			return ""
		},
	},
	{
		name: "companion local API", path: "/",
		id: func(b []byte) string {
			var v struct{ PluginId string }
			_ = json.Unmarshal(b, &v)
			return v.PluginId
		},
		hint: func(int) string { return "" },
	},
}

// DiscoverPrinterID asks the printer at printerURL (its LAN address, e.g. http://192.168.1.20 or
// octopi.local) for its OctoEverywhere printer ID, trying in turn the OctoPrint plugin
// (GET /api/plugin/octoeverywhere), the Moonraker database (namespace octoeverywhere, key public.printerId) and
// the companion's local web API (GET /), each for at most DiscoverTimeout. apiKey, when set, is sent as
// X-Api-Key (older OctoPrint plugins and Moonraker with force_logins need it). client may be nil; redirects
// are never followed (they would carry the API key elsewhere).
//
// It returns the ID, or "" and a warning wrapping ErrPrinterIDNotFound that says what each attempt found.
// The warning is never fatal: the portal lets the user pick the printer instead.
func DiscoverPrinterID(ctx context.Context, printerURL, apiKey string, client *http.Client) (string, error) {
	return discoverPrinterID(ctx, printerURL, apiKey, client, DiscoverTimeout)
}

// discoverPrinterID is DiscoverPrinterID with each request bounded by timeout (tests use a short one).
func discoverPrinterID(ctx context.Context, printerURL, apiKey string, client *http.Client, timeout time.Duration) (string, error) {
	base, err := printerBase(printerURL)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPrinterIDNotFound, err)
	}
	c := &http.Client{}
	if client != nil {
		cc := *client
		c = &cc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	var notes []string
	for _, p := range probes {
		if ctx.Err() != nil {
			notes = append(notes, ctx.Err().Error())
			break
		}
		id, note := tryProbe(ctx, c, base, p, apiKey, timeout)
		if id != "" {
			return id, nil
		}
		notes = append(notes, p.name+": "+note)
	}
	return "", fmt.Errorf("%w at %s (%s)", ErrPrinterIDNotFound, logging.RedactURL(base.String()), strings.Join(notes, "; "))
}

func printerBase(raw string) (*url.URL, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return nil, errors.New("no printer URL given")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("printer URL %q is not an http(s) address such as http://192.168.1.20", logging.RedactURL(raw))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment, u.RawFragment = "", "", "", ""
	return u, nil
}

// tryProbe returns the ID, or "" and a short note on what happened.
func tryProbe(ctx context.Context, c *http.Client, base *url.URL, p probe, apiKey string, timeout time.Duration) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := *base
	u.Path = base.Path + p.path
	u.RawQuery = p.query
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", "bad URL"
	}
	req.Header.Set("Accept", "application/json")
	if apiKey != "" {
		req.Header.Set("X-Api-Key", apiKey)
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Sprintf("no answer within %s", timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the inner error names no URL, so no userinfo can leak
		}
		return "", "not reachable: " + err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", "answer cut short"
	}
	if resp.StatusCode != http.StatusOK {
		if h := p.hint(resp.StatusCode); h != "" {
			return "", h
		}
		return "", fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	id := strings.TrimSpace(p.id(body))
	switch {
	case id == "":
		return "", "no printer ID in the answer"
	case !ValidPrinterID(id):
		return "", "answered with something that is not an OctoEverywhere printer ID"
	}
	return id, ""
}

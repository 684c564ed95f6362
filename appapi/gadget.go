package appapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GadgetState is what Gadget, OctoEverywhere's AI print-failure detection, is doing for the printer.
type GadgetState int

const (
	GadgetDisabled                GadgetState = 0 // disabled for the whole account
	GadgetDisabledForCurrentPrint GadgetState = 1 // turned off for this print; it comes back with the next
	GadgetIdle                    GadgetState = 2 // no print running
	GadgetActive                  GadgetState = 3 // watching a print; Status and Rating are meaningful
	GadgetPausedDueToFailure      GadgetState = 4 // Gadget paused the print because it saw a failure
)

var gadgetStateNames = []string{"Disabled", "DisabledForCurrentPrint", "Idle", "Active", "PausedDueToFailure"}

func (s GadgetState) String() string {
	if s >= 0 && int(s) < len(gadgetStateNames) {
		return gadgetStateNames[s]
	}
	return "GadgetState(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText writes the name, so --json shows "Active" rather than 3.
func (s GadgetState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name (any case), "GadgetState(n)" or a number.
func (s *GadgetState) UnmarshalText(b []byte) error {
	t := string(b)
	for i, n := range gadgetStateNames {
		if strings.EqualFold(t, n) {
			*s = GadgetState(i)
			return nil
		}
	}
	t = strings.TrimSuffix(strings.TrimPrefix(t, "GadgetState("), ")")
	n, err := strconv.Atoi(t)
	if err != nil {
		return fmt.Errorf("unknown Gadget state %q", b)
	}
	*s = GadgetState(n)
	return nil
}

// StatusColor is the colour OctoEverywhere shows the Gadget status in; its value is OctoEverywhere's letter.
type StatusColor string

const (
	ColorGreen  StatusColor = "g"
	ColorYellow StatusColor = "y"
	ColorRed    StatusColor = "r"
	ColorWhite  StatusColor = "w" // neutral
)

var colorNames = map[StatusColor]string{ColorGreen: "green", ColorYellow: "yellow", ColorRed: "red", ColorWhite: "white"}

// String is the colour's name ("green"), or the raw value for a colour this version does not know.
func (c StatusColor) String() string {
	if n, ok := colorNames[StatusColor(strings.ToLower(string(c)))]; ok {
		return n
	}
	return string(c)
}

// MarshalText writes the name ("green"); the empty colour stays "".
func (c StatusColor) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a name or OctoEverywhere's letter.
func (c *StatusColor) UnmarshalText(b []byte) error {
	t := strings.ToLower(string(b))
	for k, n := range colorNames {
		if t == n {
			*c = k
			return nil
		}
	}
	*c = StatusColor(t)
	return nil
}

// Rating is Gadget's score of the print, 1 (failure) to 10 (perfect); 0 means none (not watching).
type Rating int

func (r Rating) String() string {
	switch {
	case r == 1:
		return "failure"
	case r == 2:
		return "probable failure"
	case r == 3:
		return "possible failure"
	case r == 4 || r == 5:
		return "monitoring a possible failure"
	case r == 6 || r == 7:
		return "looking good"
	case r == 8 || r == 9:
		return "great"
	case r == 10:
		return "perfect"
	case r == 0:
		return "no rating"
	}
	return "Rating(" + strconv.Itoa(int(r)) + ")"
}

// GadgetStatus is Gadget's current view of the printer.
type GadgetStatus struct {
	State GadgetState `json:"state"`
	// Status is a few words, meaningful only when State is GadgetActive.
	Status      string      `json:"status"`
	StatusColor StatusColor `json:"status_color"`
	Rating      Rating      `json:"rating"`
}

type wireGadget struct {
	State       int
	Status      string
	StatusColor string
	Rating      int
}

func decodeGadget(payload []byte) (*GadgetStatus, error) {
	var w wireGadget
	if err := decodeObject(payload, &w); err != nil {
		return nil, err
	}
	return &GadgetStatus{State: GadgetState(w.State), Status: w.Status, StatusColor: StatusColor(w.StatusColor), Rating: Rating(w.Rating)}, nil
}

// GadgetStatus returns Gadget's status for the printer (POST /api/gadget/GetStatusFromAppConnection).
//
// OctoEverywhere allows one call per 10 s per App Connection. connKey names the connection (its App
// Connection ID; "" uses the token). A call less than MinGadgetInterval after the previous one for the same key
// is not sent: it returns a *RateLimitError at once with the time left to wait, so callers choose between waiting
// and telling the user. Any call that is sent counts, even if it fails. It is never retried.
func (c *Client) GadgetStatus(ctx context.Context, connKey, token string) (*GadgetStatus, error) {
	if err := checkToken(token); err != nil {
		return nil, fmt.Errorf("OctoEverywhere Gadget status: %w", err)
	}
	if connKey == "" {
		connKey = tokenKey(token)
	}
	if wait := c.reserveGadget(connKey); wait > 0 {
		return nil, fmt.Errorf("OctoEverywhere Gadget status: %w", &RateLimitError{Wait: wait})
	}
	payload, err := c.do(ctx, call{name: "Gadget status", method: http.MethodPost, path: "/api/gadget/GetStatusFromAppConnection", token: token})
	if err != nil {
		return nil, err
	}
	g, err := decodeGadget(payload)
	if err != nil {
		return nil, fmt.Errorf("OctoEverywhere Gadget status: %w", err)
	}
	return g, nil
}

// reserveGadget records a Gadget call for key now and returns 0, or returns how long until one is allowed.
func (c *Client) reserveGadget(key string) time.Duration {
	if c.gadgetMin < 0 {
		return 0
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if last, ok := c.lastGadget[key]; ok {
		if wait := last.Add(c.gadgetMin).Sub(now); wait > 0 {
			return wait
		}
	}
	for k, t := range c.lastGadget { // forget old entries so the map stays as small as the set of active printers
		if now.Sub(t) >= c.gadgetMin {
			delete(c.lastGadget, k)
		}
	}
	c.lastGadget[key] = now
	return 0
}

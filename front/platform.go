package front

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// Platform names, as `oeproxy connect --platform` takes them (credstore.Platforms).
const (
	PlatformBambu  = "bambu"
	PlatformElegoo = "elegoo"
)

// NeedsFront reports whether a platform has no OctoPrint-style HTTP API of its own, so that slicers need the
// front to upload and print: Bambu Lab (nothing but MQTT, FTPS and RTSP) and Elegoo (SDCP over a WebSocket).
func NeedsFront(platform string) bool { return platform == PlatformBambu || platform == PlatformElegoo }

// HasMQTTProxy reports whether OctoEverywhere's MQTT proxy serves the platform by default: every Bambu Lab
// printer. (The Elegoo Centauri Carbon 2 has it too, the CC1 not; `oeproxy mqtt enable` turns it on by hand.)
func HasMQTTProxy(platform string) bool { return platform == PlatformBambu }

// bambuModel matches the model the Bambu companion appends to PlatformVersion ("<firmware>-<model>",
// bambucommandhandler GetPlatformVersionStr): X1, X1C, X1E, P1P, P1S, P2S, A1, A1 mini, H2D, H2S, H2C.
var bambuModel = regexp.MustCompile(`(?i)-(x1[ce]?|p1[ps]|p2s|a1( ?mini)?|h2[dsc])\b|bambu`)

// PlatformFromVersion guesses the platform from the plugin status's PlatformVersion; "" when it cannot tell
// (OctoPrint and Moonraker report their own version numbers, which say nothing of the platform). It is a
// heuristic: `oeproxy connect --platform` overrides it.
func PlatformFromVersion(v string) string {
	switch {
	case strings.Contains(strings.ToLower(v), "centauri"), strings.Contains(strings.ToLower(v), "elegoo"):
		return PlatformElegoo
	case bambuModel.MatchString(v):
		return PlatformBambu
	}
	return ""
}

// Detect asks the plugin's status API through relay which platform the printer runs. An error means the plugin
// could not be asked (offline, an old plugin); the caller goes on without a platform.
func Detect(ctx context.Context, relay func(*http.Request) (*http.Response, error)) (string, error) {
	f := &Front{opts: Options{Relay: relay}, log: nopLogger}
	st, perr := f.status(ctx)
	if perr != nil {
		return "", fmt.Errorf("asking the OctoEverywhere plugin for the printer's platform: %s", perr.msg)
	}
	return PlatformFromVersion(st.PlatformVersion), nil
}

// NewAPIKey returns a fresh front API key: 32 upper-case hex digits, OctoPrint's format.
func NewAPIKey() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("front: no randomness for an API key: %w", err)
	}
	return strings.ToUpper(hex.EncodeToString(b)), nil
}

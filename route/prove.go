package route

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Platforms the prover knows. An empty platform tries Moonraker, then OctoPrint.
const (
	PlatformOctoPrint = "octoprint"
	PlatformMoonraker = "moonraker"
	// PlatformCompanion names the proof through an OctoEverywhere companion's local web API (PrusaLink, Elegoo).
	PlatformCompanion = "companion"
)

// Strength says what a passed proof is worth.
const (
	// StrengthNonce: the LAN host read back a random value written through the relay; it is the printer.
	StrengthNonce = "nonce"
	// StrengthID: the LAN host reports the printer's OctoEverywhere id; a host that copied the id would pass too.
	StrengthID = "id"
	// StrengthCompanion: the OctoEverywhere companion that serves the printer (its local web API) reports the
	// printer's id on this network, and the LAN host answers HTTP; nothing ties that host to the printer.
	StrengthCompanion = "companion"
)

// NonceNamespace and NonceKey are where the Moonraker proof writes its nonce: a namespace of oeproxy's own, so
// that the OctoEverywhere plugin's keys (which "must never change") are never touched.
const (
	NonceNamespace = "oeproxy"
	NonceKey       = "lan_proof"
)

const (
	moonrakerIDPath = "/server/database/item?namespace=octoeverywhere&key=public.printerId"
	octoPrintIDPath = "/api/plugin/octoeverywhere"
	maxProofBody    = 64 << 10
)

// Proof is the result of one identity check of one LAN address.
type Proof struct {
	LANURL   string // the address checked
	OK       bool
	Platform string // the platform whose proof was used
	Strength string // StrengthNonce or StrengthID when OK
	// Mismatch is set when the LAN host answered as another printer (another id, or not the nonce): an
	// impostor, not merely an absent printer.
	Mismatch bool
	Reason   string // why it failed, or what passed; never holds a secret or a whole printer id
	// LANTime and RelayTime are the fastest LAN and relay round trips seen during the proof.
	LANTime, RelayTime time.Duration
}

// prover checks LAN addresses against the printer behind the relay.
type prover struct {
	lan, relay http.RoundTripper
	printerID  string // the App Connection's printer id when known; else read through the relay
	platform   string
	companion  string // the companion's local web API URL; empty: none
	since      func(time.Time) time.Duration
}

// prove checks one LAN base URL. Nothing but the proof's own requests (no client byte, no credential) goes to it.
func (p *prover) prove(ctx context.Context, lanURL string) Proof {
	pr := Proof{LANURL: lanURL}
	base, err := url.Parse(lanURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		pr.Reason = fmt.Sprintf("LAN URL %q is not http://host[:port]", lanURL)
		return pr
	}
	platforms := []string{PlatformMoonraker, PlatformOctoPrint}
	if p.platform == PlatformMoonraker || p.platform == PlatformOctoPrint {
		platforms = []string{p.platform}
	} else if p.companion != "" {
		// A printer behind a companion (PrusaLink, Elegoo) has neither the plugin API nor Moonraker's database.
		return p.proveCompanion(ctx, base, pr)
	}
	// The LAN first: an address where nothing answers costs the relay nothing.
	got, plat, err := p.readAny(ctx, p.lan, func(path string) string { return lanJoin(base, path) }, platforms, &pr.LANTime)
	if err != nil {
		pr.Reason = "the LAN host " + base.Host + " did not give a printer id: " + err.Error()
		return pr
	}
	pr.Platform = plat
	// The id behind the relay is what the LAN host must match (the platform the LAN host answered as first).
	order := append([]string{plat}, slices.DeleteFunc(slices.Clone(platforms), func(s string) bool { return s == plat })...)
	want, _, err := p.readAny(ctx, p.relay, relayURL, order, &pr.RelayTime)
	switch {
	case err != nil && p.printerID != "" && plat == PlatformOctoPrint:
		// The plugin is offline (601) or the relay unreachable: OctoPrint's proof is a comparison of ids, and the
		// stored id is as good as the relay's for it. Moonraker's nonce needs the relay, so it has no such way.
		want = p.printerID
	case err != nil:
		pr.Reason = "reading the printer id through the relay: " + err.Error()
		return pr
	}
	if p.printerID != "" && !strings.EqualFold(want, p.printerID) {
		pr.Reason = "the printer behind the relay reports another printer id than the one stored: re-link it with oeproxy connect"
		return pr
	}
	if !strings.EqualFold(got, want) {
		pr.Mismatch = true
		pr.Reason = fmt.Sprintf("the LAN host %s is another printer (id %s…, the App Connection's is %s…)", base.Host, short(got), short(want))
		return pr
	}
	if plat == PlatformOctoPrint {
		pr.OK, pr.Strength = true, StrengthID
		pr.Reason = "the LAN host reports the printer's OctoEverywhere id"
		return pr
	}
	return p.nonce(ctx, base, pr)
}

// proveCompanion checks the companion's local web API (research §6.3: GET on any path answers
// {"PluginId": <printer id>, ...}) against the App Connection's printer id, then that the LAN host answers HTTP at
// all. The companion runs on a machine of the home network, often not the printer itself, so this proves the
// network, not the host: see README, "What each platform's proof is worth".
func (p *prover) proveCompanion(ctx context.Context, base *url.URL, pr Proof) Proof {
	pr.Platform = PlatformCompanion
	if p.printerID == "" {
		pr.Reason = "the App Connection's printer id is not known, so the companion's answer cannot be checked: re-link the printer with oeproxy connect"
		return pr
	}
	cu, err := ParseLANURL(p.companion)
	if err != nil {
		pr.Reason = "companion URL: " + err.Error()
		return pr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cu.String(), nil)
	if err != nil {
		pr.Reason = err.Error()
		return pr
	}
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := p.lan.RoundTrip(req)
	if err != nil {
		pr.Reason = "the companion's local web API at " + cu.Host + " did not answer: " + describe(err)
		return pr
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProofBody))
	resp.Body.Close()
	keepMin(&pr.LANTime, p.since(start))
	var doc struct {
		PluginID             string `json:"PluginId"`
		IsConnectedToPrinter *bool  `json:"IsConnectedToPrinter"`
	}
	switch {
	case err != nil:
		pr.Reason = "reading the companion's local web API: " + describe(err)
		return pr
	case resp.StatusCode != http.StatusOK:
		pr.Reason = fmt.Sprintf("the companion URL %s answered status %d: it is not the companion's local web API (local_web_api_port in octoeverywhere.conf, LOCAL_API_PORT in Docker)", cu.Host, resp.StatusCode)
		return pr
	case json.Unmarshal(b, &doc) != nil || doc.PluginID == "":
		pr.Reason = "the companion URL " + cu.Host + " is not the companion's local web API (no PluginId in its answer; local_web_api_port in octoeverywhere.conf, LOCAL_API_PORT in Docker)"
		return pr
	case !strings.EqualFold(doc.PluginID, p.printerID):
		pr.Mismatch = true
		pr.Reason = fmt.Sprintf("the companion at %s serves another printer (id %s…, the App Connection's is %s…)", cu.Host, short(doc.PluginID), short(p.printerID))
		return pr
	case doc.IsConnectedToPrinter != nil && !*doc.IsConnectedToPrinter:
		pr.Reason = "the companion at " + cu.Host + " serves the printer but is not connected to it (is the printer on?)"
		return pr
	}
	// The printer's own address must answer too, or every request would pay a failed LAN connect first.
	if err := p.answers(ctx, p.lan, lanJoin(base, "/"), &pr.LANTime); err != nil {
		pr.Reason = "the companion serves the printer, but the LAN host " + base.Host + " did not answer: " + err.Error()
		return pr
	}
	// The same page through the relay, so the LAN is not chosen when it is slower (a VPN); a relay that fails
	// here leaves RelayTime 0, which never makes the LAN look slower.
	_ = p.answers(ctx, p.relay, relayURL("/"), &pr.RelayTime)
	pr.OK, pr.Strength = true, StrengthCompanion
	pr.Reason = "the printer's companion answers on this network with the printer's id"
	return pr
}

// answers GETs u and reports whether any HTTP answer came (any status: a printer's page may need a login).
func (p *prover) answers(ctx context.Context, rt http.RoundTripper, u string, took *time.Duration) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return errors.New(describe(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProofBody))
	resp.Body.Close()
	keepMin(took, p.since(start))
	return nil
}

// readAny reads the printer id at the first of platforms that has one; a 404 means "not this platform".
func (p *prover) readAny(ctx context.Context, rt http.RoundTripper, at func(string) string, platforms []string, took *time.Duration) (string, string, error) {
	var firstErr error
	for _, plat := range platforms {
		path := octoPrintIDPath
		if plat == PlatformMoonraker {
			path = moonrakerIDPath
		}
		id, status, err := p.readID(ctx, rt, at(path), plat, took)
		if err == nil {
			return id, plat, nil
		}
		if status == 0 {
			return "", "", err // nothing answered: the other platform's path will not fare better
		}
		if firstErr == nil || status != http.StatusNotFound {
			firstErr = err
		}
	}
	if len(platforms) > 1 {
		return "", "", fmt.Errorf("neither OctoPrint's OctoEverywhere plugin API nor Moonraker's database gave one (%w); "+
			"oeproxy cannot prove this host is the printer (force it with route lan)", firstErr)
	}
	return "", "", firstErr
}

// nonce writes a random 128-bit value through the relay and reads it back over the LAN.
func (p *prover) nonce(ctx context.Context, base *url.URL, pr Proof) Proof {
	var b [16]byte
	_, _ = rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	body, _ := json.Marshal(map[string]string{"namespace": NonceNamespace, "key": NonceKey, "value": nonce})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, relayURL("/server/database/item"), bytes.NewReader(body))
	if err != nil {
		pr.Reason = err.Error()
		return pr
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := p.relay.RoundTrip(req)
	if err != nil {
		pr.Reason = "writing the proof nonce through the relay: " + describe(err)
		return pr
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProofBody))
	resp.Body.Close()
	keepMin(&pr.RelayTime, p.since(start))
	if resp.StatusCode != http.StatusOK {
		pr.Reason = fmt.Sprintf("writing the proof nonce through the relay: status %d (Moonraker refused the database write)", resp.StatusCode)
		return pr
	}
	q := url.Values{"namespace": {NonceNamespace}, "key": {NonceKey}}
	got, _, err := p.readID(ctx, p.lan, lanJoin(base, "/server/database/item?"+q.Encode()), PlatformMoonraker, &pr.LANTime)
	switch {
	case err != nil:
		pr.Mismatch = true
		pr.Reason = "the LAN host " + base.Host + " reports the printer's id but not the nonce written through the relay (another device that copied the id?): " + err.Error()
	case got != nonce:
		pr.Mismatch = true
		pr.Reason = "the LAN host " + base.Host + " reports the printer's id but another nonce than the one written through the relay"
	default:
		pr.OK, pr.Strength = true, StrengthNonce
		pr.Reason = "the LAN host read back the nonce written through the relay"
	}
	return pr
}

// readID GETs u and returns the printer id (or value) in it: Moonraker's {"result":{"value":...}} or the
// OctoPrint plugin's {"PrinterId":...}. status is the HTTP status when one came.
func (p *prover) readID(ctx context.Context, rt http.RoundTripper, u, plat string, took *time.Duration) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", 0, errors.New(describe(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProofBody))
	keepMin(took, p.since(start))
	if err != nil {
		return "", resp.StatusCode, errors.New(describe(err))
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", resp.StatusCode, fmt.Errorf("status %d: the printer asks for auth before it says its id (Moonraker: add this computer to trusted_clients; or force route lan)", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return "", resp.StatusCode, fmt.Errorf("status %d", resp.StatusCode)
	}
	var doc struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		PrinterID string `json:"PrinterId"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", resp.StatusCode, errors.New("the answer is not JSON")
	}
	id := doc.PrinterID
	if plat == PlatformMoonraker {
		id, _ = doc.Result.Value.(string)
	}
	if id == "" {
		return "", resp.StatusCode, errors.New("no printer id in the answer (is the OctoEverywhere plugin installed?)")
	}
	return id, resp.StatusCode, nil
}

// relayURL is the placeholder URL of a request through the relay: the Relay transport sets the real host.
func relayURL(pathAndQuery string) string { return "https://relay.invalid" + pathAndQuery }

// lanJoin puts pathAndQuery under the LAN base URL (a base path such as http://host/printer/ is kept).
func lanJoin(base *url.URL, pathAndQuery string) string {
	return strings.TrimRight(base.String(), "/") + pathAndQuery
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func keepMin(d *time.Duration, v time.Duration) {
	if *d == 0 || v < *d {
		*d = v
	}
}

// short is the start of a printer id: enough to tell two apart in a log line, not enough to claim one.
func short(id string) string {
	if len(id) > 6 {
		return id[:6]
	}
	return id
}

// describe says what kind of network failure err is, without a URL (whose query may carry a key).
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	case isRefused(err):
		return "connection refused"
	}
	return err.Error()
}

package credstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the version of the sealed record format this package writes. It is part of every record's
// associated data.
const SchemaVersion = 1

// Routes a record may name. An empty Route means "the config key route" (auto unless set otherwise); records
// stored before LAN routing say relay and keep it.
const (
	RouteRelay = "relay"
	RouteLAN   = "lan"
	RouteAuto  = "auto"
)

// Record is one printer as stored: the App Connection the portal returned once, plus local settings.
// It holds secrets: print it with %v (secrets are redacted) and show users Public(), never the Record.
type Record struct {
	Name                 string // unique, see ValidateName; a slug of PrinterName when not given
	ConnectionID         string // App Connection id
	URL                  string // https://app-<id>.octoeverywhere.com
	BasicUser            string // secret
	BasicPassword        string // secret
	BearerToken          string // secret
	AppAPIToken          string // secret
	OctoPrintAPIKey      string // secret, optional
	PrinterName          string
	UserPrinterAccessURL string
	LastKnownLocalIP     string
	PrinterID            string // OctoEverywhere printer ID, when known
	Port                 int    // local port, unique; 0 in Put means "the next free one"
	Route                string // relay, lan or auto; empty: the config key route
	LANURL               string // the printer's LAN address set by the user (connect --printer-url, lan set); empty: none
	CompanionURL         string // the OctoEverywhere companion's local web API (lan set --companion); empty: none
	CreatedAt            time.Time
	WebhookURL           string
	WebhookEvents        []int
	WebhookSetAt         time.Time
	// Platform is the printer software (one of Platforms; "" not known): what OctoEverywhere reported at connect,
	// or connect --platform.
	Platform string
	// FrontAPIKey is the key of the printer's OctoPrint front (package front); empty: no front. Secret.
	FrontAPIKey string
	// MQTTPort is the printer's local MQTT bridge port (package mqttbridge); 0: no bridge.
	MQTTPort int
	// MQTTTLS makes the MQTT port speak TLS (a self-signed certificate made at each start).
	MQTTTLS bool
	// LoopbackIP is the printer's own loopback address (127.0.0.2, ...) where it also answers on the fixed ports
	// its clients expect (Elegoo: 3030, 80, 7125, 8080); empty: none.
	LoopbackIP    string
	SchemaVersion int // set by the store on read; ignored on write
}

// Platforms are the printer platforms a record may name (connect --platform).
var Platforms = []string{"octoprint", "moonraker", "prusalink", "bambu", "elegoo"}

// PublicRecord is the view of a Record that may be shown or printed (`oeproxy list --json`). It holds no secret.
type PublicRecord struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	LocalURL string `json:"local_url"`
	Route    string `json:"route"`
	// ActiveRoute is the route in use now (lan or relay), as the running daemon decides it; "none" when no daemon
	// runs. LANURL is the LAN address set by the user, LastProof when the daemon last checked it.
	ActiveRoute        string     `json:"active_route"`
	LANURL             string     `json:"lan_url,omitempty"`
	CompanionURL       string     `json:"companion_url,omitempty"`
	LastProof          *time.Time `json:"last_proof,omitempty"`
	PrinterName        string     `json:"printer_name"`
	AppConnectionID    string     `json:"app_connection_id"`
	RelayHost          string     `json:"relay_host"`
	CreatedAt          time.Time  `json:"created_at"`
	PrinterID          string     `json:"printer_id"`
	HasOctoPrintAPIKey bool       `json:"has_octoprint_api_key"`
	WebhookSetAt       *time.Time `json:"webhook_set_at"` // null when no webhook was set
	Platform           string     `json:"platform"`       // "" when not known
	HasFrontAPIKey     bool       `json:"has_front_api_key"`
	MQTTPort           int        `json:"mqtt_port,omitempty"` // absent: no MQTT bridge
	MQTTTLS            bool       `json:"mqtt_tls,omitempty"`
	LoopbackAddress    string     `json:"loopback_address,omitempty"` // absent: no address of its own
	// Damaged is set, with what to do, for a stored record that cannot be read (Name is its stand-in, Port 0);
	// absent otherwise.
	Damaged string `json:"damaged,omitempty"`
	// Served says whether the running daemon serves the printer's port (absent without a daemon); NotServed
	// says why not.
	Served    *bool  `json:"served,omitempty"`
	NotServed string `json:"not_served,omitempty"`
}

// Public is the listing entry of a damaged record.
func (d Damaged) Public() PublicRecord {
	return PublicRecord{Name: d.Name, Route: "", Damaged: d.Error()}
}

// Public returns the view of r that may be shown, with local_url on 127.0.0.1.
func (r Record) Public() PublicRecord { return r.PublicWithHost("") }

// PublicWithHost is Public with local_url on host (the listen host); empty means 127.0.0.1.
func (r Record) PublicWithHost(host string) PublicRecord {
	if host == "" {
		host = "127.0.0.1"
	}
	p := PublicRecord{
		Name:               r.Name,
		Port:               r.Port,
		LocalURL:           "http://" + net.JoinHostPort(host, strconv.Itoa(r.Port)),
		Route:              r.Route,
		ActiveRoute:        "none",
		LANURL:             r.LANURL,
		CompanionURL:       r.CompanionURL,
		PrinterName:        r.PrinterName,
		AppConnectionID:    r.ConnectionID,
		RelayHost:          relayHost(r.URL),
		CreatedAt:          r.CreatedAt.UTC().Truncate(time.Second), // whole seconds: plain RFC 3339
		PrinterID:          r.PrinterID,
		HasOctoPrintAPIKey: r.OctoPrintAPIKey != "",
		Platform:           r.Platform,
		HasFrontAPIKey:     r.FrontAPIKey != "",
		MQTTPort:           r.MQTTPort,
		LoopbackAddress:    r.LoopbackIP,
		MQTTTLS:            r.MQTTTLS,
	}
	if !r.WebhookSetAt.IsZero() {
		t := r.WebhookSetAt.UTC().Truncate(time.Second)
		p.WebhookSetAt = &t
	}
	return p
}

// relayHost is the host of an App Connection URL, without any userinfo, port, path or query.
func relayHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// String describes r without its secrets, so that a Record passed to fmt or a logger by mistake leaks nothing.
func (r Record) String() string {
	return fmt.Sprintf("credstore.Record{Name:%q Port:%d Route:%q PrinterName:%q RelayHost:%q secrets:[redacted]}",
		r.Name, r.Port, r.Route, r.PrinterName, relayHost(r.URL))
}

// GoString is String, for %#v.
func (r Record) GoString() string { return r.String() }

// MarshalJSON refuses: a Record holds secrets. Marshal r.Public() instead.
func (r Record) MarshalJSON() ([]byte, error) {
	return nil, errors.New("credstore.Record holds secrets and is not marshalled: marshal Record.Public() instead")
}

// Slug turns a printer name into a default record name: lower-case ASCII letters and digits, other runs
// replaced by one '-', at most 63 characters; "printer" when nothing is left.
func Slug(name string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(c)
			if b.Len() >= MaxNameLen {
				return strings.TrimRight(b.String()[:MaxNameLen], "-")
			}
		default:
			dash = true
		}
	}
	if b.Len() == 0 {
		return "printer"
	}
	return b.String()
}

// MaxNameLen is the longest printer name: a DNS-label-sized slug, so it fits in URLs, command lines and logs.
const MaxNameLen = 63

// ValidateName is the one rule for a printer's local name, applied by connect, rename, the daemon and the store:
// 1 to 63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit (it appears in URLs, command
// lines and logs unquoted). Every name Slug makes passes.
func ValidateName(name string) error {
	if len(name) > MaxNameLen {
		return newErr(ErrInvalid, nil, fmt.Sprintf("name %q is %d characters: too long (max %d; for example %q)",
			name, len(name), MaxNameLen, Slug(name)))
	}
	ok := len(name) > 0
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '-' || c == '_')
	}
	if !ok {
		return newErr(ErrInvalid, nil, fmt.Sprintf("name %q may use only lower-case letters, digits, '-' and '_', "+
			"starting with a letter or digit (try %q)", name, Slug(name)))
	}
	return nil
}

// validate checks what the store relies on: a valid name, a port, a known route.
func (r *Record) validate() error {
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	if r.Port < 1 || r.Port > 65535 {
		return newErr(ErrInvalid, nil, fmt.Sprintf("printer %q: port %d is outside 1..65535", r.Name, r.Port))
	}
	switch r.Route {
	case "", RouteRelay, RouteLAN, RouteAuto:
	default:
		return newErr(ErrInvalid, nil, fmt.Sprintf("printer %q: route %q is not one of relay, lan, auto", r.Name, r.Route))
	}
	if r.Platform != "" && !slices.Contains(Platforms, r.Platform) {
		return newErr(ErrInvalid, nil, fmt.Sprintf("printer %q: platform %q is not one of %s", r.Name, r.Platform, strings.Join(Platforms, ", ")))
	}
	if ip := net.ParseIP(r.LoopbackIP); r.LoopbackIP != "" && (ip == nil || ip.To4() == nil || !ip.IsLoopback() || r.LoopbackIP == "127.0.0.1") {
		return newErr(ErrInvalid, nil, fmt.Sprintf("printer %q: loopback address %q is not an IPv4 loopback address other than 127.0.0.1", r.Name, r.LoopbackIP))
	}
	if r.MQTTPort < 0 || r.MQTTPort > 65535 {
		return newErr(ErrInvalid, nil, fmt.Sprintf("printer %q: MQTT port %d is outside 1..65535", r.Name, r.MQTTPort))
	}
	return nil
}

// diskRecord is the JSON inside a sealed record. Its short keys are the on-disk format, separate from the Go
// struct so that renaming a field does not change the file.
type diskRecord struct {
	Name                 string    `json:"n"`
	ConnectionID         string    `json:"id"`
	URL                  string    `json:"url"`
	BasicUser            string    `json:"bu,omitempty"`
	BasicPassword        string    `json:"bp,omitempty"`
	BearerToken          string    `json:"bt,omitempty"`
	AppAPIToken          string    `json:"at,omitempty"`
	OctoPrintAPIKey      string    `json:"ok,omitempty"`
	PrinterName          string    `json:"pn,omitempty"`
	UserPrinterAccessURL string    `json:"pu,omitempty"`
	LastKnownLocalIP     string    `json:"ip,omitempty"`
	PrinterID            string    `json:"pid,omitempty"`
	Port                 int       `json:"port"`
	Route                string    `json:"route"`
	LANURL               string    `json:"lan,omitempty"`
	CompanionURL         string    `json:"cu,omitempty"`
	CreatedAt            time.Time `json:"ct"`
	WebhookURL           string    `json:"wu,omitempty"`
	WebhookEvents        []int     `json:"we,omitempty"`
	WebhookSetAt         time.Time `json:"ws"`
	Platform             string    `json:"pf,omitempty"`
	FrontAPIKey          string    `json:"fk,omitempty"`
	MQTTPort             int       `json:"mq,omitempty"`
	LoopbackIP           string    `json:"lip,omitempty"`
	MQTTTLS              bool      `json:"mqt,omitempty"`
}

// padTo is the block the plaintext is padded to, so that ciphertext lengths say little about the secrets.
const padTo = 256

// encodeRecord is the padded plaintext of r (JSON allows the trailing spaces used as padding).
func encodeRecord(r Record) ([]byte, error) {
	b, err := json.Marshal(diskRecord{
		Name: r.Name, ConnectionID: r.ConnectionID, URL: r.URL,
		BasicUser: r.BasicUser, BasicPassword: r.BasicPassword, BearerToken: r.BearerToken,
		AppAPIToken: r.AppAPIToken, OctoPrintAPIKey: r.OctoPrintAPIKey,
		PrinterName: r.PrinterName, UserPrinterAccessURL: r.UserPrinterAccessURL,
		LastKnownLocalIP: r.LastKnownLocalIP, PrinterID: r.PrinterID,
		Port: r.Port, Route: r.Route, LANURL: r.LANURL, CompanionURL: r.CompanionURL, CreatedAt: r.CreatedAt,
		WebhookURL: r.WebhookURL, WebhookEvents: r.WebhookEvents, WebhookSetAt: r.WebhookSetAt,
		Platform: r.Platform, FrontAPIKey: r.FrontAPIKey, MQTTPort: r.MQTTPort, LoopbackIP: r.LoopbackIP,
		MQTTTLS: r.MQTTTLS,
	})
	if err != nil {
		return nil, err
	}
	n := (len(b)/padTo + 1) * padTo
	return append(b, bytes.Repeat([]byte{' '}, n-len(b))...), nil
}

// decodeRecord parses and validates an authenticated plaintext. It must never panic, whatever the input.
func decodeRecord(plain []byte) (Record, error) {
	var d diskRecord
	dec := json.NewDecoder(bytes.NewReader(plain))
	if err := dec.Decode(&d); err != nil {
		return Record{}, fmt.Errorf("record is not valid JSON: %w", err)
	}
	if len(bytes.TrimLeft(plain[dec.InputOffset():], " ")) != 0 {
		return Record{}, errors.New("record has trailing data after its JSON")
	}
	r := Record{
		Name: d.Name, ConnectionID: d.ConnectionID, URL: d.URL,
		BasicUser: d.BasicUser, BasicPassword: d.BasicPassword, BearerToken: d.BearerToken,
		AppAPIToken: d.AppAPIToken, OctoPrintAPIKey: d.OctoPrintAPIKey,
		PrinterName: d.PrinterName, UserPrinterAccessURL: d.UserPrinterAccessURL,
		LastKnownLocalIP: d.LastKnownLocalIP, PrinterID: d.PrinterID,
		Port: d.Port, Route: d.Route, LANURL: d.LANURL, CompanionURL: d.CompanionURL, CreatedAt: d.CreatedAt,
		WebhookURL: d.WebhookURL, WebhookEvents: d.WebhookEvents, WebhookSetAt: d.WebhookSetAt,
		Platform: d.Platform, FrontAPIKey: d.FrontAPIKey, MQTTPort: d.MQTTPort, LoopbackIP: d.LoopbackIP,
		MQTTTLS: d.MQTTTLS, SchemaVersion: SchemaVersion,
	}
	if err := r.validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Package config owns oeproxy's configuration: the Config struct with every key of DESIGN.md, its defaults,
// loading with viper (flag > OEPROXY_* environment > file > default) and validation that reports every problem
// at once. It must not read the credential store.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/oeproxy/oeproxy/internal/oe"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Config is every setting of oeproxy. Field tags are the config keys.
type Config struct {
	DataDir        string         `mapstructure:"data_dir"`
	Listen         Listen         `mapstructure:"listen"`
	Admin          Admin          `mapstructure:"admin"`
	OctoEverywhere OctoEverywhere `mapstructure:"octoeverywhere"`
	TLS            TLS            `mapstructure:"tls"`
	Store          Store          `mapstructure:"store"`
	ShutdownGrace  time.Duration  `mapstructure:"shutdown_grace"`
	WebSocket      WebSocket      `mapstructure:"websocket"`
	Route          string         `mapstructure:"route"`
	Webcam         Webcam         `mapstructure:"webcam"`
	Upload         Upload         `mapstructure:"upload"`
	Log            Log            `mapstructure:"log"`
}

// Listen configures the per-printer listeners.
type Listen struct {
	Host             string   `mapstructure:"host"`
	PortBase         int      `mapstructure:"port_base"`
	AllowedHosts     []string `mapstructure:"allowed_hosts"`
	AllowNonLoopback bool     `mapstructure:"allow_non_loopback"`
	// MaxConnections caps the client connections one printer listener holds at once; more wait in the
	// kernel's backlog until one closes. 0 means no cap (the daemon's file-descriptor budget still applies).
	MaxConnections int `mapstructure:"max_connections"`
}

// Admin configures the admin listener (UI, metrics, health, portal callback).
type Admin struct {
	Listen string `mapstructure:"listen"`
}

// OctoEverywhere says where OctoEverywhere is and how to authenticate to it.
type OctoEverywhere struct {
	AppID       string `mapstructure:"app_id"`
	PortalURL   string `mapstructure:"portal_url"`
	APIURL      string `mapstructure:"api_url"`
	RelayDomain string `mapstructure:"relay_domain"`
	ConnectTo   string `mapstructure:"connect_to"`
	Auth        string `mapstructure:"auth"`
	AppLogoURL  string `mapstructure:"app_logo_url"`
	// MaxConnections caps the connections one printer holds to its relay for HTTP (WebSockets are not
	// counted: each is its own connection for its whole life). Requests beyond it wait for a free connection
	// instead of opening one more TLS session. 0 means no cap.
	MaxConnections int `mapstructure:"max_connections"`
}

// TLS holds extra trust for OctoEverywhere hosts.
type TLS struct {
	CAFile string `mapstructure:"ca_file"`
}

// Store configures the credential store's master key file and where it may be.
type Store struct {
	KeyFile string `mapstructure:"key_file"`
	// AllowSymlinks lets data_dir and the store file be symbolic links anywhere. Without it a store file that
	// is a link is refused, and so is a data_dir link that someone other than its user or root could have made.
	AllowSymlinks bool `mapstructure:"allow_symlinks"`
}

// WebSocket configures the WebSocket relay.
type WebSocket struct {
	PingInterval    time.Duration `mapstructure:"ping_interval"`
	MaxMessageBytes int64         `mapstructure:"max_message_bytes"`
}

// Webcam configures how webcam (MJPEG) streams are carried (package webcam).
type Webcam struct {
	// ShareStreams gives every viewer of one webcam (same path, query and client credential) one relay stream.
	ShareStreams bool `mapstructure:"share_streams"`
	// ContinueStreams reopens a shared stream when the relay ends it, so that viewers see no end.
	ContinueStreams bool `mapstructure:"continue_streams"`
	// Linger keeps a shared stream open this long after its last viewer left.
	Linger time.Duration `mapstructure:"linger"`
}

// Upload configures how slicer uploads on the relay route are answered (proxy.UploadSpool).
type Upload struct {
	// AnswerWhenStored answers a slicer's upload with 202 Accepted once oeproxy has it on disk, before the printer
	// has it, and then passes it on and records the printer's outcome (log, metrics, admin page). Off by default:
	// the slicer then gets the printer's own answer. For clients that give up on the relay's silence.
	AnswerWhenStored bool `mapstructure:"answer_when_stored"`
	// SpoolDir holds uploads being passed on, and under undelivered/ those the printer did not get. Default
	// <data_dir>/uploads.
	SpoolDir string `mapstructure:"spool_dir"`
}

// Log configures zap.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// DevTestAppID is OctoEverywhere's public test App ID.
const DevTestAppID = "devtest"

// defaults lists every key with its default. Empty strings for data_dir, store.key_file and log.format mean
// "derived at load time" (see resolve).
var defaults = map[string]any{
	"data_dir":                       "",
	"listen.host":                    "127.0.0.1",
	"listen.port_base":               5001,
	"listen.allowed_hosts":           []string{},
	"listen.allow_non_loopback":      false,
	"listen.max_connections":         256,
	"admin.listen":                   "127.0.0.1:7080",
	"octoeverywhere.app_id":          DevTestAppID,
	"octoeverywhere.portal_url":      "https://octoeverywhere.com/appportal/v1/",
	"octoeverywhere.api_url":         "https://octoeverywhere.com",
	"octoeverywhere.relay_domain":    "octoeverywhere.com",
	"octoeverywhere.connect_to":      "",
	"octoeverywhere.auth":            "basic",
	"octoeverywhere.app_logo_url":    "",
	"octoeverywhere.max_connections": 128,
	"tls.ca_file":                    "",
	"store.key_file":                 "",
	"store.allow_symlinks":           false,
	"shutdown_grace":                 "30s",
	"websocket.ping_interval":        "30s",
	"websocket.max_message_bytes":    int64(64 << 20),
	"route":                          "auto",
	"webcam.share_streams":           true,
	"webcam.continue_streams":        true,
	"webcam.linger":                  "3s",
	"upload.answer_when_stored":      false,
	"upload.spool_dir":               "",
	"log.level":                      "info",
	"log.format":                     "",
}

// Keys returns every config key, sorted.
func Keys() []string {
	keys := make([]string, 0, len(defaults))
	for k := range defaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// EnvName is the environment variable for a key: OEPROXY_ + upper-case key with "." → "_".
func EnvName(key string) string {
	return "OEPROXY_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// FlagKeys maps the global flags to the keys they set.
var FlagKeys = map[string]string{
	"data-dir":   "data_dir",
	"log-level":  "log.level",
	"log-format": "log.format",
}

// SystemConfigFile is read when no --config is given and no per-user file exists.
var SystemConfigFile = "/etc/oeproxy/config.yaml"

// SystemDataDir is the data directory of the system service (contrib/systemd). Commands that find no store in
// a default data dir point there when it exists.
var SystemDataDir = "/var/lib/oeproxy"

// envNotKeys are OEPROXY_ variables that are not config keys.
var envNotKeys = map[string]bool{
	"OEPROXY_MASTER_KEY": true, "OEPROXY_PASSPHRASE": true, // credstore key sources
	"OEPROXY_NEW_MASTER_KEY": true, "OEPROXY_NEW_PASSPHRASE": true, // store rotate-key
	"OEPROXY_E2E": true, "OEPROXY_SOAK": true, // test switches
	"OEPROXY_PPROF": true, // mounts net/http/pprof on the admin listener
}

// LoadOptions says where to load from. Zero values use the process environment and default paths.
type LoadOptions struct {
	// File is --config. Empty: $XDG_CONFIG_HOME/oeproxy/config.yaml, else /etc/oeproxy/config.yaml, if present.
	File string
	// Flags are the parsed global flags (only changed flags override).
	Flags *pflag.FlagSet
	// Getenv defaults to os.Getenv; LookupEnv to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Environ lists the environment (default os.Environ), to report OEPROXY_ variables that match no key.
	Environ func() []string
	// Home overrides the home directory (tests).
	Home string

	// content, when set, is File's content: the fuzz target loads thousands of configs a second without
	// touching the disk.
	content []byte
}

// Loaded is the result of Load: the config and where it came from.
type Loaded struct {
	Config
	// File is the config file that was read, or "" when none.
	File string
	// DataDirDefault is true when data_dir was derived (XDG_DATA_HOME or HOME), not set by the user.
	DataDirDefault bool
}

// Load reads the configuration with precedence flag > env > file > default, then validates it. The error lists
// every problem at once.
func Load(o LoadOptions) (*Loaded, error) {
	lookup := o.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	getenv := func(k string) string { v, _ := lookup(k); return v }
	home := o.Home
	if home == "" {
		home, _ = os.UserHomeDir()
	}

	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	// Bind every key explicitly: AutomaticEnv only sees keys viper already knows, and viper's own env lookup
	// cannot be redirected for tests.
	for k := range defaults {
		if val, ok := lookup(EnvName(k)); ok {
			if k == "listen.allowed_hosts" {
				v.Set(k, splitList(val))
			} else {
				v.Set(k, val)
			}
		}
	}

	environ := o.Environ
	if environ == nil {
		environ = os.Environ
	}
	var problems []string
	known := map[string]bool{}
	for k := range defaults {
		known[EnvName(k)] = true
	}
	for _, kv := range environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "OEPROXY_") && !known[name] && !envNotKeys[name] {
			msg := fmt.Sprintf("%s: unknown environment variable", name)
			if s := closestEnv(name); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			} else {
				msg += " (every key's variable is OEPROXY_ + the key with . as _, e.g. OEPROXY_LISTEN_HOST)"
			}
			problems = append(problems, msg)
		}
	}

	file, content := o.File, o.content
	var err error
	if content == nil {
		if file, err = findFile(o.File, getenv, home); err != nil {
			return nil, err
		}
		if file != "" {
			if content, err = os.ReadFile(file); err != nil {
				return nil, fmt.Errorf("read config file %s: %w (check its permissions or point --config elsewhere)", file, err)
			}
		}
	}
	if file != "" {
		fv := viper.New()
		fv.SetConfigType("yaml")
		if err := fv.ReadConfig(bytes.NewReader(content)); err != nil {
			return nil, fmt.Errorf("read config file %s: %w (fix the YAML or point --config elsewhere)", file, err)
		}
		problems = append(problems, unknownKeys(fv.AllKeys(), file)...)
		for _, k := range fv.AllKeys() {
			if _, known := defaults[k]; !known {
				continue
			}
			if _, envSet := lookup(EnvName(k)); envSet {
				continue // env wins over file
			}
			v.Set(k, fv.Get(k))
		}
	}
	if o.Flags != nil {
		for flag, key := range FlagKeys {
			if f := o.Flags.Lookup(flag); f != nil && f.Changed {
				v.Set(key, f.Value.String())
			}
		}
	}

	problems = append(problems, readTyped(v.Get, v.Set)...)
	var c Config
	dec := &mapstructure.DecoderConfig{
		Result:           &c,
		WeaklyTypedInput: true,
		ErrorUnused:      false,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	}
	d, err := mapstructure.NewDecoder(dec)
	if err != nil {
		return nil, err
	}
	if err := d.Decode(v.AllSettings()); err != nil {
		problems = append(problems, fmt.Sprintf("decode: %v", err))
	}
	defaulted := c.DataDir == ""
	problems = append(problems, resolve(&c, getenv, home)...)
	problems = append(problems, c.problems()...)
	if len(problems) > 0 {
		return nil, &ValidationError{File: file, Problems: problems}
	}
	return &Loaded{Config: c, File: file, DataDirDefault: defaulted}, nil
}

// splitList reads a list from one environment variable: comma- or space-separated.
func splitList(s string) []string {
	out := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	if out == nil {
		out = []string{}
	}
	return out
}

func findFile(explicit string, getenv func(string) string, home string) (string, error) {
	if explicit != "" {
		if explicit == os.DevNull {
			return "", nil
		}
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("config file %s: %w (check the --config path)", explicit, err)
		}
		return explicit, nil
	}
	xdg := getenv("XDG_CONFIG_HOME")
	if xdg == "" && home != "" {
		xdg = filepath.Join(home, ".config")
	}
	var candidates []string
	if xdg != "" {
		candidates = append(candidates, filepath.Join(xdg, "oeproxy", "config.yaml"))
	}
	for _, p := range append(candidates, SystemConfigFile) {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", nil
}

// resolve fills the derived defaults. A default data_dir is never relative: it would put the store wherever the
// command happens to run (HOME unset under some service managers and cron), so each command would find another.
func resolve(c *Config, getenv func(string) string, home string) (problems []string) {
	if c.DataDir == "" {
		// XDG: a relative XDG_DATA_HOME is invalid and ignored.
		xdg := getenv("XDG_DATA_HOME")
		if !filepath.IsAbs(xdg) {
			xdg = ""
		}
		if xdg == "" && filepath.IsAbs(home) {
			xdg = filepath.Join(home, ".local", "share")
		}
		if xdg == "" {
			problems = append(problems, fmt.Sprintf("data_dir: no default: HOME is %s and XDG_DATA_HOME is not an absolute "+
				"path; set data_dir (--data-dir or %s) to an absolute directory, e.g. %s for the system service",
				quote(home), EnvName("data_dir"), SystemDataDir))
			c.DataDir = "" // leave it unset: nothing may use a relative guess
		} else {
			c.DataDir = filepath.Join(xdg, "oeproxy")
		}
	}
	if c.Store.KeyFile == "" {
		if cd := getenv("CREDENTIALS_DIRECTORY"); cd != "" {
			if _, err := os.Stat(filepath.Join(cd, "oeproxy-master-key")); err == nil {
				c.Store.KeyFile = filepath.Join(cd, "oeproxy-master-key")
			}
		}
		if c.Store.KeyFile == "" && c.DataDir != "" {
			c.Store.KeyFile = filepath.Join(c.DataDir, "master.key")
		}
	}
	if c.Upload.SpoolDir == "" && c.DataDir != "" {
		c.Upload.SpoolDir = filepath.Join(c.DataDir, "uploads")
	}
	if c.Listen.AllowedHosts == nil {
		c.Listen.AllowedHosts = []string{}
	}
	c.Log.Level = strings.ToLower(c.Log.Level)
	c.OctoEverywhere.Auth = strings.ToLower(c.OctoEverywhere.Auth)
	c.OctoEverywhere.RelayDomain = strings.ToLower(strings.TrimSuffix(c.OctoEverywhere.RelayDomain, "."))
	return problems
}

// ValidationError lists every problem found in the configuration.
type ValidationError struct {
	File     string
	Problems []string
}

func (e *ValidationError) Error() string {
	where := "configuration"
	if e.File != "" {
		where = "configuration (file " + e.File + ", environment and flags)"
	}
	return fmt.Sprintf("%s has %d problem(s):\n  - %s", where, len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// ErrInvalid is matched by errors.Is for every validation error.
var ErrInvalid = errors.New("invalid configuration")

// Is lets errors.Is(err, ErrInvalid) match.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func unknownKeys(keys []string, file string) []string {
	var out []string
	for _, k := range keys {
		if _, ok := defaults[k]; ok {
			continue
		}
		// A parent of known keys written as a scalar shows up as itself; it is unknown too.
		msg := fmt.Sprintf("%s: unknown key in %s", k, file)
		if s := closest(k); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else {
			msg += " (see config.example.yaml for every key)"
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

// closestEnv returns the variable of the known key nearest to name, if near enough to be a likely typo.
func closestEnv(name string) string {
	best, bestD := "", 1<<30
	for _, k := range Keys() {
		if d := editDistance(name, EnvName(k)); d < bestD {
			best, bestD = EnvName(k), d
		}
	}
	if bestD <= max(2, (len(name)-len("OEPROXY_"))/4) {
		return best
	}
	return ""
}

// closest returns the known key nearest to k by edit distance, if near enough to be a likely typo.
func closest(k string) string {
	best, bestD := "", 1<<30
	for _, cand := range Keys() {
		if d := editDistance(k, cand); d < bestD {
			best, bestD = cand, d
		}
	}
	if bestD <= max(2, len(k)/4) {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// problems validates c and returns one line per problem: key, bad value, what is allowed.
func (c *Config) problems() []string {
	var p []string
	add := func(key string, val any, allowed string) {
		p = append(p, fmt.Sprintf("%s: %v is not allowed: %s", key, quote(val), allowed))
	}
	if c.Listen.Host == "" {
		add("listen.host", c.Listen.Host, "give an IP address or host name, normally 127.0.0.1")
	} else if !IsLoopbackHost(c.Listen.Host) && !c.Listen.AllowNonLoopback {
		add("listen.host", c.Listen.Host, "only loopback addresses unless listen.allow_non_loopback is true (anyone who reaches the port controls the printer)")
	}
	if c.Listen.PortBase < 1 || c.Listen.PortBase > 65535 {
		add("listen.port_base", c.Listen.PortBase, "a TCP port 1..65535")
	}
	for _, h := range c.Listen.AllowedHosts {
		switch {
		case strings.Contains(h, "*"):
			add("listen.allowed_hosts", h, "name each host (printer.lan, printer.lan:5001): wildcards are not supported, since a page on any host that resolves to this machine could then drive the printer")
		case h == "" || strings.ContainsAny(h, "/ "):
			add("listen.allowed_hosts", h, "host names or host:port values")
		}
	}
	if _, port, err := net.SplitHostPort(c.Admin.Listen); err != nil || port == "" {
		add("admin.listen", c.Admin.Listen, "host:port, e.g. 127.0.0.1:7080")
	}
	if strings.TrimSpace(c.OctoEverywhere.AppID) == "" {
		add("octoeverywhere.app_id", c.OctoEverywhere.AppID, "the App ID OctoEverywhere assigned (devtest for testing)")
	}
	checkHTTPS := func(key, v string) {
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			add(key, v, "an https:// URL without user info")
		}
	}
	checkHTTPS("octoeverywhere.portal_url", c.OctoEverywhere.PortalURL)
	checkHTTPS("octoeverywhere.api_url", c.OctoEverywhere.APIURL)
	if c.OctoEverywhere.AppLogoURL != "" {
		checkHTTPS("octoeverywhere.app_logo_url", c.OctoEverywhere.AppLogoURL)
	}
	if d := c.OctoEverywhere.RelayDomain; d == "" || strings.ContainsAny(d, "/:@ ") || !strings.Contains(d, ".") {
		add("octoeverywhere.relay_domain", d, "a domain name such as octoeverywhere.com")
	}
	if ct := c.OctoEverywhere.ConnectTo; ct != "" {
		if h, port, err := net.SplitHostPort(ct); err != nil || h == "" || port == "" {
			add("octoeverywhere.connect_to", ct, "empty, or host:port to dial for every OctoEverywhere host")
		}
	}
	if c.Listen.MaxConnections < 0 {
		add("listen.max_connections", c.Listen.MaxConnections, "0 (no cap) or a positive number of client connections per printer port, e.g. 256")
	}
	if c.OctoEverywhere.MaxConnections < 0 {
		add("octoeverywhere.max_connections", c.OctoEverywhere.MaxConnections, "0 (no cap) or a positive number of connections per printer, e.g. 128")
	}
	if a := c.OctoEverywhere.Auth; a != "basic" && a != "bearer" {
		add("octoeverywhere.auth", a, "basic or bearer")
	}
	if c.ShutdownGrace < 0 {
		add("shutdown_grace", c.ShutdownGrace, "a duration of 0 or more, e.g. 30s")
	}
	if c.WebSocket.PingInterval < 100*time.Millisecond {
		add("websocket.ping_interval", c.WebSocket.PingInterval, "a duration of at least 100ms, e.g. 30s")
	}
	if c.WebSocket.MaxMessageBytes < 1024 {
		add("websocket.max_message_bytes", c.WebSocket.MaxMessageBytes, "at least 1024 bytes")
	}
	switch c.Route {
	case "relay", "lan", "auto":
	default:
		add("route", c.Route, "relay, lan or auto")
	}
	if c.Upload.SpoolDir != "" && !filepath.IsAbs(c.Upload.SpoolDir) {
		add("upload.spool_dir", c.Upload.SpoolDir, "an absolute directory, e.g. /var/lib/oeproxy/uploads")
	}
	if c.Webcam.Linger < 0 || c.Webcam.Linger > 10*time.Minute {
		add("webcam.linger", c.Webcam.Linger, "a duration from 0s to 10m, e.g. 3s")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", c.Log.Level, "debug, info, warn or error")
	}
	switch c.Log.Format {
	case "", "console", "json":
	default:
		add("log.format", c.Log.Format, "console or json (empty: console on a terminal, else json)")
	}
	return p
}

func quote(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	if v == nil || (reflect.ValueOf(v).Kind() == reflect.Slice && reflect.ValueOf(v).Len() == 0) {
		return "[]"
	}
	return fmt.Sprint(v)
}

// IsLoopbackHost reports whether h (a host, without port) names the loopback interface.
func IsLoopbackHost(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// NoSupporterPerksURL is the page that explains 605 for this configuration's portal and App ID.
func (c *Config) NoSupporterPerksURL() string {
	return oe.SupporterPageURL(c.OctoEverywhere.PortalURL, c.OctoEverywhere.AppID)
}

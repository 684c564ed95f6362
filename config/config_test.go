package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// env builds a LookupEnv/Environ pair from a map, so tests never see the real environment.
func env(m map[string]string) (func(string) (string, bool), func() []string) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok },
		func() []string {
			var out []string
			for k, v := range m {
				out = append(out, k+"="+v)
			}
			return out
		}
}

func load(t *testing.T, file string, e map[string]string, flags *pflag.FlagSet) (*Loaded, error) {
	t.Helper()
	if e == nil {
		e = map[string]string{}
	}
	if _, ok := e["XDG_CONFIG_HOME"]; !ok {
		e["XDG_CONFIG_HOME"] = t.TempDir() // no per-user file
	}
	old := SystemConfigFile
	SystemConfigFile = filepath.Join(t.TempDir(), "none.yaml")
	defer func() { SystemConfigFile = old }()
	lookup, environ := env(e)
	return Load(LoadOptions{File: file, LookupEnv: lookup, Environ: environ, Flags: flags, Home: "/home/u"})
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	l, err := load(t, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", c.DataDir, "/home/u/.local/share/oeproxy"},
		{"key_file", c.Store.KeyFile, "/home/u/.local/share/oeproxy/master.key"},
		{"listen.host", c.Listen.Host, "127.0.0.1"},
		{"port_base", c.Listen.PortBase, 5001},
		{"admin", c.Admin.Listen, "127.0.0.1:7080"},
		{"app_id", c.OctoEverywhere.AppID, "devtest"},
		{"portal", c.OctoEverywhere.PortalURL, "https://octoeverywhere.com/appportal/v1/"},
		{"api", c.OctoEverywhere.APIURL, "https://octoeverywhere.com"},
		{"domain", c.OctoEverywhere.RelayDomain, "octoeverywhere.com"},
		{"auth", c.OctoEverywhere.Auth, "basic"},
		{"grace", c.ShutdownGrace, 30 * time.Second},
		{"ping", c.WebSocket.PingInterval, 30 * time.Second},
		{"maxmsg", c.WebSocket.MaxMessageBytes, int64(67108864)},
		{"route", c.Route, "auto"},
		{"answer_when_stored", c.Upload.AnswerWhenStored, false},
		{"spool_dir", c.Upload.SpoolDir, "/home/u/.local/share/oeproxy/uploads"},
		{"level", c.Log.Level, "info"},
		{"allowed", len(c.Listen.AllowedHosts), 0},
		{"nosupporter", c.NoSupporterPerksURL(), "https://octoeverywhere.com/appportal/v1/nosupporterperks?appid=devtest"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if l.File != "" {
		t.Errorf("no file expected, got %s", l.File)
	}
}

// TestExampleMatchesDefaults keeps config.example.yaml honest: it names every key and its values are the defaults.
func TestExampleMatchesDefaults(t *testing.T) {
	ex, err := load(t, "../config.example.yaml", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	def, err := load(t, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ex.Config, def.Config) {
		t.Errorf("config.example.yaml differs from the defaults:\nexample  %+v\ndefaults %+v", ex.Config, def.Config)
	}
	raw, _ := os.ReadFile("../config.example.yaml")
	for _, k := range Keys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(raw), leaf+":") {
			t.Errorf("config.example.yaml does not list %s", k)
		}
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "listen:\n  port_base: 6000\nlog:\n  level: warn\noctoeverywhere:\n  app_id: fromfile\n")
	e := map[string]string{"OEPROXY_LOG_LEVEL": "error", "OEPROXY_OCTOEVERYWHERE_CONNECT_TO": "127.0.0.1:9443",
		"OEPROXY_LISTEN_ALLOWED_HOSTS": "printer.lan, other.lan"}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("log-level", "", "")
	fs.String("data-dir", "", "")
	fs.String("log-format", "", "")
	if err := fs.Parse([]string{"--log-level=debug", "--data-dir=/d"}); err != nil {
		t.Fatal(err)
	}
	l, err := load(t, file, e, fs)
	if err != nil {
		t.Fatal(err)
	}
	if l.Log.Level != "debug" {
		t.Errorf("flag should win: level %q", l.Log.Level)
	}
	if l.OctoEverywhere.ConnectTo != "127.0.0.1:9443" {
		t.Errorf("env with empty default must be reachable: connect_to %q", l.OctoEverywhere.ConnectTo)
	}
	if l.Listen.PortBase != 6000 || l.OctoEverywhere.AppID != "fromfile" {
		t.Errorf("file values lost: %+v", l.Config)
	}
	if l.DataDir != "/d" || l.Store.KeyFile != "/d/master.key" {
		t.Errorf("data dir flag: %q %q", l.DataDir, l.Store.KeyFile)
	}
	if !reflect.DeepEqual(l.Listen.AllowedHosts, []string{"printer.lan", "other.lan"}) {
		t.Errorf("allowed hosts from env: %q", l.Listen.AllowedHosts)
	}
	// env beats file
	l, err = load(t, file, map[string]string{"OEPROXY_LOG_LEVEL": "error"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Log.Level != "error" {
		t.Errorf("env should beat file: %q", l.Log.Level)
	}
}

// TestEveryKeyFromEnv proves each key is bound to its environment variable.
func TestEveryKeyFromEnv(t *testing.T) {
	values := map[string]string{
		"data_dir": "/x", "listen.host": "127.0.0.2", "listen.port_base": "7001", "listen.allowed_hosts": "a.lan",
		"listen.allow_non_loopback": "true", "listen.max_connections": "64", "admin.listen": "127.0.0.1:1", "octoeverywhere.app_id": "myapp",
		"octoeverywhere.portal_url": "https://p.example/appportal/v1/", "octoeverywhere.api_url": "https://p.example",
		"octoeverywhere.relay_domain": "p.example", "octoeverywhere.connect_to": "127.0.0.1:2",
		"octoeverywhere.auth": "bearer", "octoeverywhere.app_logo_url": "https://p.example/logo.png",
		"octoeverywhere.max_connections": "16", "tls.ca_file": "/ca.pem", "store.key_file": "/k", "store.allow_symlinks": "true", "shutdown_grace": "5s", "websocket.ping_interval": "2s",
		"websocket.max_message_bytes": "2048", "route": "relay", "webcam.share_streams": "false",
		"webcam.continue_streams": "false", "webcam.linger": "7s", "log.level": "warn", "log.format": "json",
		"upload.answer_when_stored": "true", "upload.spool_dir": "/spool",
	}
	if len(values) != len(Keys()) {
		t.Fatalf("test covers %d keys, config has %d", len(values), len(Keys()))
	}
	e := map[string]string{}
	for k, v := range values {
		e[EnvName(k)] = v
	}
	l, err := load(t, "", e, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	got := map[string]string{
		"data_dir": c.DataDir, "listen.host": c.Listen.Host, "listen.port_base": "7001",
		"admin.listen": c.Admin.Listen, "octoeverywhere.app_id": c.OctoEverywhere.AppID,
		"octoeverywhere.portal_url": c.OctoEverywhere.PortalURL, "octoeverywhere.api_url": c.OctoEverywhere.APIURL,
		"octoeverywhere.relay_domain": c.OctoEverywhere.RelayDomain, "octoeverywhere.connect_to": c.OctoEverywhere.ConnectTo,
		"octoeverywhere.auth": c.OctoEverywhere.Auth, "octoeverywhere.app_logo_url": c.OctoEverywhere.AppLogoURL,
		"octoeverywhere.max_connections": strconv.Itoa(c.OctoEverywhere.MaxConnections),
		"listen.max_connections":         strconv.Itoa(c.Listen.MaxConnections),
		"tls.ca_file":                    c.TLS.CAFile, "store.key_file": c.Store.KeyFile, "shutdown_grace": c.ShutdownGrace.String(),
		"websocket.ping_interval": c.WebSocket.PingInterval.String(), "log.level": c.Log.Level, "log.format": c.Log.Format,
	}
	for k, g := range got {
		if g != values[k] {
			t.Errorf("%s from %s: got %q want %q", k, EnvName(k), g, values[k])
		}
	}
	if c.Listen.PortBase != 7001 || !c.Listen.AllowNonLoopback || c.WebSocket.MaxMessageBytes != 2048 ||
		len(c.Listen.AllowedHosts) != 1 || c.Webcam.ShareStreams || c.Webcam.ContinueStreams || c.Webcam.Linger != 7*time.Second ||
		!c.Store.AllowSymlinks || !c.Upload.AnswerWhenStored || c.Upload.SpoolDir != "/spool" {
		t.Errorf("typed env values: %+v", c)
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	file := writeFile(t, `
listen:
  host: 0.0.0.0
  port_base: 70000
  prot_base: 1
admin:
  listen: nope
octoeverywhere:
  auth: digest
  portal_url: http://octoeverywhere.com/appportal/v1/
  connect_to: localhost
  max_connections: -1
websocket:
  ping_interval: 1ms
route: direct
log:
  level: loud
  format: xml
shutdown_grace: 30s
shutdown_grcae: 10s
`)
	_, err := load(t, file, map[string]string{"OEPROXY_LISTEN_HSOT": "x"}, nil)
	if err == nil {
		t.Fatal("expected validation errors")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) false: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`listen.host: "0.0.0.0"`, "allow_non_loopback",
		"listen.port_base: 70000", "admin.listen", `octoeverywhere.auth: "digest"`, "basic or bearer",
		"octoeverywhere.portal_url", "octoeverywhere.connect_to", "octoeverywhere.max_connections: -1", "websocket.ping_interval", `route: "direct"`,
		"log.level", "log.format",
		`listen.prot_base: unknown key`, `did you mean "listen.port_base"`,
		`shutdown_grcae: unknown key`, `did you mean "shutdown_grace"`,
		"OEPROXY_LISTEN_HSOT: unknown environment variable",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestNonLoopbackAllowedExplicitly(t *testing.T) {
	file := writeFile(t, "listen:\n  host: 0.0.0.0\n  allow_non_loopback: true\n")
	if _, err := load(t, file, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFileSearch(t *testing.T) {
	xdg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(xdg, "oeproxy"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(xdg, "oeproxy", "config.yaml")
	if err := os.WriteFile(p, []byte("listen:\n  port_base: 5101\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := load(t, "", map[string]string{"XDG_CONFIG_HOME": xdg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.File != p || l.Listen.PortBase != 5101 {
		t.Errorf("XDG file not used: %q %d", l.File, l.Listen.PortBase)
	}
	if _, err := load(t, "/nonexistent/oeproxy.yaml", nil, nil); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("missing --config file: %v", err)
	}
	bad := writeFile(t, "listen: [unclosed\n")
	if _, err := load(t, bad, nil, nil); err == nil || !strings.Contains(err.Error(), "YAML") {
		t.Errorf("bad yaml: %v", err)
	}
}

func TestCredentialsDirectoryKeyFile(t *testing.T) {
	cd := t.TempDir()
	if err := os.WriteFile(filepath.Join(cd, "oeproxy-master-key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := load(t, "", map[string]string{"CREDENTIALS_DIRECTORY": cd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Store.KeyFile != filepath.Join(cd, "oeproxy-master-key") {
		t.Errorf("systemd credential not used: %s", l.Store.KeyFile)
	}
}

// FuzzLoad feeds arbitrary YAML to the loader: it must return a config or an error, never panic.
func FuzzLoad(f *testing.F) {
	seeds := []string{"", "listen:\n  port_base: 5001\n", "a: [", "listen: 5", "websocket:\n  ping_interval: -1s\n",
		"listen:\n  allowed_hosts: [a, b]\n", "octoeverywhere: {auth: bearer}\n", "\x00\xff", "log: {level: 3}\n"}
	// config.example.yaml is loaded by TestExampleMatchesDefaults; as a seed its 3 KiB of comments made every
	// mutation a long input that the fuzzer then spent its minimisation minute on.
	seeds = append(seeds, "listen:\n  host: 127.0.0.1\n  port_base: 5001\nwebsocket:\n  ping_interval: 30s\n  max_message_bytes: 64MiB\nshutdown_grace: 30\n")
	for _, s := range seeds {
		f.Add(s)
	}
	lookup, environ := env(map[string]string{})
	f.Fuzz(func(t *testing.T, content string) {
		l, err := Load(LoadOptions{File: "fuzz.yaml", content: []byte(content), LookupEnv: lookup, Environ: environ, Home: "/h"})
		if err == nil && (l.OctoEverywhere.Auth != "basic" && l.OctoEverywhere.Auth != "bearer") {
			t.Fatalf("invalid config accepted: %+v", l.Config)
		}
	})
}

// A default data_dir is never relative: with HOME unset (some service managers, cron) the store would land in
// whatever directory the command ran from, and each command would find another one.
func TestNoRelativeDefaultDataDir(t *testing.T) {
	t.Setenv("HOME", "")
	for _, e := range []map[string]string{{}, {"XDG_DATA_HOME": "rel/share"}} {
		e["XDG_CONFIG_HOME"] = t.TempDir()
		lookup, environ := env(e)
		_, err := Load(LoadOptions{File: os.DevNull, LookupEnv: lookup, Environ: environ})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "data_dir: no default") {
			t.Fatalf("env %v without HOME: %v, want a data_dir problem", e, err)
		}
	}
	lookup, environ := env(map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "XDG_DATA_HOME": "/srv/share"})
	l, err := Load(LoadOptions{File: os.DevNull, LookupEnv: lookup, Environ: environ})
	if err != nil || l.DataDir != "/srv/share/oeproxy" || !l.DataDirDefault {
		t.Fatalf("absolute XDG_DATA_HOME without HOME: %+v %v", l, err)
	}
	lookup, environ = env(map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "OEPROXY_DATA_DIR": "/srv/x"})
	if l, err = Load(LoadOptions{File: os.DevNull, LookupEnv: lookup, Environ: environ}); err != nil || l.DataDirDefault {
		t.Fatalf("data_dir set: %+v %v", l, err)
	}
}

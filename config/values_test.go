package config

import (
	"strings"
	"testing"
	"time"
)

// Values that are not plain strings are read with their units, and each bad one is reported once, by key,
// with what it was and what is allowed (not as mapstructure's decode error followed by a check of the zero value).
func TestTypedValues(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        map[string]string
		check      func(*Config) bool
		want       []string // problem lines' parts, when the config must be refused
		notWant    []string
	}{
		{name: "bare duration is seconds", yaml: "shutdown_grace: 30\n",
			check: func(c *Config) bool { return c.ShutdownGrace == 30*time.Second }},
		{name: "fractional seconds", yaml: "webcam: {linger: 1.5}\n",
			check: func(c *Config) bool { return c.Webcam.Linger == 1500*time.Millisecond }},
		{name: "duration with unit", yaml: "websocket: {ping_interval: 2m}\n",
			check: func(c *Config) bool { return c.WebSocket.PingInterval == 2*time.Minute }},
		{name: "duration from env", env: map[string]string{"OEPROXY_SHUTDOWN_GRACE": "45"},
			check: func(c *Config) bool { return c.ShutdownGrace == 45*time.Second }},
		{name: "size with binary unit", yaml: "websocket: {max_message_bytes: 64MiB}\n",
			check: func(c *Config) bool { return c.WebSocket.MaxMessageBytes == 64<<20 }},
		{name: "size with decimal unit and space", yaml: "websocket: {max_message_bytes: 2 MB}\n",
			check: func(c *Config) bool { return c.WebSocket.MaxMessageBytes == 2_000_000 }},
		{name: "size in bytes from env", env: map[string]string{"OEPROXY_WEBSOCKET_MAX_MESSAGE_BYTES": "4096"},
			check: func(c *Config) bool { return c.WebSocket.MaxMessageBytes == 4096 }},
		{name: "bad duration", yaml: "websocket: {ping_interval: fast}\n",
			want:    []string{`websocket.ping_interval: "fast" is not allowed: a duration with a unit`},
			notWant: []string{"decode", "0s is not allowed"}},
		{name: "bad size", yaml: "websocket: {max_message_bytes: lots}\n",
			want: []string{`websocket.max_message_bytes: "lots" is not allowed: a size in bytes`}, notWant: []string{"decode"}},
		{name: "fractional bytes", yaml: "websocket: {max_message_bytes: 1.5}\n",
			want: []string{`websocket.max_message_bytes: 1.5 is not allowed`}},
		{name: "bad int and bool", yaml: "listen: {port_base: abc, allow_non_loopback: maybe}\n",
			want: []string{`listen.port_base: "abc" is not allowed: a whole number`,
				`listen.allow_non_loopback: "maybe" is not allowed: true or false`}, notWant: []string{"decode"}},
		{name: "env typo gets a suggestion", env: map[string]string{"OEPROXY_SHUTDOWN_GRCAE": "1s"},
			want: []string{"OEPROXY_SHUTDOWN_GRCAE: unknown environment variable (did you mean OEPROXY_SHUTDOWN_GRACE?)"}},
		{name: "wildcard host", yaml: "listen: {allowed_hosts: ['*']}\n",
			want: []string{`listen.allowed_hosts: "*" is not allowed: name each host`}},
		{name: "wildcard subdomain", yaml: "listen: {allowed_hosts: ['*.lan']}\n",
			want: []string{`listen.allowed_hosts: "*.lan" is not allowed`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := ""
			if tc.yaml != "" {
				file = writeFile(t, tc.yaml)
			}
			l, err := load(t, file, tc.env, nil)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !tc.check(&l.Config) {
					t.Errorf("wrong value: %+v", l.Config)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing %q in:\n%s", w, msg)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("unexpected %q in:\n%s", w, msg)
				}
			}
			if n := strings.Count(msg, "\n  - "); n != len(tc.want) {
				t.Errorf("%d problem lines, want %d (one per bad key):\n%s", n, len(tc.want), msg)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[any]int64{
		"0": 0, "1024": 1024, "1KiB": 1024, "1k": 1024, "1KB": 1000, "64MiB": 64 << 20, "64 mib": 64 << 20,
		"1.5GiB": 3 << 29, 2048: 2048, float64(4096): 4096,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%v) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []any{"", "MiB", "12 parsecs", "1e400", "9999999999999GiB", true, 1.5} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%v) = %d, want an error", in, got)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 524288000: "500 MiB", 104857600: "100 MiB", 3 << 30: "3 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
		// What it writes, ParseSize reads back: a limit shown to the user can be typed into the config.
		if back, err := ParseSize(want); err != nil || back != n {
			t.Errorf("ParseSize(%q) = %d, %v, want %d", want, back, err, n)
		}
	}
}

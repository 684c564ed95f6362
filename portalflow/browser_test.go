package portalflow

import (
	"slices"
	"testing"
	"time"
)

func TestBrowserCommand(t *testing.T) {
	const u = "https://octoeverywhere.com/appportal/v1/?appid=devtest&x=1"
	for goos, want := range map[string][]string{
		"linux":   {"xdg-open", u},
		"freebsd": {"xdg-open", u},
		"darwin":  {"open", u},
		"windows": {"rundll32", "url.dll,FileProtocolHandler", u},
	} {
		name, args := browserCommand(goos, u)
		if got := append([]string{name}, args...); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", goos, got, want)
		}
	}
}

func TestOpenBrowserRefusesNonHTTP(t *testing.T) {
	for _, u := range []string{"", "file:///etc/passwd", "--help", "javascript:alert(1)", "/tmp/x", "https://"} {
		if err := OpenBrowser(u); err == nil {
			t.Errorf("OpenBrowser(%q) accepted", u)
		}
	}
}

func TestRunOpener(t *testing.T) {
	if err := runOpener("true", nil, 5*time.Second); err != nil {
		t.Fatalf("true: %v", err)
	}
	if err := runOpener("false", nil, 5*time.Second); err == nil {
		t.Fatal("false: no error")
	}
	if err := runOpener("oeproxy-no-such-opener", nil, time.Second); err == nil {
		t.Fatal("missing opener: no error")
	}
}

func TestHeadless(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		goos string
		env  func(string) string
		want bool
	}{
		{"linux", env("DISPLAY", ":0"), false},
		{"linux", env("WAYLAND_DISPLAY", "wayland-0"), false},
		{"linux", env(), true},
		{"linux", env("DISPLAY", ":0", "SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22"), true},
		{"linux", env("DISPLAY", ":10", "SSH_TTY", "/dev/pts/1"), true},
		{"darwin", env(), false},
		{"darwin", env("SSH_CONNECTION", "x"), true},
		{"windows", env(), false},
	} {
		if got := headless(tc.goos, tc.env); got != tc.want {
			t.Errorf("headless(%s, ...) = %v, want %v", tc.goos, got, tc.want)
		}
	}
}

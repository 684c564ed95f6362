package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oeproxy/oeproxy/admin"
	"github.com/oeproxy/oeproxy/oesim"
)

// The admin command prints what the daemon left in the data dir, and says what to do when there is nothing
// usable there. (The e2e and reliability suites use it against a running daemon.)
func TestAdminCommand(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	if err := os.MkdirAll(e.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(e.dataDir, admin.LoginFile)
	cases := []struct {
		name, content string // content "" means no file
		code          int
		want          string // on stdout for code 0, else on stderr
	}{
		{"no daemon", "", 1, "start the daemon with `oeproxy serve`"},
		{"garbage", "hello\n", 1, "does not hold a login address"},
		{"login URL", "http://127.0.0.1:7080/login?token=abc\n", 0, "http://127.0.0.1:7080/login?token=abc\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_ = os.Remove(file)
			if c.content != "" {
				if err := os.WriteFile(file, []byte(c.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errOut := e.run(context.Background(), "", "admin")
			got := errOut
			if c.code == 0 {
				got = out
			}
			if code != c.code || !strings.Contains(got, c.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d with %q", code, out, errOut, c.code, c.want)
			}
		})
	}
}

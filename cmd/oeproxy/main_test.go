package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// runCmd runs the CLI in-process with a clean configuration environment.
func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	var out, errb bytes.Buffer
	code = run(context.Background(), args, streams{in: strings.NewReader(stdin), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"version"}, 0, "oeproxy "},
		{[]string{"--help"}, 0, "OctoEverywhere App Connection"},
		{[]string{"completion", "bash"}, 0, "bash completion"},
		{[]string{"nosuchcommand"}, 2, ""},
		{[]string{"version", "extra"}, 2, ""},
		{[]string{"version", "--nosuchflag"}, 2, ""},
	}
	for _, c := range cases {
		code, out, errOut := runCmd(t, "", c.args...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, code, c.code, errOut)
		}
		if !strings.Contains(out, c.out) {
			t.Errorf("%v: stdout %q does not contain %q", c.args, out, c.out)
		}
		if c.code != 0 && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: want a one-line reason on stderr, got %q", c.args, errOut)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := runCmd(t, "", "version", "--json")
	if code != 0 {
		t.Fatal(code)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "commit", "go_version", "platform"} {
		if v[k] == "" {
			t.Errorf("version --json lacks %s: %s", k, out)
		}
	}
}

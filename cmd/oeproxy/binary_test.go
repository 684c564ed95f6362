package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The built binary, for the cases that are about what a user sees from a real process: exit statuses,
// signals, stderr as a whole.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// removeBinaryAfter removes the binary built by oeproxyBinary once every test ran.
type removeBinaryAfter struct{ m *testing.M }

func (r removeBinaryAfter) Run() int {
	code := r.m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

func oeproxyBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "oeproxy-clitest-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "oeproxy")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = &buildError{err, string(out)}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (b *buildError) Error() string { return "go build: " + b.err.Error() + "\n" + b.out }

// binEnv is an environment with its own data and config directories and no OEPROXY_ variables of the caller.
func binEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OEPROXY_") && !strings.HasPrefix(kv, "XDG_") {
			env = append(env, kv)
		}
	}
	dir := t.TempDir()
	return append(env, append([]string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "cfg"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "HOME=" + dir}, extra...)...)
}

// runBinary runs the built oeproxy and returns its exit status, stdout and stderr.
func runBinary(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, oeproxyBinary(t), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

func TestBinaryUsageErrorsExit2(t *testing.T) {
	env := binEnv(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"completion", "tcsh"}, `unknown command "tcsh" for "oeproxy completion"`},
		{[]string{"webhook"}, "oeproxy webhook needs a subcommand: delete, set, test"},
		{[]string{"webhook", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--log-level", "verbose", "list"}, `--log-level "verbose": use debug, info, warn, error`},
		{[]string{"--log-format", "xml", "list"}, `--log-format "xml"`},
		{[]string{"nosuchcommand"}, `unknown command "nosuchcommand"`},
		{[]string{"connect", "--name", "My Printer", "--completion-url", "-"}, "lower-case letters"},
		{[]string{"connect", "--name", strings.Repeat("a", 64), "--completion-url", "-"}, "too long (max 63"},
		{[]string{"port", "mk4", "http"}, `port "http" is not a TCP port`},
		{[]string{"rename", "mk4", "My Printer"}, "lower-case letters"},
		{[]string{"rename", "mk4"}, "accepts 2 arg"},
	}
	for _, c := range cases {
		code, _, errOut := runBinary(t, env, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", c.args, code, errOut, c.want)
		}
	}
}

func TestBinaryDidYouMeanKeepsLineBreaks(t *testing.T) {
	code, _, errOut := runBinary(t, binEnv(t), "conect")
	want := "oeproxy: unknown command \"conect\" for \"oeproxy\"\n\nDid you mean this?\n\tconnect\n"
	if code != 2 || errOut != want {
		t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, errOut, want)
	}
}

func TestBinaryVersionFlag(t *testing.T) {
	code, out, errOut := runBinary(t, binEnv(t), "--version")
	_, vout, _ := runBinary(t, binEnv(t), "version")
	if code != 0 || !strings.HasPrefix(out, "oeproxy ") || out != vout {
		t.Errorf("--version: exit %d, stdout %q (version says %q), stderr %q", code, out, vout, errOut)
	}
}

func TestBinaryFatalErrorInJSON(t *testing.T) {
	code, _, errOut := runBinary(t, binEnv(t, "OEPROXY_SHUTDOWN_GRACE=soon"), "--log-format", "json", "serve")
	line := strings.TrimSpace(errOut)
	if code != 1 || !strings.HasPrefix(line, `{"level":"error"`) || !strings.Contains(line, `"exit_code":1`) ||
		!strings.Contains(line, "shutdown_grace") {
		t.Errorf("exit %d, stderr %q; want exit 1 and one JSON line naming shutdown_grace", code, errOut)
	}
}

// TestBinaryCtrlCDuringConnect interrupts connect while it waits for the portal, as a user pressing Ctrl-C.
func TestBinaryCtrlCDuringConnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, oeproxyBinary(t), "connect", "--no-browser", "--timeout", "1m")
	cmd.Env = binEnv(t)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until it is waiting for the portal: it has printed the address to open.
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "Open this address") {
		n, err := stdout.Read(buf)
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("connect ended before waiting for the portal: %v; stdout %q stderr %q", err, seen.String(), errb.String())
		}
		seen.Write(buf[:n])
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := stdout.Read(buf); err != nil {
				return
			}
		}
	}()
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 130 || !strings.Contains(errb.String(), "oeproxy: cancelled") || strings.Contains(errb.String(), "context canceled") {
		t.Errorf("exit %d, stderr %q; want 130 and \"oeproxy: cancelled\"", code, errb.String())
	}
}

// Typed config values through the real binary: units are read, and each bad key is one line with its value.
func TestBinaryTypedConfig(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.yaml")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(good, []byte("shutdown_grace: 30\nwebsocket:\n  max_message_bytes: 64MiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("shutdown_grace: soon\nwebsocket:\n  ping_interval: fast\n  max_message_bytes: lots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runBinary(t, binEnv(t), "--config", good, "list"); code != 0 {
		t.Errorf("good config: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut := runBinary(t, binEnv(t, "OEPROXY_LISTEN_PORTBASE=5001"), "--config", bad, "list")
	for _, want := range []string{
		`shutdown_grace: "soon" is not allowed: a duration with a unit`,
		`websocket.ping_interval: "fast" is not allowed`,
		`websocket.max_message_bytes: "lots" is not allowed: a size`,
		"OEPROXY_LISTEN_PORTBASE: unknown environment variable (did you mean OEPROXY_LISTEN_PORT_BASE?)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("bad config: stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code != 1 || strings.Contains(errOut, "decode") || strings.Count(errOut, "\n  - ") != 4 {
		t.Errorf("bad config: exit %d, want 1 and exactly four problem lines:\n%s", code, errOut)
	}
}

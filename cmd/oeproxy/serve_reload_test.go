package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/internal/testutil"

	"github.com/oeproxy/oeproxy/oesim"
)

// lockedBuffer is a stderr that the test reads while serve still writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestServeReloadsOnSIGHUP: SIGHUP reloads the config file: the log level and the allowed hosts change while a
// webcam stream opened before stays open, a key that needs a restart is reported, and a broken file changes
// nothing.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	mk4 := e.sim.Printers()[0]
	e.mustRun("", "connect", "--completion-url", completionURL(e.sim.Connect(mk4).Credentials(), mk4.Name, nil), "--name", "mk4")
	// The level comes from the file only: the environment would win over it.
	t.Setenv("OEPROXY_LOG_LEVEL", "")
	os.Unsetenv("OEPROXY_LOG_LEVEL")
	file := filepath.Join(t.TempDir(), "config.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("log:\n  level: warn\n")

	var stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", file, "serve"}, streams{in: strings.NewReader(""), out: io.Discard, err: &stderr})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d\n%s", code, stderr.String())
		}
		e.assertNoSecrets()
	}()
	sock := filepath.Join(e.dataDir, control.SocketName)
	waitUntil(t, "the control socket", func() bool {
		c, err := control.Dial(context.Background(), sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	local := e.list()[0].LocalURL
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(local, "http://"))
	hostStatus := func(host string) int {
		req, _ := http.NewRequest(http.MethodGet, local+"/api/version", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := hostStatus("printer.lan:" + port); st != http.StatusMisdirectedRequest {
		t.Fatalf("Host printer.lan before reload: %d", st)
	}
	if strings.Contains(stderr.String(), `"level":"info"`) {
		t.Fatalf("info lines at level warn:\n%s", stderr.String())
	}
	stream, err := http.Get(local + "/webcam/?action=stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if _, err := io.ReadAtLeast(stream.Body, make([]byte, 1024), 1024); err != nil {
		t.Fatal(err)
	}

	// A broken file: reported, nothing changes.
	write("log:\n  level: loud\n")
	hangup(t)
	waitUntil(t, "the reload error", func() bool { return strings.Contains(stderr.String(), "configuration not reloaded") })

	write("log:\n  level: info\nlisten:\n  allowed_hosts: [printer.lan]\nwebsocket:\n  ping_interval: 20s\noctoeverywhere:\n  app_id: another-app\n")
	hangup(t)
	waitUntil(t, "the reload", func() bool { return strings.Contains(stderr.String(), `"key":"listen.allowed_hosts"`) })
	logs := stderr.String()
	for _, want := range []string{`"key":"log.level","value":"info"`, `"key":"websocket.ping_interval","value":"20s"`, `takes effect only after a restart of oeproxy","key":"octoeverywhere.app_id"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if st := hostStatus("printer.lan:" + port); st != 200 {
		t.Errorf("Host printer.lan after reload: %d", st)
	}
	if _, err := io.ReadAtLeast(stream.Body, make([]byte, 4096), 4096); err != nil {
		t.Errorf("the webcam stream broke across the reload: %v", err)
	}
}

func hangup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// waitUntil is the shared helper of internal/testutil under the name this package's tests use.
var waitUntil = testutil.WaitFor

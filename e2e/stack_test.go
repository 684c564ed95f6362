package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/internal/testutil"

	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/oesim"
)

// stack is one end-to-end setup: oesim in this process, `oeproxy serve` as a child process configured only
// through OEPROXY_* variables (as a user or a unit file would), and printers added with `oeproxy connect
// --completion-url -` while the daemon runs.
type stack struct {
	sim     *oesim.Sim
	bin     string
	dir     string
	env     []string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	outputs bytes.Buffer // everything the connect commands printed
	client  *http.Client // for readiness polls; its idle connections are closed on cleanup
}

// linked is a printer served by the daemon.
type linked struct {
	printer *oesim.Printer
	conn    *oesim.Connection
	name    string
	url     string // http://127.0.0.1:<port>
}

// startStack starts oesim with so and the daemon, and waits until the daemon's control socket answers.
func startStack(t *testing.T, so oesim.Options) *stack {
	t.Helper()
	s := &stack{bin: oeproxyBinary(t), dir: t.TempDir(), exited: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}}
	t.Cleanup(s.client.CloseIdleConnections)
	if so.TempDir == "" {
		so.TempDir = t.TempDir() // oesim spools uploads here (store and forward)
	}
	sim, err := oesim.Start(context.Background(), so)
	if err != nil {
		t.Fatalf("start oesim: %v", err)
	}
	s.sim = sim
	t.Cleanup(func() { sim.Close() }) // registered first, so it runs after the daemon is stopped

	caFile := filepath.Join(s.dir, "oesim-ca.pem")
	if err := os.WriteFile(caFile, sim.CACertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	// The child sees none of this process's OEPROXY_* variables: OEPROXY_E2E is no config key, and the daemon
	// rightly refuses unknown OEPROXY_ variables. HOME and XDG_* point into the temp dir so no user file is read.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OEPROXY_") && !strings.HasPrefix(kv, "XDG_") && !strings.HasPrefix(kv, "HOME=") {
			s.env = append(s.env, kv)
		}
	}
	s.env = append(s.env,
		"HOME="+s.dir,
		"XDG_CONFIG_HOME="+filepath.Join(s.dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(s.dir, "share"),
		"OEPROXY_DATA_DIR="+filepath.Join(s.dir, "data"),
		"OEPROXY_MASTER_KEY="+base64.StdEncoding.EncodeToString(key),
		"OEPROXY_ADMIN_LISTEN=127.0.0.1:0",
		"OEPROXY_OCTOEVERYWHERE_CONNECT_TO="+sim.Addr,
		"OEPROXY_TLS_CA_FILE="+caFile,
		"OEPROXY_OCTOEVERYWHERE_RELAY_DOMAIN="+sim.Domain,
		"OEPROXY_OCTOEVERYWHERE_PORTAL_URL="+sim.PortalURL,
		"OEPROXY_OCTOEVERYWHERE_API_URL="+sim.APIURL,
		"OEPROXY_SHUTDOWN_GRACE=5s",
		"OEPROXY_LOG_LEVEL=debug", // the most verbose logs, so the secret check below covers every log line
	)

	s.logPath = filepath.Join(s.dir, "serve.log")
	logFile, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(s.bin, "serve")
	s.cmd.Env, s.cmd.Stdout, s.cmd.Stderr = s.env, logFile, logFile
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start oeproxy serve: %v", err)
	}
	go func() { _ = s.cmd.Wait(); logFile.Close(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })

	sock := filepath.Join(s.dir, "data", control.SocketName)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctl, err := control.Dial(context.Background(), sock)
		if err == nil {
			ctl.Close()
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("oeproxy serve exited before serving its control socket:\n%s", s.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("oeproxy serve did not serve %s within 30 s (last: %v):\n%s", sock, err, s.log())
		}
	}
}

// stop sends SIGTERM (the daemon drains and exits 0) and kills it only if it does not exit in time.
func (s *stack) stop(t *testing.T) {
	select {
	case <-s.exited:
		t.Errorf("oeproxy serve exited before the test ended:\n%s", s.log())
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("oeproxy serve exited with %d after SIGTERM:\n%s", code, s.log())
		}
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("oeproxy serve did not exit within 20 s of SIGTERM (killed):\n%s", s.log())
	}
	if t.Failed() {
		t.Logf("oeproxy serve log:\n%s", s.log())
	}
}

func (s *stack) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// connect links p as the portal would: oesim issues a fresh App Connection, and its completion URL is pasted
// into `oeproxy connect --completion-url -` (stdin, so no secret appears in a process listing). It returns once
// the printer's local port answers.
func (s *stack) connect(t *testing.T, p *oesim.Printer, name string) linked {
	t.Helper()
	conn := s.sim.Connect(p)
	port := freePort(t)
	cmd := exec.Command(s.bin, "connect", "--completion-url", "-", "--name", name, "--port", strconv.Itoa(port))
	cmd.Env, cmd.Stdin = s.env, strings.NewReader(completionURL(s.sim, conn)+"\n")
	out, err := cmd.CombinedOutput()
	s.outputs.Write(out)
	if err != nil {
		t.Fatalf("oeproxy connect: %v\n%s\ndaemon log:\n%s", err, out, s.log())
	}
	l := linked{printer: p, conn: conn, name: name, url: "http://127.0.0.1:" + strconv.Itoa(port)}
	if !strings.Contains(string(out), l.url) {
		t.Fatalf("oeproxy connect did not report %s:\n%s", l.url, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := s.client.Get(l.url + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return l
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within 15 s: %v\ndaemon log:\n%s", l.url, err, s.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// completionURL is the address the portal ends on for conn (oesim's portal sends the same keys).
func completionURL(sim *oesim.Sim, conn *oesim.Connection) string {
	c := conn.Credentials()
	q := url.Values{
		"success": {"true"}, "id": {c.ID}, "url": {c.URL}, "appApiToken": {c.AppAPIToken},
		"printername": {conn.Printer().Name}, "authbasichttpuser": {c.BasicUser},
		"authbasichttppassword": {c.BasicPassword}, "authBearerToken": {c.BearerToken},
	}
	if c.OctoPrintAPIKey != "" {
		q.Set("octoPrintApiKey", c.OctoPrintAPIKey)
	}
	return "https://" + sim.Domain + "/appportal/v1/complete?" + q.Encode()
}

// wantAuthorization is the credential the relay must see: octoeverywhere.auth defaults to basic.
func wantAuthorization(conn *oesim.Connection) string {
	c := conn.Credentials()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.BasicUser+":"+c.BasicPassword))
}

// checkNoSecrets fails when the daemon's log or the connect output holds any secret oesim issued.
func (s *stack) checkNoSecrets(t *testing.T, ls ...linked) {
	t.Helper()
	text := s.log() + s.outputs.String()
	for _, l := range ls {
		c := l.conn.Credentials()
		for what, v := range map[string]string{"Basic password": c.BasicPassword, "bearer token": c.BearerToken,
			"App API token": c.AppAPIToken, "OctoPrint API key": c.OctoPrintAPIKey,
			"Basic header": strings.TrimPrefix(wantAuthorization(l.conn), "Basic ")} {
			if v != "" && strings.Contains(text, v) {
				t.Errorf("the %s of %s appears in the daemon log or connect output", what, l.name)
			}
		}
	}
}

// memory reads a process's peak (VmHWM) and current (VmRSS) resident set size in bytes from /proc.
func memory(pid int) (hwm, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %q: %w", pid, line, err)
		}
		switch f[0] {
		case "VmHWM:":
			hwm = n << 10
		case "VmRSS:":
			rss = n << 10
		}
	}
	if hwm == 0 || rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmHWM or VmRSS", pid)
	}
	return hwm, rss, nil
}

// freePort is the shared helper of internal/testutil under the name this package's tests use.
var freePort = testutil.FreePort

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ModuleRoot finds the oeproxy module's directory from the working directory upwards.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/oeproxy/oeproxy\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bench: run from inside the oeproxy module (no go.mod of github.com/oeproxy/oeproxy above the working directory)")
		}
		dir = parent
	}
}

// BuildOEProxy builds the oeproxy binary as `make build` does (static, trimmed) into out.
func BuildOEProxy(ctx context.Context, out string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./cmd/oeproxy")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: go build ./cmd/oeproxy: %w\n%s", err, b)
	}
	return nil
}

// OEProxy is the real `oeproxy serve` binary as a child process, configured through the environment to reach
// the sim (connect_to, the sim's CA), with the bench connection stored in its own data directory.
type OEProxy struct {
	Bin  string
	Dir  string // data dir and log live here
	Port int
	// AdminPort is the admin listener's port (its /metrics gives the Go runtime's allocation count).
	AdminPort int
	// LogFile receives the daemon's stderr (JSON logs), appended across restarts.
	LogFile string
	env     []string
	child
}

// NewOEProxy prepares a data directory and stores the bench connection with `oeproxy connect --completion-url`.
func NewOEProxy(ctx context.Context, bin string, e *Env) (*OEProxy, error) {
	dir := filepath.Join(e.Dir, "oeproxy")
	if err := os.MkdirAll(filepath.Join(dir, "cfg"), 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	o := &OEProxy{Bin: bin, Dir: dir, Port: port, AdminPort: admin, LogFile: filepath.Join(dir, "oeproxy.log")}
	o.env = append(cleanEnv(),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "cfg"), // no user config file
		"OEPROXY_DATA_DIR="+filepath.Join(dir, "data"),
		"OEPROXY_OCTOEVERYWHERE_CONNECT_TO="+e.RelayAddr,
		"OEPROXY_TLS_CA_FILE="+e.CAFile,
		"OEPROXY_OCTOEVERYWHERE_RELAY_DOMAIN="+e.Sim.Domain,
		"OEPROXY_OCTOEVERYWHERE_API_URL="+e.Sim.APIURL,
		"OEPROXY_OCTOEVERYWHERE_PORTAL_URL="+e.Sim.PortalURL,
		"OEPROXY_ADMIN_LISTEN=127.0.0.1:"+strconv.Itoa(admin),
		"OEPROXY_LISTEN_PORT_BASE="+strconv.Itoa(port),
		"OEPROXY_LOG_FORMAT=json",
		"OEPROXY_LOG_LEVEL=info",
		// Slicer uploads (POST /api/files/local) are answered once stored, then passed on (the WAN group's
		// low-speed client). The bench's other uploads go to /upload, which the spool never takes.
		"OEPROXY_UPLOAD_ANSWER_WHEN_STORED=true",
		// As many client connections as nginx's worker_connections and HAProxy's maxconn here: the default 256
		// held the idle-WebSocket group's connections beyond it in the backlog, and the group waited for good.
		"OEPROXY_LISTEN_MAX_CONNECTIONS=8192",
	)
	cmd := exec.CommandContext(ctx, bin, "connect", "--completion-url", "-", "--name", "bench", "--port", strconv.Itoa(port))
	cmd.Env = o.env
	cmd.Stdin = strings.NewReader(e.CompletionURL() + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bench: oeproxy connect: %w\n%s", err, redact(out.String(), e.Secrets()))
	}
	return o, nil
}

// Mallocs reads go_memstats_mallocs_total, the heap objects the serve process allocated so far, from /metrics.
func (o *OEProxy) Mallocs() (float64, error) {
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(o.AdminPort) + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_memstats_mallocs_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("bench: oeproxy's /metrics has no go_memstats_mallocs_total (%s)", resp.Status)
}

// Addr is the printer's local address.
func (o *OEProxy) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port)) }

// PIDs is the serve process.
func (o *OEProxy) PIDs() []int { return o.pids(false) }

// Start runs `oeproxy serve` and returns the time from exec to the first request it relayed.
func (o *OEProxy) Start() (time.Duration, error) {
	logf, err := os.OpenFile(o.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(o.Bin, "serve")
	cmd.Env = o.env
	cmd.Stdout, cmd.Stderr = logf, logf
	d, err := o.start(cmd, "http://"+o.Addr()+"/small")
	if err != nil {
		return 0, fmt.Errorf("bench: oeproxy serve: %w (log: %s)", err, o.LogFile)
	}
	return d, nil
}

// Stop sends SIGTERM and waits for the exit; status 0 is expected (clean drain).
func (o *OEProxy) Stop() error { return o.stop() }

// stopProcess sends SIGTERM, then SIGKILL after grace.
func stopProcess(cmd *exec.Cmd, waited chan error, grace time.Duration) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-waited:
		if err != nil {
			return fmt.Errorf("%s exited uncleanly after SIGTERM: %w", filepath.Base(cmd.Path), err)
		}
		return nil
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-waited
		return fmt.Errorf("%s did not stop within %s of SIGTERM", filepath.Base(cmd.Path), grace)
	}
}

// firstRequest polls url (a fresh connection each time) until it answers 200, and returns the time since start.
// exited (buffered, 1) receives the process's exit; a value taken from it is put back for Stop to find.
func firstRequest(start time.Time, url string, exited chan error) (time.Duration, error) {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	deadline := start.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			return 0, fmt.Errorf("exited before serving: %v", err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
			return 0, fmt.Errorf("first request answered %s", resp.Status)
		}
		time.Sleep(500 * time.Microsecond)
	}
	return 0, errors.New("did not serve within 30 s")
}

// cleanEnv is the bench's environment without any OEPROXY_ or XDG_ setting of the user's.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OEPROXY_") || strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "CREDENTIALS_DIRECTORY=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// redact replaces every secret in s, for error messages that quote a child's output.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}

// SetEnv adds KEY=value settings to the daemon's environment (for the next Start), e.g. OEPROXY_SHUTDOWN_GRACE=10s.
func (o *OEProxy) SetEnv(kv ...string) { o.env = append(o.env, kv...) }

// Command returns another oeproxy command (list, remove, ...) with the same configuration and data directory.
func (o *OEProxy) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, o.Bin, args...)
	cmd.Env = o.env
	return cmd
}

// DataDir is the daemon's data directory (store, key file, control socket).
func (o *OEProxy) DataDir() string { return filepath.Join(o.Dir, "data") }

package bench

import (
	"os"
	"os/exec"
	"strings"
	"text/template"
	"time"
)

// child is a process the bench measures (oeproxy, nginx, HAProxy): its command while it runs, and the channel
// (buffered, 1) its exit arrives on.
type child struct {
	cmd    *exec.Cmd
	waited chan error
}

// start runs cmd and returns the time from exec to the first 200 answered at url. A child that does not serve is
// stopped.
func (c *child) start(cmd *exec.Cmd, url string) (time.Duration, error) {
	c.cmd = cmd
	start := time.Now()
	if err := cmd.Start(); err != nil {
		c.cmd = nil
		return 0, err
	}
	c.waited = make(chan error, 1)
	go func() { c.waited <- cmd.Wait() }()
	d, err := firstRequest(start, url, c.waited)
	if err != nil {
		_ = c.stop()
		return 0, err
	}
	return d, nil
}

// stop sends SIGTERM and waits (SIGKILL after 15 s); nil when the child is not running.
func (c *child) stop() error {
	if c.cmd == nil {
		return nil
	}
	defer func() { c.cmd = nil }()
	return stopProcess(c.cmd, c.waited, 15*time.Second)
}

// pids is the child and, with workers, its own children (nginx's workers).
func (c *child) pids(workers bool) []int {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	pid := c.cmd.Process.Pid
	if !workers {
		return []int{pid}
	}
	return append([]int{pid}, childrenOf(pid)...)
}

// writeConfig renders a peer's configuration to path, 0600: it holds the credential.
func writeConfig(t *template.Template, data map[string]any, path string) error {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// findBinary returns name's path from PATH or /usr/sbin (where Debian puts nginx and haproxy), or "".
func findBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

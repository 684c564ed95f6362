package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// browserPage is one page of a headless Chromium driven over the DevTools protocol, for checks that need real
// time to pass while the page runs (--virtual-time-budget runs a page faster than its network, and a
// screenshot flag takes one picture per run).
type browserPage struct {
	conn *websocket.Conn
	next int
}

// openPage starts Chromium on url and connects to the page. Chromium and its helpers end with the test.
func openPage(t *testing.T, chromium, url string) *browserPage {
	t.Helper()
	profile := t.TempDir()
	args := append(append([]string{}, chromiumFlags...), "--user-data-dir="+profile,
		"--remote-debugging-port=0", "--remote-allow-origins=*", "--window-size=800,600", url)
	cmd := exec.Command(chromium, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	// Chromium writes the port it chose to DevToolsActivePort in the profile.
	var port string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			if line, _, ok := strings.Cut(string(b), "\n"); ok && line != "" {
				port = line
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Chromium did not open its DevTools port:\n%s", lastLines(stderr.String(), 20))
		}
	}
	var ws string
	for deadline := time.Now().Add(30 * time.Second); ws == ""; time.Sleep(50 * time.Millisecond) {
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		if resp, err := http.Get("http://127.0.0.1:" + port + "/json/list"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
		}
		for _, tg := range targets {
			if tg.Type == "page" && strings.HasPrefix(tg.URL, url) {
				ws = tg.WebSocketDebuggerURL
			}
		}
		if ws == "" && time.Now().After(deadline) {
			t.Fatalf("no page target for %s", url)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(64 << 20) // screenshots
	t.Cleanup(func() { conn.CloseNow() })
	return &browserPage{conn: conn}
}

// call sends one DevTools command and returns its result, skipping the events that arrive meanwhile.
func (p *browserPage) call(t *testing.T, method string, params any, result any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.next++
	id := p.next
	msg, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err := p.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	for {
		_, b, err := p.conn.Read(ctx)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var m struct {
			ID     int
			Result json.RawMessage
			Error  *struct{ Message string }
		}
		if json.Unmarshal(b, &m) != nil || m.ID != id {
			continue
		}
		if m.Error != nil {
			t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(m.Result, result); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
		}
		return
	}
}

// eval returns the value of a JavaScript expression in the page.
func (p *browserPage) eval(t *testing.T, expr string) string {
	var r struct {
		Result struct{ Value any }
	}
	p.call(t, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	return fmt.Sprint(r.Result.Value)
}

// screenshot writes a PNG of the page to file.
func (p *browserPage) screenshot(t *testing.T, file string) {
	var r struct{ Data string }
	p.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	b, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/oesim"
)

// What can refuse the portal's one-time answer is checked before the portal opens: a taken name or port and a
// store that the key does not open end connect without a browser.
func TestConnectChecksBeforeThePortal(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	p := e.sim.Printers()[0]
	e.mustRun(completionURL(e.sim.Connect(p).Credentials(), p.Name, nil)+"\n", "connect", "--completion-url", "-", "--name", "mk4")
	port := e.list()[0].Port
	var opened atomic.Int32
	openBrowser = func(string) error { opened.Add(1); return nil }
	for i, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--name", "mk4"}, want: "exists already (port"},
		{args: []string{"--port", fmt.Sprint(port)}, want: fmt.Sprintf("port %d belongs to printer", port)},
		{env: map[string]string{"OEPROXY_MASTER_KEY": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="}, want: "master key"},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, errOut := e.run(context.Background(), "", append([]string{"connect", "--no-browser", "--timeout", "5s"}, tc.args...)...)
			if code != 1 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "Open this address") {
				t.Errorf("%v: exit %d, stderr %q; want exit 1 before the portal, mentioning %q", tc.args, code, errOut, tc.want)
			}
		})
	}
	if opened.Load() != 0 {
		t.Errorf("the portal was opened %d times", opened.Load())
	}
}

// A port held by another program is a warning, not a refusal: serve retries it.
func TestConnectWarnsAboutABusyPort(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	p := e.sim.Printers()[0]
	code, _, errOut := e.run(context.Background(), completionURL(e.sim.Connect(p).Credentials(), p.Name, nil)+"\n",
		"connect", "--completion-url", "-", "--port", fmt.Sprint(busy))
	if code != 0 || !strings.Contains(errOut, fmt.Sprintf("another program holds port %d", busy)) {
		t.Errorf("exit %d, stderr %q; want success with a warning", code, errOut)
	}
}

// When storing fails after the user authorised in the portal, the browser does not say "Connected", the
// answer is kept (a 0600 file without a terminal), and connect --completion-url - finishes from it.
func TestConnectKeepsTheAnswerWhenStoringFails(t *testing.T) {
	e := newEnv(t, oesim.Options{AutoApprove: true})
	ps := e.sim.Printers()
	port := 30000 + int(e.sim.Printers()[0].Name[0])
	pageCh := make(chan string, 1)
	openBrowser = func(portal string) error {
		go func() {
			page := ""
			defer func() { pageCh <- page }()
			// Another printer takes the port while the user is in the portal.
			if code, _, errOut := e.run(context.Background(), completionURL(e.sim.Connect(ps[1]).Credentials(), ps[1].Name, nil)+"\n",
				"connect", "--completion-url", "-", "--port", fmt.Sprint(port), "--name", "other"); code != 0 {
				t.Errorf("the other connect: exit %d, %s", code, errOut)
			}
			resp, err := e.sim.HTTPClient().Get(portal)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if r, err := http.Get(resp.Header.Get("Location")); err != nil {
				t.Error(err)
			} else {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				page = r.Status + " " + string(b)
			}
		}()
		return nil
	}
	code, _, errOut := e.run(context.Background(), "", "connect", "--port", fmt.Sprint(port), "--name", "mine", "--timeout", "10s")
	m := regexp.MustCompile(`kept in (\S+) \(mode 0600\)`).FindStringSubmatch(errOut)
	if code != 1 || m == nil {
		t.Fatalf("exit %d, stderr %q; want exit 1 and the file that keeps the answer", code, errOut)
	}
	if page := <-pageCh; strings.Contains(page, "Connected") || !strings.Contains(page, "not lost") {
		t.Errorf("browser page: %s", page)
	}
	fi, err := os.Lstat(m[1])
	if err != nil || fi.Mode().Perm() != 0o600 || filepath.Dir(m[1]) != e.dataDir {
		t.Fatalf("kept file %s: %v %v", m[1], fi, err)
	}
	e.assertNoSecrets(errOut)
	saved, _ := os.ReadFile(m[1])
	e.mustRun(string(saved), "connect", "--completion-url", "-", "--name", "mine")
	var found bool
	for _, r := range e.list() {
		found = found || r.Name == "mine"
	}
	if !found {
		t.Errorf("the kept answer did not finish the connection: %+v", e.list())
	}
}

// lostAnswerDaemon plays a daemon that is killed while it answers an add: it may store the printer first, then
// the connection drops without an answer and the daemon is gone.
func lostAnswerDaemon(t *testing.T, e *env, storeFirst bool) {
	t.Helper()
	if err := os.MkdirAll(e.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(e.dataDir, control.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			if r.URL.Path == "/v1/printers" {
				w.Write([]byte("[]"))
			} else {
				w.Write([]byte("{}"))
			}
			return
		}
		var req control.AddRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Error(err)
		}
		if storeFirst {
			cfg, err := config.Load(config.LoadOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			st, err := openStoreFor(&cfg.Config, true)
			if err != nil {
				t.Error(err)
			} else {
				p := &daemon.Printers{Store: st, PortBase: cfg.Listen.PortBase, ListenHost: cfg.Listen.Host, RelayDomain: cfg.OctoEverywhere.RelayDomain}
				if _, err := p.Add(r.Context(), req); err != nil {
					t.Error(err)
				}
				st.Close()
			}
		}
		ln.Close() // the daemon is gone: the socket no longer answers
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		go srv.Close()
	})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// kill -9 of the daemon during connect: whether or not it had stored the printer, connect finds out and says
// so, instead of reporting the socket's EOF; the App Connection is stored exactly once.
func TestConnectDaemonKilledWhileAnswering(t *testing.T) {
	for _, storeFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("stored=%v", storeFirst), func(t *testing.T) {
			e := newEnv(t, oesim.Options{})
			lostAnswerDaemon(t, e, storeFirst)
			p := e.sim.Printers()[0]
			c := e.sim.Connect(p).Credentials()
			code, out, errOut := e.run(context.Background(), completionURL(c, p.Name, nil)+"\n", "connect", "--completion-url", "-")
			want := "had been stored"
			if !storeFirst {
				want = "it is stored now"
			}
			if code != 0 || !strings.Contains(errOut, want) || !strings.Contains(out, "Connected") || strings.Contains(errOut, "EOF") {
				t.Errorf("exit %d\nstdout %s\nstderr %s\nwant success and %q", code, out, errOut, want)
			}
			n := 0
			for _, r := range e.list() {
				if r.AppConnectionID == c.ID {
					n++
				}
			}
			if n != 1 {
				t.Errorf("App Connection stored %d times", n)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/oesim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(removeBinaryAfter{m}) }

// env is one isolated oeproxy installation pointed at an oesim run.
type env struct {
	t       *testing.T
	sim     *oesim.Sim
	dataDir string
	mu      sync.Mutex
	stderr  bytes.Buffer // every command's stderr (logs), to search for secrets
}

func newEnv(t *testing.T, o oesim.Options) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sim, err := oesim.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(); cancel() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, sim.CACertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sim: sim, dataDir: filepath.Join(dir, "data")}
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "cfg"))
	t.Setenv("OEPROXY_DATA_DIR", e.dataDir)
	t.Setenv("OEPROXY_OCTOEVERYWHERE_CONNECT_TO", sim.Addr)
	t.Setenv("OEPROXY_TLS_CA_FILE", ca)
	t.Setenv("OEPROXY_ADMIN_LISTEN", "127.0.0.1:0")
	t.Setenv("OEPROXY_LISTEN_PORT_BASE", fmt.Sprint(20000+rand.IntN(30000))) // the next free ports from here
	t.Setenv("OEPROXY_SHUTDOWN_GRACE", "5s")
	t.Setenv("OEPROXY_LOG_LEVEL", "debug")
	t.Setenv("OEPROXY_LOG_FORMAT", "json")
	// Play the browser: follow the portal's redirect with the sim's client, then call the loopback callback.
	oldOpen, oldHeadless := openBrowser, headless
	openBrowser = func(portal string) error { go browse(sim, portal); return nil }
	headless = func(func(string) string) bool { return false }
	t.Cleanup(func() { openBrowser, headless = oldOpen, oldHeadless })
	return e
}

func browse(sim *oesim.Sim, portal string) {
	resp, err := sim.HTTPClient().Get(portal)
	if err != nil {
		return
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "" {
		if r, err := http.Get(loc); err == nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
	}
}

// run runs one command in-process.
func (e *env) run(ctx context.Context, stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(ctx, args, streams{in: strings.NewReader(stdin), out: &out, err: &errb})
	e.mu.Lock()
	e.stderr.Write(errb.Bytes())
	e.mu.Unlock()
	return code, out.String(), errb.String()
}

func (e *env) mustRun(stdin string, args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(context.Background(), stdin, args...)
	if code != 0 {
		e.t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

func (e *env) list() []credstore.PublicRecord {
	e.t.Helper()
	var l []credstore.PublicRecord
	if err := json.Unmarshal([]byte(e.mustRun("", "list", "--json")), &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

// completionURL builds what the portal would have appended for c.
func completionURL(c oesim.Credentials, printerName string, extra url.Values) string {
	v := url.Values{
		"success": {"true"}, "id": {c.ID}, "url": {c.URL}, "appApiToken": {c.AppAPIToken},
		"printername": {printerName}, "authbasichttpuser": {c.BasicUser}, "authbasichttppassword": {c.BasicPassword},
		"authBearerToken": {c.BearerToken},
	}
	for k, vs := range extra {
		v[k] = vs
	}
	return "https://octoeverywhere.com/appportal/v1/complete?" + v.Encode()
}

func secretsOf(c oesim.Credentials) []string {
	out := []string{c.BasicPassword, c.BearerToken, c.AppAPIToken}
	if c.OctoPrintAPIKey != "" {
		out = append(out, c.OctoPrintAPIKey)
	}
	return out
}

// assertNoSecrets searches every output for every secret oesim issued.
func (e *env) assertNoSecrets(outputs ...string) {
	e.t.Helper()
	e.mu.Lock()
	all := append([]string{e.stderr.String()}, outputs...)
	e.mu.Unlock()
	for _, c := range e.sim.Connections() {
		for _, s := range secretsOf(c.Credentials()) {
			for i, o := range all {
				if strings.Contains(o, s) {
					e.t.Errorf("a secret of connection %s leaked into output %d", c.Credentials().ID[:6], i)
				}
			}
		}
	}
}

func TestConnectThroughCallbackListRemove(t *testing.T) {
	e := newEnv(t, oesim.Options{AutoApprove: true})
	mk4 := e.sim.Printers()[0]
	out := e.mustRun("", "connect", "--name", "mk4", "--port", "0", "--printer-url", mk4.BackendURL, "--timeout", "20s")
	if !strings.Contains(out, "Connected") {
		t.Fatalf("connect output: %s", out)
	}
	sessions := e.sim.PortalSessions()
	if len(sessions) != 1 || sessions[0].Params.Get("printerid") != mk4.ID {
		t.Fatalf("the portal did not get the discovered printer ID: %+v", sessions)
	}
	creds := e.sim.Connection(sessions[0].ConnectionID).Credentials()

	// The stored record is exactly what oesim issued.
	st, err := credstore.Open(filepath.Join(e.dataDir, "credentials.db"), credstore.KeyFile(filepath.Join(e.dataDir, "master.key")), credstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.Get("mk4")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rec.ConnectionID != creds.ID || rec.URL != creds.URL || rec.BasicUser != creds.BasicUser ||
		rec.BasicPassword != creds.BasicPassword || rec.BearerToken != creds.BearerToken ||
		rec.AppAPIToken != creds.AppAPIToken || rec.OctoPrintAPIKey != creds.OctoPrintAPIKey || rec.PrinterID != mk4.ID {
		t.Errorf("stored record differs from what the portal issued")
	}

	listJSON := e.mustRun("", "list", "--json")
	var l []map[string]any
	if err := json.Unmarshal([]byte(listJSON), &l); err != nil || len(l) != 1 {
		t.Fatalf("list --json: %v %s", err, listJSON)
	}
	for _, k := range []string{"name", "port", "local_url", "route", "printer_name", "app_connection_id", "relay_host", "created_at"} {
		if _, ok := l[0][k]; !ok {
			t.Errorf("list --json lacks %q", k)
		}
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(l[0]["created_at"])); err != nil {
		t.Errorf("created_at is not RFC 3339: %v", l[0]["created_at"])
	}
	table := e.mustRun("", "list")
	if !strings.Contains(table, "mk4") || !strings.Contains(table, creds.Host) {
		t.Errorf("list table: %s", table)
	}

	if code, _, _ := e.run(context.Background(), "", "remove", "mk4"); code != 2 {
		t.Errorf("remove without --yes off a terminal: exit %d, want 2", code)
	}
	rm := e.mustRun("", "remove", "mk4", "--yes")
	if !strings.Contains(rm, "revoke") {
		t.Errorf("remove should tell the user to revoke at OctoEverywhere: %s", rm)
	}
	if code, _, _ := e.run(context.Background(), "", "remove", "mk4", "--yes"); code != 1 {
		t.Errorf("removing an unknown printer: exit %d, want 1", code)
	}
	if len(e.list()) != 0 {
		t.Errorf("printer still listed after remove")
	}
	e.assertNoSecrets(out, listJSON, table, rm)
}

func TestConnectPasteAndBadInput(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	p := e.sim.Printers()[1]
	c := e.sim.Connect(p).Credentials()
	good := completionURL(c, p.Name, nil)

	cases := []struct {
		name, url, want string
	}{
		{"declined", "https://octoeverywhere.com/appportal/v1/complete?success=false", "nosupporterperks?appid=devtest"},
		{"http relay url", completionURL(c, p.Name, url.Values{"url": {"http://app-" + c.ID + ".octoeverywhere.com"}}), "url"},
		{"foreign host", completionURL(c, p.Name, url.Values{"url": {"https://app-" + c.ID + ".octoeverywhere.com.evil.example"}}), "url"},
		{"no token", strings.Replace(good, "appApiToken=", "x=", 1), "appApiToken"},
		{"no credentials", completionURL(c, p.Name, url.Values{"authbasichttpuser": {""}, "authbasichttppassword": {""}, "authBearerToken": {""}}), ""},
	}
	for _, tc := range cases {
		code, _, errOut := e.run(context.Background(), "", "connect", "--completion-url", tc.url)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q (want exit 1 mentioning %q)", tc.name, code, errOut, tc.want)
		}
	}
	if n := len(e.list()); n != 0 {
		t.Fatalf("bad completions stored %d printers", n)
	}

	out := e.mustRun(good+"\n", "connect", "--completion-url", "-", "--port", "0")
	if !strings.Contains(out, "voron") {
		t.Errorf("paste connect output: %s", out)
	}
	l := e.list()
	if len(l) != 1 || l[0].Name != "voron-2-4" || l[0].AppConnectionID != c.ID {
		t.Fatalf("pasted record: %+v", l)
	}
	// The same port or name again is refused with the owner's name.
	c2 := e.sim.Connect(p).Credentials()
	code, _, errOut := e.run(context.Background(), "", "connect", "--completion-url", completionURL(c2, p.Name, nil),
		"--port", fmt.Sprint(l[0].Port))
	if code != 1 || !strings.Contains(errOut, "voron-2-4") {
		t.Errorf("taken port: exit %d, %q", code, errOut)
	}
	code, _, errOut = e.run(context.Background(), "", "connect", "--completion-url", completionURL(c2, p.Name, nil), "--name", "voron-2-4")
	if code != 1 || !strings.Contains(errOut, "voron-2-4") {
		t.Errorf("taken name: exit %d, %q", code, errOut)
	}
	e.assertNoSecrets(out)
}

// The first connect makes the master key file and says once to back it up; later commands do not repeat it.
func TestNewKeyFileAdvice(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	ps := e.sim.Printers()
	for i, p := range ps[:2] {
		c := e.sim.Connect(p).Credentials()
		code, _, errOut := e.run(context.Background(), completionURL(c, p.Name, nil)+"\n", "connect", "--completion-url", "-", "--port", "0")
		if code != 0 {
			t.Fatalf("connect %s: exit %d %s", p.Name, code, errOut)
		}
		key := filepath.Join(e.dataDir, "master.key")
		if said := strings.Contains(errOut, "made a new master key in "+key) && strings.Contains(errOut, "keep a copy"); said != (i == 0) {
			t.Errorf("connect %d: advice to back up %s shown %v, want %v: %q", i+1, key, said, i == 0, errOut)
		}
	}
}

// A completion address on the command line still works (scripts use it) but is warned about: it holds the
// secrets, which ps and shell history keep. Read from standard input it is not.
func TestCompletionURLOnCommandLineWarns(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	ps := e.sim.Printers()
	const warning = "on the command line other users"
	c := e.sim.Connect(ps[0]).Credentials()
	code, _, errOut := e.run(context.Background(), "", "connect", "--completion-url", completionURL(c, ps[0].Name, nil), "--port", "0")
	if code != 0 || !strings.Contains(errOut, warning) || !strings.Contains(errOut, "--completion-url -") {
		t.Errorf("argument: exit %d, stderr %q; want success with the warning", code, errOut)
	}
	c = e.sim.Connect(ps[1]).Credentials()
	code, _, errOut = e.run(context.Background(), completionURL(c, ps[1].Name, nil)+"\n", "connect", "--completion-url", "-", "--port", "0")
	if code != 0 || strings.Contains(errOut, warning) {
		t.Errorf("stdin: exit %d, stderr %q; want success without the warning", code, errOut)
	}
	e.assertNoSecrets(errOut)
}

// rename and port without a daemon change the store; list shows the new name and port.
func TestRenameAndPort(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	p := e.sim.Printers()[0]
	e.mustRun(completionURL(e.sim.Connect(p).Credentials(), p.Name, nil)+"\n", "connect", "--completion-url", "-", "--name", "mk4")
	e.mustRun("", "rename", "mk4", "prusa")
	port := e.list()[0].Port + 7
	out := e.mustRun("", "port", "prusa", fmt.Sprint(port))
	if !strings.Contains(out, fmt.Sprintf("prusa (%s): http://127.0.0.1:%d", p.Name, port)) {
		t.Errorf("port output: %s", out)
	}
	l := e.list()
	if len(l) != 1 || l[0].Name != "prusa" || l[0].Port != port {
		t.Errorf("after rename and port: %+v", l)
	}
	if code, _, errOut := e.run(context.Background(), "", "rename", "nope", "x"); code != 1 || !strings.Contains(errOut, "no printer named") {
		t.Errorf("rename nope: exit %d %q", code, errOut)
	}
}

func TestLANSetAndClear(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	p := e.sim.Printers()[0]
	e.mustRun(completionURL(e.sim.Connect(p).Credentials(), p.Name, nil)+"\n", "connect", "--completion-url", "-", "--name", "core")
	out := e.mustRun("", "lan", "set", "core", "192.168.1.30", "--companion", "192.168.1.5:8787")
	if !strings.Contains(out, "LAN address http://192.168.1.30") || !strings.Contains(out, "companion at http://192.168.1.5:8787") {
		t.Errorf("lan set output: %s", out)
	}
	if l := e.list(); len(l) != 1 || l[0].LANURL != "http://192.168.1.30" || l[0].CompanionURL != "http://192.168.1.5:8787" {
		t.Errorf("after lan set: %+v", l)
	}
	if code, _, errOut := e.run(context.Background(), "", "lan", "set", "core", "192.168.1.30", "--companion", "ftp://x"); code != 1 || !strings.Contains(errOut, "companion") {
		t.Errorf("a bad companion URL: exit %d %q", code, errOut)
	}
	e.mustRun("", "lan", "clear", "core")
	if l := e.list(); l[0].LANURL != "" || l[0].CompanionURL != "" {
		t.Errorf("after lan clear: %+v", l)
	}
}

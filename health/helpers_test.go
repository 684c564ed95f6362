package health

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/internal/testutil"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/oesim"
)

// fakeClock is an injected clock that only moves when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// testEnv is oesim plus an encrypted store and an App API client that reaches the sim through connect-to (the
// daemon's tests have the same, with more around it).
type testEnv struct {
	sim   *oesim.Sim
	store *credstore.Store
	api   *appapi.Client
}

func newTestEnv(t *testing.T, o oesim.Options) *testEnv {
	t.Helper()
	if o.GadgetMinInterval == 0 {
		o.GadgetMinInterval = -1 // the client's own 10 s rule is what the tests look at
	}
	o.TempDir = t.TempDir()
	sim, err := oesim.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil { // a data dir open to others is refused; TempDir follows the umask
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ks, err := credstore.MasterKey(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := credstore.Open(filepath.Join(dir, "credentials.db"), ks, credstore.Options{PortBase: 40000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	tr := oenet.Options{ConnectTo: sim.Addr, RootCAs: sim.RootCAs}.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	api, err := appapi.New(appapi.Options{BaseURL: sim.APIURL, Transport: tr, RetryBase: time.Millisecond, RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{sim: sim, store: st, api: api}
}

// add links a new connection to the sim's printer p (nil: the first) and stores it as name.
func (e *testEnv) add(t *testing.T, name string, p *oesim.Printer) (*oesim.Connection, credstore.Record) {
	t.Helper()
	c := e.sim.Connect(p)
	cr := c.Credentials()
	rec, err := e.store.Add(credstore.Record{Name: name, ConnectionID: cr.ID, URL: cr.URL, BasicUser: cr.BasicUser,
		BasicPassword: cr.BasicPassword, BearerToken: cr.BearerToken, AppAPIToken: cr.AppAPIToken,
		OctoPrintAPIKey: cr.OctoPrintAPIKey, PrinterName: c.Printer().Name, CreatedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// secrets lists every secret the sim issued.
func (e *testEnv) secrets() []string {
	var out []string
	for _, c := range e.sim.Connections() {
		cr := c.Credentials()
		out = append(out, cr.BasicPassword, cr.BearerToken, cr.AppAPIToken)
		if cr.OctoPrintAPIKey != "" {
			out = append(out, cr.OctoPrintAPIKey)
		}
	}
	return out
}

func (e *testEnv) assertNoSecrets(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range e.secrets() {
		for i, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("a secret (%d bytes) leaked into text %d", len(s), i)
			}
		}
	}
}

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

func logText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

// waitFor is the shared helper of internal/testutil under the name this package's tests use.
var waitFor = testutil.WaitFor

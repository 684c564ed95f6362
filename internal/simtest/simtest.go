// Package simtest gives a test the OctoEverywhere it talks to: oesim, an encrypted store in a private
// directory, and an App API client that reaches the sim through connect-to, with the printers it links and the
// secrets it issued at hand. It is imported only by tests (daemon, health); it is apart from testutil because it
// imports oesim, credstore and oenet, whose own tests use testutil.
package simtest

import (
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/oesim"
)

// Env is oesim plus an encrypted store and an App API client that reaches the sim through connect-to.
type Env struct {
	Sim       *oesim.Sim
	Store     *credstore.Store
	API       *appapi.Client
	Transport *http.Transport
	// Dir is the store's data directory (0700).
	Dir string
}

// New starts the sim with o and opens a store (a port base of its own); both end with the test. Unless o says
// otherwise, the sim does not apply Gadget's 10 s rule: the client's own rule is what tests look at.
func New(t *testing.T, o oesim.Options) *Env {
	t.Helper()
	if o.GadgetMinInterval == 0 {
		o.GadgetMinInterval = -1
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
	st, err := credstore.Open(filepath.Join(dir, "credentials.db"), ks, credstore.Options{
		// A port base of its own, below the ephemeral range: parallel tests serving printers from one fixed base
		// would take each other's port.
		PortBase: 20000 + (int(key[0])<<8|int(key[1]))%12000})
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
	return &Env{Sim: sim, Store: st, API: api, Transport: tr, Dir: dir}
}

// Add links a new connection to the sim's printer p (nil: the first) and stores it as name.
func (e *Env) Add(t *testing.T, name string, p *oesim.Printer) (*oesim.Connection, credstore.Record) {
	t.Helper()
	c := e.Sim.Connect(p)
	cr := c.Credentials()
	rec, err := e.Store.Add(credstore.Record{Name: name, ConnectionID: cr.ID, URL: cr.URL, BasicUser: cr.BasicUser,
		BasicPassword: cr.BasicPassword, BearerToken: cr.BearerToken, AppAPIToken: cr.AppAPIToken,
		OctoPrintAPIKey: cr.OctoPrintAPIKey, PrinterName: c.Printer().Name, CreatedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// Secrets lists every secret the sim issued.
func (e *Env) Secrets() []string {
	var out []string
	for _, c := range e.Sim.Connections() {
		cr := c.Credentials()
		out = append(out, cr.BasicPassword, cr.BearerToken, cr.AppAPIToken)
		if cr.OctoPrintAPIKey != "" {
			out = append(out, cr.OctoPrintAPIKey)
		}
	}
	return out
}

// AssertNoSecrets fails t for each secret the sim issued that one of texts contains (saying only its length).
func (e *Env) AssertNoSecrets(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range e.Secrets() {
		for i, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("a secret (%d bytes) leaked into text %d", len(s), i)
			}
		}
	}
}

package bootstrap

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/credstore"
	"go.uber.org/zap"
)

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	l, err := config.Load(config.LoadOptions{File: os.DevNull, LookupEnv: func(string) (string, bool) { return "", false },
		Environ: func() []string { return nil }, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	c.DataDir, c.Store.KeyFile = dir, filepath.Join(dir, "master.key")
	return &c
}

// The store opens with the key the environment gives, before the key file, and only create makes one.
func TestOpenStore(t *testing.T) {
	c := testConfig(t)
	if _, err := OpenStore(c, false, nil); !errors.Is(err, credstore.ErrNoStore) {
		t.Fatalf("read-only open of a missing store: %v", err)
	}
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	env := func(k string) string {
		if k == "OEPROXY_MASTER_KEY" {
			return key
		}
		return ""
	}
	st, err := OpenStore(c, true, env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.KeySource(), "OEPROXY_MASTER_KEY") || st.Path() != StorePath(c) {
		t.Errorf("key source %q, path %s", st.KeySource(), st.Path())
	}
	st.Close()
	if _, err := os.Stat(c.Store.KeyFile); !os.IsNotExist(err) {
		t.Errorf("a key file was made although the environment gave the key: %v", err)
	}
}

// tls.ca_file and connect_to reach every transport built here; a CA file that does not exist says so.
func TestNetAndAPI(t *testing.T) {
	c := testConfig(t)
	c.OctoEverywhere.ConnectTo = "127.0.0.1:9"
	n, err := Net(c)
	if err != nil || n.ConnectTo != "127.0.0.1:9" || n.RootCAs == nil || n.MaxConnsPerHost != c.OctoEverywhere.MaxConnections {
		t.Errorf("Net = %+v, %v", n, err)
	}
	if _, done, err := API(c, zap.NewNop()); err != nil {
		t.Error(err)
	} else {
		done()
	}
	c.TLS.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := Net(c); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing CA file: %v", err)
	}
	if _, _, err := API(c, zap.NewNop()); err == nil {
		t.Error("API with a missing CA file")
	}
}

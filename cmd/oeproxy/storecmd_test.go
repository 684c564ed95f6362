package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oeproxy/oeproxy/oesim"
)

func TestRotateKey(t *testing.T) {
	e := newEnv(t, oesim.Options{})
	p := e.sim.Printers()[0]
	e.mustRun("", "connect", "--completion-url", completionURL(e.sim.Connect(p).Credentials(), p.Name, nil), "--name", "mk4")
	keyFile := filepath.Join(e.dataDir, "master.key")
	before, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	// Default: a new random key in the same key file.
	out := e.mustRun("", "store", "rotate-key")
	after, _ := os.ReadFile(keyFile)
	if string(before) == string(after) || !strings.Contains(out, "re-encrypted") {
		t.Fatalf("key file not replaced: %s", out)
	}
	if l := e.list(); len(l) != 1 || l[0].Name != "mk4" {
		t.Fatalf("records after rotation: %+v", l)
	}

	// Switch to a passphrase.
	t.Setenv(envNewPassphrase, "correct horse battery")
	e.mustRun("", "store", "rotate-key", "--to-passphrase")
	t.Setenv(envNewPassphrase, "")
	if code, _, errOut := e.run(context.Background(), "", "list"); code != 1 || !strings.Contains(errOut, "master key") {
		t.Errorf("old key file still opens the store after switching to a passphrase: exit %d %q", code, errOut)
	}
	t.Setenv("OEPROXY_PASSPHRASE", "correct horse battery")
	if l := e.list(); len(l) != 1 {
		t.Fatalf("passphrase does not open the store: %+v", l)
	}
	t.Setenv("OEPROXY_PASSPHRASE", "wrong horse battery")
	if code, _, errOut := e.run(context.Background(), "", "list"); code != 1 || !strings.Contains(errOut, "master key") {
		t.Errorf("wrong passphrase: exit %d %q", code, errOut)
	}
	t.Setenv("OEPROXY_PASSPHRASE", "correct horse battery")

	// Usage errors and a running daemon.
	if code, _, _ := e.run(context.Background(), "", "store", "rotate-key", "--to-passphrase", "--to-key-file", "x"); code != 2 {
		t.Errorf("two targets: exit %d, want 2", code)
	}
	stop := e.serveInBackground()
	defer stop()
	if code, _, errOut := e.run(context.Background(), "", "store", "rotate-key"); code != 1 || !strings.Contains(errOut, "stop") {
		t.Errorf("rotate while serving: exit %d %q", code, errOut)
	}
}

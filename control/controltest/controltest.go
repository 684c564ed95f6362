// Package controltest serves a control.Control on a socket of its own for tests of the control socket (the daemon's
// and control's), so that each does not keep its own copy.
package controltest

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/control"
)

// Serve serves c on a control socket of its own (in a short temporary directory: unix socket paths are
// limited to about 100 bytes) and returns a client of it; both end with the test.
func Serve(t testing.TB, c control.Control) *control.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "oectl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := control.Listen(filepath.Join(dir, control.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: control.Handler(c), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	cl, err := control.Dial(context.Background(), filepath.Join(dir, control.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

package control

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A data dir whose socket path would not fit in sun_path gets a short socket in a private directory, which the
// daemon and every client find the same way; a directory there that is not this user's own is refused.
func TestLongDataDirSocket(t *testing.T) {
	short := t.TempDir()
	if p := SocketPath(short); p != filepath.Join(short, SocketName) {
		t.Errorf("short data dir: %s", p)
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	p := SocketPath(long)
	if len(p) > maxSocketPath || !strings.HasPrefix(p, shortSocketDir()) || SocketPath(long) != p {
		t.Fatalf("long data dir: socket %s (%d bytes)", p, len(p))
	}
	l, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(nil), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	defer func() { srv.Close(); <-done }()
	c, err := Dial(context.Background(), p)
	if err != nil {
		t.Fatalf("dial %s: %v", p, err)
	}
	c.Close()
}

func TestShortSocketDirMustBePrivate(t *testing.T) {
	dir := shortSocketDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, fi.Mode().Perm())
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "x.sock")
	if err := prepareSocketDir(p, true); err == nil || !strings.Contains(err.Error(), "not this user's private directory") {
		t.Errorf("a 0777 socket directory: %v", err)
	}
	if _, err := Dial(context.Background(), p); err == nil || !strings.Contains(err.Error(), "private directory") {
		t.Errorf("dial through a 0777 socket directory: %v", err)
	}
}

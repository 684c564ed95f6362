//go:build unix

package credstore

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// An existing data directory open to others is refused with the fix, and its mode is left as it was.
func TestOpenRefusesADataDirOpenToOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o755, 0o750, 0o777 | os.ModeSticky} {
		dir := filepath.Join(privateDir(t), "data")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(DefaultPath(dir), keySource(t, newKey(t)), Options{})
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chmod 700 "+dir) {
			t.Fatalf("mode %v: Open: %v, want ErrUnsafe saying `chmod 700 %s`", mode, err, dir)
		}
		fi, _ := os.Stat(dir)
		if fi.Mode()&(os.ModePerm|os.ModeSticky) != mode {
			t.Fatalf("mode %v: the directory was changed to %v", mode, fi.Mode())
		}
		if _, err := os.Stat(DefaultPath(dir)); !os.IsNotExist(err) {
			t.Fatalf("mode %v: a store was created in the refused directory: %v", mode, err)
		}
	}
}

// NoCreate (read-only commands) creates nothing: no directory, store, key file or pid file.
func TestOpenNoCreateCreatesNothing(t *testing.T) {
	root := privateDir(t)
	dir := filepath.Join(root, "data")
	ks := KeyFile(filepath.Join(dir, DefaultKeyFile))
	if _, err := Open(DefaultPath(dir), ks, Options{NoCreate: true}); !errors.Is(err, ErrNoStore) {
		t.Fatalf("Open NoCreate of a missing directory: %v, want ErrNoStore", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("NoCreate made the data directory: %v", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(DefaultPath(dir), ks, Options{NoCreate: true}); !errors.Is(err, ErrNoStore) {
		t.Fatalf("Open NoCreate of an empty directory: %v, want ErrNoStore", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("NoCreate left %d files in the data directory (%s)", len(ents), ents[0].Name())
	}
}

// Only a missing file becomes a store: an empty file or a directory in its place is damaged and left alone.
func TestOpenRefusesAnEmptyFileOrADirectory(t *testing.T) {
	t.Run("empty file", func(t *testing.T) {
		path := filepath.Join(privateDir(t), FileName)
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, keySource(t, newKey(t)), Options{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "empty") {
			t.Fatalf("Open of a 0-byte store: %v, want ErrCorrupt naming %s as empty", err, path)
		}
		if fi, _ := os.Stat(path); fi.Size() != 0 {
			t.Fatalf("the empty file was written (%d bytes)", fi.Size())
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := privateDir(t)
		path := filepath.Join(dir, FileName)
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, dir} { // the store's path, and the data dir holding it
			_, err := Open(p, keySource(t, newKey(t)), Options{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "is a directory") {
				t.Fatalf("Open(%s) with a directory named %s: %v, want ErrCorrupt", p, FileName, err)
			}
		}
		if ents, _ := os.ReadDir(path); len(ents) != 0 {
			t.Fatalf("a store was made inside the directory named %s", FileName)
		}
	})
}

// A store file that is a symbolic link is not followed: its target is neither opened nor changed.
func TestOpenRefusesAStoreThatIsASymlink(t *testing.T) {
	dir := privateDir(t)
	target := filepath.Join(privateDir(t), "passwd")
	if err := os.WriteFile(target, []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := DefaultPath(dir)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, keySource(t, newKey(t)), Options{})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Open of a symlinked store: %v, want ErrUnsafe", err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
		t.Fatalf("the link's target was changed to %04o", fi.Mode().Perm())
	}

	// Allowed, the link is followed to a real store.
	real := DefaultPath(privateDir(t))
	key := newKey(t)
	s := openStore(t, real, keySource(t, key))
	_ = s.Close()
	link := DefaultPath(privateDir(t))
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s, err = Open(link, keySource(t, key), Options{AllowSymlinks: true})
	if err != nil {
		t.Fatalf("Open with AllowSymlinks: %v", err)
	}
	_ = s.Close()
}

// A data directory that is a link in a directory others can write to (a planted /tmp/x) is refused; one that
// only this user could have made is followed (systemd's DynamicUser state directories are links).
func TestOpenDataDirSymlink(t *testing.T) {
	shared := privateDir(t)
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	real := privateDir(t)
	planted := filepath.Join(shared, "data")
	if err := os.Symlink(real, planted); err != nil {
		t.Fatal(err)
	}
	_, err := Open(DefaultPath(planted), keySource(t, newKey(t)), Options{})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "store.allow_symlinks") {
		t.Fatalf("Open through a link in a shared directory: %v, want ErrUnsafe naming store.allow_symlinks", err)
	}
	if ents, _ := os.ReadDir(real); len(ents) != 0 {
		t.Fatalf("the link's target got %s", ents[0].Name())
	}
	s, err := Open(DefaultPath(planted), keySource(t, newKey(t)), Options{AllowSymlinks: true})
	if err != nil {
		t.Fatalf("with AllowSymlinks: %v", err)
	}
	_ = s.Close()

	own := filepath.Join(privateDir(t), "data")
	if err := os.Symlink(privateDir(t), own); err != nil {
		t.Fatal(err)
	}
	s, err = Open(DefaultPath(own), keySource(t, newKey(t)), Options{})
	if err != nil {
		t.Fatalf("Open through a link only this user could make: %v", err)
	}
	_ = s.Close()
}

// The pid file is written under a random name and renamed: a link planted at its fixed names is replaced, never
// written through.
func TestPidFileDoesNotFollowLinks(t *testing.T) {
	dir := privateDir(t)
	path := DefaultPath(dir)
	victim := filepath.Join(privateDir(t), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path + ".pid", path + ".pid.tmp"} {
		if err := os.Symlink(victim, name); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, path, keySource(t, newKey(t)))
	if err := s.PidFileErr(); err != nil {
		t.Fatalf("PidFileErr: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("the pid was written through a link: %q", b)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o644 {
		t.Fatalf("the link's target was changed to %04o", fi.Mode().Perm())
	}
	if fi, err := os.Lstat(path + ".pid"); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("pid file: %v %v", fi, err)
	}
}

// mountFull mounts a small tmpfs and fills it, leaving about free bytes; it skips where mounting is not
// allowed (not root, no tmpfs).
func mountFull(t *testing.T, free int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := privateDir(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	fill(t, dir, free)
	return dir
}

// fill writes a file in dir until about free bytes are left.
func fill(t *testing.T, dir string, free int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * st.Bsize
	if avail <= free {
		return
	}
	f, err := os.CreateTemp(dir, "filler-*")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(bytes.Repeat([]byte{1}, int(avail-free))) // may stop short at ENOSPC: full is the point
	_ = f.Close()
}

// On a full disk, creating a store fails and leaves nothing (no 0-byte store that would later read as damaged,
// no key file protecting nothing).
func TestCreateOnAFullDiskLeavesNothing(t *testing.T) {
	dir := mountFull(t, 8<<10)
	path := DefaultPath(dir)
	_, err := Open(path, KeyFile(filepath.Join(dir, DefaultKeyFile)), Options{})
	if err == nil {
		t.Fatal("Open on a full disk succeeded")
	}
	t.Logf("Open on a full disk: %v", err)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "filler-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// A full disk only costs the pid file: the store opens and works.
func TestPidFileOnAFullDiskIsNotFatal(t *testing.T) {
	dir := mountFull(t, 1<<20)
	path := DefaultPath(dir)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key))
	if _, err := s.Add(sampleRecord(t, "mk4", 5001)); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	fill(t, dir, 0)
	if err := os.WriteFile(filepath.Join(dir, "filler-last"), bytes.Repeat([]byte{1}, 64<<10), 0o600); err == nil {
		t.Fatal("the disk is not full")
	}
	s, err := Open(path, keySource(t, key), Options{})
	if err != nil {
		t.Fatalf("Open on a full disk with the store intact: %v", err)
	}
	defer s.Close()
	if s.PidFileErr() == nil {
		t.Fatal("PidFileErr is nil on a full disk")
	}
	if _, err := s.Get("mk4"); err != nil {
		t.Fatalf("Get: %v", err)
	}
}

package reliability

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/oeproxy/oeproxy/credstore"
)

// The store and its directory, attacked through the real binary: planted links, directories open to others,
// files in the store's place, a full disk, one record that does not authenticate, and the same App Connection
// stored twice.
func TestStoreBinary(t *testing.T) {
	ctx, env, oe := binaryUnderTest(t, 4*time.Minute)
	// run runs an oeproxy command with the bench configuration and extra KEY=value settings.
	run := func(t *testing.T, stdin string, extra []string, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		cmd := oe.Command(ctx, args...)
		cmd.Env = append(cmd.Env, extra...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		registerText("store "+strings.Join(args, " "), out.String()+errb.String())
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
	private := func(t *testing.T) string {
		t.Helper()
		d := t.TempDir()
		if err := os.Chmod(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	dataDirEnv := func(dir string) []string {
		return []string{"OEPROXY_DATA_DIR=" + dir, "OEPROXY_STORE_KEY_FILE=" + filepath.Join(dir, "master.key")}
	}
	empty := func(t *testing.T, dir string) {
		t.Helper()
		ents, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), "filler-") {
				t.Errorf("%s was created in %s", e.Name(), dir)
			}
		}
	}

	t.Run("a data dir open to others is refused and left as it was", func(t *testing.T) {
		track(t)
		for _, mode := range []os.FileMode{0o755, 0o777 | os.ModeSticky} {
			dir := filepath.Join(private(t), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"list"}, {"serve"}} {
				code, _, errOut := run(t, "", dataDirEnv(dir), args...)
				if code == 0 || !strings.Contains(errOut, "chmod 700 "+dir) {
					t.Errorf("%v in a %v data dir: exit %d %q, want a refusal saying `chmod 700 %s`", args, mode, code, errOut, dir)
				}
			}
			if fi, _ := os.Stat(dir); fi.Mode()&(os.ModePerm|os.ModeSticky) != mode {
				t.Errorf("the data dir's mode became %v (was %v)", fi.Mode(), mode)
			}
			empty(t, dir)
		}
	})

	t.Run("a data dir behind another user's directory: whose it is and what to run", func(t *testing.T) {
		track(t)
		if os.Geteuid() != 0 {
			t.Skip("needs root to run the binary as another user")
		}
		// The binary where the other user may run it; the data dir inside root's private directory.
		binDir, err := os.MkdirTemp("", "oeproxy-bin-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(binDir)
		raw, err := os.ReadFile(built.bin)
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(binDir, "oeproxy")
		if err := os.WriteFile(bin, raw, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(binDir, 0o755); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(private(t), "data")
		cmd := exec.CommandContext(ctx, bin, "--data-dir", dir, "list")
		cmd.Env = []string{"HOME=/nonexistent", "XDG_CONFIG_HOME=/nonexistent", "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "belongs to root (uid 0)") || !strings.Contains(string(out), "sudo -u root") {
			t.Errorf("another user's list: %v %q, want whose directory it is and the command to run", err, out)
		}
	})

	t.Run("read-only commands create nothing", func(t *testing.T) {
		track(t)
		dir := filepath.Join(private(t), "data")
		for _, args := range [][]string{{"list"}, {"list", "--json"}, {"status", "--json"}} {
			code, out, errOut := run(t, "", dataDirEnv(dir), args...)
			if code != 0 || !strings.Contains(out, "No printers yet") && strings.TrimSpace(out) != "[]" {
				t.Errorf("%v without a store: exit %d %q %q, want no printers", args, code, out, errOut)
			}
		}
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("a read-only command made the data dir: %v", err)
		}
	})

	t.Run("HOME unset: no store in the working directory", func(t *testing.T) {
		track(t)
		cwd := private(t)
		cmd := exec.CommandContext(ctx, built.bin, "list")
		cmd.Dir = cwd
		for _, kv := range oe.Command(ctx).Env {
			if k, _, _ := strings.Cut(kv, "="); k != "HOME" && k != "OEPROXY_DATA_DIR" && k != "XDG_DATA_HOME" {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "data_dir: no default") {
			t.Errorf("list without HOME: %v %q, want a data_dir problem", err, out)
		}
		empty(t, cwd)
	})

	t.Run("a planted store link is not followed", func(t *testing.T) {
		track(t)
		victim := filepath.Join(private(t), "passwd")
		if err := os.WriteFile(victim, []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := private(t)
		if err := os.Symlink(victim, filepath.Join(dir, credstore.FileName)); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"list"}, {"serve"}} {
			code, _, errOut := run(t, "", dataDirEnv(dir), args...)
			if code == 0 || !strings.Contains(errOut, "symbolic link") {
				t.Errorf("%v with a planted store link: exit %d %q", args, code, errOut)
			}
		}
		fi, _ := os.Stat(victim)
		b, _ := os.ReadFile(victim)
		if fi.Mode().Perm() != 0o644 || string(b) != "root:x:0:0::/root:/bin/sh\n" {
			t.Errorf("the link's target was changed: mode %04o, %q", fi.Mode().Perm(), b)
		}
	})

	t.Run("an empty file or a directory in the store's place is damaged, not replaced", func(t *testing.T) {
		track(t)
		for _, dirNamedLikeStore := range []bool{false, true} {
			dir := private(t)
			path := filepath.Join(dir, credstore.FileName)
			var err error
			if dirNamedLikeStore {
				err = os.Mkdir(path, 0o700)
			} else {
				err = os.WriteFile(path, nil, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"list"}, {"connect", "--completion-url", "-", "--name", "x"}} {
				code, _, errOut := run(t, env.CompletionURL()+"\n", dataDirEnv(dir), args...)
				if code == 0 || !strings.Contains(errOut, "damaged") || !strings.Contains(errOut, path) {
					t.Errorf("%v with %s as %s: exit %d %q, want it reported as damaged", args[0], path,
						map[bool]string{false: "an empty file", true: "a directory"}[dirNamedLikeStore], code, errOut)
				}
			}
			if fi, err := os.Stat(path); err != nil || fi.IsDir() != dirNamedLikeStore || !fi.IsDir() && fi.Size() != 0 {
				t.Errorf("%s was changed: %v %v", path, fi, err)
			}
			if dirNamedLikeStore {
				empty(t, path)
			}
		}
	})

	t.Run("the same App Connection is not stored twice", func(t *testing.T) {
		track(t)
		code, _, errOut := run(t, env.CompletionURL()+"\n", nil, "connect", "--completion-url", "-", "--name", "bench-again")
		if code == 0 || !strings.Contains(errOut, `"bench"`) && !strings.Contains(errOut, `\"bench\"`) { // a JSON log line escapes the quotes
			t.Errorf("second connect of one App Connection: exit %d %q, want a refusal naming \"bench\"", code, errOut)
		}
		_, out, _ := run(t, "", nil, "list", "--json")
		var list []credstore.PublicRecord
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
			t.Errorf("after the refused copy: %v %s", err, out)
		}
	})

	t.Run("planted pid links are not followed", func(t *testing.T) {
		track(t)
		victim := filepath.Join(private(t), "victim")
		if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		store := filepath.Join(oe.DataDir(), credstore.FileName)
		for _, p := range []string{store + ".pid", store + ".pid.tmp"} {
			_ = os.Remove(p)
			if err := os.Symlink(victim, p); err != nil {
				t.Fatal(err)
			}
		}
		if code, _, errOut := run(t, "", nil, "list"); code != 0 {
			t.Fatalf("list: exit %d %q", code, errOut)
		}
		_ = os.Remove(store + ".pid.tmp")
		fi, _ := os.Stat(victim)
		if b, _ := os.ReadFile(victim); string(b) != "keep" || fi.Mode().Perm() != 0o644 {
			t.Errorf("written through a planted pid link: %q mode %04o", b, fi.Mode().Perm())
		}
	})

	t.Run("one damaged record does not stop the others", func(t *testing.T) {
		track(t)
		store := filepath.Join(oe.DataDir(), credstore.FileName)
		before := recordKeys(t, store)
		st, err := credstore.Open(store, credstore.KeyFile(filepath.Join(oe.DataDir(), "master.key")), credstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		other := credstore.Record{Name: "other", ConnectionID: "other-connection", URL: "https://app-other.example",
			BasicUser: "u", BasicPassword: "p", Port: oe.Port + 1}
		if _, err := st.Add(other); err != nil {
			t.Fatal(err)
		}
		_ = st.Close()
		var damagedKey []byte
		for _, k := range recordKeys(t, store) {
			if !containsKey(before, k) {
				damagedKey = k
			}
		}
		db, err := bolt.Open(store, 0o600, &bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("records"))
			v := bytes.Clone(b.Get(damagedKey))
			v[len(v)/2] ^= 1
			return b.Put(damagedKey, v)
		}); err != nil {
			t.Fatal(err)
		}
		_ = db.Close()

		if _, err := oe.Start(); err != nil { // it serves the good printer: Start waits for a request through it
			t.Fatalf("serve with one damaged record: %v", err)
		}
		defer func() { _ = oe.Stop() }()
		logb, _ := os.ReadFile(oe.LogFile)
		if !strings.Contains(string(logb), "printer record cannot be read") || !strings.Contains(string(logb), "oeproxy remove damaged-") {
			t.Errorf("the log does not name the damaged record with its fix")
		}
		_, out, errOut := run(t, "", nil, "list", "--json")
		var list []credstore.PublicRecord
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || list[1].Damaged == "" {
			t.Fatalf("list --json: %v %s %s", err, out, errOut)
		}
		stand := list[1].Name
		if _, _, errOut := run(t, "", nil, "list"); !strings.Contains(errOut, "oeproxy remove "+stand) {
			t.Errorf("list does not say how to remove %s: %q", stand, errOut)
		}
		admin := adminAddr(t, oe.LogFile)
		_, login, errOut := run(t, "", nil, "admin") // the page needs a session, from `oeproxy admin`
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar}
		if resp, err := hc.Get(strings.TrimSpace(login)); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("admin login %q: %v %v %s", login, err, resp, errOut)
		} else {
			resp.Body.Close()
		}
		for _, p := range []string{"/", "/readyz"} {
			resp, err := hc.Get("http://" + admin + p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			registerText("admin "+p+" with a damaged record", string(b))
			if !strings.Contains(string(b), stand) {
				t.Errorf("admin %s does not name %s: %s", p, stand, b)
			}
		}
		if code, _, errOut := run(t, "", nil, "remove", stand, "--yes"); code != 0 {
			t.Fatalf("remove %s: exit %d %q", stand, code, errOut)
		}
		if _, out, _ := run(t, "", nil, "list", "--json"); strings.Contains(out, stand) {
			t.Errorf("still listed after remove: %s", out)
		}
		if err := oe.Stop(); err != nil {
			t.Error(err)
		}
	})

	t.Run("a full disk", func(t *testing.T) {
		track(t)
		if os.Geteuid() != 0 {
			t.Skip("needs root to mount a small tmpfs")
		}
		mount := func(t *testing.T) string {
			d := private(t)
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", d).CombinedOutput(); err != nil {
				t.Skipf("cannot mount a tmpfs: %v %s", err, out)
			}
			t.Cleanup(func() { _ = exec.Command("umount", "-l", d).Run() })
			return d
		}
		// A new store on a full disk: connect fails and leaves nothing (no 0-byte store that reads as damaged).
		dir := mount(t)
		fillDisk(t, dir)
		code, _, errOut := run(t, env.CompletionURL()+"\n", dataDirEnv(dir), "connect", "--completion-url", "-", "--name", "x")
		if code == 0 {
			t.Errorf("connect on a full disk succeeded")
		}
		t.Logf("connect on a full disk: %s", strings.TrimSpace(errOut))
		empty(t, dir)

		// The store is there and fine, the disk is full: only the pid file is lost, the printer is served.
		dir = mount(t)
		for _, name := range []string{credstore.FileName, "master.key"} {
			b, err := os.ReadFile(filepath.Join(oe.DataDir(), name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		fillDisk(t, dir)
		oe.SetEnv(dataDirEnv(dir)...)
		if _, err := oe.Start(); err != nil {
			t.Fatalf("serve on a full disk with the store intact: %v", err)
		}
		if err := oe.Stop(); err != nil {
			t.Error(err)
		}
		if logb, _ := os.ReadFile(oe.LogFile); !strings.Contains(string(logb), "pid file not written") {
			t.Error("no warning about the pid file in the log")
		}
		oe.SetEnv(dataDirEnv(oe.DataDir())...)
	})
}

// fillDisk fills the file system of dir.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "filler-*")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(make([]byte, int64(st.Bavail)*st.Bsize+4096)) // stops at ENOSPC: full is the point
	_ = f.Close()
}

// recordKeys lists the bucket keys of the store's records (read-only, without the master key).
func recordKeys(t *testing.T, path string) [][]byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var keys [][]byte
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("records")).ForEach(func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		})
	})
	return keys
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

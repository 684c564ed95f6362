package credstore

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var errCrash = errors.New("simulated crash")

// expectOpen opens path with ks and checks that it holds exactly want.
func expectOpen(t *testing.T, path string, ks KeySource, want []Record) {
	t.Helper()
	s, err := Open(path, ks, Options{})
	if err != nil {
		t.Fatalf("Open with %s: %v", ks, err)
	}
	defer s.Close()
	got, err := s.List()
	if err != nil {
		t.Fatalf("List after opening with %s: %v", ks, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records after opening with %s differ: got %d, want %d", ks, len(got), len(want))
	}
}

func expectWrongKey(t *testing.T, path string, ks KeySource) {
	t.Helper()
	s, err := Open(path, ks, Options{})
	if err == nil {
		_ = s.Close()
	}
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with %s: %v, want ErrWrongKey", ks, err)
	}
}

// rawKeyAt is a key source holding the key now in file, or nil when there is no such file.
func rawKeyAt(t *testing.T, file string) KeySource {
	t.Helper()
	k, err := readKeyFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return keySource(t, k)
}

func TestRotateKeyCrashAtEveryStep(t *testing.T) {
	k1 := newKey(t)
	allSteps := []string{stepWriteNewKey, stepNewKeyWritten, stepBeforeCommit, stepCommitted, stepRenamed}
	cases := []struct {
		name  string
		from  func(dir string) KeySource // the source the store was made with (what the user opens with before)
		to    func(dir string) KeySource // the rotation target (what the user opens with after)
		steps []string
		// oldKey and newKey are explicit sources for the key before and after, read after the crash; newKey
		// may be nil when the new key does not exist yet.
		oldKey func(t *testing.T, dir string) KeySource
		newKey func(t *testing.T, dir string, committed bool) KeySource
	}{
		{
			name:  "key file to a new key in the same file",
			from:  func(dir string) KeySource { return KeyFile(filepath.Join(dir, "master.key")) },
			to:    func(dir string) KeySource { return KeyFile(filepath.Join(dir, "master.key")) },
			steps: allSteps,
			newKey: func(t *testing.T, dir string, committed bool) KeySource {
				if ks := rawKeyAt(t, filepath.Join(dir, "master.key.new")); ks != nil {
					return ks
				}
				if committed {
					return rawKeyAt(t, filepath.Join(dir, "master.key"))
				}
				return nil
			},
		},
		{
			name:   "master key to passphrase",
			from:   func(string) KeySource { return keySource(t, k1) },
			to:     func(string) KeySource { return Passphrase("new passphrase", Argon2Params{}) },
			steps:  []string{stepBeforeCommit, stepCommitted},
			newKey: func(*testing.T, string, bool) KeySource { return Passphrase("new passphrase", Argon2Params{}) },
		},
		{
			name:   "passphrase to master key",
			from:   func(string) KeySource { return Passphrase("old passphrase", Argon2Params{}) },
			to:     func(string) KeySource { return keySource(t, k1) },
			oldKey: func(*testing.T, string) KeySource { return Passphrase("old passphrase", Argon2Params{}) },
			steps:  []string{stepBeforeCommit, stepCommitted},
			newKey: func(*testing.T, string, bool) KeySource { return keySource(t, k1) },
		},
		{
			name:  "master key to a key file at a new path",
			from:  func(string) KeySource { return keySource(t, k1) },
			to:    func(dir string) KeySource { return KeyFile(filepath.Join(dir, "keys", "new.key")) },
			steps: allSteps,
			newKey: func(t *testing.T, dir string, committed bool) KeySource {
				if ks := rawKeyAt(t, filepath.Join(dir, "keys", "new.key.new")); ks != nil {
					return ks
				}
				if committed {
					return rawKeyAt(t, filepath.Join(dir, "keys", "new.key"))
				}
				return nil
			},
		},
	}
	for _, c := range cases {
		for _, step := range append(c.steps, "") { // "" runs the rotation to the end
			name := step
			if name == "" {
				name = "no crash"
			}
			t.Run(c.name+"/"+name, func(t *testing.T) {
				dir := privateDir(t)
				path := filepath.Join(dir, FileName)
				s, err := Open(path, c.from(dir), Options{})
				if err != nil {
					t.Fatal(err)
				}
				for i, n := range []string{"a", "b", "c"} {
					if _, err := s.Add(sampleRecord(t, n, 5001+i)); err != nil {
						t.Fatal(err)
					}
				}
				want, err := s.List()
				if err != nil {
					t.Fatal(err)
				}
				old := rawKeyAt(t, filepath.Join(dir, "master.key"))
				if c.oldKey != nil {
					old = c.oldKey(t, dir)
				} else if old == nil {
					old = c.from(dir)
				}

				reached := false
				s.testHook = func(st string) error {
					if st == step {
						reached = true
						return errCrash
					}
					return nil
				}
				err = s.RotateKey(c.to(dir))
				_ = s.Close()
				if step != "" && (!errors.Is(err, errCrash) || !reached) {
					t.Fatalf("RotateKey did not reach step %q: %v", step, err)
				}
				if step == "" && err != nil {
					t.Fatalf("RotateKey: %v", err)
				}

				committed := step == "" || step == stepCommitted || step == stepRenamed
				newKey := c.newKey(t, dir, committed)
				if committed {
					expectOpen(t, path, newKey, want)
					expectWrongKey(t, path, old)
					expectOpen(t, path, c.to(dir), want) // completes a pending key file rename
				} else {
					expectOpen(t, path, old, want)
					if newKey != nil {
						expectWrongKey(t, path, newKey)
					}
					expectOpen(t, path, c.from(dir), want) // removes a stale <key file>.new
				}
				// Once the user's source has opened the store, no <key file>.new is left behind it.
				user := c.from(dir)
				if committed {
					user = c.to(dir)
				}
				if kf, ok := user.(*keyFileSource); ok {
					if _, err := os.Stat(kf.path + ".new"); !os.IsNotExist(err) {
						t.Fatalf("%s.new left after opening: %v", kf.path, err)
					}
					expectOpen(t, path, rawKeyAt(t, kf.path), want)
				}
			})
		}
	}
}

func TestRotateKeyRefusals(t *testing.T) {
	dir := privateDir(t)
	path := filepath.Join(dir, FileName)
	key := newKey(t)
	s := openStore(t, path, keySource(t, key))
	if _, err := s.Add(sampleRecord(t, "mk4", 5001)); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "someone-elses.key")
	if err := os.WriteFile(other, newKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateKey(KeyFile(other)); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("rotation onto an existing key file: %v", err)
	}
	credDir := privateDir(t)
	cred := filepath.Join(credDir, CredentialName)
	ks, err := ResolveKey(mapEnv(map[string]string{EnvCredentialsDir: credDir}), cred, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RotateKey(ks); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("rotation to a systemd credential: %v", err)
	}
	_ = s.Close()
	expectOpen(t, path, keySource(t, key), []Record{mustGetOnly(t, path, key)})
}

func mustGetOnly(t *testing.T, path string, key []byte) Record {
	t.Helper()
	s := openStore(t, path, keySource(t, key))
	defer s.Close()
	r, err := s.Get("mk4")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRotateKeyReplacesDataKey(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, keySource(t, newKey(t)))
	if _, err := s.Add(sampleRecord(t, "mk4", 5001)); err != nil {
		t.Fatal(err)
	}
	before := s.dk.bucketKey("mk4")
	if err := s.RotateKey(keySource(t, newKey(t))); err != nil {
		t.Fatal(err)
	}
	if string(s.dk.bucketKey("mk4")) == string(before) {
		t.Fatal("rotation kept the data key: a leaked old master key would still open the records")
	}
	if _, err := s.Get("mk4"); err != nil {
		t.Fatalf("Get after rotation: %v", err)
	}
}

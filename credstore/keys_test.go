package credstore

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestKeyFileCreatedOnFirstUseOnly(t *testing.T) {
	dataDir := filepath.Join(privateDir(t), "data")
	ks, err := ResolveKey(mapEnv(nil), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dataDir, DefaultKeyFile)
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Fatal("ResolveKey created the key file")
	}
	s := openStore(t, DefaultPath(dataDir), ks)
	if s.KeyFileCreated() != keyPath || !strings.Contains(s.KeySource(), keyPath) {
		t.Fatalf("KeyFileCreated %q, KeySource %q", s.KeyFileCreated(), s.KeySource())
	}
	_ = s.Close()
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file mode %04o size %d, want 0600 and 32", fi.Mode().Perm(), fi.Size())
	}
	key, _ := os.ReadFile(keyPath)
	s = openStore(t, DefaultPath(dataDir), KeyFile(keyPath))
	if s.KeyFileCreated() != "" {
		t.Fatal("reopening claims to have created the key file")
	}
	_ = s.Close()
	if now, _ := os.ReadFile(keyPath); !bytes.Equal(now, key) {
		t.Fatal("reopening changed the key file")
	}
	// An existing store whose key file is gone: a clear error, and no new key made.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	_, err = Open(DefaultPath(dataDir), KeyFile(keyPath), Options{})
	if !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("missing key file: %v, want ErrNoKey", err)
	}
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Fatal("a key file was created for an existing store")
	}
}

func TestKeyFilePermissionsRefused(t *testing.T) {
	dir := privateDir(t)
	keyPath := filepath.Join(dir, "master.key")
	s := openStore(t, filepath.Join(dir, FileName), KeyFile(keyPath))
	_ = s.Close()
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(keyPath, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(filepath.Join(dir, FileName), KeyFile(keyPath), Options{})
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || errors.Is(err, ErrWrongKey) {
			t.Fatalf("key file mode %04o: %v, want a refusal saying chmod 600", mode, err)
		}
	}
	if err := os.Chmod(keyPath, 0o400); err != nil { // read-only for the owner is fine
		t.Fatal(err)
	}
	s = openStore(t, filepath.Join(dir, FileName), KeyFile(keyPath))
	_ = s.Close()
}

func TestKeyFileAsBase64Text(t *testing.T) {
	dir := privateDir(t)
	key := newKey(t)
	s := openStore(t, filepath.Join(dir, FileName), keySource(t, key))
	_ = s.Close()
	keyPath := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(keyPath, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, filepath.Join(dir, FileName), KeyFile(keyPath))
	_ = s.Close()
	if err := os.WriteFile(keyPath, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, FileName), KeyFile(keyPath), Options{}); err == nil || !strings.Contains(err.Error(), "32 raw bytes") {
		t.Fatalf("garbage key file: %v", err)
	}
}

func TestEnvKeyPrecedence(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 32) // base64 with '+' and '/' in the standard alphabet
	std, rawURL := base64.StdEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key)
	if std == rawURL {
		t.Fatal("test key does not tell the alphabets apart")
	}
	cases := []struct {
		name string
		env  map[string]string
		want string // in KeySource's String
	}{
		{"master key (std) wins over passphrase", map[string]string{EnvMasterKey: std, EnvPassphrase: "pw"}, EnvMasterKey},
		{"master key (raw url)", map[string]string{EnvMasterKey: rawURL}, EnvMasterKey},
		{"passphrase wins over key file", map[string]string{EnvPassphrase: "pw"}, EnvPassphrase},
		{"key file", map[string]string{}, "key file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dataDir := filepath.Join(privateDir(t), "data")
			ks, err := ResolveKey(mapEnv(c.env), "", dataDir)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ks.String(), c.want) {
				t.Fatalf("source %q, want %q", ks, c.want)
			}
			if strings.Contains(ks.String(), std) || strings.Contains(ks.String(), "pw") {
				t.Fatalf("source description %q reveals the key", ks)
			}
			s := openStore(t, DefaultPath(dataDir), ks)
			_ = s.Close()
			_, err = os.Stat(filepath.Join(dataDir, DefaultKeyFile))
			if keyFileMade := err == nil; keyFileMade != (c.want == "key file") {
				t.Fatalf("key file created: %v, with env %v", keyFileMade, c.env)
			}
			if c.want == EnvMasterKey { // the env key really is the key
				expectOpen(t, DefaultPath(dataDir), keySource(t, key), []Record{})
			}
		})
	}
}

func TestBadEnvMasterKey(t *testing.T) {
	for _, v := range []string{"not base64 at all!", base64.StdEncoding.EncodeToString([]byte("short-secret-value"))} {
		_, err := ResolveKey(mapEnv(map[string]string{EnvMasterKey: v, EnvPassphrase: "pw"}), "", privateDir(t))
		if err == nil || !strings.Contains(err.Error(), EnvMasterKey) {
			t.Fatalf("bad %s: %v", EnvMasterKey, err)
		}
		if strings.Contains(err.Error(), v) {
			t.Fatalf("error reveals the value: %v", err)
		}
	}
}

func TestSystemdCredentialsDirectory(t *testing.T) {
	credDir, dataDir := privateDir(t), filepath.Join(privateDir(t), "data")
	key := newKey(t)
	cred := filepath.Join(credDir, CredentialName)
	env := mapEnv(map[string]string{EnvCredentialsDir: credDir})

	// Without the credential file, the data dir's key file is used.
	ks, err := ResolveKey(env, "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ks.String(), filepath.Join(dataDir, DefaultKeyFile)) {
		t.Fatalf("source %q", ks)
	}

	if err := os.WriteFile(cred, key, 0o400); err != nil {
		t.Fatal(err)
	}
	ks, err = ResolveKey(env, "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ks.String(), "systemd credential") {
		t.Fatalf("source %q, want the systemd credential", ks)
	}
	s := openStore(t, DefaultPath(dataDir), ks)
	_ = s.Close()
	if _, err := os.Stat(filepath.Join(dataDir, DefaultKeyFile)); !os.IsNotExist(err) {
		t.Fatal("a key file was created although the credential was used")
	}
	expectOpen(t, DefaultPath(dataDir), keySource(t, key), []Record{})

	// A credential is never created by oeproxy: a missing one for a new store is an error.
	missing := filepath.Join(privateDir(t), CredentialName)
	ks, err = ResolveKey(mapEnv(map[string]string{EnvCredentialsDir: filepath.Dir(missing)}), missing, privateDir(t))
	if err != nil {
		t.Fatal(err)
	}
	newStore := filepath.Join(privateDir(t), FileName)
	if _, err := Open(newStore, ks, Options{}); err == nil {
		t.Fatal("opened a new store with a missing systemd credential")
	}
	if _, err := os.Stat(newStore); !os.IsNotExist(err) {
		t.Fatal("a failed Open left a new store file behind")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatal("created the systemd credential")
	}
}

// A passphrase store opened without the passphrase says to set it, not that a (default, missing) key file failed.
func TestPassphraseStoreWithoutPassphraseNamesNoKeyFile(t *testing.T) {
	dir := privateDir(t)
	path := filepath.Join(dir, FileName)
	s := openStore(t, path, Passphrase("correct horse", Argon2Params{Time: 1, MemoryKiB: 8, Threads: 1}))
	_ = s.Close()
	keyPath := filepath.Join(dir, DefaultKeyFile) // what ResolveKey picks with nothing in the environment
	_, err := Open(path, KeyFile(keyPath), Options{})
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), EnvPassphrase) {
		t.Fatalf("Open without the passphrase: %v, want ErrWrongKey saying to set %s", err, EnvPassphrase)
	}
	if strings.Contains(err.Error(), keyPath) {
		t.Fatalf("the error blames a key file that does not exist: %v", err)
	}
	if _, serr := os.Stat(keyPath); !os.IsNotExist(serr) {
		t.Fatal("a key file was created for an existing store")
	}
}

// A key file of raw bytes of the wrong length is described as such, not as "not base64".
func TestShortRawKeyFile(t *testing.T) {
	dir := privateDir(t)
	keyPath := filepath.Join(dir, "master.key")
	if err := os.WriteFile(keyPath, bytes.Repeat([]byte{0x9f}, 16), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(dir, FileName), KeyFile(keyPath), Options{})
	if err == nil || strings.Contains(err.Error(), "base64") && !strings.Contains(err.Error(), "16 bytes") {
		t.Fatalf("16-byte key file: %v", err)
	}
	if !strings.Contains(err.Error(), "16 bytes of binary data") || !strings.Contains(err.Error(), "32 raw bytes") {
		t.Fatalf("16-byte key file: %v, want it to say it holds 16 bytes where 32 are needed", err)
	}
}

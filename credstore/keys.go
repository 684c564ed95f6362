package credstore

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Environment variables and file names of the key sources (DESIGN.md).
const (
	EnvMasterKey      = "OEPROXY_MASTER_KEY"
	EnvPassphrase     = "OEPROXY_PASSPHRASE"
	EnvCredentialsDir = "CREDENTIALS_DIRECTORY" // set by systemd's LoadCredential=
	CredentialName    = "oeproxy-master-key"    // the credential's name under $CREDENTIALS_DIRECTORY
	DefaultKeyFile    = "master.key"            // under the data dir
)

// KeySource supplies the master key. Build one with ResolveKey (the configured precedence), MasterKey,
// Passphrase or KeyFile. Its String says where the key comes from, for a log line, and never reveals it.
type KeySource interface {
	String() string
	// kek derives the key-encryption key of an existing store whose KEK parameters are p.
	kek(p kdfParams) ([]byte, error)
	// fresh makes the key-encryption key and parameters for a new store, or for a rotation to this source.
	// A key file source reads its file, or creates it when it is missing and creation is allowed.
	fresh() ([]byte, kdfParams, error)
}

// KEK kinds stored in the meta bucket.
const (
	kindRaw      = "raw"      // a 32-byte master key, from the environment or a key file
	kindArgon2id = "argon2id" // a passphrase
)

// kdfParams is how the master key becomes the KEK; stored in the meta bucket (not secret).
type kdfParams struct {
	Kind      string `json:"kind"`
	Salt      []byte `json:"salt,omitempty"`
	Time      uint32 `json:"t,omitempty"`
	MemoryKiB uint32 `json:"m,omitempty"`
	Threads   uint8  `json:"p,omitempty"`
}

// errKind says the store was created with another kind of key than the source offers.
type errKind struct{ want string }

func (e errKind) Error() string {
	if e.want == kindArgon2id {
		return "it is protected by a passphrase, not a master key: set " + EnvPassphrase + " to that passphrase"
	}
	return "it is protected by a 32-byte master key, not a passphrase: unset " + EnvPassphrase + " and set " + EnvMasterKey +
		", or point store.key_file at its key file"
}

// Argon2Params are the argon2id costs used when a passphrase store is created or rotated. Opening a store uses
// the parameters stored in it.
type Argon2Params struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgon2 is used when Passphrase gets zero parameters: about 0.1 to 0.3 s on a laptop, more on a Pi.
var DefaultArgon2 = Argon2Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}

// Bounds on stored argon2id parameters, so that a damaged file cannot ask for absurd work or memory.
const (
	maxArgonTime   = 64
	maxArgonMemKiB = 1 << 20 // 1 GiB
	maxArgonThread = 64
	saltSize       = 16
)

// rawKeySource is a 32-byte master key held in memory.
type rawKeySource struct {
	key    []byte
	origin string
}

// MasterKey is a key source holding key (32 bytes), e.g. a new key for RotateKey.
func MasterKey(key []byte) (KeySource, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("a master key must be %d bytes, not %d", keySize, len(key))
	}
	return &rawKeySource{key: append([]byte(nil), key...), origin: "a master key given by the caller"}, nil
}

func (s *rawKeySource) String() string { return s.origin }

func (s *rawKeySource) kek(p kdfParams) ([]byte, error) {
	if p.Kind != kindRaw {
		return nil, errKind{want: p.Kind}
	}
	return s.key, nil
}

func (s *rawKeySource) fresh() ([]byte, kdfParams, error) {
	return s.key, kdfParams{Kind: kindRaw}, nil
}

// passphraseSource derives the KEK from a passphrase with argon2id.
type passphraseSource struct {
	pass   []byte
	params Argon2Params
	origin string
}

// Passphrase is a key source deriving the KEK from pass with argon2id; params apply to a new store or a
// rotation (zero means DefaultArgon2).
func Passphrase(pass string, params Argon2Params) KeySource {
	return &passphraseSource{pass: []byte(pass), params: params, origin: "a passphrase given by the caller"}
}

func (s *passphraseSource) String() string { return s.origin }

func (s *passphraseSource) kek(p kdfParams) ([]byte, error) {
	if p.Kind != kindArgon2id {
		return nil, errKind{want: p.Kind}
	}
	if len(p.Salt) < saltSize || len(p.Salt) > 64 || p.Time < 1 || p.Time > maxArgonTime ||
		p.MemoryKiB < 8 || p.MemoryKiB > maxArgonMemKiB || p.Threads < 1 || p.Threads > maxArgonThread {
		return nil, errBadParams
	}
	return argon2.IDKey(s.pass, p.Salt, p.Time, p.MemoryKiB, p.Threads, keySize), nil
}

// errBadParams: the stored argon2id parameters are out of bounds, so the meta bucket is damaged.
var errBadParams = errors.New("stored argon2id parameters are out of bounds")

func (s *passphraseSource) fresh() ([]byte, kdfParams, error) {
	a := s.params
	if a == (Argon2Params{}) {
		a = DefaultArgon2
	}
	salt, err := randomKey()
	if err != nil {
		return nil, kdfParams{}, err
	}
	p := kdfParams{Kind: kindArgon2id, Salt: salt[:saltSize], Time: a.Time, MemoryKiB: a.MemoryKiB, Threads: a.Threads}
	k, err := s.kek(p)
	if err != nil {
		return nil, kdfParams{}, fmt.Errorf("argon2id parameters %+v are out of bounds: %w", a, err)
	}
	return k, p, nil
}

// keyFileSource reads the master key from a file, creating it for a new store when allowed.
type keyFileSource struct {
	path    string
	create  bool // false for a systemd credential: it is provided read-only, never made here
	origin  string
	created bool // set when fresh created the file
}

// KeyFile is a key source reading a 32-byte key from path (raw, or base64 text). For a new store a missing
// file is created with mode 0600 and 32 random bytes.
func KeyFile(path string) KeySource {
	return &keyFileSource{path: path, create: true, origin: "key file " + path}
}

func (s *keyFileSource) String() string { return s.origin }

func (s *keyFileSource) kek(p kdfParams) ([]byte, error) {
	if p.Kind != kindRaw {
		return nil, errKind{want: p.Kind}
	}
	return readKeyFile(s.path)
}

func (s *keyFileSource) fresh() ([]byte, kdfParams, error) {
	k, err := readKeyFile(s.path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !s.create {
		return k, kdfParams{Kind: kindRaw}, err
	}
	if k, err = randomKey(); err != nil {
		return nil, kdfParams{}, err
	}
	if err := writeKeyFile(s.path, k, true); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process made it first: use theirs
			return s.fresh()
		}
		return nil, kdfParams{}, err
	}
	s.created = true
	return k, kdfParams{Kind: kindRaw}, nil
}

// ResolveKey picks the master key source, first found wins: OEPROXY_MASTER_KEY (base64 of 32 bytes),
// OEPROXY_PASSPHRASE (argon2id), then the key file: keyFile (store.key_file) when set, else
// $CREDENTIALS_DIRECTORY/oeproxy-master-key when that file exists (systemd LoadCredential=), else
// <dataDir>/master.key. env is os.Getenv in production. Nothing is read or created here: a key file is read
// by Open, and created only for a new store, so no key file is ever created while an environment key is set.
func ResolveKey(env func(string) string, keyFile string, dataDir string) (KeySource, error) {
	if v := env(EnvMasterKey); v != "" {
		k, err := parseKeyText(v)
		if err != nil {
			return nil, fmt.Errorf("%s is set but %v: generate a key with `head -c 32 /dev/urandom | base64`, "+
				"or unset it to use the key file", EnvMasterKey, err)
		}
		return &rawKeySource{key: k, origin: "environment variable " + EnvMasterKey}, nil
	}
	if v := env(EnvPassphrase); v != "" {
		return &passphraseSource{pass: []byte(v), origin: "environment variable " + EnvPassphrase}, nil
	}
	credDir := env(EnvCredentialsDir)
	if keyFile == "" && credDir != "" {
		p := filepath.Join(credDir, CredentialName)
		if _, err := os.Stat(p); err == nil {
			keyFile = p
		}
	}
	if keyFile == "" {
		if dataDir == "" {
			return nil, errors.New("no master key: set " + EnvMasterKey + " or " + EnvPassphrase +
				", or give store.key_file or data_dir")
		}
		keyFile = filepath.Join(dataDir, DefaultKeyFile)
	}
	if credDir != "" && filepath.Dir(filepath.Clean(keyFile)) == filepath.Clean(credDir) {
		return &keyFileSource{path: keyFile, origin: "systemd credential " + keyFile}, nil
	}
	return KeyFile(keyFile), nil
}

// parseKeyText decodes a base64 master key (standard or URL alphabet, padded or not) of 32 bytes.
func parseKeyText(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	encodings := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}
	for _, enc := range encodings {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != keySize {
				return nil, fmt.Errorf("does not hold %d bytes (it holds %d)", keySize, len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("is not base64")
}

// readKeyFile reads a key file: exactly 32 raw bytes, or base64 text of 32 bytes. A file that group or others
// may read is refused: the key would not be secret.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("key file %s does not exist: %w", path, err)
		}
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s can be read or written by group or others (mode %04o): run `chmod 600 %s` "+
			"(and check who could have copied it)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if len(b) == keySize {
		return b, nil
	}
	if !isText(b) {
		return nil, fmt.Errorf("key file %s holds %d bytes of binary data, but a master key is exactly %d raw bytes (or "+
			"their base64 text): it is not this store's key, or it was cut short; restore it from your backup", path, len(b), keySize)
	}
	k, err := parseKeyText(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s must hold %d raw bytes or their base64, but it %v", path, keySize, err)
	}
	return k, nil
}

// isText reports whether b looks like base64 text (printable ASCII and line ends), not raw key bytes.
func isText(b []byte) bool {
	for _, c := range b {
		if (c < ' ' || c > '~') && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

// writeKeyFile writes key to path with mode 0600 and makes it durable (file and directory fsync). exclusive
// fails with fs.ErrExist when path exists; otherwise an existing file is replaced.
func writeKeyFile(path string, key []byte, exclusive bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the key file's directory: %w", err)
	}
	if !exclusive {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replacing %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating key file: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a create, rename or remove in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

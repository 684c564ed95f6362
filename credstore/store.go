package credstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the store's file name under the data dir.
const FileName = "credentials.db"

// DefaultPath is the store's path under dataDir.
func DefaultPath(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Options tune a Store. The zero value is usable.
type Options struct {
	// LockTimeout is how long Open waits for another process to release the store. Default 1 s.
	LockTimeout time.Duration
	// PortBase is the first port Add/Put hand to a record without one (Port 0). Default 5001.
	PortBase int
	// Now stamps CreatedAt when a record has none. Default time.Now.
	Now func() time.Time
}

// Store is the open, unlocked-for-others store. Its methods are safe for concurrent use.
type Store struct {
	path string
	db   *bolt.DB
	opts Options

	mu   sync.RWMutex // guards keys and dk; RotateKey holds it exclusively
	keys KeySource
	dk   *dataKeys

	keyFileCreated string
	closeOnce      sync.Once
	closeErr       error

	// testHook, when set, is called at each named step of RotateKey; an error aborts there like a crash.
	testHook func(step string) error
}

// Bucket and meta key names.
var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	keyFormat     = []byte("format")
	keyKDF        = []byte("kdf")
	keyKCV        = []byte("kcv")
	keyDEK        = []byte("dek")
	keySum        = []byte("sum")
)

// formatVersion is the layout of the meta bucket.
const formatVersion = 1

// Open opens (creating when missing) the store at path, normally DefaultPath(dataDir) (a path that is a
// directory is taken as the data dir), with the master key from keys. It makes the directory 0700 and the file
// 0600, takes the store's lock (ErrInUse after Options.LockTimeout), and checks the key (ErrWrongKey, ErrNoKey)
// and the file (ErrCorrupt). A failed Open does not change the file (a file it had to create, it removes).
func Open(path string, keys KeySource, opts Options) (*Store, error) {
	if keys == nil {
		return nil, errors.New("credstore.Open: no key source")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = DefaultPath(path)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.PortBase <= 0 {
		opts.PortBase = 5001
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := ensurePerm(filepath.Dir(path), 0o700, true); err != nil {
		return nil, err
	}
	if err := ensurePerm(path, 0o600, false); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(path)
	db, err := openBolt(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, db: db, opts: opts, keys: keys}
	if err := s.unlock(); err != nil {
		_ = db.Close()
		if errors.Is(statErr, fs.ErrNotExist) { // bbolt made the file just now: leave nothing behind
			_ = os.Remove(path)
		}
		return nil, err
	}
	if err := writePid(s.pidPath()); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// ensurePerm creates a directory (mkdir) or tightens an existing path to at most perm.
func ensurePerm(path string, perm os.FileMode, mkdir bool) error {
	if mkdir {
		if err := os.MkdirAll(path, perm); err != nil {
			return fmt.Errorf("creating the data directory: %w", err)
		}
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if fi.Mode().Perm()&^perm != 0 {
		if err := os.Chmod(path, fi.Mode().Perm()&perm); err != nil {
			return fmt.Errorf("%s is open to group or others (mode %04o) and could not be restricted: %w; run `chmod %o %s`",
				path, fi.Mode().Perm(), err, perm, path)
		}
	}
	return nil
}

// openBolt opens the bbolt file for writing, after probing it read-only: bbolt trusts the file, and a damaged
// one can make it panic while loading its free list, or fault on its memory map (a truncated file). A panic in
// bbolt.Open would leave the file mapped, and the mapping keeps the lock, so the probe checks what it can in
// read-only mode first (the high-water mark against the file size, then bbolt's own consistency check, which
// recovers its panics) and closes cleanly. Damage found becomes ErrCorrupt; the file is not written.
func openBolt(path string, timeout time.Duration) (*bolt.DB, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		db, err := boltOpen(path, &bolt.Options{Timeout: timeout, ReadOnly: true})
		if err != nil {
			return nil, err
		}
		err = probe(path, db)
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing %s: %w", path, cerr)
		}
		if err != nil {
			return nil, err
		}
	}
	return boltOpen(path, &bolt.Options{Timeout: timeout})
}

// boltOpen is bolt.Open with its errors and panics mapped to ErrInUse, ErrCorrupt or a wrapped OS error.
func boltOpen(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	var file *os.File
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	defer func() {
		if p := recover(); p != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, corruptErr(path, fmt.Errorf("bbolt: %v", p))
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err = bolt.Open(path, 0o600, opts)
	var pathErr *fs.PathError
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, inUseErr(path)
	case errors.As(err, &pathErr):
		return nil, fmt.Errorf("opening the store: %w", err)
	default: // invalid meta pages, checksum, version, "file size too small", ...
		return nil, corruptErr(path, err)
	}
}

// probe checks an open read-only database: its pages must fit in the file, and bbolt's Check must pass.
func probe(path string, db *bolt.DB) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = corruptErr(path, fmt.Errorf("bbolt: %v", p))
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return db.View(func(tx *bolt.Tx) error {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.Size() < tx.Size() {
			return corruptErr(path, fmt.Errorf("file is %d bytes but its pages need %d: it was truncated", fi.Size(), tx.Size()))
		}
		var first error
		for err := range tx.Check() { // drain: Check's goroutine ends when its channel is read to the end
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return corruptErr(path, first)
		}
		return nil
	})
}

func corruptErr(path string, cause error) error {
	return newErr(ErrCorrupt, cause, fmt.Sprintf("%s is damaged (%v). The file was not changed: restore it from a backup, "+
		"or move it aside and connect your printers again", path, cause))
}

func inUseErr(path string) error {
	pid := "unknown"
	if b, err := os.ReadFile(path + ".pid"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			pid = strconv.Itoa(n)
		}
	}
	return newErr(ErrInUse, nil, fmt.Sprintf("store in use by another oeproxy (pid %s): %s is locked; stop that process "+
		"(while `oeproxy serve` runs, commands go through its control socket) and try again", pid, path))
}

// pidPath is the sidecar naming the process that holds the lock (read by inUseErr without the lock).
func (s *Store) pidPath() string { return s.path + ".pid" }

func writePid(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// meta is the content of the meta bucket.
type meta struct {
	kdf      kdfParams
	kcv, dek []byte
}

func metaSum(kdfJSON, kcv, dek []byte) []byte {
	h := sha256.New()
	for _, b := range [][]byte{{formatVersion}, kdfJSON, kcv, dek} {
		_ = binary.Write(h, binary.BigEndian, uint32(len(b)))
		h.Write(b)
	}
	return h.Sum(nil)
}

func (s *Store) readMeta(tx *bolt.Tx) (*meta, error) {
	b := tx.Bucket(bucketMeta)
	if b == nil {
		return nil, nil
	}
	format, kdfJSON, kcv, dek, sum := b.Get(keyFormat), b.Get(keyKDF), b.Get(keyKCV), b.Get(keyDEK), b.Get(keySum)
	if len(format) == 1 && format[0] > formatVersion {
		return nil, fmt.Errorf("%s was written by a newer oeproxy (format %d): upgrade oeproxy", s.path, format[0])
	}
	if !bytes.Equal(format, []byte{formatVersion}) || kdfJSON == nil || kcv == nil || dek == nil ||
		!bytes.Equal(sum, metaSum(kdfJSON, kcv, dek)) {
		return nil, corruptErr(s.path, errors.New("its key metadata fails its checksum"))
	}
	m := &meta{kcv: bytes.Clone(kcv), dek: bytes.Clone(dek)}
	if err := json.Unmarshal(kdfJSON, &m.kdf); err != nil {
		return nil, corruptErr(s.path, fmt.Errorf("its key metadata: %w", err))
	}
	return m, nil
}

// writeMeta stores the KEK parameters, the key check value and the DEK sealed under kek.
func writeMeta(tx *bolt.Tx, p kdfParams, kek, dek []byte) error {
	b, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	kdfJSON, err := json.Marshal(p)
	if err != nil {
		return err
	}
	kcv, err := seal(kek, kcvConstant, adKCV)
	if err != nil {
		return err
	}
	sealedDEK, err := seal(kek, dek, adDEK)
	if err != nil {
		return err
	}
	for _, kv := range [][2][]byte{{keyFormat, {formatVersion}}, {keyKDF, kdfJSON}, {keyKCV, kcv},
		{keyDEK, sealedDEK}, {keySum, metaSum(kdfJSON, kcv, sealedDEK)}} {
		if err := b.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// unlock initialises a new store, or opens the DEK of an existing one.
func (s *Store) unlock() error {
	var m *meta
	var hasRecords bool
	err := s.view(func(tx *bolt.Tx) (err error) {
		hasRecords = tx.Bucket(bucketRecords) != nil
		m, err = s.readMeta(tx)
		return err
	})
	if err != nil {
		return err
	}
	if m == nil {
		if hasRecords {
			return corruptErr(s.path, errors.New("its key metadata is missing"))
		}
		return s.initialise()
	}
	if !hasRecords {
		return corruptErr(s.path, errors.New("its records bucket is missing"))
	}
	kek, err := s.keys.kek(m.kdf)
	var kind errKind
	switch {
	case errors.As(err, &kind):
		return newErr(ErrWrongKey, err, fmt.Sprintf("the master key from %s does not open %s: %v. The file was not changed",
			s.keys, s.path, err))
	case errors.Is(err, errBadParams):
		return corruptErr(s.path, err)
	case errors.Is(err, fs.ErrNotExist):
		if kf, ok := s.keys.(*keyFileSource); ok && s.tryNewKeyFile(kf, m) == nil {
			return nil
		}
		return newErr(ErrNoKey, err, fmt.Sprintf("%v, but %s exists and was made with a master key: restore that key file from "+
			"your backup, or set %s or %s to the key it was made with. The store was not changed",
			err, s.path, EnvMasterKey, EnvPassphrase))
	case err != nil:
		return err
	}
	dek, err := checkKEK(kek, m)
	if errors.Is(err, ErrWrongKey) {
		if kf, ok := s.keys.(*keyFileSource); ok && s.tryNewKeyFile(kf, m) == nil {
			return nil
		}
		return newErr(ErrWrongKey, nil, fmt.Sprintf("the master key from %s does not open %s: set %s or %s to the key this store "+
			"was made with, or point store.key_file at its key file (to start over instead, move the file aside and connect "+
			"your printers again). The file was not changed", s.keys, s.path, EnvMasterKey, EnvPassphrase))
	}
	if err != nil {
		return corruptErr(s.path, err)
	}
	if s.dk, err = deriveDataKeys(dek); err != nil {
		return err
	}
	if kf, ok := s.keys.(*keyFileSource); ok {
		// A <key file>.new beside a key file that opens the store is left from a rotation that never committed.
		_ = os.Remove(kf.path + ".new")
	}
	return nil
}

// checkKEK opens the key check value and the DEK. Both failing means a wrong key; one failing means damage
// (the meta checksum matched, so the values are as written: this is belt and braces).
func checkKEK(kek []byte, m *meta) ([]byte, error) {
	kcv, kcvErr := open(kek, m.kcv, adKCV)
	dek, dekErr := open(kek, m.dek, adDEK)
	switch {
	case kcvErr != nil && dekErr != nil:
		return nil, ErrWrongKey
	case kcvErr != nil || !bytes.Equal(kcv, kcvConstant):
		return nil, errors.New("its key check value is damaged")
	case dekErr != nil || len(dek) != keySize:
		return nil, errors.New("its sealed data key is damaged")
	}
	return dek, nil
}

// tryNewKeyFile completes a rotation that committed the store but crashed before renaming <key file>.new over
// the key file: if the .new key opens the store, it becomes the key file.
func (s *Store) tryNewKeyFile(kf *keyFileSource, m *meta) error {
	newPath := kf.path + ".new"
	kek, err := readKeyFile(newPath)
	if err != nil {
		return err
	}
	dek, err := checkKEK(kek, m)
	if err != nil {
		return err
	}
	if err := os.Rename(newPath, kf.path); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(kf.path)); err != nil {
		return err
	}
	s.dk, err = deriveDataKeys(dek)
	return err
}

// initialise writes the meta bucket of a new store, creating the key file first when the source is one.
func (s *Store) initialise() error {
	kek, p, err := s.keys.fresh()
	if err != nil {
		return fmt.Errorf("making the master key for the new store %s: %w", s.path, err)
	}
	if kf, ok := s.keys.(*keyFileSource); ok && kf.created {
		s.keyFileCreated = kf.path
	}
	dek, err := randomKey()
	if err != nil {
		return err
	}
	if s.dk, err = deriveDataKeys(dek); err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketRecords); err != nil {
			return err
		}
		return writeMeta(tx, p, kek, dek)
	})
}

// view and update run a bbolt transaction, turning a panic or memory fault inside bbolt (a damaged page) into
// ErrCorrupt; bbolt rolls the transaction back, so the file is not changed.
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = corruptErr(s.path, fmt.Errorf("bbolt: %v", p))
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return s.db.View(fn)
}

func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = corruptErr(s.path, fmt.Errorf("bbolt: %v", p))
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return s.db.Update(fn)
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// KeySource says where the master key came from (for a log line; it never holds the key).
func (s *Store) KeySource() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys.String()
}

// KeyFileCreated is the key file Open created for a new store, or "". The caller should tell the user to back
// it up: without it the store cannot be opened.
func (s *Store) KeyFileCreated() string { return s.keyFileCreated }

// Close releases the lock. Safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if b, err := os.ReadFile(s.pidPath()); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
			_ = os.Remove(s.pidPath())
		}
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

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
	// NoCreate makes Open of a missing store fail with ErrNoStore, creating nothing (no directory, file or key):
	// for commands that only read.
	NoCreate bool
	// AllowSymlinks lets the data directory and the store file be symbolic links wherever they are (config
	// store.allow_symlinks). Without it a store file that is a link is refused, and so is a data directory that
	// is a link someone other than this user or root could have made.
	AllowSymlinks bool
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
	pidErr         error
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

// Open opens the store at path, normally DefaultPath(dataDir) (a directory not named FileName is taken as the
// data dir), with the master key from keys. Only a missing
// file becomes a new store (unless Options.NoCreate): it is built under a temporary name and linked into
// place whole, so a failure (a full disk) leaves nothing behind. An empty file, a directory or anything else at
// path that is not a valid store is ErrCorrupt and is left alone. The data directory must belong to this user
// and be closed to others (ErrUnsafe; a new one is made 0700, an existing one is never changed), and neither it
// nor the file may be a planted symbolic link (see Options.AllowSymlinks). Open takes the store's lock
// (ErrInUse after Options.LockTimeout) and checks the key (ErrWrongKey, ErrNoKey) and the file (ErrCorrupt).
// A failed Open does not change the file.
func Open(path string, keys KeySource, opts Options) (*Store, error) {
	if keys == nil {
		return nil, errors.New("credstore.Open: no key source")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() && filepath.Base(path) != FileName {
		path = DefaultPath(path) // a data directory; a directory named like the store is a damaged store
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
	if err := checkDataDir(filepath.Dir(path), !opts.NoCreate, opts.AllowSymlinks); err != nil {
		return nil, err
	}
	exists, err := checkStoreFile(path, opts.AllowSymlinks)
	if err != nil {
		return nil, err
	}
	var made *Store
	if !exists {
		if opts.NoCreate {
			return nil, noStoreErr(path)
		}
		if made, err = create(path, keys, opts); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, db: db, opts: opts, keys: keys}
	if made != nil {
		// This process just made the file under these keys: no need to derive them again.
		s.dk, s.keyFileCreated = made.dk, made.keyFileCreated
	} else if err := s.unlock(); err != nil {
		_ = db.Close()
		return nil, err
	}
	// The pid file only improves the "in use" message: failing to write it (a full disk) must not stop oeproxy.
	s.pidErr = writePid(s.pidPath())
	return s, nil
}

// PidFileErr is why the pid file beside the store could not be written, or nil. The store works without it;
// the caller may warn.
func (s *Store) PidFileErr() error { return s.pidErr }

// create builds a new store at a temporary name in path's directory and links it to path. It returns the
// (closed) store it built, for its keys, or nil when another process created path first. On failure nothing
// is left: not the temporary file, nor a key file made for it.
func create(path string, keys KeySource, opts Options) (made *Store, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+FileName+".new-*")
	if err != nil {
		return nil, fmt.Errorf("creating the store in %s: %w", dir, err)
	}
	tmp := f.Name()
	_ = f.Close()
	defer os.Remove(tmp)
	s := &Store{path: path, opts: opts, keys: keys}
	s.db, err = boltOpen(tmp, &bolt.Options{Timeout: opts.LockTimeout, OpenFile: openFile(tmp, true, false)})
	if err == nil {
		err = s.initialise()
		if cerr := s.db.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return nil, nil // made by another process in the same instant: Open opens theirs
		}
		if err != nil && !errors.Is(err, fs.ErrPermission) {
			// A file system without hard links: a rename, after a last look (a race here could only replace a
			// store made in the same instant, which has no printer yet).
			if _, lerr := os.Lstat(path); errors.Is(lerr, fs.ErrNotExist) {
				err = os.Rename(tmp, path)
			}
		}
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		if s.keyFileCreated != "" {
			_ = os.Remove(s.keyFileCreated) // it protects nothing
		}
		return nil, fmt.Errorf("creating the store %s: %w (nothing was left behind)", path, err)
	}
	return s, nil
}

// openFile is the file opener handed to bbolt: it does not follow a symbolic link at path (unless followLinks:
// the user allowed them), refuses what is not a regular file or is empty (unless allowEmpty: a store being
// made), and restricts a file open to others to 0600 through the open descriptor, never by name.
func openFile(path string, allowEmpty, followLinks bool) func(string, int, os.FileMode) (*os.File, error) {
	return func(name string, flag int, perm os.FileMode) (*os.File, error) {
		if !followLinks {
			flag |= oNoFollow
		}
		f, err := os.OpenFile(name, flag, perm)
		if err != nil {
			if fi, lerr := os.Lstat(name); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return nil, newErr(ErrUnsafe, err, fmt.Sprintf("the store %s became a symbolic link while it was "+
					"being opened: check who else can write to its directory", path))
			}
			return nil, err
		}
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = damagedErr(path, "it is not a regular file")
		} else if err == nil && fi.Size() == 0 && !allowEmpty {
			err = damagedErr(path, "it is empty (0 bytes)")
		} else if err == nil && checkPerms && fi.Mode().Perm()&0o077 != 0 {
			err = f.Chmod(fi.Mode().Perm() & 0o600)
		}
		if err != nil {
			_ = f.Close()
			return nil, err
		}
		return f, nil
	}
}

// openBolt opens the bbolt file for writing, after probing it read-only: bbolt trusts the file, and a damaged
// one can make it panic while loading its free list, or fault on its memory map (a truncated file). A panic in
// bbolt.Open would leave the file mapped, and the mapping keeps the lock, so the probe checks what it can in
// read-only mode first (the high-water mark against the file size, then bbolt's own consistency check, which
// recovers its panics) and closes cleanly. Damage found becomes ErrCorrupt; the file is not written.
func openBolt(path string, opts Options) (*bolt.DB, error) {
	open := openFile(path, false, opts.AllowSymlinks)
	db, err := boltOpen(path, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: true, OpenFile: open})
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
	return boltOpen(path, &bolt.Options{Timeout: opts.LockTimeout, OpenFile: open})
}

// boltOpen is bolt.Open with its errors and panics mapped to ErrInUse, ErrCorrupt or a wrapped OS error.
func boltOpen(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	var file *os.File
	openFile := opts.OpenFile
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := openFile(name, flag, perm)
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
	var storeErr *storeError
	switch {
	case err == nil:
		return db, nil
	case errors.As(err, &storeErr):
		return nil, err
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

func writePid(path string) (err error) {
	// A temporary name no one can predict, renamed over the pid file: a link planted at a fixed name is never
	// written through.
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
			err = fmt.Errorf("writing %s: %w", path, err)
		}
	}()
	_, err = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
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
		// Name only the kind of key the store needs: the source tried (often the default key file, which need not
		// exist) is beside the point.
		return newErr(ErrWrongKey, err, fmt.Sprintf("%s cannot be opened: %v. The file was not changed", s.path, err))
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

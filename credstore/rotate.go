package credstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Steps of RotateKey, in order, as passed to testHook. A crash at any of them leaves a store that opens with
// the old key (before "committed") or the new one (from "committed" on), with every record:
//
//	write-new-key    nothing written yet
//	new-key-written  <key file>.new is on disk (fsynced); the store is still under the old key. Open with the
//	                 old key file removes the stale .new.
//	before-commit    records re-sealed inside the transaction; rolled back, so the store is unchanged
//	committed        the store is under the new key; <key file>.new holds it but is not yet renamed. Open with
//	                 the key file source finds the old key does not open the store, tries <key file>.new, and
//	                 finishes the rename.
//	renamed          done
//
// Only rotations to a key file have the write-new-key, new-key-written and renamed steps.
const (
	stepWriteNewKey   = "write-new-key"
	stepNewKeyWritten = "new-key-written"
	stepBeforeCommit  = "before-commit"
	stepCommitted     = "committed"
	stepRenamed       = "renamed"
)

func (s *Store) hook(step string) error {
	if s.testHook == nil {
		return nil
	}
	return s.testHook(step)
}

// RotateKey re-encrypts the store under newKeys: a new data key, every record re-sealed, and the key check value,
// KEK parameters (a new passphrase salt) and sealed data key written in one bbolt transaction. It also switches
// the source: Passphrase(...) to a passphrase, MasterKey(...) to an environment key, KeyFile(path) to a key
// file. Rotating to a key file always writes a new random key: first to <path>.new (fsynced), then the
// transaction commits, then <path>.new is renamed over <path>. A path other than the current key file must not
// exist yet (it could be another store's key). After a switch away from a key file, the old file is left in
// place: it no longer opens anything and the caller may delete it.
func (s *Store) RotateKey(newKeys KeySource) error {
	if newKeys == nil {
		return errors.New("RotateKey: no key source")
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	var kek []byte
	var params kdfParams
	var kf *keyFileSource
	if src, ok := newKeys.(*keyFileSource); ok {
		if !src.create {
			return fmt.Errorf("cannot rotate to %s: a systemd credential is read-only; rotate to a key file or %s, "+
				"then install the new key as the credential", src, EnvMasterKey)
		}
		kf = src
		cur, same := s.keys.(*keyFileSource)
		same = same && samePath(cur.path, src.path)
		if _, err := os.Lstat(src.path); !same && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot rotate to key file %s: it already exists (it may be another store's key); "+
				"move it away or choose another path", src.path)
		}
		if err := s.hook(stepWriteNewKey); err != nil {
			return err
		}
		var err error
		if kek, err = randomKey(); err != nil {
			return err
		}
		if err := writeKeyFile(src.path+".new", kek, false); err != nil {
			return fmt.Errorf("rotating the master key: %w; the store was not changed", err)
		}
		if err := s.hook(stepNewKeyWritten); err != nil {
			return err
		}
		params = kdfParams{Kind: kindRaw}
	} else {
		var err error
		if kek, params, err = newKeys.fresh(); err != nil {
			return fmt.Errorf("rotating the master key: %w; the store was not changed", err)
		}
	}

	dek, err := randomKey()
	if err != nil {
		return err
	}
	newDK, err := deriveDataKeys(dek)
	if err != nil {
		return err
	}
	err = s.update(func(tx *bolt.Tx) error {
		all, err := s.readAll(tx, s.dk)
		if err != nil {
			return err
		}
		// Bucket keys depend on the DEK, so the bucket is rebuilt rather than updated in place.
		if err := tx.DeleteBucket(bucketRecords); err != nil {
			return err
		}
		b, err := tx.CreateBucket(bucketRecords)
		if err != nil {
			return err
		}
		for _, e := range all {
			bkey, value, err := newDK.sealRecord(e.rec)
			if err != nil {
				return err
			}
			if err := b.Put(bkey, value); err != nil {
				return err
			}
		}
		if err := writeMeta(tx, params, kek, dek); err != nil {
			return err
		}
		return s.hook(stepBeforeCommit)
	})
	if err != nil {
		return fmt.Errorf("rotating the master key of %s: %w; the store still opens with the old key", s.path, err)
	}
	s.keys, s.dk = newKeys, newDK
	if err := s.hook(stepCommitted); err != nil {
		return err
	}
	if kf != nil {
		if err := os.Rename(kf.path+".new", kf.path); err != nil {
			return fmt.Errorf("the store %s is now under the new key in %s.new, but renaming it to %s failed: %w; "+
				"rename it by hand", s.path, kf.path, kf.path, err)
		}
		if err := syncDir(filepath.Dir(kf.path)); err != nil {
			return err
		}
		if err := s.hook(stepRenamed); err != nil {
			return err
		}
	}
	return nil
}

func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// Package credstore owns the encrypted store of App Connections (one record per printer) and the master key
// that protects it. It must not know about HTTP, log, or hand a secret to anything but its caller.
//
// # File layout
//
// One bbolt file, <data_dir>/credentials.db (0600, directory 0700), with two buckets:
//
//   - "meta": the format version, how the master key is turned into a key-encryption key (KEK): "raw" for a
//     32-byte key from OEPROXY_MASTER_KEY or a key file, "argon2id" with its salt and parameters for
//     OEPROXY_PASSPHRASE; a key check value (a known constant sealed under the KEK); the data key (DEK) sealed
//     under the KEK; and a SHA-256 of those values so that a damaged meta bucket reads as "corrupt", not as
//     "wrong key".
//   - "records": one entry per printer. The bucket key is HMAC-SHA256(name) under a key derived from the DEK, so
//     the file does not reveal printer names. The value is version byte || nonce || XChaCha20-Poly1305
//     ciphertext of the record (JSON, padded with spaces to a multiple of 256 bytes so lengths leak little).
//     The associated data is the version byte and the bucket key, i.e. the record's name and schema version:
//     a value moved to another name, or presented as another schema version, fails authentication.
//
// Rotation (Store.RotateKey) draws a new DEK, re-seals every record, and writes the new KEK parameters, key
// check value and sealed DEK in one bbolt transaction. bbolt does not zero freed pages, so copies of the old
// sealed values can remain in free pages until they are reused; they open only with the old master key.
//
// # Master key sources
//
// ResolveKey applies DESIGN.md's precedence: OEPROXY_MASTER_KEY, then OEPROXY_PASSPHRASE, then the key file
// (store.key_file, else $CREDENTIALS_DIRECTORY/oeproxy-master-key when present, else <data_dir>/master.key). A key
// file is created (0600, 32 random bytes) only by Open of a new store, never for an existing store, never under
// $CREDENTIALS_DIRECTORY, and never while an environment key is set (that source wins first). A key file that
// group or others can access is refused. Raw key sources (environment and key file) are interchangeable: the
// same 32 bytes open the store from either.
//
// A rotation to a key file writes <file>.new, commits the store, then renames. If a crash leaves the store under
// the key in <file>.new, Open with that key file source notices that <file> does not open the store, opens it
// with <file>.new and finishes the rename; a <file>.new beside a key file that does open the store is a leftover
// of a rotation that never committed, and Open removes it.
//
// # Lock and pid
//
// bbolt holds an exclusive flock on the file while a Store is open; a second Open waits at most
// Options.LockTimeout (1 s by default) and then fails with ErrInUse. The holder writes its pid to a sidecar file,
// credentials.db.pid, after taking the lock, and removes it on Close; the sidecar is read without the lock, so
// the pid it names may be stale in the instant between two processes, never while a holder runs.
package credstore

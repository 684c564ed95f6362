package credstore

import "errors"

// Sentinel errors; test with errors.Is. The errors returned carry a full message that names the file and what
// the user can do next.
var (
	// ErrInUse: another process holds the store's lock.
	ErrInUse = errors.New("store in use by another oeproxy")
	// ErrWrongKey: the master key does not open the store. The file was not changed.
	ErrWrongKey = errors.New("the master key does not open the store")
	// ErrCorrupt: the file (or a record) fails its integrity checks. The file was not changed.
	ErrCorrupt = errors.New("the store is damaged")
	// ErrNotFound: no printer of that name.
	ErrNotFound = errors.New("no such printer")
	// ErrExists: the name or the port is taken by another printer. Errors matching ErrNameTaken or
	// ErrPortTaken match it too.
	ErrExists = errors.New("printer name or port taken")
	// ErrNameTaken: a printer of that name exists.
	ErrNameTaken = errors.New("printer name taken")
	// ErrPortTaken: another printer uses that port.
	ErrPortTaken = errors.New("port taken")
	// ErrInvalid: a record or argument is malformed (bad name, port, route).
	ErrInvalid = errors.New("invalid printer record")
	// ErrNoKey: the key source has no key for an existing store (a key file is missing).
	ErrNoKey = errors.New("master key not found")
	// ErrNoStore: Open with Options.NoCreate found no store (nothing was created).
	ErrNoStore = errors.New("no store")
	// ErrUnsafe: the data directory or the store's path could let another user read or replace the store (open
	// to others, owned by someone else, a planted symbolic link). Nothing was changed.
	ErrUnsafe = errors.New("the store's location is not safe")
	// ErrDuplicate: the App Connection is stored already, under another name.
	ErrDuplicate = errors.New("App Connection stored already")
)

// storeError carries a user-facing message and the sentinel it matches.
type storeError struct {
	kind  error
	msg   string
	cause error
}

func (e *storeError) Error() string { return e.msg }
func (e *storeError) Is(target error) bool {
	return target == e.kind || target == ErrExists && (e.kind == ErrNameTaken || e.kind == ErrPortTaken || e.kind == ErrDuplicate)
}
func (e *storeError) Unwrap() error { return e.cause }

func newErr(kind error, cause error, msg string) error {
	return &storeError{kind: kind, msg: msg, cause: cause}
}

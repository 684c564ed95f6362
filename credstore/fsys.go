package credstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkDataDir makes sure dir is a directory only its owner can use, owned by this user (root may use any), and
// not a symbolic link someone else could have planted. create makes a missing one with mode 0700; without it
// a missing directory is ErrNoStore. An existing directory's mode is never changed: one that is open to others
// (a home directory, /tmp) may hold files other users can replace, so it is refused with the command that fixes
// it, as ssh and gpg do.
func checkDataDir(dir string, create, allowSymlinks bool) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return noStoreErr(filepath.Join(dir, FileName))
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return mkdirErr(dir, err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return lookErr(dir, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if !allowSymlinks && !trustedLink(dir, fi) {
			return newErr(ErrUnsafe, nil, fmt.Sprintf("the data directory %s is a symbolic link in a directory others can "+
				"write to, so someone else may have planted it: point --data-dir (data_dir) at the real directory, "+
				"or set store.allow_symlinks: true if you made this link yourself", dir))
		}
		if fi, err = os.Stat(dir); err != nil {
			return fmt.Errorf("checking the data directory %s (a symbolic link): %w", dir, err)
		}
	}
	if !fi.IsDir() {
		return newErr(ErrUnsafe, nil, fmt.Sprintf("the data directory %s is not a directory: point --data-dir (data_dir) "+
			"at a directory", dir))
	}
	if !checkPerms {
		return nil
	}
	if owner, me := ownerOf(fi), euid(); owner >= 0 && owner != me && me != 0 {
		return newErr(ErrUnsafe, nil, fmt.Sprintf("the data directory %s belongs to %s, not to you (%s): run the command as "+
			"its owner (`sudo -u %s oeproxy ...`), or choose a directory of your own with --data-dir", dir,
			userName(owner), userName(me), loginName(owner)))
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return newErr(ErrUnsafe, nil, fmt.Sprintf("the data directory %s is open to group or others (mode %04o), so they "+
			"could read or replace the store: run `chmod 700 %s` if it holds only oeproxy's files, or choose another "+
			"directory with --data-dir (oeproxy does not change an existing directory's mode)", dir, perm, dir))
	}
	return nil
}

// trustedLink reports whether the symbolic link at path, described by fi, could only have been made by this
// user or root: the link belongs to one of them, and so does the directory holding it, which nobody else may
// write to. systemd's DynamicUser= state directories are such links (/var/lib/oeproxy -> private/oeproxy).
func trustedLink(path string, fi fs.FileInfo) bool {
	if !checkPerms {
		return false
	}
	me := euid()
	ok := func(uid int) bool { return uid == 0 || uid == me }
	if !ok(ownerOf(fi)) {
		return false
	}
	parent, err := os.Stat(filepath.Dir(path))
	return err == nil && ok(ownerOf(parent)) && parent.Mode().Perm()&0o022 == 0
}

// lookErr explains a data directory that cannot even be looked at: a directory on its path belongs to another
// user who does not let others in (a service's /var/lib/oeproxy, another user's home).
func lookErr(dir string, err error) error {
	if !errors.Is(err, fs.ErrPermission) || !checkPerms {
		return fmt.Errorf("checking the data directory %s: %w", dir, err)
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if fi, serr := os.Stat(p); serr == nil {
			owner := ownerOf(fi)
			return newErr(ErrUnsafe, err, fmt.Sprintf("cannot look into the data directory %s: %s belongs to %s (mode %04o) "+
				"and you (%s) may not enter it: run the command as its owner (`sudo -u %s oeproxy ...`), or choose a "+
				"directory of your own with --data-dir", dir, p, userName(owner), fi.Mode().Perm(), userName(euid()), loginName(owner)))
		}
		if filepath.Dir(p) == p {
			return fmt.Errorf("checking the data directory %s: %w", dir, err)
		}
	}
}

// mkdirErr explains a data directory that cannot be created, naming who owns the directory in the way.
func mkdirErr(dir string, err error) error {
	if !errors.Is(err, fs.ErrPermission) || !checkPerms {
		return fmt.Errorf("creating the data directory %s: %w", dir, err)
	}
	p := filepath.Dir(dir)
	for {
		if fi, serr := os.Stat(p); serr == nil {
			me := euid()
			return newErr(ErrUnsafe, err, fmt.Sprintf("cannot create the data directory %s: %s belongs to %s and you (%s) may "+
				"not create directories in it: create the data directory for yourself (`sudo install -d -m 700 -o %s %s`), "+
				"run the command as %s, or choose a directory of your own with --data-dir",
				dir, p, userName(ownerOf(fi)), userName(me), loginName(me), dir, loginName(ownerOf(fi))))
		}
		next := filepath.Dir(p)
		if next == p {
			return fmt.Errorf("creating the data directory %s: %w", dir, err)
		}
		p = next
	}
}

// checkStoreFile looks at the store's path before it is opened: only a missing file may become a new store.
// It returns whether the file exists.
func checkStoreFile(path string, allowSymlinks bool) (exists bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking the store %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if !allowSymlinks {
			return true, newErr(ErrUnsafe, nil, fmt.Sprintf("the store %s is a symbolic link; oeproxy does not follow it, "+
				"so that a planted link cannot make it overwrite another file: replace the link with the file it points "+
				"to, or set store.allow_symlinks: true if you made it yourself", path))
		}
		if fi, err = os.Stat(path); err != nil {
			return true, fmt.Errorf("checking the store %s (a symbolic link): %w", path, err)
		}
	}
	switch {
	case fi.IsDir():
		return true, damagedErr(path, "it is a directory, not a store file")
	case !fi.Mode().IsRegular():
		return true, damagedErr(path, "it is not a regular file")
	case fi.Size() == 0:
		return true, damagedErr(path, "it is empty (0 bytes)")
	}
	return true, nil
}

// damagedErr is ErrCorrupt for a path that is there but is no store at all: it is never re-created over.
func damagedErr(path, what string) error {
	return newErr(ErrCorrupt, nil, fmt.Sprintf("%s is damaged: %s. oeproxy did not change it and will not create a new "+
		"store over it: restore it from a backup, or, if no printer was ever stored in it, move it aside "+
		"(`mv %s %s.damaged`) and connect your printers again", path, what, path, path))
}

func noStoreErr(path string) error {
	return newErr(ErrNoStore, nil, fmt.Sprintf("no store at %s: no printer has been connected with this data directory "+
		"(`oeproxy connect` adds one; --data-dir chooses another directory)", path))
}

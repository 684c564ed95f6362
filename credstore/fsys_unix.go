//go:build unix

package credstore

import (
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// oNoFollow makes an open fail on a symbolic link instead of following it.
const oNoFollow = syscall.O_NOFOLLOW

// checkPerms is true where mode bits protect files (not on Windows, where the directory's ACL does).
const checkPerms = true

// ownerOf is the uid owning fi, or -1 when unknown.
func ownerOf(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// userName names uid for a message: "alice (uid 1000)".
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return u.Username + " (uid " + strconv.Itoa(uid) + ")"
	}
	return "uid " + strconv.Itoa(uid)
}

// loginName is the bare user name of uid for a command line, or "#uid" (sudo's form) when it has none.
func loginName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return u.Username
	}
	return "#" + strconv.Itoa(uid)
}

func euid() int { return os.Geteuid() }

//go:build unix

package control

import (
	"io/fs"
	"net"
	"os"
	"syscall"
)

// listenPrivate creates the unix socket with mode 0600 from the start (umask), so there is no moment when another
// user could connect before the chmod. The umask is process-wide; the daemon creates the socket once, at start.
func listenPrivate(path string) (net.Listener, error) {
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}

// privateToMe reports whether fi belongs to this user and nobody else may use it.
func privateToMe(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid() && fi.Mode().Perm()&0o077 == 0
}

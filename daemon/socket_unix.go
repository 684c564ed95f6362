//go:build unix

package daemon

import (
	"net"
	"syscall"
)

// listenPrivate creates the unix socket with mode 0600 from the start (umask), so there is no moment when another
// user could connect before the chmod. The umask is process-wide; the daemon creates the socket once, at start.
func listenPrivate(path string) (net.Listener, error) {
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}

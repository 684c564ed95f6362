//go:build !unix

package control

import (
	"io/fs"
	"net"
)

// listenPrivate creates the control socket; on Windows the data directory's ACL protects it (unix sockets there
// have no mode bits), and the chmod after it is best effort.
func listenPrivate(path string) (net.Listener, error) { return net.Listen("unix", path) }

// privateToMe: the directory's ACL protects it on Windows, where mode bits say nothing.
func privateToMe(fs.FileInfo) bool { return true }

//go:build !unix

package daemon

import "net"

// listenPrivate creates the control socket; on Windows the data directory's ACL protects it (unix sockets there
// have no mode bits), and the chmod after it is best effort.
func listenPrivate(path string) (net.Listener, error) { return net.Listen("unix", path) }

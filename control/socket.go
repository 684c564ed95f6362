package control

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// SocketName is the control socket's file name inside the data directory.
const SocketName = "oeproxy.sock"

// maxSocketPath is the longest unix socket path every platform binds: sun_path holds 108 bytes on Linux and 104
// on macOS and the BSDs, the final NUL included.
const maxSocketPath = 103

// SocketPath is the control socket of the daemon whose data directory is dataDir: <dataDir>/oeproxy.sock, or,
// when that path is too long for a unix socket, a short one in a private directory under the temporary
// directory (<tmp>/oeproxy-<uid>/<hash of the data dir>.sock), found the same way by the daemon and every command.
func SocketPath(dataDir string) string {
	p := filepath.Join(dataDir, SocketName)
	if len(p) <= maxSocketPath {
		return p
	}
	sum := sha256.Sum256([]byte(p))
	return filepath.Join(shortSocketDir(), hex.EncodeToString(sum[:8])+".sock")
}

func shortSocketDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("oeproxy-%d", os.Geteuid()))
}

// prepareSocketDir makes sure the directory of a short socket path is this user's own: created 0700 when
// missing, and otherwise refused unless it is a real directory owned by this user that nobody else may enter.
// Another user who made it first could otherwise stand in for the daemon and receive an App Connection's
// secrets. The data directory's own socket needs nothing: the store checks that directory.
func prepareSocketDir(path string, create bool) error {
	dir := filepath.Dir(path)
	if dir != shortSocketDir() {
		return nil
	}
	if create {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create the control socket's directory %s: %w", dir, err)
		}
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0 || !privateToMe(fi) {
		return fmt.Errorf("the control socket's directory %s is not this user's private directory (another user may "+
			"have made it): remove it, or use a shorter --data-dir so that the socket fits in it (a unix socket path "+
			"has at most %d bytes)", dir, maxSocketPath)
	}
	return nil
}

// Listen creates the control socket at path with mode 0600. A stale socket (left by a crash) is removed; a live
// one means another daemon serves this data directory.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the data directory for the control socket: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s is served by another oeproxy: stop it first", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket %s: %w", path, err)
		}
	}
	if err := prepareSocketDir(path, true); err != nil {
		return nil, err
	}
	l, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict control socket %s to its owner: %w", path, err)
	}
	return l, nil
}

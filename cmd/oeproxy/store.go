package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/daemon"
)

// storePath is the credential store inside the data directory.
func storePath(c *config.Config) string { return filepath.Join(c.DataDir, "credentials.db") }

// openStore opens the encrypted store (taking its lock).
func (a *app) openStore() (*credstore.Store, error) {
	c, err := a.config()
	if err != nil {
		return nil, err
	}
	return openStoreFor(&c.Config)
}

// openStoreFor resolves the master key (OEPROXY_MASTER_KEY, then OEPROXY_PASSPHRASE, then the key file) and
// opens the store, taking its lock.
func openStoreFor(c *config.Config) (*credstore.Store, error) {
	keys, err := credstore.ResolveKey(os.Getenv, c.Store.KeyFile, c.DataDir)
	if err != nil {
		return nil, err
	}
	return credstore.Open(storePath(c), keys, credstore.Options{PortBase: c.Listen.PortBase})
}

// control returns the running daemon's control socket, or, when no daemon runs, the store opened directly.
// Either way the user sees the same result.
func (a *app) control(ctx context.Context) (daemon.Control, func(), error) {
	c, err := a.config()
	if err != nil {
		return nil, nil, err
	}
	sock := filepath.Join(c.DataDir, daemon.SocketName)
	cl, err := daemon.DialControl(ctx, sock)
	if err == nil {
		return cl, cl.Close, nil
	}
	if !errors.Is(err, daemon.ErrNoDaemon) {
		return nil, nil, fmt.Errorf("control socket %s: %w", sock, err)
	}
	st, err := a.openStore()
	if err != nil {
		return nil, nil, err
	}
	p := &daemon.Printers{Store: st, PortBase: c.Listen.PortBase, ListenHost: c.Listen.Host,
		RelayDomain: c.OctoEverywhere.RelayDomain}
	return p, func() { st.Close() }, nil
}

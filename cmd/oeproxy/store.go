package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/internal/bootstrap"
)

// openStore opens the encrypted store (taking its lock). It creates nothing: a missing store is
// credstore.ErrNoStore, explained.
func (a *app) openStore() (*credstore.Store, error) {
	c, err := a.config()
	if err != nil {
		return nil, err
	}
	st, err := openStoreFor(&c.Config, false)
	return st, explainNoStore(c, err)
}

// openStoreFor resolves the master key (OEPROXY_MASTER_KEY, then OEPROXY_PASSPHRASE, then the key file) and
// opens the store, taking its lock. Only create (connect, serve) makes a new store.
func openStoreFor(c *config.Config, create bool) (*credstore.Store, error) {
	return bootstrap.OpenStore(c, create, os.Getenv)
}

// newKeyAdvice is what a user is told once, when oeproxy made the store's master key file: it is the one thing
// that cannot be made again.
func newKeyAdvice(keyFile string) string {
	return fmt.Sprintf("oeproxy made a new master key in %s: keep a copy somewhere safe (a password manager or a "+
		"backup); without it the stored App Connections cannot be read and every printer must be linked again", keyFile)
}

// explainNoStore adds to ErrNoStore where the system service keeps its store, when the user did not choose a
// data dir and the service's exists: `sudo oeproxy list` looks in root's home, not in the service's directory.
func explainNoStore(c *config.Loaded, err error) error {
	if !errors.Is(err, credstore.ErrNoStore) || !c.DataDirDefault || c.DataDir == config.SystemDataDir {
		return err
	}
	if _, serr := os.Lstat(config.SystemDataDir); serr != nil {
		return err
	}
	return fmt.Errorf("%w. The system service's data directory %s exists: for its printers, run the command with "+
		"`--data-dir %s` (as root or the service's user), or set OEPROXY_DATA_DIR", err, config.SystemDataDir,
		config.SystemDataDir)
}

// control returns the running daemon's control socket, or, when no daemon runs, the store opened directly.
// Either way the user sees the same result. It creates no store: with none, listing shows no printers and
// anything else says there is no store.
func (a *app) control(ctx context.Context) (control.Control, func(), error) {
	return a.openControl(ctx, false)
}

// controlCreate is control for connect: a missing store is created.
func (a *app) controlCreate(ctx context.Context) (control.Control, func(), error) {
	return a.openControl(ctx, true)
}

func (a *app) openControl(ctx context.Context, create bool) (control.Control, func(), error) {
	c, err := a.config()
	if err != nil {
		return nil, nil, err
	}
	sock := bootstrap.SocketPath(&c.Config)
	cl, err := control.Dial(ctx, sock)
	if err == nil {
		return cl, cl.Close, nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		return nil, nil, fmt.Errorf("control socket %s: %w", sock, err)
	}
	st, err := openStoreFor(&c.Config, create)
	if errors.Is(err, credstore.ErrNoStore) {
		return noStore{err: explainNoStore(c, err)}, func() {}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if kf := st.KeyFileCreated(); kf != "" {
		fmt.Fprintln(a.err, newKeyAdvice(kf))
	}
	p := &daemon.Printers{Store: st, PortBase: c.Listen.PortBase, ListenHost: c.Listen.Host,
		RelayDomain: c.OctoEverywhere.RelayDomain, DefaultRoute: func() string { return c.Route }, DetectPlatform: directDetector(&c.Config)}
	return p, func() { st.Close() }, nil
}

// noStore is the Control of a data directory without a store: no printers, and nothing to act on.
type noStore struct{ err error }

func (n noStore) List(context.Context) ([]credstore.PublicRecord, error) {
	return []credstore.PublicRecord{}, nil
}

func (n noStore) Add(context.Context, control.AddRequest) (credstore.PublicRecord, error) {
	return credstore.PublicRecord{}, n.err
}

func (n noStore) Remove(context.Context, string) (credstore.PublicRecord, error) {
	return credstore.PublicRecord{}, n.err
}

func (n noStore) Change(context.Context, string, control.Change) (credstore.PublicRecord, error) {
	return credstore.PublicRecord{}, n.err
}

func (n noStore) Status(_ context.Context, name string) ([]control.PrinterStatus, error) {
	if name == "" {
		return []control.PrinterStatus{}, nil
	}
	return nil, n.err
}

func (n noStore) LiveLink(context.Context, string, appapi.LiveLinkRequest) (*appapi.LiveLink, error) {
	return nil, n.err
}

func (n noStore) Gadget(context.Context, string) (*appapi.GadgetStatus, error) { return nil, n.err }

func (n noStore) SetWebhook(context.Context, string, string, []appapi.EventType) (control.WebhookInfo, error) {
	return control.WebhookInfo{}, n.err
}

func (n noStore) DeleteWebhook(context.Context, string) error { return n.err }

func (n noStore) TestWebhook(context.Context, string) (*appapi.WebhookTest, error) { return nil, n.err }

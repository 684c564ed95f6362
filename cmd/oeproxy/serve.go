package main

import (
	"context"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/internal/oenet"
)

func init() { commands = append(commands, newServeCmd) }

func newServeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: one local port per connected printer",
		Long: `Run the daemon. Each connected printer gets its own listener on listen.host (127.0.0.1 by default),
at the port shown by oeproxy list; point a slicer or browser at it as if it were the printer's LAN
address. The daemon also serves the control socket (<data_dir>/oeproxy.sock), through which connect,
list and remove work while it runs, and the admin listener (admin.listen: /healthz, /readyz).

SIGTERM or SIGINT drains in-flight requests and uploads for shutdown_grace, then exits 0.`,
		Example: "  oeproxy serve\n  OEPROXY_LOG_LEVEL=debug oeproxy serve --log-format json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			log, err := a.log()
			if err != nil {
				return err
			}
			return serve(cmd.Context(), &cfg.Config, log, nil)
		},
	}
}

// serve opens the store first (taking its lock, so a second daemon fails at once), then runs the daemon.
func serve(ctx context.Context, cfg *config.Config, log *zap.Logger, ready func(*daemon.Daemon)) error {
	st, err := openStoreFor(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	roots, err := oenet.LoadRoots(cfg.TLS.CAFile)
	if err != nil {
		return err
	}
	net := oenet.Options{ConnectTo: cfg.OctoEverywhere.ConnectTo, RootCAs: roots}
	if cfg.OctoEverywhere.ConnectTo != "" {
		log.Warn("dialing every OctoEverywhere host at octoeverywhere.connect_to (tests and demo only)",
			zap.String("connect_to", cfg.OctoEverywhere.ConnectTo))
	}
	d, err := daemon.New(daemon.Options{Config: *cfg, Store: st, Logger: log, Transport: net.Transport(), Ready: ready})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

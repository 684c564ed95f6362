package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/internal/bootstrap"
	"github.com/oeproxy/oeproxy/internal/logging"
)

func newServeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: one local port per connected printer",
		Long: `Run the daemon. Each connected printer gets its own listener on listen.host (127.0.0.1 by default),
at the port shown by oeproxy list; point a slicer or browser at it as if it were the printer's LAN
address. The daemon also serves the control socket (<data_dir>/oeproxy.sock), through which connect,
list and remove work while it runs, and the admin listener (admin.listen): the admin page, /metrics,
/healthz and /readyz.

SIGHUP reloads the configuration file without dropping any connection: log.level, listen.allowed_hosts,
websocket.ping_interval and websocket.max_message_bytes (for new WebSockets) and shutdown_grace take
effect at once; any other changed key is logged as needing a restart.
SIGTERM or SIGINT drains in-flight requests and uploads for shutdown_grace, then exits 0.`,
		Example: "  oeproxy serve\n  OEPROXY_LOG_LEVEL=debug oeproxy serve --log-format json\n  kill -HUP $(pidof oeproxy)   # reload the configuration file",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			// The level is kept so that SIGHUP can change it on the logger every part already holds.
			log, level, err := logging.NewWithLevel(cfg.Log.Level, cfg.Log.Format, a.err)
			if err != nil {
				return err
			}
			a.logger = log
			return serve(cmd.Context(), &cfg.Config, log, nil, &reloader{level: &level, load: func() (config.Config, error) {
				file, _ := a.root.PersistentFlags().GetString("config")
				c, err := config.Load(config.LoadOptions{File: file, Flags: a.root.PersistentFlags()})
				if err != nil {
					return config.Config{}, err
				}
				return c.Config, nil
			}})
		},
	}
}

// reloader is what SIGHUP needs: how to load the configuration again (same sources as at start) and the
// logger's level.
type reloader struct {
	load  func() (config.Config, error)
	level *zap.AtomicLevel
}

// serve opens the store first (taking its lock, so a second daemon fails at once), then runs the daemon. With
// rl, SIGHUP reloads the configuration while it runs.
func serve(ctx context.Context, cfg *config.Config, log *zap.Logger, ready func(*daemon.Daemon), rl *reloader) error {
	st, err := openStoreFor(cfg, true)
	if err != nil {
		return err
	}
	defer st.Close()
	if kf := st.KeyFileCreated(); kf != "" {
		log.Warn(newKeyAdvice(kf))
	}
	if err := st.PidFileErr(); err != nil {
		log.Warn("pid file not written (it only names this process in an \"in use\" message; printers are served)", zap.Error(err))
	}
	net, err := bootstrap.Net(cfg)
	if err != nil {
		return err
	}
	if cfg.OctoEverywhere.ConnectTo != "" {
		log.Warn("dialing every OctoEverywhere host at octoeverywhere.connect_to (tests and demo only)",
			zap.String("connect_to", cfg.OctoEverywhere.ConnectTo))
	}
	tr, wsTr := net.RelayTransports()
	// The relay transport keeps a connection ready while a printer is in use; the end of serve ends that.
	defer tr.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	d, err := daemon.New(daemon.Options{Config: *cfg, Store: st, Logger: log, Transport: tr,
		WebSocketTransport: wsTr, Ready: ready})
	if err != nil {
		return err
	}
	if rl != nil {
		stop := watchHangup(d, log, rl)
		defer stop()
	}
	return d.Run(ctx)
}

// watchHangup reloads the configuration on each SIGHUP until stop is called. A file that no longer loads is
// reported and changes nothing.
func watchHangup(d *daemon.Daemon, log *zap.Logger, rl *reloader) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-hup:
				log.Info("SIGHUP: reloading the configuration")
				next, err := rl.load()
				if err != nil {
					log.Error("configuration not reloaded: oeproxy keeps the previous one; fix the file and send SIGHUP again", zap.Error(err))
					continue
				}
				d.Reload(next, rl.level)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}

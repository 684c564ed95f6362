// Package bootstrap owns turning a configuration into the parts every command builds from it: the credential
// store (its path, its key, its lock), the TLS roots and transports for OctoEverywhere's hosts, the App API
// client and the control socket's path. serve, status, connect, mqtt, the demo and the bench take them from
// here, so that octoeverywhere.connect_to, tls.ca_file or a key variable mean the same thing everywhere.
package bootstrap

import (
	"net/http"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/control"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/internal/oenet"
)

// StorePath is the credential store inside the data directory.
func StorePath(c *config.Config) string { return filepath.Join(c.DataDir, credstore.FileName) }

// SocketPath is the running daemon's control socket for c's data directory.
func SocketPath(c *config.Config) string { return control.SocketPath(c.DataDir) }

// OpenStore resolves the master key (OEPROXY_MASTER_KEY, then OEPROXY_PASSPHRASE, then the key file, read
// through getenv; nil means os.Getenv) and opens the store, taking its lock. Only create (connect, serve)
// makes a new store.
func OpenStore(c *config.Config, create bool, getenv func(string) string) (*credstore.Store, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	keys, err := credstore.ResolveKey(getenv, c.Store.KeyFile, c.DataDir)
	if err != nil {
		return nil, err
	}
	return credstore.Open(StorePath(c), keys, credstore.Options{PortBase: c.Listen.PortBase,
		NoCreate: !create, AllowSymlinks: c.Store.AllowSymlinks})
}

// Net is how OctoEverywhere's hosts are reached: the system roots plus tls.ca_file, octoeverywhere.connect_to,
// and the cap on relay connections per printer.
func Net(c *config.Config) (oenet.Options, error) {
	roots, err := oenet.LoadRoots(c.TLS.CAFile)
	if err != nil {
		return oenet.Options{}, err
	}
	return oenet.Options{ConnectTo: c.OctoEverywhere.ConnectTo, RootCAs: roots,
		MaxConnsPerHost: c.OctoEverywhere.MaxConnections}, nil
}

// APITransport is a transport for App API calls and one-off plugin requests (no relay connection cap); close
// its idle connections when done.
func APITransport(c *config.Config) (*http.Transport, error) {
	n, err := Net(c)
	if err != nil {
		return nil, err
	}
	n.MaxConnsPerHost = 0
	return n.Transport(), nil
}

// API is an App API client of octoeverywhere.api_url; done releases its connections.
func API(c *config.Config, log *zap.Logger) (api *appapi.Client, done func(), err error) {
	tr, err := APITransport(c)
	if err != nil {
		return nil, nil, err
	}
	api, err = appapi.New(appapi.Options{BaseURL: c.OctoEverywhere.APIURL, Transport: tr, Logger: log.Named("appapi")})
	if err != nil {
		return nil, nil, err
	}
	return api, tr.CloseIdleConnections, nil
}

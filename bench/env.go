package bench

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
)

// Env is the world every path reaches: oesim's TLS relay with the fast Origin behind it, and one App Connection.
type Env struct {
	Sim    *oesim.Sim
	Origin *Origin
	Conn   *oesim.Connection
	Creds  oesim.Credentials
	// Dir is the run's scratch directory (data dir, CA file, nginx prefix, upload spool); Close removes it.
	Dir string
	// CAFile is the sim's CA in PEM, for oeproxy (tls.ca_file) and nginx (proxy_ssl_trusted_certificate).
	CAFile string
	// RelayAddr is where every path dials the relay: Sim.Addr on loopback, or the near end of a simulated WAN
	// link (Link) in front of it.
	RelayAddr string
}

// StartEnv starts the sim with the origin as a generic printer and connects it. Limits are lifted so that GiB
// transfers and long streams are not cut by the sim's model of OctoEverywhere's account limits.
func StartEnv(ctx context.Context) (*Env, error) { return StartEnvWith(ctx, EnvOptions{}) }

// EnvOptions change how the sim is reached.
type EnvOptions struct {
	// Listener is where the sim serves (oesim.Options.Listener): inside a network namespace behind a link.
	Listener net.Listener
	// HTTP2 makes the relay offer h2 in ALPN (oesim.Options.HTTP2).
	HTTP2 bool
	// PrinterLinkRate is the printer's home line (bytes/s) over which the relay passes a stored upload on
	// (oesim.Options.PrinterLinkRate); 0: no limit.
	PrinterLinkRate int64
}

// StartEnvWith is StartEnv with options.
func StartEnvWith(ctx context.Context, eo EnvOptions) (*Env, error) {
	dir, err := os.MkdirTemp("", "oeproxy-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: scratch directory: %w", err)
	}
	spool := filepath.Join(dir, "spool")
	if err := os.Mkdir(spool, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	origin := NewOrigin()
	sim, err := oesim.Start(ctx, oesim.Options{
		Printers: []oesim.PrinterOptions{{Name: "Bench Origin", Kind: oesim.KindGeneric, Handler: origin}},
		Limits: oesim.Limits{
			MaxDownloadFileSizeBytes:    1 << 42,
			MaxUploadFileSizeBytes:      1 << 42,
			MaxSingleWebcamStreamLength: 24 * time.Hour,
		},
		TempDir:         spool,
		Listener:        eo.Listener,
		HTTP2:           eo.HTTP2,
		PrinterLinkRate: eo.PrinterLinkRate,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: start oesim: %w", err)
	}
	e := &Env{Sim: sim, Origin: origin, Dir: dir, CAFile: filepath.Join(dir, "oesim-ca.pem"), RelayAddr: sim.Addr}
	e.Conn = sim.Connect(sim.Printers()[0])
	e.Creds = e.Conn.Credentials()
	if err := os.WriteFile(e.CAFile, sim.CACertPEM, 0o644); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close stops the sim and removes the scratch directory.
func (e *Env) Close() {
	_ = e.Sim.Close()
	_ = os.RemoveAll(e.Dir)
}

// BasicAuth is the Authorization value a client (or nginx) sets to reach the relay itself.
func (e *Env) BasicAuth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(e.Creds.BasicUser+":"+e.Creds.BasicPassword))
}

// Secrets lists every secret the sim issued for the connection (to search logs for).
func (e *Env) Secrets() []string {
	c := e.Creds
	return []string{c.BasicUser, c.BasicPassword, c.BearerToken, c.AppAPIToken, c.OctoPrintAPIKey,
		base64.StdEncoding.EncodeToString([]byte(c.BasicUser + ":" + c.BasicPassword))}
}

// CompletionURL is what the portal would have sent for the connection: the paste fallback of `oeproxy connect`.
func (e *Env) CompletionURL() string {
	c := e.Creds
	q := url.Values{
		"success": {"true"}, "id": {c.ID}, "url": {c.URL}, "appApiToken": {c.AppAPIToken}, "printername": {"Bench Origin"},
		"authbasichttpuser": {c.BasicUser}, "authbasichttppassword": {c.BasicPassword}, "authBearerToken": {c.BearerToken},
	}
	return e.Sim.PortalURL + "complete?" + q.Encode()
}

// directTransport reaches the relay as a client that knows the credential: it dials RelayAddr for the app host,
// keeping SNI and verifying the sim's certificate.
func (e *Env) directTransport(conns int) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, e.RelayAddr)
		},
		TLSClientConfig: &tls.Config{RootCAs: e.Sim.RootCAs, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(conns)},
		// As a browser or an app: HTTP/2 when the relay offers it (a WebSocket dial asks for HTTP/1.1 itself).
		Protocols:           h1h2(),
		DisableCompression:  true,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		ReadBufferSize:      64 << 10,
		WriteBufferSize:     64 << 10,
	}
}

func h1h2() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return p
}

// localTransport reaches a local proxy over plain HTTP.
func localTransport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		ReadBufferSize:      64 << 10,
		WriteBufferSize:     64 << 10,
	}
}

// Package oenet owns how oeproxy reaches OctoEverywhere hosts: the TLS roots it trusts and the optional
// connect-to override that dials every OctoEverywhere host at one address while keeping SNI and Host
// (like curl's --connect-to). The proxy, the App API client and the demo share it so that a test or the
// demo can point all of them at oesim with one setting.
package oenet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// Options says how to reach OctoEverywhere. The zero value dials the real hosts with the system roots.
type Options struct {
	// ConnectTo, when set ("host:port"), is dialed for every connection instead of the URL's host.
	// TLS still uses the URL's host for SNI and verification.
	ConnectTo string
	// RootCAs replaces the system roots when set.
	RootCAs *x509.CertPool
	// DialTimeout bounds the TCP connect; TLSHandshakeTimeout bounds the handshake. Zero means 10s.
	DialTimeout         time.Duration
	TLSHandshakeTimeout time.Duration
	// MaxConnsPerHost caps the connections Transport opens to one host (one printer's relay); requests beyond it
	// wait for a connection to come free. Zero: no cap. WebSocketTransport ignores it.
	MaxConnsPerHost int
}

// LoadRoots returns the system roots plus the PEM certificates in caFile (empty caFile: system roots only).
func LoadRoots(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read tls.ca_file %q: %w (check the path, or leave tls.ca_file empty to use the system roots)", caFile, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.ca_file %q holds no PEM certificate: give a PEM bundle", caFile)
	}
	return pool, nil
}

// DialContext returns a dial function that honours ConnectTo.
func (o Options) DialContext() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: orDefault(o.DialTimeout, 10*time.Second), KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if o.ConnectTo != "" {
			addr = o.ConnectTo
		}
		return d.DialContext(ctx, network, addr)
	}
}

// TLSConfig returns the client TLS configuration (roots; SNI comes from the request's host).
func (o Options) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(64)}
}

// Transport returns a new HTTP transport toward OctoEverywhere. It never adds Accept-Encoding (so bodies pass
// byte-identical) and has no response-header timeout (the relay stores a whole upload before the printer
// answers). It speaks HTTP/1.1 only, also to a relay that offers h2: WebSocket upgrades and MJPEG streams need
// HTTP/1.1, and in the WAN bench oeproxy over warm HTTP/1.1 connections loaded a printer page faster than a
// client talking h2 to the relay itself (bench/NOTES.md); oeproxy over h2 was not measured.
func (o Options) Transport() *http.Transport {
	idle := 256
	if o.MaxConnsPerHost > 0 {
		idle = min(idle, o.MaxConnsPerHost)
	}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         o.DialContext(),
		TLSClientConfig:     o.TLSConfig(),
		TLSHandshakeTimeout: orDefault(o.TLSHandshakeTimeout, 10*time.Second),
		DisableCompression:  true,
		Protocols:           http1Only(),
		// A relay connection costs a TLS handshake, so keep as many idle as a busy client used at once: with 32,
		// 64 concurrent requests made the transport dial and drop ~1 connection per 9 requests, and small-GET
		// throughput was 0.57 of what 128 gives (make bench). Idle ones still close after IdleConnTimeout.
		// With a cap, as many idle as the cap: no connection is ever closed for lack of room and reopened.
		// Without one, 1,000 clients at once dialled (and TLS-handshaked) the relay faster than it answered
		// on 2 cores, and handshakes timed out (make soak); a cap turns that into a short wait for a warm connection.
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: idle,
		MaxConnsPerHost:     o.MaxConnsPerHost,
		// Longer than the relay keeps an idle connection (oesim: 2 minutes), so that the relay, not oeproxy, ends
		// it: a user coming back after a minute or two finds a warm connection (one round trip to the first
		// answer instead of three). A connection the relay closed is noticed by its read loop and dropped.
		IdleConnTimeout:       5 * time.Minute,
		ExpectContinueTimeout: 1 * time.Second,
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
}

// WebSocketTransport returns the transport for WebSocket handshakes. A WebSocket keeps its connection for its
// whole life, so it is not counted against MaxConnsPerHost (200 open WebSockets would otherwise starve, or with
// a lower cap block, every plain request), and it keeps net/http's 4 KiB buffers instead of Transport's 32 KiB
// ones: the handshake is small, and the buffers are garbage once the connection is handed over.
func (o Options) WebSocketTransport() *http.Transport {
	t := o.Transport()
	t.MaxConnsPerHost = 0
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 0, 4 // only refused handshakes (a 6xx, a 404) leave a connection to reuse
	t.ReadBufferSize, t.WriteBufferSize = 0, 0   // net/http's 4 KiB
	return t
}

// http1Only: WebSocket upgrades and MJPEG streams need HTTP/1.1 (see Transport).
func http1Only() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	return p
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

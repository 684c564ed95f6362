package oesim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Sim is a running simulation of OctoEverywhere. All methods are safe for concurrent use.
type Sim struct {
	// Addr is the one TLS listener ("127.0.0.1:port"); dial it for every OctoEverywhere host (connect-to).
	Addr string
	// Domain is the simulated OctoEverywhere domain (Options.Domain, lower-cased).
	Domain string
	// RootCAs holds the per-run CA; trust it. CACertPEM is the same CA in PEM form (for curl --cacert).
	RootCAs   *x509.CertPool
	CACertPEM []byte
	// APIURL is "https://<Domain>", the App API base; PortalURL is "https://<Domain>/appportal/v1/".
	APIURL    string
	PortalURL string

	opts    Options
	log     *zap.Logger
	certs   *certificates
	server  *http.Server
	ln      net.Listener
	ctx     context.Context // cancelled by Close: every request context derives from it
	cancel  context.CancelFunc
	stopCtx func() bool // stops the Start-context watcher

	backend       *http.Transport // toward printer backends: plain HTTP, no compression, no redirects followed
	webhookClient *http.Client
	ownWebhook    *http.Transport // set when the sim built webhookClient itself

	wg          sync.WaitGroup // request handlers and server loops
	clientConns sync.WaitGroup // client connections of the TLS listener, until net/http has closed them

	mu          sync.Mutex
	closed      bool
	closeDone   chan struct{} // closed when the first Close has finished
	printers    []*Printer
	conns       []*Connection
	byLabel     map[string]*Connection
	byToken     map[string]*Connection
	outcomes    []Outcome
	sessions    []*portalSession
	byPortalTok map[string]*portalSession
	deliveries  []WebhookDelivery
	clients     []*http.Transport
	netWatchers []chan struct{}
}

// Start starts the simulation on 127.0.0.1 with random ports: the TLS listener for every OctoEverywhere host and
// one plain-HTTP server per printer backend. Cancelling ctx closes the sim as Close does.
func Start(ctx context.Context, o Options) (*Sim, error) {
	o.Domain = strings.ToLower(strings.TrimSpace(o.Domain))
	if o.Domain == "" {
		o.Domain = defaultDomain
	}
	if strings.ContainsAny(o.Domain, ":/@ ") || strings.HasPrefix(o.Domain, ".") || strings.HasSuffix(o.Domain, ".") {
		return nil, fmt.Errorf("oesim: Options.Domain %q is not a bare DNS name: give something like %q", o.Domain, defaultDomain)
	}
	if o.GadgetMinInterval == 0 {
		o.GadgetMinInterval = defaultGadgetInterval
	}
	o.Limits = o.Limits.withDefaults(observedLimits)
	if o.Printers == nil {
		o.Printers = defaultPrinters()
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}

	certs, err := newCertificates(o.Domain)
	if err != nil {
		return nil, fmt.Errorf("oesim: %w", err)
	}
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("oesim: listen on 127.0.0.1: %w", err)
		}
	}

	s := &Sim{
		Addr:        ln.Addr().String(),
		Domain:      o.Domain,
		RootCAs:     certs.pool,
		CACertPEM:   certs.caPEM,
		APIURL:      "https://" + o.Domain,
		PortalURL:   "https://" + o.Domain + "/appportal/v1/",
		opts:        o,
		log:         o.Logger.Named("oesim"),
		certs:       certs,
		byLabel:     map[string]*Connection{},
		byToken:     map[string]*Connection{},
		byPortalTok: map[string]*portalSession{},
		backend: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableCompression:  true,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.closeDone = make(chan struct{})
	if o.WebhookClient != nil {
		s.webhookClient = o.WebhookClient
	} else {
		s.ownWebhook = &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, TLSHandshakeTimeout: 5 * time.Second}
		s.webhookClient = &http.Client{
			Transport:     s.ownWebhook,
			Timeout:       defaultWebhookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}

	for _, po := range o.Printers {
		if _, err := s.AddPrinter(po); err != nil {
			ln.Close()
			s.Close()
			return nil, err
		}
	}

	protos := []string{"http/1.1"} // HTTP/1.1 only by default, like the WebSocket- and MJPEG-carrying relay
	if o.HTTP2 {
		protos = []string{"h2", "http/1.1"}
	}
	s.ln = tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{certs.leaf},
		NextProtos:   protos,
		MinVersion:   tls.VersionTLS12,
	})
	s.server = &http.Server{
		Handler:           s.track(http.HandlerFunc(s.route)),
		ReadHeaderTimeout: 30 * time.Second, // no Read/WriteTimeout: uploads and streams may take hours
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // no HTTP/2
		// Counted so that Close also waits for connections net/http keeps open after their last answer (it
		// lingers up to 500 ms before closing one whose request body was left unread, as after an early 608).
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.clientConns.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.clientConns.Done()
			}
		},
	}
	if o.HTTP2 {
		// net/http serves h2 on connections that negotiated it; the listener is ours, so say so explicitly.
		s.server.TLSNextProto = nil
		s.server.Protocols = new(http.Protocols)
		s.server.Protocols.SetHTTP1(true)
		s.server.Protocols.SetHTTP2(true)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.server.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("TLS listener stopped", zap.Error(err))
		}
	}()
	s.stopCtx = context.AfterFunc(ctx, func() { s.Close() })
	s.log.Info("oesim started", zap.String("addr", s.Addr), zap.String("domain", s.Domain))
	return s, nil
}

// track counts every request handler so that Close can wait for them, and refuses requests once closing.
func (s *Sim) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			http.Error(w, "oesim is shutting down", http.StatusServiceUnavailable)
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		h.ServeHTTP(w, r)
	})
}

// route sends a request to the portal/App APIs or to a relay by its Host, as OctoEverywhere's DNS and load
// balancer would.
func (s *Sim) route(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	switch {
	case host == s.Domain:
		s.serveMain(w, r)
	case strings.HasSuffix(host, "."+s.Domain) && strings.HasPrefix(host, "app-") &&
		!strings.Contains(strings.TrimSuffix(host, "."+s.Domain), "."):
		s.serveRelay(w, r, strings.TrimPrefix(strings.TrimSuffix(host, "."+s.Domain), "app-"))
	default:
		http.Error(w, fmt.Sprintf("oesim serves %s and app-<id>.%s, not %q: dial %s but keep the OctoEverywhere host name (connect-to)",
			s.Domain, s.Domain, r.Host, s.Addr), http.StatusMisdirectedRequest)
	}
}

// serveMain is the <Domain> origin: the portal and the App APIs. Paths match case-insensitively, as on
// OctoEverywhere's ASP.NET-style backend.
func (s *Sim) serveMain(w http.ResponseWriter, r *http.Request) {
	p := strings.ToLower(r.URL.Path)
	switch {
	case p == "/appportal/v1" || p == "/appportal/v1/":
		s.servePortal(w, r)
	case p == "/appportal/v1/authorize":
		s.serveAuthorize(w, r)
	case p == "/appportal/v1/complete":
		s.serveComplete(w, r)
	case p == "/appportal/v1/nosupporterperks":
		s.serveNoSupporter(w, r)
	case strings.HasPrefix(p, "/api/"):
		s.serveAPI(w, r, p)
	default:
		http.NotFound(w, r)
	}
}

// HTTPClient returns a client that trusts the sim's CA, dials Addr for every host (keeping SNI and Host) and
// does not follow redirects, so a test sees each 302 of the portal and each Location the relay rewrote.
func (s *Sim) HTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, s.Addr)
		},
		TLSClientConfig:    &tls.Config{RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12},
		DisableCompression: true, // what a test sends is what the relay records
		ForceAttemptHTTP2:  false,
	}
	s.mu.Lock()
	s.clients = append(s.clients, tr)
	s.mu.Unlock()
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close stops everything: the TLS listener, the printer backends, open streams and WebSockets. It waits for
// every goroutine the sim started. It is safe to call more than once and concurrently; every call returns once
// the sim is down.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.closeDone // a concurrent Close (e.g. from the Start context) is still running
		return nil
	}
	s.closed = true
	defer close(s.closeDone)
	printers := append([]*Printer(nil), s.printers...)
	conns := append([]*Connection(nil), s.conns...)
	clients := append([]*http.Transport(nil), s.clients...)
	s.mu.Unlock()

	if s.stopCtx != nil {
		s.stopCtx()
	}
	// The connections close first: a stream whose copy ended first could otherwise finish its response cleanly
	// (the last chunk written) and look to the client like a stream the relay ended, not a relay that went away.
	var err error
	if s.server != nil {
		err = s.server.Close()
	}
	s.cancel() // ends stalls, stream copies and backend requests
	for _, c := range conns {
		c.closeWebSockets(false)
	}
	for _, p := range printers {
		p.close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.clientConns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.log.Error("oesim: handlers still running 15 s after Close")
	}
	s.backend.CloseIdleConnections()
	if s.ownWebhook != nil {
		s.ownWebhook.CloseIdleConnections()
	}
	for _, tr := range clients {
		tr.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("oesim: close: %w", err)
	}
	return nil
}

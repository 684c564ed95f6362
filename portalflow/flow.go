package portalflow

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/oeproxy/oeproxy/internal/oe"
	"go.uber.org/zap"
)

// CallbackPathPrefix is where the callback lives: the return URL is <base>/oeproxy/callback/<state>.
const CallbackPathPrefix = "/oeproxy/callback/"

// DefaultMaxAge is how long a flow's state is accepted after Start.
const DefaultMaxAge = 15 * time.Minute

var (
	// ErrFlowExpired ends Wait when the state outlived MaxAge before a usable completion arrived.
	ErrFlowExpired = errors.New("the portal setup expired (15 minutes without a usable answer): run oeproxy connect again")
	// ErrFlowClosed ends Wait when the flow was closed.
	ErrFlowClosed = errors.New("the portal flow was closed before the portal answered")
)

// FlowOptions configures a Flow. PortalURL, AppID and RelayDomain come from the octoeverywhere.* config keys.
type FlowOptions struct {
	PortalURL        string
	AppID            string
	RelayDomain      string // a completion's url must be https://app-<label>.<RelayDomain>; empty means DefaultRelayDomain
	AppLogoURL       string
	PrinterID        string // from DiscoverPrinterID, when known
	OctoPrintKeyName string // empty: DefaultOctoPrintKeyName()
	NoOctoPrintKey   bool
	// ListenAddr is the callback listener's address; default "127.0.0.1:0". It must be a loopback address:
	// the callback carries secrets and nothing outside this machine has any business with it.
	ListenAddr string
	// CallbackBaseURL, when set (e.g. "http://127.0.0.1:7080"), makes Start open no listener: the caller
	// serves Handler() under CallbackPathPrefix on its own server at this base URL.
	CallbackBaseURL string
	// Keep, when set, stores a valid completion before the browser is answered, so that the page says
	// "Connected" only once the printer is stored; its string is one more line for that page (the printer's
	// local address). When it fails the page says so, and Wait returns the completion with a *KeepError, so
	// that the caller can still save the portal's one-time answer.
	Keep   func(ctx context.Context, c Completion) (string, error)
	MaxAge time.Duration    // default DefaultMaxAge
	Logger *zap.Logger      // default zap.NewNop()
	Now    func() time.Time // default time.Now; used to judge the state's age
}

type outcome int

const (
	pending outcome = iota
	keeping         // a valid completion is being stored; other callbacks are replays
	connected
	declined
	expired
)

// Flow is one portal run: a one-time state, the loopback callback that receives the completion, and Wait,
// which returns the first valid one. A callback with a wrong state, a replay, or an unusable completion
// changes nothing, shows the browser what was wrong, and the flow keeps waiting; success=false or an expired
// state end it.
type Flow struct {
	o         FlowOptions
	domain    string
	log       *zap.Logger
	now       func() time.Time
	maxAge    time.Duration
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	state    string
	started  time.Time // by Now: for the state's age
	deadline time.Time // by the real clock: when Wait gives up
	outcome  outcome
	result   Completion
	err      error
	finished chan struct{} // closed when outcome leaves pending
	srv      *http.Server
	served   chan struct{}
}

// NewFlow checks the options; Start begins the flow.
func NewFlow(o FlowOptions) (*Flow, error) {
	domain, err := normalizeDomain(o.RelayDomain)
	if err != nil {
		return nil, err
	}
	if o.ListenAddr == "" {
		o.ListenAddr = "127.0.0.1:0"
	}
	if o.CallbackBaseURL == "" {
		if err := loopbackAddr(o.ListenAddr); err != nil {
			return nil, err
		}
	} else if err := absoluteHTTPURL(o.CallbackBaseURL); err != nil {
		return nil, fmt.Errorf("callback base URL: %w", err)
	}
	f := &Flow{o: o, domain: domain, log: o.Logger, now: o.Now, maxAge: o.MaxAge,
		closed: make(chan struct{}), finished: make(chan struct{})}
	if f.log == nil {
		f.log = zap.NewNop()
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.maxAge <= 0 {
		f.maxAge = DefaultMaxAge
	}
	// Fail now, not after the listener is up, on a bad portal URL, App ID, logo or printer ID.
	if _, err := f.startURL("http://127.0.0.1/"); err != nil {
		return nil, err
	}
	return f, nil
}

func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("callback listen address %q: %w (use 127.0.0.1:0)", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("callback listen address %q is not a loopback IP address: the callback carries secrets; use 127.0.0.1:0", addr)
	}
	return nil
}

func (f *Flow) startURL(returnURL string) (string, error) {
	return StartURL(StartOptions{
		PortalURL: f.o.PortalURL, AppID: f.o.AppID, ReturnURL: returnURL, AppLogoURL: f.o.AppLogoURL,
		PrinterID: f.o.PrinterID, OctoPrintKeyName: f.o.OctoPrintKeyName, NoOctoPrintKey: f.o.NoOctoPrintKey,
	})
}

// SupporterPageURL is the Supporter Perks page for this flow's portal and App ID.
// KeepError is Wait's error when FlowOptions.Keep failed: the completion (returned beside it) is valid but not
// stored.
type KeepError struct{ Err error }

func (e *KeepError) Error() string {
	return "the App Connection was received but not stored: " + e.Err.Error()
}
func (e *KeepError) Unwrap() error { return e.Err }

// State is the flow's one-time state (the last part of the callback path), "" before Start. A caller that
// serves Handler on its own server routes callbacks by it.
func (f *Flow) State() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *Flow) SupporterPageURL() string { return oe.SupporterPageURL(f.o.PortalURL, f.o.AppID) }

// Start creates the one-time state, opens the loopback listener (unless CallbackBaseURL is set) and returns
// the portal URL to open in a browser. ctx bounds only the start; Close ends the flow.
func (f *Flow) Start(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.closed:
		return "", ErrFlowClosed
	default:
	}
	if f.state != "" {
		return "", errors.New("portal flow already started: make a new Flow for another printer")
	}
	var b [32]byte // 256 bits: the state is the only thing standing between a web page and the callback
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make the callback state: %w", err)
	}
	state := base64.RawURLEncoding.EncodeToString(b[:])
	base := strings.TrimSuffix(f.o.CallbackBaseURL, "/")
	var ln net.Listener
	if base == "" {
		var err error
		ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", f.o.ListenAddr)
		if err != nil {
			return "", fmt.Errorf("open the loopback callback listener on %s: %w", f.o.ListenAddr, err)
		}
		base = "http://" + ln.Addr().String()
	}
	portal, err := f.startURL(base + CallbackPathPrefix + state)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return "", err
	}
	f.state, f.started, f.deadline = state, f.now(), time.Now().Add(f.maxAge)
	if ln != nil {
		f.srv = &http.Server{
			Handler:           f.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       30 * time.Second,
			ErrorLog:          zap.NewStdLog(f.log),
		}
		f.served = make(chan struct{})
		go func(srv *http.Server, done chan struct{}) {
			defer close(done)
			_ = srv.Serve(ln) // ends with ErrServerClosed on Close
		}(f.srv, f.served)
	}
	f.log.Info("waiting for the OctoEverywhere portal", zap.String("callback", base+CallbackPathPrefix+"…"))
	return portal, nil
}

// Wait returns the first valid completion, or ErrPortalDeclined (with the Supporter Perks link) when the
// portal ended with success=false, ErrFlowExpired after MaxAge, ErrFlowClosed, or ctx's error.
func (f *Flow) Wait(ctx context.Context) (Completion, error) {
	f.mu.Lock()
	started, deadline := f.state != "", f.deadline
	f.mu.Unlock()
	if !started {
		return Completion{}, errors.New("portal flow not started: call Start first")
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-f.finished:
	case <-ctx.Done():
		return Completion{}, fmt.Errorf("waiting for the OctoEverywhere portal: %w", ctx.Err())
	case <-f.closed:
		// An answer that arrived before Close, or is being kept now, is the flow's outcome, not lost.
		f.mu.Lock()
		keeping := f.outcome == keeping
		f.mu.Unlock()
		if !keeping {
			select {
			case <-f.finished:
			default:
				return Completion{}, ErrFlowClosed
			}
		}
		select {
		case <-f.finished:
		case <-ctx.Done():
			return Completion{}, fmt.Errorf("waiting for the OctoEverywhere portal: %w", ctx.Err())
		}
	case <-t.C:
		f.mu.Lock()
		f.finishLocked(expired, Completion{}, ErrFlowExpired)
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.result, f.err
}

// finishLocked records the flow's one outcome; later calls change nothing.
func (f *Flow) finishLocked(o outcome, c Completion, err error) {
	if f.outcome != pending && f.outcome != keeping {
		return
	}
	f.outcome, f.result, f.err = o, c, err
	close(f.finished)
}

// Close stops the listener (after in-flight callbacks finish their page, at most 2 s) and ends Wait.
func (f *Flow) Close() error {
	f.closeOnce.Do(func() {
		close(f.closed)
		f.mu.Lock()
		srv, served := f.srv, f.served
		f.mu.Unlock()
		if srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
		<-served
	})
	return nil
}

// Handler serves the callback under CallbackPathPrefix, for mounting on another server (see CallbackBaseURL).
func (f *Flow) Handler() http.Handler { return http.HandlerFunc(f.serveCallback) }

func (f *Flow) serveCallback(w http.ResponseWriter, r *http.Request) {
	state, ok := strings.CutPrefix(r.URL.Path, CallbackPathPrefix)
	if !ok || state == "" || strings.Contains(state, "/") {
		writePage(w, pageNotFound)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writePage(w, pageMethod)
		return
	}
	p, c := f.decide(state, r.URL.RawQuery)
	if c != nil {
		p = f.keep(r.Context(), *c)
	}
	writePage(w, p)
}

// keep stores a valid completion with FlowOptions.Keep and ends the flow with it.
func (f *Flow) keep(ctx context.Context, c Completion) page {
	line, err := "", error(nil)
	if f.o.Keep != nil {
		// A browser that goes away must not stop the store half-way: the answer is one-time.
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keepTimeout)
		line, err = f.o.Keep(kctx, c)
		cancel()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.log.Warn("the App Connection was received but not stored", zap.Error(err))
		f.finishLocked(connected, c, &KeepError{Err: err})
		return notKeptPage(err)
	}
	f.finishLocked(connected, c, nil)
	return connectedPage(c.PrinterName, line, f.o.Keep != nil)
}

// keepTimeout bounds FlowOptions.Keep: storing is local, but may go through the daemon's control socket.
const keepTimeout = 30 * time.Second

// decide judges one callback and records its outcome; the page is written after the lock is released. A
// valid completion is returned to be kept.
func (f *Flow) decide(state, rawQuery string) (page, *Completion) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == "" {
		return pageNoFlow, nil
	}
	if subtle.ConstantTimeCompare([]byte(state), []byte(f.state)) != 1 {
		f.log.Warn("portal callback refused: its state does not match the setup in progress")
		return pageBadState, nil
	}
	switch f.outcome {
	case expired:
		return pageExpired, nil
	case keeping, connected, declined:
		f.log.Warn("portal callback refused: this setup's callback was already used")
		return pageReplay, nil
	}
	if age := f.now().Sub(f.started); age >= f.maxAge {
		f.log.Warn("portal callback refused: the setup expired", zap.Duration("age", age))
		f.finishLocked(expired, Completion{}, ErrFlowExpired)
		return pageExpired, nil
	}
	if rawQuery == "" {
		return pageBridge, nil // the answer may be in the fragment, which only the browser sees
	}
	c, err := ParseCompletion("?"+rawQuery, f.domain)
	switch {
	case errors.Is(err, ErrPortalDeclined):
		link := f.SupporterPageURL()
		f.log.Warn("the portal ended without an App Connection (success=false)", zap.String("supporter_page", link))
		f.finishLocked(declined, Completion{}, fmt.Errorf("%w (Supporter Perks: %s)", ErrPortalDeclined, link))
		return declinedPage(link), nil
	case err != nil:
		// The message names the key, never its value, so it may be logged and shown.
		f.log.Warn("portal callback refused: unusable completion; still waiting", zap.Error(err))
		return invalidPage(err), nil
	}
	f.log.Info("App Connection received from the portal", zap.Object("completion", c))
	f.outcome = keeping
	return page{}, &c
}

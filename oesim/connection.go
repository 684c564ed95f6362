package oesim

import (
	"net/http"
	"slices"
	"sync"
	"time"
)

// Credentials are what the portal returned for one App Connection. Each value is handed out only once by the
// portal; the sim keeps them so tests can act as a client.
type Credentials struct {
	ID              string // connection id, also the host label: 32 [a-z0-9]
	URL             string // https://app-<id>.<Domain>
	Host            string // app-<id>.<Domain>
	BasicUser       string // 10 [A-Za-z0-9]
	BasicPassword   string // 32 [A-Za-z0-9]
	BearerToken     string
	AppAPIToken     string
	OctoPrintAPIKey string // empty unless generated
}

// Fault is an injected relay failure.
type Fault int

const (
	FaultNone        Fault = iota
	FaultTimeout           // 602 after a short delay: the plugin is connected but does not answer
	FaultServerError       // 600
	FaultStall             // the relay accepts the request and never answers until the client leaves or Close
	FaultDrop              // the relay sends the response headers and part of the body, then closes the TCP connection
)

// GadgetStatus is what the Gadget status API answers (§4.5).
type GadgetStatus struct {
	State       int    // 0 Disabled, 1 DisabledForCurrentPrint, 2 Idle, 3 Active, 4 PausedDueToFailure
	Status      string // a few words; meaningful when State is 3
	StatusColor string // g, y, r or w
	Rating      int    // 1..10
}

// Request is one request the relay received, as it arrived (before the plugin-side rewrites).
type Request struct {
	Time      time.Time
	Method    string
	Path      string
	RawQuery  string
	Header    http.Header
	BodySize  int64 // request body bytes the relay read
	WebSocket bool  // an upgrade request
	Status    int   // what the relay answered (101 for an accepted WebSocket); 0 while no answer was sent
	Cut       bool  // the relay ended the response early: a webcam stream at its time limit, a 607 mid-stream, FaultDrop
}

// LiveLink is a Live Link created through the App API.
type LiveLink struct {
	LiveID, URL, ShortURL string
	ExpirationHours       float64
	EndWithPrint          bool
	Created               time.Time
}

// Connection is one App Connection: its credentials and its state as OctoEverywhere sees it. Tests change the
// state at any time; the next request sees it.
type Connection struct {
	sim     *Sim
	printer *Printer
	creds   Credentials

	mu            sync.Mutex
	deleted       bool
	revoked       bool
	supporter     bool
	fault         Fault
	limits        Limits
	gadget        GadgetStatus
	gadgetLast    time.Time
	silent        bool
	silentChanged chan struct{} // closed and replaced whenever silent changes
	webhookURL    string
	webhookFilter []int
	webhookSetAt  time.Time
	requests      []*Request
	sockets       map[*wsRelay]struct{}
	streamStarts  []time.Time
	liveLinks     []LiveLink
	summoned      bool
}

// newConnection mints a connection with fresh secrets. withKey asks for an OctoPrint API key (OctoPrint only).
func (s *Sim) newConnection(p *Printer, withKey bool) *Connection {
	id := randomString(32, lowerAlnum)
	host := "app-" + id + "." + s.Domain
	creds := Credentials{
		ID: id, URL: "https://" + host, Host: host,
		BasicUser:     randomString(10, mixedAlnum),
		BasicPassword: randomString(32, mixedAlnum),
		BearerToken:   randomString(64, mixedAlnum),
		AppAPIToken:   randomString(64, mixedAlnum),
	}
	if withKey && p.Kind == KindOctoPrint {
		creds.OctoPrintAPIKey = p.apiKey
		if creds.OctoPrintAPIKey == "" {
			creds.OctoPrintAPIKey = randomString(32, upperHex)
		}
	}
	c := &Connection{
		sim: s, printer: p, creds: creds,
		supporter:     true,
		limits:        s.opts.Limits,
		gadget:        GadgetStatus{State: 2, StatusColor: "w", Rating: 10},
		silentChanged: make(chan struct{}),
		sockets:       map[*wsRelay]struct{}{},
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.byLabel[id] = c
	s.byToken[creds.AppAPIToken] = c
	s.mu.Unlock()
	return c
}

// Connect creates an App Connection to p as if the portal had succeeded, with fresh secrets (and an OctoPrint API
// key for an OctoPrint printer). A nil p means the first printer.
func (s *Sim) Connect(p *Printer) *Connection {
	if p == nil {
		ps := s.Printers()
		if len(ps) == 0 {
			return nil
		}
		p = ps[0]
	}
	return s.newConnection(p, true)
}

// Connections returns every connection created so far, deleted ones included, oldest first.
func (s *Sim) Connections() []*Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Connection(nil), s.conns...)
}

// Connection returns the connection with this id (deleted ones included), or nil.
func (s *Sim) Connection(id string) *Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byLabel[id]
}

func (s *Sim) connectionByLabel(label string) *Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byLabel[label]
}

func (s *Sim) connectionByToken(token string) *Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byToken[token]
}

// Credentials returns the connection's secrets.
func (c *Connection) Credentials() Credentials { return c.creds }

// Printer returns the printer this connection reaches.
func (c *Connection) Printer() *Printer { return c.printer }

// Revoke marks the connection revoked (the user removed it): 604 on the relay and the App APIs.
func (c *Connection) Revoke() {
	c.mu.Lock()
	c.revoked = true
	c.mu.Unlock()
	c.closeWebSockets(true)
}

// Delete makes the connection unknown to OctoEverywhere: its subdomain and App API token answer 603.
func (c *Connection) Delete() {
	c.mu.Lock()
	c.deleted = true
	c.mu.Unlock()
	c.closeWebSockets(true)
}

// SetSupporter sets whether the owner has Supporter Perks; false gives 605.
func (c *Connection) SetSupporter(supporter bool) {
	c.mu.Lock()
	c.supporter = supporter
	c.mu.Unlock()
}

// SetFault injects a relay failure for the following requests (FaultNone clears it).
func (c *Connection) SetFault(f Fault) {
	c.mu.Lock()
	c.fault = f
	c.mu.Unlock()
}

// SetLimits replaces the connection's limits; zero fields take the sim's defaults (Options.Limits).
func (c *Connection) SetLimits(l Limits) {
	l = l.withDefaults(c.sim.opts.Limits)
	c.mu.Lock()
	c.limits = l
	c.mu.Unlock()
}

// Limits returns the connection's current limits.
func (c *Connection) Limits() Limits {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limits
}

// SetGadget sets what the Gadget status API answers.
func (c *Connection) SetGadget(g GadgetStatus) {
	c.mu.Lock()
	c.gadget = g
	c.mu.Unlock()
}

// SetSilentWebSockets makes the relay stop (or resume) reading client frames on this connection's WebSockets:
// no pongs, nothing forwarded to the printer; TCP back-pressure builds up as on a stuck tunnel.
func (c *Connection) SetSilentWebSockets(silent bool) {
	c.mu.Lock()
	if c.silent != silent {
		c.silent = silent
		close(c.silentChanged)
		c.silentChanged = make(chan struct{})
	}
	c.mu.Unlock()
}

func (c *Connection) silence() (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.silent, c.silentChanged
}

// DropWebSockets closes every open WebSocket of this connection as a plugin disconnect does: both sides get a
// close frame with 1001 (StatusGoingAway) and reason "plugin disconnected".
func (c *Connection) DropWebSockets() { c.closeWebSockets(true) }

// MaxRecorded is how many requests a Connection keeps at least: the most recent ones. A soak run sends millions,
// and keeping them all would grow the test process by gigabytes for no test's benefit.
const MaxRecorded = 10000

// Requests returns the requests the relay received for this connection's host, in arrival order: every one, or
// at least the MaxRecorded most recent.
func (c *Connection) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Request, len(c.requests))
	for i, r := range c.requests {
		out[i] = *r
		out[i].Header = r.Header.Clone()
	}
	return out
}

// ResetRequests forgets the recorded requests.
func (c *Connection) ResetRequests() {
	c.mu.Lock()
	c.requests = nil
	c.mu.Unlock()
}

// Webhook returns the notification webhook (empty url when none) and when it was set.
func (c *Connection) Webhook() (url string, filter []int, setAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.webhookURL, slices.Clone(c.webhookFilter), c.webhookSetAt
}

// LiveLinks returns the Live Links created through this connection.
func (c *Connection) LiveLinks() []LiveLink {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.liveLinks)
}

func (c *Connection) record(r *Request) {
	c.mu.Lock()
	c.requests = append(c.requests, r)
	if n := len(c.requests); n >= 2*MaxRecorded {
		c.requests = append([]*Request(nil), c.requests[n-MaxRecorded:]...) // amortized: once per MaxRecorded requests
	}
	c.mu.Unlock()
}

func (c *Connection) setStatus(r *Request, status int) {
	c.mu.Lock()
	r.Status = status
	c.mu.Unlock()
}

func (c *Connection) setBodySize(r *Request, n int64) {
	c.mu.Lock()
	r.BodySize = n
	c.mu.Unlock()
}

func (c *Connection) setCut(r *Request) {
	c.mu.Lock()
	r.Cut = true
	c.mu.Unlock()
}

// webcamStart records a webcam stream start; false means the back-to-back limit is reached (609).
func (c *Connection) webcamStart(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.limits
	if l.WebcamStartsPerWindow <= 0 || l.WebcamWindow <= 0 {
		return true
	}
	kept := c.streamStarts[:0]
	for _, t := range c.streamStarts {
		if now.Sub(t) < l.WebcamWindow {
			kept = append(kept, t)
		}
	}
	c.streamStarts = kept
	if len(kept) >= l.WebcamStartsPerWindow {
		return false
	}
	c.streamStarts = append(c.streamStarts, now)
	return true
}

// closeWebSockets ends every open WebSocket: with a 1001 close frame (plugin disconnect), or abruptly (Close).
func (c *Connection) closeWebSockets(goingAway bool) {
	c.mu.Lock()
	relays := make([]*wsRelay, 0, len(c.sockets))
	for r := range c.sockets {
		relays = append(relays, r)
	}
	c.mu.Unlock()
	for _, r := range relays {
		r.stop(goingAway)
	}
}

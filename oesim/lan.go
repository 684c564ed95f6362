package oesim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/oesim/printer"
)

// The LAN side: with PrinterOptions.LAN the same printer also answers on a second loopback address, 127.0.0.2,
// as it does on the home network, with no relay and no App Connection auth in between. What answers there can be
// switched (SetLAN) to model the laptop leaving home: an impostor with another printer id, an impostor that
// copies the id but is another device (its Moonraker database does not hold what was written through the relay),
// or nothing at all (the printer vanished: connections refused, open ones cut mid-stream). Every request the LAN
// address receives is recorded (LANRequests), so tests can prove what reached it and what did not.

// LANAddr is the loopback address that plays the printer's LAN address.
const LANAddr = "127.0.0.2"

// LANHost says what answers on a printer's LAN address.
type LANHost int

const (
	// LANPrinter: the printer itself (the same backend the relay reaches).
	LANPrinter LANHost = iota
	// LANImpostorOtherID: another printer of the same kind, with another OctoEverywhere printer id.
	LANImpostorOtherID
	// LANImpostorSameID: another device that reports the same printer id (copied), with a database of its own.
	LANImpostorSameID
	// LANGone: nothing; connections are refused and open ones are cut.
	LANGone
)

func (h LANHost) String() string {
	switch h {
	case LANPrinter:
		return "printer"
	case LANImpostorOtherID:
		return "impostor-other-id"
	case LANImpostorSameID:
		return "impostor-same-id"
	case LANGone:
		return "gone"
	}
	return fmt.Sprintf("LANHost(%d)", int(h))
}

// LANRequest is one request that reached a printer's LAN address.
type LANRequest struct {
	Time     time.Time
	Host     LANHost // what answered it
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
}

type lanSide struct {
	p         *Printer
	companion bool   // the companion's local web API, not the printer
	addr      string // 127.0.0.2:port, kept across LANGone so that the printer comes back where it was

	mu       sync.Mutex
	host     LANHost
	ln       net.Listener
	srv      *http.Server
	conns    map[net.Conn]struct{}
	requests []LANRequest
	impostor map[LANHost]http.Handler
	closers  []func()
	done     sync.WaitGroup
}

// startLAN opens the printer's LAN address with the printer's own handler (for the Moonraker kind its frontend,
// which also carries Moonraker's paths, as MainsailOS's nginx on port 80 does).
func (s *Sim) startLAN(p *Printer, own http.Handler, companion bool) error {
	l := &lanSide{p: p, conns: map[net.Conn]struct{}{}, impostor: map[LANHost]http.Handler{LANPrinter: own}}
	ln, err := net.Listen("tcp", LANAddr+":0")
	if err != nil {
		return fmt.Errorf("oesim: printer %q: listen on its LAN address %s: %w (is 127.0.0.0/8 routed to lo?)", p.Name, LANAddr, err)
	}
	l.addr = ln.Addr().String()
	p.lan = l
	p.LANURL = "http://" + l.addr
	l.serve(ln)
	if !companion {
		return nil
	}
	c := &lanSide{p: p, companion: true, conns: map[net.Conn]struct{}{},
		impostor: map[LANHost]http.Handler{LANPrinter: printer.NewCompanionAPI(p.ID)}}
	if ln, err = net.Listen("tcp", LANAddr+":0"); err != nil {
		return fmt.Errorf("oesim: printer %q: listen for its companion on %s: %w", p.Name, LANAddr, err)
	}
	c.addr = ln.Addr().String()
	p.companion = c
	p.CompanionURL = "http://" + c.addr
	c.serve(ln)
	return nil
}

func (l *lanSide) serve(ln net.Listener) {
	srv := &http.Server{
		Handler:           http.HandlerFunc(l.handle),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return l.p.sim.ctx },
		ErrorLog:          zap.NewStdLog(l.p.sim.log.Named("lan")),
		ConnState: func(c net.Conn, st http.ConnState) {
			l.mu.Lock()
			defer l.mu.Unlock()
			switch st {
			case http.StateNew:
				l.conns[c] = struct{}{}
			case http.StateClosed:
				delete(l.conns, c) // a hijacked conn (a WebSocket) stays listed until LANGone or Close cuts it
			}
		},
	}
	l.ln, l.srv = ln, srv
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		_ = srv.Serve(ln)
	}()
}

func (l *lanSide) handle(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	host := l.host
	h := l.impostor[host]
	l.requests = append(l.requests, LANRequest{Time: time.Now(), Host: host, Method: r.Method, Path: r.URL.Path,
		RawQuery: r.URL.RawQuery, Header: r.Header.Clone()})
	l.mu.Unlock()
	if h == nil {
		panic(http.ErrAbortHandler) // LANGone raced with this request
	}
	h.ServeHTTP(w, r)
}

// set switches what answers on the LAN address.
func (l *lanSide) set(host LANHost) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if host != LANGone && host != LANPrinter && l.impostor[host] == nil {
		l.impostor[host] = l.newImpostor(host)
	}
	prev := l.host
	l.host = host
	switch {
	case host == LANGone && prev != LANGone:
		l.cutLocked()
	case host != LANGone && prev == LANGone:
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			l.host = LANGone
			return fmt.Errorf("oesim: printer %q: its LAN address %s is taken meanwhile: %w", l.p.Name, l.addr, err)
		}
		l.serve(ln)
	}
	return nil
}

// cutLocked closes the listener and every connection, hijacked ones (WebSockets) included.
func (l *lanSide) cutLocked() {
	if l.srv != nil {
		_ = l.srv.Close()
		l.srv, l.ln = nil, nil
	}
	for c := range l.conns {
		_ = c.Close()
		delete(l.conns, c)
	}
}

func (l *lanSide) newImpostor(host LANHost) http.Handler {
	p := l.p
	id := p.ID
	if host == LANImpostorOtherID {
		id = randomString(60, upperAlnum)
	}
	if l.companion {
		// Another network's companion serves another printer; a device that copied the id claims it too.
		return printer.NewCompanionAPI(id)
	}
	name := p.Name + " (impostor)"
	switch p.Kind {
	case KindOctoPrint:
		o := printer.NewOctoPrint(printer.OctoPrintOptions{Name: name, PrinterID: id, APIKey: p.apiKey})
		l.closers = append(l.closers, o.Close)
		return o
	case KindMoonraker:
		m := printer.NewMoonraker(printer.MoonrakerOptions{Name: name, PrinterID: id, APIKey: p.apiKey})
		l.closers = append(l.closers, m.Close)
		return m.Frontend()
	}
	// A generic printer has no id to claim: the impostor answers every path 404.
	return http.NotFoundHandler()
}

func (l *lanSide) close() {
	l.mu.Lock()
	l.host = LANGone
	l.cutLocked()
	closers := l.closers
	l.closers = nil
	l.mu.Unlock()
	for _, c := range closers {
		c()
	}
	l.done.Wait()
}

// SetLAN switches what answers on the printer's LAN address (PrinterOptions.LAN). Switching to LANGone cuts every
// open connection there, mid-stream; switching back listens on the same address again.
func (p *Printer) SetLAN(host LANHost) error {
	if p.lan == nil {
		return errors.New("oesim: SetLAN on a printer without PrinterOptions.LAN")
	}
	if host < LANPrinter || host > LANGone {
		return fmt.Errorf("oesim: unknown LANHost %d", int(host))
	}
	if p.companion != nil {
		// The companion sits on the same network as the printer: what answers for one answers for the other.
		if err := p.companion.set(host); err != nil {
			return err
		}
	}
	return p.lan.set(host)
}

// LANRequests returns every request that reached the printer's LAN address, in order (nil without LAN).
func (p *Printer) LANRequests() []LANRequest {
	if p.lan == nil {
		return nil
	}
	p.lan.mu.Lock()
	defer p.lan.mu.Unlock()
	return append([]LANRequest(nil), p.lan.requests...)
}

// NetworkChanges returns a channel that receives a value after each ChangeNetwork (coalesced: a slow reader sees
// one value for several changes). It stands for the operating system's address and route change events.
func (s *Sim) NetworkChanges() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.netWatchers = append(s.netWatchers, ch)
	s.mu.Unlock()
	return ch
}

// ChangeNetwork signals a network change (the laptop joined another network) to every NetworkChanges channel.
// It changes nothing by itself: pair it with SetLAN to say what the LAN address now reaches.
func (s *Sim) ChangeNetwork() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.netWatchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

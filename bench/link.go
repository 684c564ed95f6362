package bench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"sync"
	"time"
)

// LinkProfile is a user's link to OctoEverywhere: round-trip time, bandwidth (each way) and packet loss (each way).
type LinkProfile struct {
	Key  string // short name used in figure IDs: "wan40"
	Name string // "40 ms / 50 Mbit/s"
	RTT  time.Duration
	Mbit float64
	Loss float64 // fraction of packets lost, each way
	// H2 makes the relay offer h2 in ALPN (oesim.Options.HTTP2); otherwise it offers http/1.1 only.
	H2 bool
}

// The links of `make bench`: a good home line to the nearest relay region, and a hotel Wi-Fi or phone hotspot
// far from it, with a relay that offers http/1.1 only; and the far one again with a relay that offers h2 too (the
// direct client then speaks HTTP/2, as a browser would).
var (
	wan40  = LinkProfile{Key: "wan40", Name: "40 ms / 50 Mbit/s", RTT: 40 * time.Millisecond, Mbit: 50}
	wan150 = LinkProfile{Key: "wan150", Name: "150 ms / 10 Mbit/s, 1% loss", RTT: 150 * time.Millisecond, Mbit: 10, Loss: 0.01}

	WANProfiles = []LinkProfile{wan40, wan150, wan150.withH2()}
	// QuickWANProfiles is one of each link and each relay flavour, for `make bench-quick`.
	QuickWANProfiles = []LinkProfile{wan40, wan150.withH2()}
)

// WANProfile finds a profile of WANProfiles by its key.
func WANProfile(key string) (LinkProfile, bool) {
	for _, p := range WANProfiles {
		if p.Key == key {
			return p, true
		}
	}
	return LinkProfile{}, false
}

func (p LinkProfile) withH2() LinkProfile {
	p.Key += "h2"
	p.Name += ", relay offers h2"
	p.H2 = true
	return p
}

// bytesPerSecond is the profile's capacity each way.
func (p LinkProfile) bytesPerSecond() float64 { return p.Mbit * 1e6 / 8 }

// LinkMethod says how a link is simulated, for RESULTS.md.
const (
	LinkNetem   = "netem"
	LinkGoFront = "go-front"
)

// NetemAvailable reports whether this machine can simulate a link in the kernel: root, `ip` and `tc`, network
// namespaces and the netem qdisc. It probes with a throw-away veth pair, so it needs nothing set up.
func NetemAvailable() (bool, string) {
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, tool + " is not installed (apt-get install iproute2)"
		}
	}
	const dev = "oebprobe0"
	if out, err := exec.Command("ip", "link", "add", dev, "type", "veth", "peer", "name", dev+"p").CombinedOutput(); err != nil {
		return false, fmt.Sprintf("cannot add a veth pair (not root?): %s", firstLine(out))
	}
	defer func() { _ = exec.Command("ip", "link", "del", dev).Run() }()
	if out, err := exec.Command("tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms").CombinedOutput(); err != nil {
		return false, fmt.Sprintf("the kernel has no netem qdisc: %s", firstLine(out))
	}
	return true, ""
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}

// Link is a simulated WAN link in front of the relay, in Go: a TCP front on loopback that passes every
// connection on to the relay through two delay lines (one each way) sharing the profile's bandwidth among all
// connections of that direction, as one access line does. A read from one side becomes segments of at most
// segSize bytes; each occupies the line for its serialization time, then arrives RTT/2 later. A lost segment (each
// with probability Loss) arrives one RTT later than it would have, holding back everything behind it, as a TCP
// fast retransmit does. What it does not model: TCP's congestion response to loss (cwnd halving), so throughput
// under loss is better than a real lossy link's.
type Link struct {
	Profile LinkProfile
	ln      net.Listener
	target  string
	up      *line // client → relay
	down    *line // relay → client
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
}

const segSize = 1448 // one TCP segment's payload at MTU 1500 with timestamps

// line is one direction of the link: when it is next free to put a segment on the wire.
type line struct {
	mu       sync.Mutex
	nextFree time.Time
	rate     float64 // bytes per second
}

// reserve puts n bytes on the line after what is queued and returns when their last byte leaves the near end.
func (l *line) reserve(now time.Time, n int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nextFree.Before(now) {
		l.nextFree = now
	}
	l.nextFree = l.nextFree.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	return l.nextFree
}

// StartLink listens on 127.0.0.1 and passes every connection to target through the profile's link.
func StartLink(p LinkProfile, target string) (*Link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: link front: %w", err)
	}
	l := &Link{Profile: p, ln: ln, target: target, conns: map[net.Conn]struct{}{},
		up: &line{rate: p.bytesPerSecond()}, down: &line{rate: p.bytesPerSecond()}}
	l.wg.Add(1)
	go l.serve()
	return l, nil
}

// Addr is the near end of the link, where clients dial the relay.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// Close stops accepting, cuts every connection and waits for their goroutines.
func (l *Link) Close() error {
	err := l.ln.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

func (l *Link) track(cs ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	for _, c := range cs {
		l.conns[c] = struct{}{}
	}
	return true
}

func (l *Link) untrack(cs ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		delete(l.conns, c)
	}
}

func (l *Link) serve() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go l.handle(c)
	}
}

// handle carries one connection. The TCP handshake to the far end costs one RTT, as on the real link: the
// relay's side is dialled only after the link's delay, and the client's first bytes wait behind it.
func (l *Link) handle(c net.Conn) {
	defer l.wg.Done()
	defer c.Close()
	time.Sleep(l.Profile.RTT) // SYN out, SYN-ACK back: the client's connect returned early, its first bytes wait
	u, err := net.DialTimeout("tcp", l.target, 5*time.Second)
	if err != nil {
		return
	}
	defer u.Close()
	if !l.track(c, u) {
		return
	}
	defer l.untrack(c, u)
	// Small socket buffers on the link's ends, so that a sender is held back by the link as on a real line
	// instead of filling megabytes of loopback buffer ahead of it.
	for _, x := range []net.Conn{c, u} {
		if tc, ok := x.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10)
			_ = tc.SetWriteBuffer(64 << 10)
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pipe(u, c, l.up) }()
	go func() { defer wg.Done(); l.pipe(c, u, l.down) }()
	wg.Wait()
}

type segment struct {
	b  []byte
	at time.Time // when it arrives at the far end
}

// pipe carries src's bytes to dst through ln. At most a bandwidth-delay product (and at least 64 KiB) is in
// flight, so a sender sees the line's rate, not loopback's.
func (l *Link) pipe(dst, src net.Conn, ln *line) {
	p := l.Profile
	inFlight := max(64<<10, int(p.bytesPerSecond()*p.RTT.Seconds()))
	q := make(chan segment, inFlight/segSize+1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last time.Time
		for s := range q {
			if s.at.Before(last) {
				s.at = last // in order: a retransmitted segment holds back those behind it
			}
			last = s.at
			time.Sleep(time.Until(s.at))
			if _, err := dst.Write(s.b); err != nil {
				src.Close() // the far end is gone: stop the reader too
				for range q {
				}
				return
			}
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		for off := 0; off < n; off += segSize {
			end := min(off+segSize, n)
			b := append([]byte(nil), buf[off:end]...)
			at := ln.reserve(time.Now(), len(b)).Add(p.RTT / 2)
			if p.Loss > 0 && rand.Float64() < p.Loss {
				at = at.Add(p.RTT) // lost, noticed by duplicate ACKs one RTT later, sent again
			}
			q <- segment{b: b, at: at}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				// A reset or our own Close: cut the far end too.
				src.Close()
			}
			break
		}
	}
	close(q)
	<-done
}

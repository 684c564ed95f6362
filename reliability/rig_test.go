package reliability

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/oeproxy/oeproxy/bench"
	"github.com/oeproxy/oeproxy/daemon"
	"github.com/oeproxy/oeproxy/internal/oenet"
	"github.com/oeproxy/oeproxy/proxy"
)

// rig is one printer behind oesim's relay (the bench origin as its HTTP server), reached through a chaos
// forwarder, and oeproxy's handler for it served on 127.0.0.1 by an http.Server configured as the daemon
// configures its printer listeners.
type rig struct {
	t     testing.TB
	env   *bench.Env
	chaos *chaos
	h     *proxy.Handler
	srv   *http.Server
	addr  string // the local listener, 127.0.0.1:port
	tr    *http.Transport
	wstr  *http.Transport // WebSocket handshakes
	logs  *observer.ObservedLogs
	// closed receives once for each local connection the server has finished with (closed or hijacked).
	closed chan struct{}
	// client reaches the local listener (keep-alive, no timeout: each test sets its own deadline).
	client *http.Client
	ctr    *http.Transport
}

type rigOptions struct {
	roots        *x509.CertPool // relay trust; default the sim's CA
	password     string         // replaces the Basic password (606)
	pingInterval time.Duration
	maxMessage   int64
	maxConns     int           // relay connections (and RelaySlots) per printer; default 128, as serve
	relayWait    time.Duration // proxy.Options.RelayWait
	bodyIdle     time.Duration // proxy.Options.BodyIdleTimeout
}

// newRig starts everything; Cleanup stops it and registers the logs and secrets for the final secrets check.
func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	env, err := bench.StartEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, env: env, closed: make(chan struct{}, 1024)}
	r.chaos, err = newChaos(env.Sim.Addr)
	if err != nil {
		env.Close()
		t.Fatal(err)
	}
	roots := o.roots
	if roots == nil {
		roots = env.Sim.RootCAs
	}
	// As serve builds them: the default connection cap for HTTP, a separate transport for WebSockets.
	if o.maxConns == 0 {
		o.maxConns = 128
	}
	netOpts := oenet.Options{ConnectTo: r.chaos.Addr(), RootCAs: roots, MaxConnsPerHost: o.maxConns}
	r.tr, r.wstr = netOpts.Transport(), netOpts.WebSocketTransport()
	core, logs := observer.New(zapcore.DebugLevel)
	r.logs = logs
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	relay, _ := url.Parse(env.Creds.URL)
	pass := env.Creds.BasicPassword
	if o.password != "" {
		pass = o.password
	}
	r.h, err = proxy.New(proxy.Printer{Name: "mk4", RelayURL: relay, Auth: "basic", BasicUser: env.Creds.BasicUser,
		BasicPassword: pass, BearerToken: env.Creds.BearerToken},
		proxy.Options{Transport: r.tr, WebSocketTransport: r.wstr, Logger: zap.New(core), ListenAddr: r.addr, AppID: "reliability",
			PortalURL: env.Sim.PortalURL, PingInterval: o.pingInterval, MaxMessageBytes: o.maxMessage,
			RelaySlots: proxy.NewRelaySlots(o.maxConns), RelayWait: o.relayWait, BodyIdleTimeout: o.bodyIdle})
	if err != nil {
		t.Fatal(err)
	}
	// As daemon.startPrinter: no Read/WriteTimeout, a header timeout, an idle timeout, 64 KiB of headers.
	r.srv = &http.Server{Handler: r.h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: daemon.MaxHeaderBytes, ErrorLog: zap.NewStdLog(zap.New(core)),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				select {
				case r.closed <- struct{}{}:
				default: // nobody waits for this one
				}
			}
		}}
	done := make(chan struct{})
	go func() { defer close(done); _ = r.srv.Serve(ln) }()
	r.ctr = &http.Transport{MaxIdleConnsPerHost: 2048, DisableCompression: true}
	r.client = &http.Client{Transport: r.ctr}
	registerSecrets(env.Secrets(), logs)
	t.Cleanup(func() {
		r.h.Close()
		_ = r.srv.Close()
		<-done
		r.ctr.CloseIdleConnections()
		r.tr.CloseIdleConnections()
		r.wstr.CloseIdleConnections()
		r.chaos.Close()
		env.Close()
	})
	return r
}

// url is the local URL of a path.
func (r *rig) url(path string) string { return "http://" + r.addr + path }

// get is a GET through the proxy with a deadline; the body is read whole.
func (r *rig) get(path string, hdr http.Header) (*http.Response, []byte, error) {
	return r.do(http.MethodGet, path, hdr, nil)
}

func (r *rig) do(method, path string, hdr http.Header, body io.Reader) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.url(path), body)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// mustOK fails unless GET /small answers 200: the proxy still works after whatever the test did.
func (r *rig) mustOK(t testing.TB) {
	t.Helper()
	resp, _, err := r.get("/small", nil)
	if err != nil {
		t.Fatalf("GET /small after the fault: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /small after the fault: %s", resp.Status)
	}
}

// dialWS opens a WebSocket through the proxy.
func (r *rig) dialWS(ctx context.Context, path string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, "ws://"+r.addr+path, &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: r.client})
}

// relayRequests is how many requests the relay received for the connection so far.
func (r *rig) relayRequests() int { return len(r.env.Conn.Requests()) }

// --- goroutine and fd accounting ---

// stackCount counts the goroutines whose stack mentions any of the given function name fragments.
func stackCount(frags ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range frags {
			if strings.Contains(g, f) {
				count++
				break
			}
		}
	}
	return count
}

// Function name fragments of the three sides of a request.
var (
	proxySide  = []string{"github.com/oeproxy/oeproxy/proxy."}
	relaySide  = []string{"oesim.(*Sim).serveRelay", "oesim.(*wsRelay)"}
	originSide = []string{"bench.(*Origin)"}
)

// waitNone waits until no goroutine mentions the fragments, and fails with the stacks if some remain.
func waitNone(t testing.TB, what string, frags []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for stackCount(frags...) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("%s: %d goroutine(s) still running 15 s later:\n%s", what, stackCount(frags...), stacksWith(frags))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitIdle waits until neither the proxy nor the relay nor the origin has a request in progress.
func waitIdle(t testing.TB) {
	t.Helper()
	waitNone(t, "proxy handler", proxySide)
	waitNone(t, "relay (the upstream request was not cancelled)", relaySide)
	waitNone(t, "origin", originSide)
}

func stacksWith(frags []string) string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range frags {
			if strings.Contains(g, f) {
				out = append(out, g)
				break
			}
		}
	}
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("... and %d more", len(out)-5))
	}
	return strings.Join(out, "\n\n")
}

// openFDs counts this process's open file descriptors.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// rss is this process's VmRSS in MiB (for printing).
func rss() float64 {
	m, err := bench.ReadMemory(os.Getpid())
	if err != nil {
		return -1
	}
	return float64(m.RSS) / (1 << 20)
}

// baseline is a goroutine and fd count to come back to.
type baseline struct{ goroutines, fds int }

func takeBaseline() baseline { return baseline{runtime.NumGoroutine(), openFDs()} }

// backTo waits until goroutines and fds are within slack of b (idle pools closed by closers first).
func backTo(t testing.TB, b baseline, slack int, closers ...func()) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, c := range closers {
			c()
		}
		g, f := runtime.NumGoroutine(), openFDs()
		if g <= b.goroutines+slack && f <= b.fds+slack {
			t.Logf("goroutines %d (baseline %d), fds %d (baseline %d)", g, b.goroutines, f, b.fds)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("not back to the baseline 30 s later: goroutines %d (baseline %d), fds %d (baseline %d), slack %d\n%s",
				g, b.goroutines, f, b.fds, slack, stacksWith([]string{"oeproxy/proxy.", "oesim.", "bench."}))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// --- chaos: a TCP forwarder between the proxy and the relay that can cut or stall every connection ---

type chaos struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	stall  atomic.Bool
	up     atomic.Int64 // bytes toward the relay
	cutAt  atomic.Int64 // cut everything once up reaches this (0: never)
	wg     sync.WaitGroup
	closed atomic.Bool
}

func newChaos(target string) (*chaos, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &chaos{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	c.wg.Add(1)
	go c.accept()
	return c, nil
}

func (c *chaos) Addr() string { return c.ln.Addr().String() }

func (c *chaos) accept() {
	defer c.wg.Done()
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", c.target)
		if err != nil {
			in.Close()
			continue
		}
		if !c.track(in, out) {
			in.Close()
			out.Close()
			return
		}
		c.wg.Add(2)
		go c.pipe(out, in, true)
		go c.pipe(in, out, false)
	}
}

func (c *chaos) track(conns ...net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return false
	}
	for _, x := range conns {
		c.conns[x] = struct{}{}
	}
	return true
}

func (c *chaos) pipe(dst, src net.Conn, upstream bool) {
	defer c.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for n > 0 && c.stall.Load() && !c.closed.Load() {
			time.Sleep(10 * time.Millisecond) // hold the bytes: TCP back-pressure builds up as on a stuck link
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if upstream {
				if at := c.cutAt.Load(); at > 0 && c.up.Add(int64(n)) >= at {
					c.cutAt.Store(0)
					go c.CutAll()
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// CutAll resets every forwarded connection at once, as a relay that drops.
func (c *chaos) CutAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for x := range c.conns {
		if tc, ok := x.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = x.Close()
		delete(c.conns, x)
	}
}

// CutAfter cuts every connection once n more bytes went toward the relay.
func (c *chaos) CutAfter(n int64) {
	c.up.Store(0)
	c.cutAt.Store(n)
}

// Stall stops (or resumes) forwarding bytes in both directions.
func (c *chaos) Stall(on bool) { c.stall.Store(on) }

func (c *chaos) Close() {
	c.closed.Store(true)
	_ = c.ln.Close()
	c.CutAll()
	c.wg.Wait()
}

// --- secrets: every secret oesim issued, and every log, checked after the suite ---

var secretReg struct {
	sync.Mutex
	secrets []string
	logs    []*observer.ObservedLogs
	checked bool
}

func registerSecrets(secrets []string, logs *observer.ObservedLogs) {
	secretReg.Lock()
	defer secretReg.Unlock()
	secretReg.secrets = append(secretReg.secrets, secrets...)
	if logs != nil {
		secretReg.logs = append(secretReg.logs, logs)
	}
}

// registerFile has path searched for every secret after the suite (its content is read now: the case's
// temporary directory is gone by then).
func registerFile(t testing.TB, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s for the secrets check: %v", path, err)
		return
	}
	registerText(path, string(b))
}

var texts sync.Map // name → content

func registerText(name, content string) { texts.Store(name, content) }

func secretsChecked() bool {
	secretReg.Lock()
	defer secretReg.Unlock()
	return secretReg.checked
}

// checkAllSecrets searches every registered log and text for every registered secret.
func checkAllSecrets() error {
	secretReg.Lock()
	defer secretReg.Unlock()
	if len(secretReg.secrets) == 0 {
		return nil
	}
	secretReg.checked = true
	var problems []string
	search := func(where, text string) {
		for _, s := range secretReg.secrets {
			if len(s) >= 6 && strings.Contains(text, s) {
				problems = append(problems, fmt.Sprintf("a secret (%d bytes) appears in %s", len(s), where))
			}
		}
	}
	for i, l := range secretReg.logs {
		var b strings.Builder
		for _, e := range l.All() {
			fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
		}
		search(fmt.Sprintf("the logs of rig %d", i), b.String())
	}
	texts.Range(func(k, v any) bool { search(k.(string), v.(string)); return true })
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

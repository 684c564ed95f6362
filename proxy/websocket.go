package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/oeproxy/oeproxy/internal/oe"
	"github.com/oeproxy/oeproxy/route"
	"go.uber.org/zap"
)

// WebSockets are relayed message by message with coder/websocket on both sides, not as ReverseProxy's byte
// tunnel: that lets oeproxy ping the relay (and notice when it goes silent), answer a refused handshake with the
// relay's 6xx instead of a broken 101, close both sides cleanly on shutdown, and pass close codes and reasons.
// Messages are streamed frame by frame (Reader to Writer), never held whole, and sent without compression.

// serveWebSocket dials the relay first and accepts the client only once the relay accepted, with the
// subprotocol the relay chose.
func (h *Handler) serveWebSocket(w http.ResponseWriter, r *http.Request, d route.Decision) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		writeExplanation(w, r, http.StatusServiceUnavailable, explanation{Code: http.StatusServiceUnavailable,
			Meaning: "oeproxy is shutting down.", Action: "Reconnect in a moment."})
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	if r.Method != http.MethodGet || r.Header.Get("Sec-WebSocket-Version") != "13" || r.Header.Get("Sec-WebSocket-Key") == "" {
		// Refuse a malformed handshake before spending a relay connection on it.
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "a WebSocket handshake needs GET, Sec-WebSocket-Version: 13 and Sec-WebSocket-Key", http.StatusUpgradeRequired)
		return
	}

	up, answered := h.dialUpstream(w, r, d)
	if answered {
		return
	}
	relay, resp, release, err, onLAN := up.conn, up.resp, up.release, up.err, up.lan
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			h.passRefusal(w, r, resp)
			return
		}
		h.relayError(w, r, err)
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			release()
		}
	}()
	if !onLAN {
		h.noteRelayOK()
	}
	var protos []string
	if p := relay.Subprotocol(); p != "" {
		protos = []string{p}
	}
	hw := &hijackRecorder{ResponseWriter: w}
	client, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols: protos,
		// The Origin was checked in ServeHTTP against this printer's local origin; coder's own check would
		// compare it with the Host in a slightly different way, so it is switched off here, after ours.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		_ = relay.CloseNow()
		h.log.Debug("WebSocket accept failed", zap.Error(err))
		return
	}
	// The session runs on goroutines of its own and ServeHTTP returns: net/http then lets go of the request, the
	// response and the connection's state, which an idle WebSocket would otherwise hold for its whole life.
	h.wg.Add(1)
	conn := hw.conn
	handedOff = true
	go func() {
		defer h.wg.Done()
		defer release() // the dial's context lives as long as the relay connection
		h.runSession(client, relay, conn)
	}()
}

// dialRelay opens the WebSocket to the relay with the headers the relay passes on (X-Api-Key*, Cookie and the
// subprotocols) and the credential. The dial is cancelled if the client goes away, but not once it succeeded.
func (h *Handler) dialRelay(r *http.Request) (*websocket.Conn, *http.Response, context.CancelFunc, error) {
	hdr := wsClientHeaders(r)
	h.noteDropped(r, relayView(hdr, h.credential))
	return h.dialWS(r, "wss://"+h.relayHost+r.URL.RequestURI(), h.relayHost, h.wsClient, hdr)
}

// wsClientHeaders are the client's handshake headers that go on to the printer, on either route: its auth
// headers and cookies, and its User-Agent (or none: never Go's own).
func wsClientHeaders(r *http.Request) http.Header {
	hdr := http.Header{}
	for k, v := range r.Header {
		n := normalizedHeaderName(k)
		if n == "cookie" || n == "authorization" || n == "x-access-token" || strings.HasPrefix(n, "x-api-key") {
			hdr[k] = append([]string(nil), v...)
		}
	}
	hdr["User-Agent"] = []string{r.Header.Get("User-Agent")}
	return hdr
}

// dialWS dials target (with host as the Host header when set) within DialTimeout, cancelled if the client goes
// away before it succeeded; the returned cancel ends the connection's context, which lives as long as it does.
func (h *Handler) dialWS(r *http.Request, target, host string, client *http.Client, hdr http.Header) (*websocket.Conn, *http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	stopOnClientGone := context.AfterFunc(r.Context(), cancel)
	timer := time.AfterFunc(h.opts.DialTimeout, cancel)
	conn, resp, err := websocket.Dial(ctx, target, &websocket.DialOptions{
		HTTPClient:      client,
		HTTPHeader:      hdr,
		Host:            host,
		Subprotocols:    subprotocols(r.Header),
		CompressionMode: websocket.CompressionDisabled,
	})
	timer.Stop()
	stopOnClientGone()
	if err != nil {
		cancel()
		return nil, resp, nil, err
	}
	conn.SetReadLimit(h.opts.MaxMessageBytes)
	return conn, resp, cancel, nil
}

func subprotocols(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// passRefusal answers the client with the relay's refusal of the handshake: a 6xx with its explanation, anything
// else (401, 404, a redirect) with the relay's status, type and the start of its body.
func (h *Handler) passRefusal(w http.ResponseWriter, r *http.Request, resp *http.Response) {
	ci := clientOf(r.Context())
	if oe.IsCode(resp.StatusCode) {
		h.noteRelayCode(resp.StatusCode)
		writeExplanation(w, r, resp.StatusCode, h.explain(resp.StatusCode))
		return
	}
	rewriteResponseHeader(resp.Header, h.relayHost, ci.host)
	for _, k := range []string{"Content-Type", "Location", "Set-Cookie", "Www-Authenticate", "Retry-After"} {
		if v := resp.Header.Values(k); len(v) > 0 {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	if resp.Body != nil {
		_, _ = io.Copy(w, resp.Body) // coder/websocket keeps at most the first 1024 bytes
	}
}

// The ways a session ends; the first one decides how both sides are closed.
type endReason int

const (
	endClientClosed endReason = iota // the client sent a close frame: pass its code and reason to the relay
	endRelayClosed                   // the relay sent a close frame: pass its code and reason to the client
	endClientLost                    // the client's connection broke
	endRelayLost                     // the relay's connection broke
	endRelaySilent                   // the relay stopped answering pings
	endShutdown                      // Handler.Close
	endTooBig                        // a message exceeded MaxMessageBytes (coder/websocket closed that side with 1009)
)

type wsSession struct {
	h             *Handler
	client, relay *websocket.Conn
	clientRaw     net.Conn // the client's connection under client, to end a close handshake the client stalls
	once          sync.Once
	closed        chan struct{} // closed once both sides have been closed
}

func (h *Handler) runSession(client, relay *websocket.Conn, clientRaw net.Conn) {
	client.SetReadLimit(h.opts.MaxMessageBytes)
	s := &wsSession{h: h, client: client, relay: relay, clientRaw: clientRaw, closed: make(chan struct{})}
	h.mu.Lock()
	shuttingDown := h.closed
	h.sessions[s] = struct{}{}
	h.mu.Unlock()
	if h.opts.Hooks.WebSocket != nil {
		h.opts.Hooks.WebSocket(true)
		defer h.opts.Hooks.WebSocket(false)
	}
	defer func() {
		h.mu.Lock()
		delete(h.sessions, s)
		h.mu.Unlock()
	}()
	if shuttingDown {
		s.end(endShutdown, 0, "")
		return
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	// The pumps read and write without a context that can end: they end when end closes the connections under
	// them. With a cancellable context coder/websocket registers a context.AfterFunc for every read and write,
	// which an idle session keeps allocated on both sides while it waits (benchprof -mode ws).
	go func() {
		defer wg.Done()
		s.pump(context.Background(), relay, client, endClientClosed, endClientLost, endRelayLost)
	}()
	stopPings := s.startKeepAlive(ctx)
	s.pump(context.Background(), client, relay, endRelayClosed, endRelayLost, endClientLost)
	<-s.closed
	cancel()
	stopPings()
	wg.Wait()
}

// pump relays messages from src to dst until src ends. A read failure decides how the session ends. A write
// failure lets dst's own reader tell why dst ended (its close frame or its broken connection) and decides only
// if that reader says nothing for a while (a half-open connection).
func (s *wsSession) pump(ctx context.Context, dst, src *websocket.Conn, srcClosed, srcLost, dstLost endReason) {
	for {
		typ, rd, err := src.Reader(ctx)
		if err != nil {
			s.readFailed(err, srcClosed, srcLost)
			return
		}
		wr, err := dst.Writer(ctx, typ)
		if err == nil {
			er := &errReader{r: rd}
			// The copy buffer is borrowed per message: an idle session holds none (each session held two 32 KiB
			// buffers for its whole life, 64 MiB for 1,000 idle WebSockets).
			bp := wsCopyBuffers.Get().(*[]byte)
			_, err = io.CopyBuffer(wr, er, *bp)
			wsCopyBuffers.Put(bp)
			if err != nil {
				_ = wr.Close()
				if er.err != nil {
					s.readFailed(er.err, srcClosed, srcLost)
					return
				}
			} else {
				err = wr.Close()
			}
		}
		if err != nil {
			t := time.NewTimer(writeFailGrace)
			select {
			case <-s.closed:
			case <-t.C:
				s.end(dstLost, 0, "")
			}
			t.Stop()
			return
		}
	}
}

var wsCopyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeFailGrace is how long a failed write waits for the destination's reader to report why it ended.
const writeFailGrace = 5 * time.Second

func (s *wsSession) readFailed(err error, closedBy, lost endReason) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		s.end(closedBy, ce.Code, ce.Reason)
	case errors.Is(err, websocket.ErrMessageTooBig):
		s.end(endTooBig, 0, "")
	default:
		s.end(lost, 0, "")
	}
}

// startKeepAlive pings the relay every PingInterval; a ping without a pong within the interval ends the session.
// It runs on a timer, not on a goroutine of its own, so that an idle session costs one goroutine (and stack) less.
// stop waits for a ping in progress.
func (s *wsSession) startKeepAlive(ctx context.Context) (stop func()) {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		stopped bool
		t       *time.Timer
	)
	every := s.h.opts.PingInterval
	mu.Lock() // the callback reads t; it may fire before AfterFunc returns when every is tiny
	defer mu.Unlock()
	wg.Add(1)
	t = time.AfterFunc(every, func() {
		defer wg.Done()
		pctx, cancel := context.WithTimeout(ctx, every)
		err := s.relay.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.end(endRelaySilent, 0, "")
			}
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			wg.Add(1)
			t.Reset(every)
		}
	})
	return func() {
		mu.Lock()
		stopped = true
		if t.Stop() {
			wg.Done()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// end closes both sides once, in the way the first ending calls for. It returns after both are closed.
func (s *wsSession) end(why endReason, code websocket.StatusCode, reason string) {
	s.once.Do(func() {
		defer close(s.closed)
		var wg sync.WaitGroup
		closeConn := func(c *websocket.Conn, code websocket.StatusCode, reason string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if c == s.client && s.clientRaw != nil {
					// coder/websocket's close handshake first reads away the rest of the frame in progress, with no
					// deadline: a client that announced a huge frame and went quiet would hold Close (and with it
					// Handler.Close and the daemon's shutdown) forever. Past the handshake's own time limits, close
					// the connection under it.
					t := time.AfterFunc(closeHandshakeLimit, func() { _ = s.clientRaw.Close() })
					defer t.Stop()
				}
				_ = c.Close(code, reason)
			}()
		}
		switch why {
		case endClientClosed:
			closeConn(s.relay, code, reason)
			_ = s.client.CloseNow()
		case endRelayClosed:
			closeConn(s.client, code, reason)
			_ = s.relay.CloseNow()
		case endClientLost:
			_ = s.client.CloseNow()
			closeConn(s.relay, websocket.StatusGoingAway, "client went away")
		case endRelayLost:
			_ = s.relay.CloseNow()
			closeConn(s.client, websocket.StatusInternalError, "lost the connection to the relay")
		case endRelaySilent:
			s.h.log.Warn("the relay stopped answering WebSocket pings; closing the client with 1011")
			_ = s.relay.CloseNow()
			closeConn(s.client, websocket.StatusInternalError, "the relay stopped answering")
		case endTooBig:
			closeConn(s.client, websocket.StatusMessageTooBig, "message too big")
			closeConn(s.relay, websocket.StatusMessageTooBig, "message too big")
		case endShutdown:
			closeConn(s.client, websocket.StatusGoingAway, "oeproxy is shutting down")
			closeConn(s.relay, websocket.StatusGoingAway, "oeproxy is shutting down")
		}
		wg.Wait()
	})
	<-s.closed
}

// closeHandshakeLimit bounds a close handshake with the client: coder/websocket allows 5 s to write the close
// frame and 5 s to read the answer.
const closeHandshakeLimit = 10 * time.Second

// hijackRecorder keeps the connection websocket.Accept hijacks, so that a stalled close handshake can be ended,
// and hands coder/websocket smaller buffers than net/http's.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

// clientBufferSize is the size of the client-side reader and writer a proxied WebSocket keeps for its whole life.
// net/http's are 4 KiB each, 8 of an idle session's 29 KiB of heap (benchprof -mode ws); coder/websocket reads a
// frame's payload past the buffer straight into the relay copy's buffer, and writes one past it straight to the
// connection, so a smaller buffer only costs a second system call for a message larger than it.
const clientBufferSize = 1 << 10

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	if err != nil {
		return c, brw, err
	}
	// net/http wrote the 101 through brw's writer; bytes the client sent after its handshake are in brw's reader.
	if err := brw.Writer.Flush(); err != nil {
		return c, brw, err
	}
	br := bufio.NewReaderSize(c, clientBufferSize)
	if n := brw.Reader.Buffered(); n > 0 {
		// They must end up in br's buffer, not in a reader under it: coder/websocket keeps what br has buffered and
		// then reads from the connection itself.
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), c), max(clientBufferSize, n))
		if _, err := br.Peek(n); err != nil {
			return c, brw, err
		}
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, clientBufferSize)), nil
}

// errReader remembers a read error so that pump can tell a failing source from a failing destination.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

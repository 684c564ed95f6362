// Package mqttbridge owns a printer's local MQTT port: a TCP listener (loopback) whose every client connection
// is relayed over a WebSocket of its own to the App Connection's MQTT proxy
// (wss://<app host>/octoeverywhere-command-api/proxy/mqtt, subprotocol mqtt, binary frames, MQTT 3.1.1), so that
// Home Assistant's Bambu Lab integration, mosquitto_sub or any MQTT client reaches a Bambu Lab (or Elegoo CC2)
// printer from anywhere as if it were a plain broker. No MQTT credentials are needed: the plugin holds the
// printer's; the OctoEverywhere credential goes on the WebSocket handshake, which Options.Dial makes
// (proxy.Handler.DialMQTT, the one place that decides what the relay sees).
//
// The bridge reads the client's CONNECT before dialing, so that a relay that refuses the handshake (a 6xx:
// printer offline, credentials revoked) can be told to the client as an MQTT CONNACK refusal, with a log line
// saying what the code means. Afterwards it carries whole MQTT packets, one per WebSocket message, both ways,
// and does not interpret them (keep-alive PINGREQ/PINGRESP pass through). A WebSocket the relay closes with an
// OctoEverywhere code (the plugin lost the printer) closes the client's TCP connection and is logged with the code.
//
// It must not read configuration or the credential store, and never logs a secret.
package mqttbridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/oeproxy/oeproxy/internal/oe"
	"go.uber.org/zap"
)

// Options configures New. Dial is required.
type Options struct {
	// Dial opens the WebSocket to the relay's MQTT proxy; on a refused handshake it returns the relay's response
	// with the error. release ends the connection's life (proxy.Handler.DialMQTT has this signature).
	Dial func(ctx context.Context) (conn *websocket.Conn, resp *http.Response, release func(), err error)
	// Printer names the printer in logs.
	Printer string
	Logger  *zap.Logger
	// PingInterval is how often each WebSocket pings the relay (default 30s); an unanswered ping ends the
	// connection. Negative: never.
	PingInterval time.Duration
	// ConnectTimeout bounds the wait for a client's CONNECT packet (default 30s).
	ConnectTimeout time.Duration
	// MaxPacketBytes is the largest MQTT packet carried (default 16 MiB).
	MaxPacketBytes int
}

// Bridge serves one printer's MQTT port. Close ends every connection.
type Bridge struct {
	opts Options
	log  *zap.Logger
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	closed bool
}

// New checks the options and returns a bridge; give it listeners with Serve.
func New(o Options) (*Bridge, error) {
	if o.Dial == nil {
		return nil, errors.New("mqttbridge: Options.Dial is required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.PingInterval == 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.MaxPacketBytes <= 0 {
		o.MaxPacketBytes = 16 << 20
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Bridge{opts: o, log: o.Logger.Named("mqtt").With(zap.String("printer", o.Printer)), ctx: ctx, stop: stop,
		conns: map[net.Conn]struct{}{}}, nil
}

// Serve accepts MQTT clients on ln until ln fails or Close; it returns nil after Close.
func (b *Bridge) Serve(ln net.Listener) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	b.lns = append(b.lns, ln)
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if b.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("mqttbridge: accept: %w", err)
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = c.Close()
			return nil
		}
		b.conns[c] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		go func() {
			defer b.wg.Done()
			defer b.forget(c)
			b.serveConn(c)
		}()
	}
}

func (b *Bridge) forget(c net.Conn) {
	_ = c.Close()
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// Clients is the number of MQTT clients connected now.
func (b *Bridge) Clients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// Close stops the listeners, closes every client and its WebSocket, and waits for them.
func (b *Bridge) Close() error {
	b.mu.Lock()
	b.closed = true
	lns := b.lns
	b.lns = nil
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.stop()
	for _, ln := range lns {
		_ = ln.Close()
	}
	b.wg.Wait()
	return nil
}

// CONNACK return codes of MQTT 3.1.1 (§3.2.2.3).
const (
	connackBadProtocol       = 0x01
	connackServerUnavailable = 0x03
	connackNotAuthorized     = 0x05
)

// connackFor picks the refusal a client gets when the relay refuses the handshake with status.
func connackFor(status int) byte {
	switch status {
	case 603, 604, 605, 606, http.StatusUnauthorized, http.StatusForbidden:
		return connackNotAuthorized // the App Connection cannot be used: retrying will not help
	}
	return connackServerUnavailable // 600, 601, 602, 610-612, 5xx: the printer or the relay, try later
}

func (b *Bridge) serveConn(c net.Conn) {
	client := c.RemoteAddr().String()
	_ = c.SetReadDeadline(time.Now().Add(b.opts.ConnectTimeout))
	br := bufio.NewReaderSize(c, 32<<10)
	connect, err := readPacket(br, b.opts.MaxPacketBytes)
	if err != nil {
		b.log.Debug("MQTT client sent no CONNECT", zap.String("client", client), zap.Error(err))
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if connect[0]>>4 != 1 {
		b.log.Info("MQTT client did not start with CONNECT; closed", zap.String("client", client))
		return
	}
	if lvl, ok := protocolLevel(connect); !ok || (lvl != 3 && lvl != 4) {
		// OctoEverywhere's proxy speaks MQTT 3.1.1 (level 4) and 3.1; MQTT 5 is not supported (research §7).
		_, _ = c.Write([]byte{0x20, 0x02, 0x00, connackBadProtocol})
		b.log.Warn("MQTT client refused: only MQTT 3.1.1 and 3.1 pass through OctoEverywhere's MQTT proxy",
			zap.String("client", client), zap.Int("protocol_level", int(lvl)))
		return
	}

	ws, resp, release, err := b.opts.Dial(b.ctx)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
			if resp.Body != nil {
				_ = resp.Body.Close()
			}
		}
		_, _ = c.Write([]byte{0x20, 0x02, 0x00, connackFor(status)})
		fields := []zap.Field{zap.String("client", client)}
		if oe.IsCode(status) {
			code := oe.Lookup(status)
			fields = append(fields, zap.Int("code", status), zap.String("meaning", code.Meaning), zap.String("action", code.ActionFor(b.opts.Printer)))
		} else if status != 0 {
			fields = append(fields, zap.Int("status", status))
		} else {
			fields = append(fields, zap.Error(err))
		}
		if b.ctx.Err() == nil {
			b.log.Warn("MQTT client refused: the relay did not open the MQTT proxy", fields...)
		}
		return
	}
	defer release()
	defer ws.CloseNow()
	b.log.Info("MQTT client connected through the relay", zap.String("client", client))

	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageBinary, connect); err != nil {
		b.log.Info("MQTT proxy WebSocket failed at once", zap.String("client", client), zap.Error(err))
		return
	}

	var wg sync.WaitGroup
	var once sync.Once
	var reason string
	end := func(why string) {
		once.Do(func() { reason = why })
		cancel()
		_ = c.Close()
	}
	wg.Add(2)
	go func() { // client → relay, one packet per message
		defer wg.Done()
		for {
			pkt, err := readPacket(br, b.opts.MaxPacketBytes)
			if err != nil {
				why, status := "client closed", websocket.StatusNormalClosure
				if errors.Is(err, errTooLarge) {
					why, status = "client sent a packet over the size limit", websocket.StatusMessageTooBig
				}
				once.Do(func() { reason = why })
				if ctx.Err() == nil {
					_ = ws.Close(status, "") // a clean end for the plugin's MQTT session
				}
				end(why)
				return
			}
			if err := ws.Write(ctx, websocket.MessageBinary, pkt); err != nil {
				end(wsEndReason(err, b.opts.Printer))
				return
			}
		}
	}()
	go func() { // relay → client
		defer wg.Done()
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				end(wsEndReason(err, b.opts.Printer))
				return
			}
			if _, err := c.Write(msg); err != nil {
				end("client closed")
				return
			}
		}
	}()
	if b.opts.PingInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(b.opts.PingInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				pctx, pcancel := context.WithTimeout(ctx, b.opts.PingInterval)
				err := ws.Ping(pctx)
				pcancel()
				if err != nil && ctx.Err() == nil {
					end("the relay stopped answering WebSocket pings")
					return
				}
			}
		}()
	}
	wg.Wait()
	switch {
	case reason == "client closed":
		b.log.Info("MQTT client disconnected", zap.String("client", client))
	case b.ctx.Err() != nil:
		_ = ws.Close(websocket.StatusGoingAway, "oeproxy stopping")
	default:
		b.log.Warn("MQTT connection ended by the relay; the client's TCP connection was closed",
			zap.String("client", client), zap.String("reason", reason))
	}
}

// wsEndReason says why the relay's WebSocket ended, naming an OctoEverywhere code when the close carries one:
// as close status 4000+code or 6xx, or as a reason starting with the code (how OE sends it is undocumented).
func wsEndReason(err error, printer string) string {
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		return "the relay connection broke: " + err.Error()
	}
	code := 0
	switch s := int(ce.Code); {
	case s >= 4600 && s < 4700:
		code = s - 4000
	case oe.IsCode(s):
		code = s
	}
	if code == 0 && len(ce.Reason) >= 3 {
		if n, perr := strconv.Atoi(ce.Reason[:3]); perr == nil && oe.IsCode(n) {
			code = n
		}
	}
	if code != 0 {
		c := oe.Lookup(code)
		return fmt.Sprintf("OctoEverywhere %d: %s %s", code, c.Meaning, c.ActionFor(printer))
	}
	r := fmt.Sprintf("the relay closed the WebSocket with status %d", int(ce.Code))
	if ce.Reason != "" {
		r += " (" + strings.TrimSpace(ce.Reason) + ")"
	}
	return r
}

var errTooLarge = errors.New("MQTT packet over the size limit")

// readPacket reads one whole MQTT control packet: the fixed header, its remaining-length varint and the rest.
func readPacket(r *bufio.Reader, max int) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	hdr := []byte{first}
	length, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return nil, errors.New("malformed MQTT remaining length")
		}
		bt, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		hdr = append(hdr, bt)
		length += int(bt&0x7f) * mult
		if bt&0x80 == 0 {
			break
		}
		mult *= 128
	}
	if length+len(hdr) > max {
		return nil, errTooLarge
	}
	pkt := make([]byte, len(hdr)+length)
	copy(pkt, hdr)
	if _, err := io.ReadFull(r, pkt[len(hdr):]); err != nil {
		return nil, err
	}
	return pkt, nil
}

// protocolLevel reads the protocol level of a CONNECT packet (after the protocol name "MQTT" or "MQIsdp").
func protocolLevel(pkt []byte) (byte, bool) {
	i := 1
	for i < len(pkt) && pkt[i]&0x80 != 0 {
		i++
	}
	i++ // last remaining-length byte
	if i+2 > len(pkt) {
		return 0, false
	}
	n := int(pkt[i])<<8 | int(pkt[i+1])
	i += 2 + n
	if i >= len(pkt) {
		return 0, false
	}
	return pkt[i], true
}

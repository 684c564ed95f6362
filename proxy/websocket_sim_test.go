package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/internal/testutil"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
)

func wsURL(e *simEnv, path string) string { return "ws" + strings.TrimPrefix(e.url(path), "http") }

func dialLocal(t *testing.T, e *simEnv, path string, protos ...string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(t.Context(), wsURL(e, path), &websocket.DialOptions{Subprotocols: protos})
	if err != nil {
		t.Fatalf("dial through oeproxy: %v (response %v)", err, resp)
	}
	c.SetReadLimit(-1)
	return c
}

func TestWebSocketMessagesAndSubprotocol(t *testing.T) {
	e := startSim(t, newTestBackend(), nil)
	c := dialLocal(t, e, "/ws?x=1", "v1.proto", "v2.proto")
	defer c.CloseNow()
	if got := c.Subprotocol(); got != "v2.proto" {
		t.Errorf("subprotocol %q, want the printer's choice v2.proto", got)
	}
	// The client may see the 101 a moment before the handler counts the session.
	waitFor(t, func() bool { return e.h.OpenWebSockets() == 1 })
	ctx := t.Context()
	bin := make([]byte, 100<<10)
	_, _ = rand.Read(bin)
	for _, m := range []struct {
		typ websocket.MessageType
		b   []byte
	}{{websocket.MessageText, []byte("hello")}, {websocket.MessageBinary, bin}, {websocket.MessageText, []byte("")}} {
		if err := c.Write(ctx, m.typ, m.b); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != m.typ || !bytes.Equal(got, m.b) {
			t.Errorf("echo: type %v, %d bytes; want %v, %d bytes", typ, len(got), m.typ, len(m.b))
		}
	}
	// The handshake reached the relay with the credential and the subprotocols.
	var saw bool
	for _, rq := range e.conn.Requests() {
		if rq.WebSocket && rq.Path == "/ws" && rq.RawQuery == "x=1" {
			saw = true
			if rq.Header.Get("Authorization") != e.basicCredential() || rq.Header.Get("Sec-Websocket-Protocol") == "" {
				t.Errorf("relay handshake headers: auth ok=%v protocols %q", rq.Header.Get("Authorization") == e.basicCredential(), rq.Header.Get("Sec-Websocket-Protocol"))
			}
		}
	}
	if !saw {
		t.Error("the relay recorded no WebSocket handshake")
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestWebSocketLargeMessage relays one 64 MiB message each way (smaller under -race) as a stream.
func TestWebSocketLargeMessage(t *testing.T) {
	size := int64(64 << 20)
	if raceEnabled {
		size = 16 << 20
	}
	e := startSim(t, newTestBackend(), func(o *Options, _ *Printer) { o.MaxMessageBytes = 64 << 20 })
	c := dialLocal(t, e, "/ws")
	defer c.CloseNow()
	ctx := t.Context()
	go func() {
		w, err := c.Writer(ctx, websocket.MessageBinary)
		if err != nil {
			return
		}
		_, _ = io.CopyN(w, &patternReader{}, size)
		_ = w.Close()
	}()
	typ, r, err := c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pc := newPatternChecker()
	n, err := io.Copy(pc, r)
	if err != nil || n != size || typ != websocket.MessageBinary || pc.bad >= 0 {
		t.Fatalf("got %d bytes (%v), type %v, first wrong byte at %d; want %d intact bytes", n, err, typ, pc.bad, size)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// patternReader produces byte (offset % 251) at each offset; patternChecker verifies that sequence, so neither
// side needs a buffer of the message's size.
type patternReader struct{ off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

type patternChecker struct {
	off int64
	bad int64 // offset of the first wrong byte, or -1
}

func newPatternChecker() *patternChecker { return &patternChecker{bad: -1} }

func (p *patternChecker) Write(b []byte) (int, error) {
	for i, c := range b {
		if c != byte((p.off+int64(i))%251) && p.bad < 0 {
			p.bad = p.off + int64(i)
		}
	}
	p.off += int64(len(b))
	return len(b), nil
}

func TestWebSocketCloseCodes(t *testing.T) {
	t.Run("printer closes", func(t *testing.T) {
		e := startSim(t, newTestBackend(), nil)
		c := dialLocal(t, e, "/ws")
		defer c.CloseNow()
		if err := c.Write(t.Context(), websocket.MessageText, []byte("close 4123 printer_says_bye")); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.Read(t.Context())
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4123 || ce.Reason != "printer says bye" {
			t.Fatalf("client got %v, want close 4123 %q", err, "printer says bye")
		}
	})
	t.Run("client closes", func(t *testing.T) {
		b := newTestBackend()
		e := startSim(t, b, nil)
		c := dialLocal(t, e, "/ws")
		if err := c.Close(4321, "client says bye"); err != nil {
			t.Fatalf("close: %v", err)
		}
		waitFor(t, func() bool { return len(b.seenCloses()) > 0 })
		if got := b.seenCloses()[0]; got.Code != 4321 || got.Reason != "client says bye" {
			t.Errorf("printer got %v", got)
		}
	})
}

// TestWebSocketRefused: a 6xx on the handshake reaches the client as that status with the explanation.
func TestWebSocketRefused(t *testing.T) {
	e := startSim(t, newTestBackend(), nil)
	e.conn.SetSupporter(false)
	_, resp, err := websocket.Dial(t.Context(), wsURL(e, "/ws"), nil)
	if err == nil || resp == nil || resp.StatusCode != 605 || resp.Header.Get(ErrorHeader) != "605" {
		t.Fatalf("dial: err %v, resp %+v", err, resp)
	}
	var ex explanation
	if err := json.NewDecoder(resp.Body).Decode(&ex); err != nil || ex.Code != 605 || ex.Link == "" {
		t.Errorf("body %+v (%v)", ex, err)
	}
	if n := e.h.OpenWebSockets(); n != 0 {
		t.Errorf("OpenWebSockets = %d after a refusal", n)
	}
}

// TestWebSocketRelaySilent: when the relay stops answering pings, the client is closed with 1011.
func TestWebSocketRelaySilent(t *testing.T) {
	e := startSim(t, newTestBackend(), func(o *Options, _ *Printer) { o.PingInterval = 100 * time.Millisecond })
	c := dialLocal(t, e, "/ws")
	defer c.CloseNow()
	e.conn.SetSilentWebSockets(true)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusInternalError {
		t.Fatalf("client got %v (status %d), want 1011", err, got)
	}
	e.conn.SetSilentWebSockets(false)
}

// TestWebSocketShutdown: Handler.Close closes the client with 1001 and the count drops to zero.
func TestWebSocketShutdown(t *testing.T) {
	e := startSim(t, newTestBackend(), nil)
	c := dialLocal(t, e, "/ws")
	defer c.CloseNow()
	readErr := make(chan error, 1)
	go func() { _, _, err := c.Read(context.Background()); readErr <- err }()
	e.h.Close()
	if got := websocket.CloseStatus(<-readErr); got != websocket.StatusGoingAway {
		t.Errorf("client got status %d, want 1001", got)
	}
	if n := e.h.OpenWebSockets(); n != 0 {
		t.Errorf("OpenWebSockets = %d after Close", n)
	}
	_, resp, err := websocket.Dial(t.Context(), wsURL(e, "/ws"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Close: %v %v", err, resp)
	}
}

// TestWebSocketGorillaClient uses a second WebSocket library as the client.
func TestWebSocketGorillaClient(t *testing.T) {
	e := startSim(t, newTestBackend(), nil)
	d := gorilla.Dialer{Subprotocols: []string{"v1.proto"}}
	c, _, err := d.Dial(wsURL(e, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != "v1.proto" {
		t.Errorf("subprotocol %q", c.Subprotocol())
	}
	for _, m := range []struct {
		typ int
		b   string
	}{{gorilla.TextMessage, "text via gorilla"}, {gorilla.BinaryMessage, "\x00\x01binary"}} {
		if err := c.WriteMessage(m.typ, []byte(m.b)); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.ReadMessage()
		if err != nil || typ != m.typ || string(got) != m.b {
			t.Errorf("echo %d %q %v", typ, got, err)
		}
	}
	_ = c.WriteMessage(gorilla.TextMessage, []byte("close 4000 done"))
	_, _, err = c.ReadMessage()
	var ce *gorilla.CloseError
	if !errors.As(err, &ce) || ce.Code != 4000 || ce.Text != "done" {
		t.Errorf("close: %v", err)
	}
}

// TestWebSocketPluginDisconnect: the relay closing the socket (plugin gone) reaches the client with its code.
func TestWebSocketPluginDisconnect(t *testing.T) {
	e := startSim(t, newTestBackend(), nil)
	c := dialLocal(t, e, "/ws")
	defer c.CloseNow()
	waitFor(t, func() bool { return e.h.OpenWebSockets() == 1 })
	e.conn.DropWebSockets()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Fatalf("client got %v, want 1001 from the relay", err)
	}
	waitFor(t, func() bool { return e.h.OpenWebSockets() == 0 })
}

// waitFor polls cond under testutil's deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, "the condition", cond)
}

// TestWebSocketFrameBehindHandshake: a client may send its first frame in the same packet as its handshake, so
// that net/http has read it already when the connection is hijacked; it must still be relayed, also when it is
// larger than the buffer the session keeps.
func TestWebSocketFrameBehindHandshake(t *testing.T) {
	e := startSim(t, newTestBackend(), nil)
	for _, size := range []int{5, 3000} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.local.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		payload := bytes.Repeat([]byte("e"), size)
		frame := []byte{0x81, 0xfe, byte(size >> 8), byte(size), 1, 2, 3, 4} // text, masked, 16-bit length
		if size < 126 {
			frame = []byte{0x81, 0x80 | byte(size), 1, 2, 3, 4}
		}
		for i, c := range payload {
			frame = append(frame, c^byte(i%4+1))
		}
		req := "GET /ws HTTP/1.1\r\nHost: " + strings.TrimPrefix(e.local.URL, "http://") + "\r\nConnection: Upgrade\r\n" +
			"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
		if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a hang fails instead of blocking the suite
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		// The proxy streams a message frame by frame: gather the fragments up to the one with FIN.
		var got []byte
		var first byte
		for fin := false; !fin; {
			hdr := make([]byte, 2)
			if _, err := io.ReadFull(br, hdr); err != nil {
				t.Fatalf("%d-byte frame: reading the echo: %v", size, err)
			}
			if first == 0 {
				first = hdr[0] & 0x0f
			}
			fin = hdr[0]&0x80 != 0
			n := int(hdr[1] & 0x7f)
			if n == 126 {
				ext := make([]byte, 2)
				if _, err := io.ReadFull(br, ext); err != nil {
					t.Fatal(err)
				}
				n = int(ext[0])<<8 | int(ext[1])
			}
			part := make([]byte, n)
			if _, err := io.ReadFull(br, part); err != nil {
				t.Fatal(err)
			}
			got = append(got, part...)
		}
		if first != 1 || !bytes.Equal(got, payload) {
			t.Errorf("%d-byte frame behind the handshake: echo opcode %d with %d bytes, want text (1) with the same %d bytes", size, first, len(got), size)
		}
	}
}

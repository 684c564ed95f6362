package reliability

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Oversized request headers are refused (431) before anything reaches the relay.
func TestBadInputOversizedHeaders(t *testing.T) {
	track(t)
	r := newRig(t, rigOptions{})
	c := dial(t, r)
	fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", r.addr, strings.Repeat("a", 2<<20))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to 2 MiB of headers: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("2 MiB of headers: %s, want 431", resp.Status)
	}
	if n := r.relayRequests(); n != 0 {
		t.Errorf("the relay received %d request(s)", n)
	}
	r.mustOK(t)
}

// Request smuggling attempts (RFC 9112 §6.3 ambiguities). Each is refused outright, except where RFC 9112 lets a
// server process the request by one reading (Transfer-Encoding over Content-Length; obs-fold replaced by a space):
// then the connection must close after the answer. Either way the request hidden in the body never reaches the
// relay, and the connection never serves a second request.
func TestBadInputSmuggling(t *testing.T) {
	cases := []struct {
		name       string
		req        string
		mayProcess bool // RFC 9112 allows processing it by one reading, then closing the connection
	}{
		{"Content-Length and Transfer-Encoding", "POST /upload HTTP/1.1\r\nHost: %[1]s\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"0\r\n\r\nGET /small HTTP/1.1\r\nHost: %[1]s\r\n\r\n", true},
		{"two Content-Lengths", "POST /upload HTTP/1.1\r\nHost: %[1]s\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello" +
			"GET /small HTTP/1.1\r\nHost: %[1]s\r\n\r\n", false},
		{"unknown Transfer-Encoding", "POST /upload HTTP/1.1\r\nHost: %[1]s\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", false},
		{"chunked not last", "POST /upload HTTP/1.1\r\nHost: %[1]s\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", false},
		{"obsolete line folding", "POST /upload HTTP/1.1\r\nHost: %[1]s\r\nConnection: close\r\nContent-Length: 0\r\nX-Fold: a\r\n b\r\n\r\n", true},
		{"negative Content-Length", "POST /upload HTTP/1.1\r\nHost: %[1]s\r\nContent-Length: -5\r\n\r\n", false},
		{"space before colon", "POST /upload HTTP/1.1\r\nHost: %[1]s\r\nContent-Length : 5\r\n\r\nhello", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			track(t)
			r := newRig(t, rigOptions{})
			conn := dial(t, r)
			fmt.Fprintf(conn, c.req, r.addr)
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode < 400 && !c.mayProcess {
				t.Errorf("answered %s, want a refusal (4xx/5xx)", resp.Status)
			}
			t.Logf("answered %s", resp.Status)
			// The connection must not go on to serve the smuggled request: it closes.
			if resp2, err := http.ReadResponse(br, nil); err == nil {
				resp2.Body.Close()
				t.Errorf("a second answer (%s) followed on the same connection: the hidden request was served", resp2.Status)
			}
			for _, q := range r.env.Conn.Requests() {
				if q.Path != "/upload" || !c.mayProcess {
					t.Errorf("the relay received %s %s", q.Method, q.Path)
				}
				if v := q.Header.Values("X-Fold"); len(v) > 1 {
					t.Errorf("a folded header reached the relay as %d headers", len(v))
				}
			}
			r.mustOK(t)
		})
	}
}

// Malformed WebSocket frames from the client end that session (close 1002 or 1009, or the connection closed;
// the message limit is 1 MiB here)
// without touching other sessions; the relay side and the origin are released and the proxy serves on.
func TestBadInputMalformedWebSocketFrames(t *testing.T) {
	cases := []struct {
		name  string
		frame []byte
		more  int // payload bytes sent after the frame header
	}{
		{"unmasked frame", frame(0x81, []byte("hi"), false), 0},
		{"reserved opcode", frame(0x83, []byte("hi"), true), 0},
		{"RSV1 without compression", frame(0xC1, []byte("hi"), true), 0},
		{"control frame over 125 bytes", frame(0x89, make([]byte, 126), true), 0},
		{"fragmented control frame", frame(0x09, []byte("x"), true), 0},
		{"continuation without a start", frame(0x80, []byte("x"), true), 0},
		{"close with an invalid code", frame(0x88, []byte{0x03, 0xE7}, true), 0},
		{"message beyond the limit", hugeFrame(), 2 << 20},
		{"garbage", []byte("this is not a WebSocket frame at all\r\n\r\n"), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			track(t)
			r := newRig(t, rigOptions{maxMessage: 1 << 20})
			conn := dial(t, r)
			br := handshake(t, r, conn)
			if _, err := conn.Write(c.frame); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if c.more > 0 { // stream payload past the limit; the proxy may close while it is being written
				masked := make([]byte, 64<<10)
				for sent := 0; sent < c.more; sent += len(masked) {
					if _, err := conn.Write(masked); err != nil {
						break
					}
				}
			}
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(br) // until the proxy closes the connection
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the proxy kept the session open after a malformed frame (read %d bytes%s); proxy goroutines:\n%s", len(got), closeCode(got), stacksWith(proxySide))
			}
			t.Logf("proxy answered %d bytes then closed (%v)%s after %s", len(got), err, closeCode(got), time.Since(start))
			waitIdle(t)
			r.mustOK(t)
		})
	}
}

// frame builds one client frame with the first byte b0 (FIN, RSV, opcode).
func frame(b0 byte, payload []byte, mask bool) []byte {
	out := []byte{b0}
	var m byte
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, m|byte(n))
	case n <= 0xFFFF:
		out = append(out, m|126, byte(n>>8), byte(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !mask {
		return append(out, payload...)
	}
	key := []byte{1, 2, 3, 4}
	out = append(out, key...)
	for i, b := range payload {
		out = append(out, b^key[i%4])
	}
	return out
}

// hugeFrame is the header of a 4 GiB binary message (mask key 0, so zero bytes are its payload).
func hugeFrame() []byte {
	out := []byte{0x82, 0x80 | 127}
	out = binary.BigEndian.AppendUint64(out, 4<<30)
	return append(out, 0, 0, 0, 0)
}

// handshake upgrades conn to a WebSocket through the proxy by hand and returns the reader after the 101.
func handshake(t testing.TB, r *rig, conn net.Conn) *bufio.Reader {
	t.Helper()
	fmt.Fprintf(conn, "GET /ws/echo HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", r.addr)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	return br
}

// closeCode describes the close frame at the start of b, if any.
func closeCode(b []byte) string {
	if len(b) >= 4 && b[0] == 0x88 {
		return fmt.Sprintf(", close code %d", binary.BigEndian.Uint16(b[2:4]))
	}
	return ""
}

// A client that announced a huge frame and went quiet must not hold the handler's shutdown (the daemon's
// SIGTERM path): Handler.Close returns within the close-handshake limit.
func TestBadInputStalledFrameAtShutdown(t *testing.T) {
	track(t)
	r := newRig(t, rigOptions{})
	conn := dial(t, r)
	handshake(t, r, conn)
	if _, err := conn.Write(append(hugeFrame(), make([]byte, 1024)...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session to start", func() bool { return r.h.OpenWebSockets() == 1 })
	done := make(chan struct{})
	start := time.Now()
	go func() { r.h.Close(); close(done) }()
	select {
	case <-done:
		t.Logf("Handler.Close returned after %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatalf("Handler.Close still blocked 20 s later by a client stalled mid-frame:\n%s", stacksWith(proxySide))
	}
	waitIdle(t)
}

package reliability

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/internal/testutil"

	"github.com/oeproxy/oeproxy/oesim"
)

// The local client disconnects at every stage of a request. Each time, the upstream request must be cancelled
// (the relay's handler and the origin's end) and no goroutine of the proxy may be left; the proxy then serves
// the next request.
func TestClientDisconnects(t *testing.T) {
	stages := []struct {
		name string
		run  func(t *testing.T, r *rig)
	}{
		{"while sending headers", func(t *testing.T, r *rig) {
			c := dial(t, r)
			fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: %s\r\nX-Half: ", r.addr)
			c.Close()
			select { // the server is done with the connection: whatever it was going to forward has gone
			case <-r.closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the proxy did not finish with a connection closed mid-header")
			}
			if n := r.relayRequests(); n != 0 {
				t.Errorf("a half-sent request reached the relay (%d requests)", n)
			}
		}},
		{"while sending the upload body", func(t *testing.T, r *rig) {
			c := dial(t, r)
			fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", r.addr, 64<<20)
			chunk := make([]byte, 64<<10)
			for range 32 { // 2 MiB of 64
				if _, err := c.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "the relay to receive the upload", func() bool { return stackCount(relaySide...) > 0 })
			c.Close()
		}},
		{"while waiting for the answer", func(t *testing.T, r *rig) {
			r.env.Conn.SetFault(oesim.FaultStall)
			defer r.env.Conn.SetFault(oesim.FaultNone)
			c := dial(t, r)
			fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: %s\r\n\r\n", r.addr)
			waitFor(t, "the relay to hold the request", func() bool { return stackCount(relaySide...) > 0 })
			c.Close()
		}},
		{"mid-download", func(t *testing.T, r *rig) {
			c := dial(t, r)
			fmt.Fprintf(c, "GET /bytes?n=%d HTTP/1.1\r\nHost: %s\r\n\r\n", 1<<30, r.addr)
			if _, err := io.CopyN(io.Discard, c, 2<<20); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}},
		{"mid-MJPEG", func(t *testing.T, r *rig) {
			c := dial(t, r)
			fmt.Fprintf(c, "GET /mjpeg?ms=20&size=4096 HTTP/1.1\r\nHost: %s\r\n\r\n", r.addr)
			if _, err := io.CopyN(io.Discard, c, 16<<10); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}},
		{"mid-WebSocket", func(t *testing.T, r *rig) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, _, err := r.dialWS(ctx, "/ws/echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			echo(ctx, t, ws, "hello")
			ws.CloseNow() // no close frame: the TCP connection just goes
		}},
		{"during the WebSocket handshake", func(t *testing.T, r *rig) {
			r.env.Conn.SetFault(oesim.FaultStall)
			defer r.env.Conn.SetFault(oesim.FaultNone)
			c := dial(t, r)
			fmt.Fprintf(c, "GET /ws/echo HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", r.addr)
			waitFor(t, "the relay to hold the handshake", func() bool { return stackCount(relaySide...) > 0 })
			c.Close()
		}},
		{"after the answer, on an idle keep-alive connection", func(t *testing.T, r *rig) {
			c := dial(t, r)
			fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: %s\r\n\r\n", r.addr)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			c.Close()
		}},
	}
	for _, s := range stages {
		t.Run(s.name, func(t *testing.T) {
			track(t)
			r := newRig(t, rigOptions{})
			s.run(t, r)
			waitIdle(t)
			r.mustOK(t)
		})
	}
}

func dial(t testing.TB, r *rig) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor is the shared helper of internal/testutil under the name this package's tests use.
var waitFor = testutil.WaitFor

package oenet

import (
	"io"
	"net/http"
	"testing"

	"github.com/oeproxy/oeproxy/internal/testutil"
)

// roundTrip sends a GET with Sec-Fetch-Dest dest (none when empty) and fails unless it is answered "ok".
func roundTrip(t *testing.T, tr http.RoundTripper, dest string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, relayURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dest != "" {
		req.Header.Set("Sec-Fetch-Dest", dest)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("answer %q", b)
	}
}

// A page navigation opens one connection ahead for the WebSocket transport, which the next WebSocket dial takes
// instead of dialling; other requests open none; a connection the relay closed meanwhile is not handed out.
func TestRelayTransportsOpenAheadOnNavigation(t *testing.T) {
	r := newRelay(t, 0)
	tr, ws := r.options(0).RelayTransports()
	tr.(*navigationHook).standby.window = 0 // the connection kept ready is TestStandby's; here it would add to the count
	defer tr.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	defer ws.(*http.Transport).CloseIdleConnections()

	roundTrip(t, tr, "script")
	roundTrip(t, tr, "") // no Accept: text/html either
	if n := r.nb.Load(); n != 1 {
		t.Fatalf("%d connections after two plain requests, want 1 (reused)", n)
	}
	roundTrip(t, tr, "document")
	testutil.WaitFor(t, "a connection opened ahead", func() bool { return r.nb.Load() == 2 })
	roundTrip(t, ws, "websocket")
	if n := r.nb.Load(); n != 2 {
		t.Errorf("the WebSocket transport opened a connection of its own (%d in all), want the one opened ahead", n)
	}

	// The relay closes everything while a connection waits: the next dial must open a new one that works.
	ws.(*http.Transport).CloseIdleConnections()
	roundTrip(t, tr, "document")
	testutil.WaitFor(t, "a second connection opened ahead", func() bool { return r.nb.Load() == 3 })
	r.srv.CloseClientConnections()
	testutil.WaitFor(t, "the relay's connections closed", func() bool { return r.open.Load() == 0 })
	roundTrip(t, ws, "websocket")
	if n := r.nb.Load(); n != 4 {
		t.Errorf("%d connections, want 4: a dead connection opened ahead must be replaced by a new one", n)
	}
}

package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/oeproxy/oeproxy/route"
)

// TestLANView lists what the LAN may and may not see: the client's own auth passes (PrusaLink Basic/Digest works
// at home), forwarding headers do not, and nothing is added.
func TestLANView(t *testing.T) {
	t.Parallel()
	h := http.Header{
		"Authorization":       {"Digest username=\"maker\""},
		"X-Api-Key":           {"K"},
		"Cookie":              {"session=1"},
		"X-Forwarded-For":     {"6.6.6.6"},
		"X_Forwarded_Host":    {"evil"},
		"Forwarded":           {"for=6.6.6.6"},
		"X-Real-Ip":           {"6.6.6.6"},
		"Proxy-Authorization": {"Basic x"},
	}
	lanView(h)
	for _, keep := range []string{"Authorization", "X-Api-Key", "Cookie"} {
		if h.Get(keep) == "" {
			t.Errorf("%s was dropped on the LAN", keep)
		}
	}
	for _, drop := range []string{"X-Forwarded-For", "X_Forwarded_Host", "Forwarded", "X-Real-Ip", "Proxy-Authorization"} {
		if len(h[drop]) > 0 {
			t.Errorf("%s reached the LAN", drop)
		}
	}
	if len(h) != 3 {
		t.Errorf("headers %v", h)
	}
}

func TestRewriteLANHeader(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("http://192.168.1.5:7125")
	prefixed, _ := url.Parse("http://octopi.lan/octoprint")
	for _, tc := range []struct {
		base     *url.URL
		location string
		want     string
	}{
		{base, "http://192.168.1.5:7125/server/files?x=1", "http://127.0.0.1:5001/server/files?x=1"},
		{base, "http://192.168.1.5/other-port", "http://192.168.1.5/other-port"},
		{base, "http://10.0.0.9:7125/elsewhere", "http://10.0.0.9:7125/elsewhere"},
		{base, "/relative", "/relative"},
		{prefixed, "http://octopi.lan/octoprint/login", "http://127.0.0.1:5001/login"},
		{prefixed, "http://OCTOPI.lan:80/octoprint/", "http://127.0.0.1:5001/"},
	} {
		h := http.Header{"Location": {tc.location}, "Set-Cookie": {"s=1; Domain=192.168.1.5; Secure; Path=/"}}
		rewriteLANHeader(h, tc.base, "127.0.0.1:5001")
		if got := h.Get("Location"); got != tc.want {
			t.Errorf("Location %q on %s: %q, want %q", tc.location, tc.base, got, tc.want)
		}
	}
	h := http.Header{"Set-Cookie": {"s=1; Domain=192.168.1.5; Secure; Path=/"}}
	rewriteLANHeader(h, base, "127.0.0.1:5001")
	if got := h.Get("Set-Cookie"); got != "s=1; Path=/" {
		t.Errorf("cookie %q", got)
	}
}

// A LAN request with a body goes over a connection of its own (a pooled one may belong to a printer that just
// vanished, which would take part of the body before failing); requests without one share the pool.
func TestLANBodyRequestsGetAFreshConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := route.NewLANTransport()
	defer tr.CloseIdleConnections()
	rt := newFreshForBody(tr)
	send := func(method string, body io.Reader) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, body)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send(http.MethodGet, nil)
	send(http.MethodGet, nil)
	if n := conns.Load(); n != 1 {
		t.Fatalf("two GETs used %d connections, want 1 (pooled)", n)
	}
	send(http.MethodPost, strings.NewReader("a"))
	send(http.MethodPost, strings.NewReader("b"))
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections after two POSTs, want 3: each POST on a connection of its own", n)
	}
	send(http.MethodGet, nil)
	if n := conns.Load(); n != 3 {
		t.Errorf("a GET after the POSTs opened a connection (%d), want the pooled one", n)
	}
}

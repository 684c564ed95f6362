package proxy

import (
	"net/http"
	"net/url"
	"testing"
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

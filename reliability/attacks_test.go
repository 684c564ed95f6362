package reliability

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Browser attacks that would borrow the printer's credential: none may cause a request to the relay, which is
// where the credential would be used on the attacker's behalf.
func TestAttacksRefused(t *testing.T) {
	cases := []struct {
		name   string
		method string
		hdr    func(r *rig) http.Header
		ws     bool
		want   int
	}{
		{"DNS rebinding Host", "GET", func(*rig) http.Header { return http.Header{"Host": {"printer.attacker.example:5001"}} }, false, http.StatusMisdirectedRequest},
		{"DNS rebinding Host with a loopback-looking name", "GET", func(*rig) http.Header { return http.Header{"Host": {"127.0.0.1.nip.io"}} }, false, http.StatusMisdirectedRequest},
		{"DNS rebinding Host, WebSocket", "GET", func(*rig) http.Header { return http.Header{"Host": {"printer.attacker.example"}} }, true, http.StatusMisdirectedRequest},
		{"cross-site POST", "POST", func(*rig) http.Header { return http.Header{"Origin": {"https://attacker.example"}} }, false, http.StatusForbidden},
		{"cross-site POST from a sandboxed frame", "POST", func(*rig) http.Header { return http.Header{"Origin": {"null"}} }, false, http.StatusForbidden},
		{"cross-site WebSocket", "GET", func(*rig) http.Header { return http.Header{"Origin": {"https://attacker.example"}} }, true, http.StatusForbidden},
		{"page on another local port, POST", "POST", func(*rig) http.Header { return http.Header{"Origin": {"http://127.0.0.1:8080"}} }, false, http.StatusForbidden},
		{"page on another local port, DELETE", "DELETE", func(*rig) http.Header { return http.Header{"Origin": {"http://localhost:3000"}} }, false, http.StatusForbidden},
		{"page on another local port, WebSocket", "GET", func(*rig) http.Header { return http.Header{"Origin": {"http://127.0.0.1:8080"}} }, true, http.StatusForbidden},
		{"two Origins", "POST", func(r *rig) http.Header {
			return http.Header{"Origin": {"http://" + r.addr, "https://attacker.example"}}
		}, false, http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			track(t)
			r := newRig(t, rigOptions{})
			hdr := c.hdr(r)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, c.method, r.url("/upload"), strings.NewReader("x"))
			if c.ws {
				req, _ = http.NewRequestWithContext(ctx, c.method, r.url("/ws/echo"), nil)
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Sec-WebSocket-Version", "13")
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			}
			for k, v := range hdr {
				if k == "Host" {
					req.Host = v[0]
					continue
				}
				req.Header[k] = v
			}
			resp, err := r.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("answered %s, want %d", resp.Status, c.want)
			}
			if n := r.relayRequests(); n != 0 {
				t.Errorf("the relay received %d request(s): the credential was used for the attacker", n)
			}
		})
	}
}

// Header tricks that would replace or remove the credential: the relay always sees exactly the App Connection's
// credential, once, and the client's own Authorization never reaches it.
func TestAttacksHeaderTricks(t *testing.T) {
	evilBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte("attacker:password"))
	cases := []struct {
		name      string
		hdr       http.Header
		wantExtra map[string]string // headers the relay must see besides the credential
	}{
		{"Connection: Authorization spoof", http.Header{"Connection": {"Authorization"}, "Authorization": {evilBasic}}, nil},
		{"Connection: Authorization without a client credential", http.Header{"Connection": {"keep-alive, Authorization"}}, nil},
		{"client's own Basic Authorization", http.Header{"Authorization": {evilBasic}}, nil},
		{"client's own Bearer token (moved to X-Api-Key)", http.Header{"Authorization": {"Bearer printer-api-key-123"}}, map[string]string{"X-Api-Key": "printer-api-key-123"}},
		{"several Authorization headers", http.Header{"Authorization": {evilBasic, "Basic Zm9vOmJhcg=="}}, nil},
		{"lower-case Authorization and Proxy-Authorization", http.Header{"authorization": {evilBasic}, "Proxy-Authorization": {evilBasic}}, nil},
		{"forwarding headers", http.Header{"X-Forwarded-For": {"10.0.0.1"}, "X-Real-Ip": {"10.0.0.1"}, "Forwarded": {"for=10.0.0.1"}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			track(t)
			r := newRig(t, rigOptions{})
			resp, _, err := r.get("/small", c.hdr)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("answered %s, want 200 with the App Connection credential", resp.Status)
			}
			reqs := r.env.Conn.Requests()
			if len(reqs) != 1 {
				t.Fatalf("the relay received %d requests, want 1", len(reqs))
			}
			got := reqs[0].Header
			if v := got.Values("Authorization"); len(v) != 1 || v[0] != r.env.BasicAuth() {
				t.Errorf("the relay saw Authorization %d time(s), not exactly the App Connection credential", len(v))
			}
			for _, h := range []string{"Proxy-Authorization", "X-Forwarded-For", "X-Real-Ip", "Forwarded"} {
				if v := got.Values(h); len(v) != 0 {
					t.Errorf("the relay saw %s: %q", h, v)
				}
			}
			for k, want := range c.wantExtra {
				if got.Get(k) != want {
					t.Errorf("the relay saw %s %q, want %q", k, got.Get(k), want)
				}
			}
		})
	}
}

// A page on another local port may make simple GETs (a browser cannot be stopped from sending them), but oeproxy
// must not let it read the answers: it adds no CORS permission of its own.
func TestAttacksNoCORSGrant(t *testing.T) {
	track(t)
	r := newRig(t, rigOptions{})
	resp, _, err := r.get("/small", http.Header{"Origin": {"http://127.0.0.1:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("the answer grants CORS to %q", v)
	}
	if v := resp.Header.Get("Access-Control-Allow-Credentials"); v != "" {
		t.Errorf("the answer allows credentials: %q", v)
	}
}

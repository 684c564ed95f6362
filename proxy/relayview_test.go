package proxy

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtb29ucmFrZXIifQ.c2lnbmF0dXJl"

func TestRelayView(t *testing.T) {
	const cred = "Basic b2U6Y3JlZA=="
	tests := []struct {
		name        string
		in          http.Header
		want        map[string]string // header → value that must be there ("" = must be absent)
		wantDropped string
	}{
		{
			name: "bearer API key becomes X-Api-Key",
			in:   http.Header{"Authorization": {"Bearer PRINTERKEY"}},
			want: map[string]string{"Authorization": cred, "X-Api-Key": "PRINTERKEY", "X-Access-Token": ""},
		},
		{
			name: "bearer JWT becomes X-Access-Token",
			in:   http.Header{"Authorization": {"Bearer " + testJWT}},
			want: map[string]string{"Authorization": cred, "X-Access-Token": testJWT, "X-Api-Key": ""},
		},
		{
			name: "client X-Api-Key wins over a translated bearer",
			in:   http.Header{"Authorization": {"bearer OTHER"}, "X-Api-Key": {"MINE"}},
			want: map[string]string{"Authorization": cred, "X-Api-Key": "MINE"},
		},
		{
			name:        "basic is dropped and reported",
			in:          http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("cura:pw"))}},
			want:        map[string]string{"Authorization": cred, "X-Api-Key": ""},
			wantDropped: "Basic",
		},
		{
			name:        "digest is dropped and reported",
			in:          http.Header{"Authorization": {`Digest username="maker", nonce="x"`}},
			want:        map[string]string{"Authorization": cred},
			wantDropped: "Digest",
		},
		{
			name:        "a bare token is reported without its value",
			in:          http.Header{"Authorization": {"SECRETVALUE"}},
			want:        map[string]string{"Authorization": cred},
			wantDropped: "unknown",
		},
		{
			name: "no client auth: credential only",
			in:   http.Header{"Accept": {"*/*"}},
			want: map[string]string{"Authorization": cred, "Accept": "*/*"},
		},
		{
			name: "forwarding headers and their underscore and case variants never pass",
			in: http.Header{
				"X-Forwarded-For": {"1.2.3.4"}, "X_forwarded_for": {"1.2.3.4"}, "x-real-ip": {"1.2.3.4"},
				"X-Real_ip": {"1.2.3.4"}, "Forwarded": {"for=1.2.3.4"}, "X-Forwarded-Host": {"evil"},
				"X-Forwarded-Proto": {"https"}, "X-Forwarded-Port": {"443"}, "Proxy-Authorization": {"Basic x"},
				"authorization": {"Basic eA=="}, "User-Agent": {"PrusaSlicer/2.8"},
			},
			want:        map[string]string{"Authorization": cred, "User-Agent": "PrusaSlicer/2.8"},
			wantDropped: "Basic",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone()
			dropped := relayView(h, cred)
			if dropped != tt.wantDropped {
				t.Errorf("dropped = %q, want %q", dropped, tt.wantDropped)
			}
			for k, v := range tt.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if n := len(h.Values("Authorization")); n != 1 {
				t.Errorf("%d Authorization values, want exactly the credential", n)
			}
			for k := range h {
				n := normalizedHeaderName(k)
				if n != "authorization" && (neverToRelay[n] || strings.HasPrefix(n, "x-forwarded-")) {
					t.Errorf("header %q reached the relay", k)
				}
			}
		})
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for tok, want := range map[string]bool{
		testJWT:            true,
		"abc.def.ghi":      false, // "abc" is not a JSON header
		"0123456789abcdef": false,
		"a.b":              false,
		"":                 false,
	} {
		if got := looksLikeJWT(tok); got != want {
			t.Errorf("looksLikeJWT(%q) = %v, want %v", tok, got, want)
		}
	}
}

// TestRewriteThroughReverseProxy runs real requests through the handler's ReverseProxy and checks what the
// relay would receive, including the hop-by-hop tricks that Director would fall for.
func TestRewriteThroughReverseProxy(t *testing.T) {
	wantCred := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword))
	tests := []struct {
		name  string
		setup func(r *http.Request)
		check func(t *testing.T, out *http.Request)
	}{
		{
			name: "Connection: Authorization cannot remove the credential",
			setup: func(r *http.Request) {
				r.Header.Set("Connection", "Authorization, X-Api-Key")
				r.Header.Set("Authorization", "Bearer CLIENTKEY")
			},
			check: func(t *testing.T, out *http.Request) {
				if got := out.Header.Get("Authorization"); got != wantCred {
					t.Errorf("Authorization = %q, want the credential", got)
				}
				if got := out.Header.Get("X-Api-Key"); got != "" {
					t.Errorf("X-Api-Key = %q: the client declared its Authorization hop-by-hop", got)
				}
			},
		},
		{
			name: "Connection: X-Api-Key cannot remove a translated key",
			setup: func(r *http.Request) {
				r.Header.Set("Connection", "X-Api-Key")
				r.Header.Set("Authorization", "Bearer CLIENTKEY")
			},
			check: func(t *testing.T, out *http.Request) {
				if got := out.Header.Get("X-Api-Key"); got != "CLIENTKEY" {
					t.Errorf("X-Api-Key = %q, want the translated bearer", got)
				}
				if got := out.Header.Get("Authorization"); got != wantCred {
					t.Errorf("Authorization = %q, want the credential", got)
				}
			},
		},
		{
			name: "URL, Host, query and path kept; scheme https",
			setup: func(r *http.Request) {
				r.URL.RawQuery = "action=stream&x=%2F"
			},
			check: func(t *testing.T, out *http.Request) {
				if out.URL.Scheme != "https" || out.URL.Host != testRelay || out.Host != testRelay {
					t.Errorf("out URL %s Host %q", out.URL, out.Host)
				}
				if out.URL.EscapedPath() != "/webcam/a%20b" || out.URL.RawQuery != "action=stream&x=%2F" {
					t.Errorf("path %q query %q changed", out.URL.EscapedPath(), out.URL.RawQuery)
				}
			},
		},
		{
			name: "no User-Agent stays none; Accept-Encoding passes as sent",
			setup: func(r *http.Request) {
				r.Header.Del("User-Agent")
				r.Header.Set("Accept-Encoding", "br")
			},
			check: func(t *testing.T, out *http.Request) {
				if ua, ok := out.Header["User-Agent"]; ok && len(ua) > 0 && ua[0] != "" {
					t.Errorf("User-Agent %q added", ua)
				}
				if got := out.Header.Get("Accept-Encoding"); got != "br" {
					t.Errorf("Accept-Encoding = %q", got)
				}
			},
		},
		{
			name: "User-Agent passes unchanged",
			setup: func(r *http.Request) {
				r.Header.Set("User-Agent", "PrusaSlicer/2.8.1+linux-x64")
			},
			check: func(t *testing.T, out *http.Request) {
				if got := out.Header.Get("User-Agent"); got != "PrusaSlicer/2.8.1+linux-x64" {
					t.Errorf("User-Agent = %q", got)
				}
			},
		},
		{
			name: "no forwarding header is added or passed",
			setup: func(r *http.Request) {
				r.Header.Set("X-Forwarded-For", "6.6.6.6")
				r.Header.Set("X-Real-IP", "6.6.6.6")
				r.Header.Set("Forwarded", "for=6.6.6.6")
			},
			check: func(t *testing.T, out *http.Request) {
				for k := range out.Header {
					n := normalizedHeaderName(k)
					if strings.HasPrefix(n, "x-forwarded") || n == "x-real-ip" || n == "forwarded" {
						t.Errorf("%s reached the relay", k)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := &recordingRelay{}
			h, logs := newUnitHandler(t, rr, nil)
			r := httptest.NewRequest("GET", "http://127.0.0.1:5001/webcam/a%20b", nil)
			tt.setup(r)
			if w := serve(h, r); w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			tt.check(t, rr.last(t))
			assertNoSecrets(t, logs, testPassword, wantCred, "CLIENTKEY")
		})
	}
}

func TestDroppedAuthorizationLoggedOncePerClient(t *testing.T) {
	rr := &recordingRelay{}
	h, logs := newUnitHandler(t, rr, nil)
	clientBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte("cura:CURAPASSWORD"))
	for _, remote := range []string{"127.0.0.1:4000", "127.0.0.1:4001", "127.0.0.2:4000"} {
		r := httptest.NewRequest("GET", "http://localhost:5001/api/version", nil)
		r.RemoteAddr = remote
		r.Header.Set("Authorization", clientBasic)
		serve(h, r)
		if got := rr.last(t).Header.Values("Authorization"); len(got) != 1 || got[0] == clientBasic {
			t.Fatalf("relay saw Authorization %q", got)
		}
	}
	if n := logs.FilterMessage("dropped the client's Authorization header").Len(); n != 2 {
		t.Errorf("%d log lines for 2 client addresses, want 2:\n%s", n, logText(logs))
	}
	assertNoSecrets(t, logs, clientBasic, "CURAPASSWORD", base64.StdEncoding.EncodeToString([]byte("cura:CURAPASSWORD")))
}

// TestClassifyHeaderName: the allocation-free comparison gives the answers of the normalised name it replaced,
// for canonical, odd-case, underscore, long and non-ASCII names.
func TestClassifyHeaderName(t *testing.T) {
	names := []string{
		"Authorization", "authorization", "AUTHORIZATION", "Proxy-Authorization", "Proxy_Authorization",
		"X-Forwarded-For", "x_forwarded_host", "X-Forwarded-", "X-Forwarded", "Forwarded", "X-Real-Ip", "X_REAL_IP",
		"True-Client-Ip", "X-Client-Ip", "X-Original-Proto", "X-Original-Host", "User-Agent", "Accept", "Cookie",
		"X-Api-Key", "", "X-Forwarded-" + strings.Repeat("A", 40), strings.Repeat("B", 40),
		"Authori\u212Aation", "X-Forwarded-\u212Aelvin", "\u212A",
	}
	for _, k := range names {
		n := normalizedHeaderName(k)
		wantBlocked, wantAuth := neverToRelay[n] || strings.HasPrefix(n, "x-forwarded-"), n == "authorization"
		blocked, auth := classifyHeaderName(k)
		if blocked != wantBlocked || auth != wantAuth {
			t.Errorf("classifyHeaderName(%q) = %v, %v; want %v, %v", k, blocked, auth, wantBlocked, wantAuth)
		}
	}
	if !raceEnabled {
		if n := testing.AllocsPerRun(100, func() { classifyHeaderName("X-Forwarded-For") }); n != 0 {
			t.Errorf("classifyHeaderName allocates %.0f times per call, want 0", n)
		}
	}
}

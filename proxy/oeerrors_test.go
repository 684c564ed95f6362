package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestOEErrorExplained(t *testing.T) {
	codes := []int{600, 601, 602, 603, 604, 605, 606, 607, 608, 609, 610, 611, 612, 613, 650}
	for _, code := range codes {
		for _, browser := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/browser=%v", code, browser), func(t *testing.T) {
				rr := &recordingRelay{status: code, body: `{"Status":` + strconv.Itoa(code) + `,"secret-ish":"relay body"}`,
					header: http.Header{"Content-Type": {"application/json"}}}
				h, _ := newUnitHandler(t, rr, func(o *Options) { o.PortalURL = "https://octoeverywhere.com/appportal/v1/" })
				r := httptest.NewRequest("GET", "http://localhost:5001/api/version", nil)
				if browser {
					r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
				}
				w := serve(h, r)
				if w.Code != code {
					t.Fatalf("status %d, want %d kept", w.Code, code)
				}
				if got := w.Header().Get(ErrorHeader); got != strconv.Itoa(code) {
					t.Errorf("%s = %q", ErrorHeader, got)
				}
				if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
					t.Errorf("Content-Length %s for a %d-byte body", cl, w.Body.Len())
				}
				body := w.Body.String()
				if strings.Contains(body, "relay body") {
					t.Errorf("relay body kept: %s", body)
				}
				want := h.explain(code)
				link := "https://octoeverywhere.com/appportal/v1/nosupporterperks?appid=testapp"
				if browser {
					if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(body, template.HTMLEscapeString(want.Meaning)) {
						t.Errorf("HTML page expected, got %s: %s", w.Header().Get("Content-Type"), body)
					}
					if code == 605 && !strings.Contains(body, `href="`+link+`"`) {
						t.Errorf("605 page lacks the supporter link: %s", body)
					}
					return
				}
				var got explanation
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatalf("not JSON: %v: %s", err, body)
				}
				if got.Code != code || got.Meaning == "" || got.Action == "" {
					t.Errorf("explanation %+v", got)
				}
				if (code == 605) != (got.Link == link) {
					t.Errorf("link %q for %d", got.Link, code)
				}
				if code >= 603 && code <= 606 && code != 605 && !strings.Contains(got.Action, "mk4") {
					t.Errorf("re-link advice does not name the printer: %q", got.Action)
				}
			})
		}
	}
}

func TestOEErrorLoggedOncePerChange(t *testing.T) {
	rr := &recordingRelay{}
	var seen []int
	h, logs := newUnitHandler(t, rr, func(o *Options) { o.Hooks.RelayCode = func(c int) { seen = append(seen, c) } })
	for _, code := range []int{601, 601, 601, 200, 601, 605, 605} {
		rr.mu.Lock()
		rr.status = code
		rr.mu.Unlock()
		serve(h, httptest.NewRequest("GET", "http://localhost:5001/", nil))
	}
	if n := logs.FilterMessage("OctoEverywhere answered with an error code").Len(); n != 3 {
		t.Errorf("%d 6xx log lines, want 3 (601, 601 again after recovery, 605):\n%s", n, logText(logs))
	}
	if n := logs.FilterMessage("the relay answers normally again").Len(); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
	if len(seen) != 6 {
		t.Errorf("RelayCode hook saw %v, want every 6xx", seen)
	}
}

func TestRelayUnreachable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"certificate", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "certificate"},
		{"refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "Cannot reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := rtFunc(func(*http.Request) (*http.Response, error) { return nil, tt.err })
			h, logs := newUnitHandler(t, rt, nil)
			for range 3 {
				r := httptest.NewRequest("GET", "http://localhost:5001/api/version?apikey=CLIENTSECRET", nil)
				w := serve(h, r)
				if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), tt.want) {
					t.Fatalf("got %d %s", w.Code, w.Body)
				}
			}
			if n := logs.FilterMessage("cannot reach the relay").Len(); n != 1 {
				t.Errorf("%d log lines for 3 failures, want 1", n)
			}
			assertNoSecrets(t, logs, "CLIENTSECRET", testPassword)
		})
	}
}

func TestNewValidates(t *testing.T) {
	good := testPrinter()
	rt := &recordingRelay{}
	bad := []struct {
		name string
		p    func(Printer) Printer
		o    Options
	}{
		{"no transport", func(p Printer) Printer { return p }, Options{}},
		{"no relay", func(p Printer) Printer { p.RelayURL = nil; return p }, Options{Transport: rt}},
		{"http relay", func(p Printer) Printer { u := *p.RelayURL; u.Scheme = "http"; p.RelayURL = &u; return p }, Options{Transport: rt}},
		{"relay with port", func(p Printer) Printer { u := *p.RelayURL; u.Host += ":8443"; p.RelayURL = &u; return p }, Options{Transport: rt}},
		{"relay with path", func(p Printer) Printer { u := *p.RelayURL; u.Path = "/x"; p.RelayURL = &u; return p }, Options{Transport: rt}},
		{"basic without password", func(p Printer) Printer { p.BasicPassword = ""; return p }, Options{Transport: rt}},
		{"bearer without token", func(p Printer) Printer { p.Auth = "bearer"; p.BearerToken = ""; return p }, Options{Transport: rt}},
		{"unknown auth", func(p Printer) Printer { p.Auth = "digest"; return p }, Options{Transport: rt}},
	}
	for _, tt := range bad {
		if _, err := New(tt.p(good), tt.o); err == nil {
			t.Errorf("%s: New accepted it", tt.name)
		} else if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), testBearer) {
			t.Errorf("%s: error holds a secret: %v", tt.name, err)
		}
	}
	p := good
	p.Auth = "bearer"
	h, err := New(p, Options{Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	serve(h, httptest.NewRequest("GET", "http://localhost:5001/", nil))
	if got := rt.last(t).Header.Get("Authorization"); got != "Bearer "+testBearer {
		t.Errorf("bearer credential not sent: %q", got)
	}
}

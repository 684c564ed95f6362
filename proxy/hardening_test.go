package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// A printer page that says nothing about framing gets frame-ancestors 'self'; a printer's own framing rule is kept.
func TestFramingProtection(t *testing.T) {
	tests := []struct {
		name    string
		header  http.Header
		wantCSP []string
	}{
		{"none sent", http.Header{}, []string{"frame-ancestors 'self'"}},
		{"X-Frame-Options kept", http.Header{"X-Frame-Options": {"DENY"}}, nil},
		{"printer's frame-ancestors kept", http.Header{"Content-Security-Policy": {"default-src 'self'; frame-ancestors 'none'"}},
			[]string{"default-src 'self'; frame-ancestors 'none'"}},
		{"printer's CSP without frame-ancestors gets a second policy", http.Header{"Content-Security-Policy": {"img-src *"}},
			[]string{"img-src *", "frame-ancestors 'self'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := &recordingRelay{header: tt.header, body: "<html></html>"}
			h, _ := newUnitHandler(t, rr, nil)
			w := serve(h, httptest.NewRequest("GET", "http://127.0.0.1:5001/", nil))
			if got := w.Header().Values("Content-Security-Policy"); strings.Join(got, "|") != strings.Join(tt.wantCSP, "|") {
				t.Errorf("Content-Security-Policy %q, want %q", got, tt.wantCSP)
			}
			if tt.header.Get("X-Frame-Options") != w.Header().Get("X-Frame-Options") {
				t.Errorf("X-Frame-Options %q", w.Header().Get("X-Frame-Options"))
			}
		})
	}
}

// A cross-site request without Origin (Sec-Fetch-Site says so) is refused like one with a foreign Origin; TRACE
// is never forwarded.
func TestCrossSiteWithoutOriginAndTrace(t *testing.T) {
	tests := []struct {
		name   string
		method string
		header http.Header
		want   int
	}{
		{"cross-site POST without Origin", "POST", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"same-origin POST without Origin", "POST", http.Header{"Sec-Fetch-Site": {"same-origin"}}, http.StatusOK},
		{"cross-site GET (a link) passes", "GET", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusOK},
		{"TRACE", "TRACE", nil, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := &recordingRelay{}
			h, _ := newUnitHandler(t, rr, nil)
			r := httptest.NewRequest(tt.method, "http://127.0.0.1:5001/api/job", strings.NewReader("x"))
			for k, v := range tt.header {
				r.Header[k] = v
			}
			w := serve(h, r)
			if w.Code != tt.want {
				t.Errorf("%d, want %d", w.Code, tt.want)
			}
			rr.mu.Lock()
			n := len(rr.reqs)
			rr.mu.Unlock()
			if (tt.want == http.StatusOK) != (n == 1) {
				t.Errorf("the relay saw %d requests", n)
			}
		})
	}
}

// A client refused again and again is logged once per reason a minute, with the count of refusals in between.
func TestRefusalLogRateLimited(t *testing.T) {
	rr := &recordingRelay{}
	h, logs := newUnitHandler(t, rr, nil)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	refuse := func(host, remote string) {
		r := httptest.NewRequest("GET", "http://127.0.0.1:5001/", nil)
		r.Host, r.RemoteAddr = host, remote
		if w := serve(h, r); w.Code != http.StatusMisdirectedRequest {
			t.Fatalf("%d", w.Code)
		}
	}
	for range 50 {
		refuse("rebind.attacker.example", "127.0.0.1:40000")
	}
	refuse("rebind.attacker.example", "127.0.0.2:40000") // another client: its own line
	if n := logs.FilterMessage("refused a local request").FilterLevelExact(zapcore.WarnLevel).Len(); n != 2 {
		t.Fatalf("%d lines for 51 refusals of 2 clients, want 2", n)
	}
	now = now.Add(61 * time.Second)
	refuse("rebind.attacker.example", "127.0.0.1:40001")
	lines := logs.FilterMessage("refused a local request").FilterLevelExact(zapcore.WarnLevel).All()
	if len(lines) != 3 {
		t.Fatalf("%d lines after a minute, want 3", len(lines))
	}
	if got := lines[2].ContextMap()["count"]; fmt.Sprint(got) != "50" {
		t.Errorf("count %v, want the 49 refusals not logged plus this one (50)", got)
	}
}

// A malformed chunked body from the local client is the client's error: 400, logged as such, never "Cannot
// reach the relay".
func TestMalformedChunkedBody(t *testing.T) {
	// As http.Transport does, the relay side fails with the error reading the body gave.
	relay := rtFunc(func(r *http.Request) (*http.Response, error) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return nil, err
		}
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	h, logs := newUnitHandler(t, relay, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/files HTTP/1.1\r\nHost: 127.0.0.1:5001\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\nbroken\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("%s, want 400: %s", resp.Status, body)
	}
	if strings.Contains(string(body), "relay") || logs.FilterMessage("cannot reach the relay").Len() > 0 {
		t.Errorf("blamed on the relay: %s\n%s", body, logText(logs))
	}
	if logs.FilterMessage("the client's request body could not be read").Len() != 1 {
		t.Errorf("not logged as a client error:\n%s", logText(logs))
	}
}

// The idle bound of a request body covers the waits between its bytes only: once the body is in, the relay
// may take far longer than the bound to answer (a printer storing an upload).
func TestBodyIdleBoundEndsWithTheBody(t *testing.T) {
	relay := rtFunc(func(r *http.Request) (*http.Response, error) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return nil, err
		}
		select {
		case <-time.After(8 * 100 * time.Millisecond): // eight idle bounds
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("stored")),
			ContentLength: 6, Request: r}, nil
	})
	h, logs := newUnitHandler(t, relay, func(o *Options) { o.BodyIdleTimeout = 100 * time.Millisecond })
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/api/files/local", strings.NewReader(strings.Repeat("G1 X1\n", 10000)))
	req.Host = "127.0.0.1:5001"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "stored" {
		t.Errorf("%s %q\n%s", resp.Status, b, logText(logs))
	}
}

// A body that stops arriving is answered 408 once the idle bound passes, and blamed on the client.
func TestStalledBody(t *testing.T) {
	relay := rtFunc(func(r *http.Request) (*http.Response, error) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return nil, err
		}
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	h, logs := newUnitHandler(t, relay, func(o *Options) { o.BodyIdleTimeout = 200 * time.Millisecond })
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/files HTTP/1.1\r\nHost: 127.0.0.1:5001\r\nContent-Length: 1000000\r\n\r\n%s", strings.Repeat("x", 1000))
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second)) // a deadline for the test, far beyond the bound
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v\n%s", err, logText(logs))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("%s, want 408", resp.Status)
	}
	if logs.FilterMessage("the client's request body could not be read").Len() != 1 {
		t.Errorf("not logged as a client error:\n%s", logText(logs))
	}
}

// A Content-Length body reaches the client as it arrives: the relay here sends the rest of its body only once
// the client has read the first byte, which a proxy that held the body for 4 KiB or its end would never pass on.
func TestKnownLengthBodyPassedOnAsItArrives(t *testing.T) {
	pr, pw := io.Pipe()
	relay := rtFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: pr,
			ContentLength: 3, Request: r}, nil
	})
	h, _ := newUnitHandler(t, relay, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	firstRead := make(chan struct{})
	go func() {
		if _, err := pw.Write([]byte("a")); err != nil {
			return
		}
		<-firstRead
		_, _ = pw.Write([]byte("bc"))
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("GET", srv.URL+"/long-poll", nil)
	req.Host = "127.0.0.1:5001"
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req) // a bound for the test, not a measurement
	if err != nil {
		close(firstRead)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1)
	_, err = io.ReadFull(resp.Body, first)
	close(firstRead)
	if err != nil || string(first) != "a" {
		t.Fatalf("first byte %q: %v", first, err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "bc" {
		t.Fatalf("rest %q: %v", rest, err)
	}
}

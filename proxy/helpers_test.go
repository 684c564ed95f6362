package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Secrets the unit tests use; none may ever appear in a log line.
const (
	testUser     = "oe-user-7f3a"
	testPassword = "oe-pass-S3CR3T-91b2"
	testBearer   = "oe-bearer-S3CR3T-c0ffee"
	testRelay    = "app-abcdef0123456789.octoeverywhere.com"
)

// rtFunc is a RoundTripper made of a function: the relay as seen by unit tests.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recordingRelay answers every request with status/header/body and keeps the outbound requests.
type recordingRelay struct {
	mu     sync.Mutex
	reqs   []*http.Request
	status int
	header http.Header
	body   string
}

func (rr *recordingRelay) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	rr.mu.Lock()
	rr.reqs = append(rr.reqs, r)
	status, hdr, body := rr.status, rr.header.Clone(), rr.body
	rr.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	if hdr == nil {
		hdr = http.Header{}
	}
	return &http.Response{StatusCode: status, Header: hdr, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

func (rr *recordingRelay) last(t *testing.T) *http.Request {
	t.Helper()
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if len(rr.reqs) == 0 {
		t.Fatal("the relay received no request")
	}
	return rr.reqs[len(rr.reqs)-1]
}

func testPrinter() Printer {
	return Printer{Name: "mk4", RelayURL: &url.URL{Scheme: "https", Host: testRelay}, Auth: "basic",
		BasicUser: testUser, BasicPassword: testPassword, BearerToken: testBearer}
}

// observed returns a logger that keeps every entry, debug included.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

func newUnitHandler(t *testing.T, rt http.RoundTripper, mod func(*Options)) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	log, logs := observed()
	o := Options{Transport: rt, Logger: log, ListenAddr: "127.0.0.1:5001", AppID: "testapp"}
	if mod != nil {
		mod(&o)
	}
	h, err := New(testPrinter(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h, logs
}

// serve runs one request through h and returns the recorded response.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// logText is every log entry, message and fields, as one string, to search for secrets.
func logText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

// assertNoSecrets fails if any secret appears in the logs.
func assertNoSecrets(t *testing.T, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	text := logText(logs)
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("a secret (%d bytes) reached the log:\n%s", len(s), text)
		}
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

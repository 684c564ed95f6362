package appapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testToken = "tok3nSECRETvalue0123456789"

// recorded is one request the fake App API received.
type recorded struct {
	Method, Path, Token, ContentType string
	Body                             string
}

// fakeAPI is an httptest server whose answer a test sets per call; it records every request.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	got []recorded
	// answer writes the response for request number n (0-based).
	answer func(w http.ResponseWriter, r *http.Request, n int)
}

func newFakeAPI(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.got)
		f.got = append(f.got, recorded{r.Method, r.URL.Path, r.Header.Get("AppToken"), r.Header.Get("Content-Type"), string(body)})
		f.mu.Unlock()
		f.answer(w, r, n)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.got...)
}

// client returns a Client for the fake API with fast retries; opts fields that are set win.
func (f *fakeAPI) client(opts Options) *Client {
	f.t.Helper()
	tr := &http.Transport{}
	f.t.Cleanup(tr.CloseIdleConnections)
	opts.BaseURL = f.srv.URL
	opts.Transport = tr
	if opts.RetryBase == 0 {
		opts.RetryBase = time.Millisecond
	}
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Second
	}
	c, err := New(opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// reply writes status and body as JSON.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// wrap puts result into the envelope real responses carry.
func wrap(result string) string {
	return `{"Status":200,"Error":"","IsUserError":false,"Result":` + result + `}`
}

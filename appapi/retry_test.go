package appapi

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// dropConn closes the TCP connection without an answer: a transport error for the client.
func dropConn(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	_ = conn.Close()
}

// TestRetryOnlyGET counts attempts for every call under each failure: GETs retry transport errors, 600 and 602;
// nothing else is ever retried, and POSTs never are.
func TestRetryOnlyGET(t *testing.T) {
	const retryMax = 3
	failures := map[string]func(t *testing.T, w http.ResponseWriter){
		"transport": dropConn,
		"600":       func(t *testing.T, w http.ResponseWriter) { reply(w, 600, `{"Status":600,"Error":"x","Result":null}`) },
		"602":       func(t *testing.T, w http.ResponseWriter) { reply(w, 602, `{"Status":602,"Error":"x","Result":null}`) },
		"601":       func(t *testing.T, w http.ResponseWriter) { reply(w, 601, `{"Status":601,"Error":"x","Result":null}`) },
		"604":       func(t *testing.T, w http.ResponseWriter) { reply(w, 604, `{"Status":604,"Error":"x","Result":null}`) },
		"500":       func(t *testing.T, w http.ResponseWriter) { reply(w, 500, `{}`) },
	}
	retried := map[string]bool{"transport": true, "600": true, "602": true}
	calls := map[string]struct {
		get bool
		run func(c *Client) error
	}{
		"info": {true, func(c *Client) error { _, err := c.Info(context.Background(), testToken); return err }},
		"test": {true, func(c *Client) error { _, err := c.TestWebhook(context.Background(), testToken); return err }},
		"live": {false, func(c *Client) error {
			_, err := c.CreateLiveLink(context.Background(), testToken, LiveLinkRequest{Hours: 2})
			return err
		}},
		"gadget": {false, func(c *Client) error { _, err := c.GadgetStatus(context.Background(), "", testToken); return err }},
		"set": {false, func(c *Client) error {
			return c.SetWebhook(context.Background(), testToken, "https://h.example/", nil)
		}},
		"delete": {false, func(c *Client) error { return c.DeleteWebhook(context.Background(), testToken) }},
	}
	for fname, fail := range failures {
		for cname, call := range calls {
			t.Run(fname+"/"+cname, func(t *testing.T) {
				f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) { fail(t, w) })
				err := call.run(f.client(Options{RetryMax: retryMax}))
				if err == nil {
					t.Fatal("no error")
				}
				if fname == "transport" && !errors.Is(err, ErrUnreachable) {
					t.Errorf("transport failure is not ErrUnreachable: %v", err)
				}
				want := 1
				if call.get && retried[fname] {
					want = 1 + retryMax
				}
				if got := len(f.requests()); got != want {
					t.Errorf("%d attempts, want %d (err %v)", got, want, err)
				}
			})
		}
	}
}

func TestRetryRecovers(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 0:
			dropConn(t, w)
		case 1:
			reply(w, 602, `{"Status":602,"Error":"slow","Result":null}`)
		default:
			reply(w, 200, wrap(infoJSON))
		}
	})
	in, err := f.client(Options{}).Info(context.Background(), testToken)
	if err != nil || in.PrinterName != "My Printer" {
		t.Fatalf("Info = %v, %v", in, err)
	}
	if n := len(f.requests()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
}

func TestRetryAfterAttemptTimeout(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			<-r.Context().Done() // hang until the client gives up on this attempt
			return
		}
		reply(w, 200, infoJSON)
	})
	if _, err := f.client(Options{Timeout: 100 * time.Millisecond}).Info(context.Background(), testToken); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requests()); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
}

// TestRetryStopsWithContext: a context that ends during the backoff stops the retries at once (RetryBase is an
// hour, so only the context can end the wait).
func TestRetryStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 600, `{"Status":600,"Error":"x","Result":null}`)
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	})
	_, err := f.client(Options{RetryBase: time.Hour}).Info(ctx, testToken)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnknown600) {
		t.Fatalf("err %v, want 600 and context.Canceled", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	c, err := New(Options{RetryBase: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 12; n++ {
		full := 100 * time.Millisecond << (n - 1)
		if full > maxRetryDelay {
			full = maxRetryDelay
		}
		for range 20 {
			if d := c.backoff(n); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

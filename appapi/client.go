package appapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults for Options.
const (
	DefaultBaseURL           = "https://octoeverywhere.com"
	DefaultTimeout           = 10 * time.Second
	DefaultRetryMax          = 3
	DefaultRetryBase         = 500 * time.Millisecond
	DefaultMinGadgetInterval = 10 * time.Second
	// maxRetryDelay caps one backoff sleep.
	maxRetryDelay = 10 * time.Second
	// maxBodyBytes bounds what is read of a response; App API answers are a few hundred bytes.
	maxBodyBytes = 1 << 20
)

// Options configures a Client. The zero value talks to https://octoeverywhere.com with Go's default transport.
type Options struct {
	// BaseURL is octoeverywhere.api_url, e.g. "https://octoeverywhere.com"; paths such as
	// /api/appconnection/info are appended. Default DefaultBaseURL.
	BaseURL string
	// Transport carries the requests; pass oenet.Options{...}.Transport() so connect_to and tls.ca_file apply.
	// Default http.DefaultTransport.
	Transport http.RoundTripper
	// Timeout bounds each attempt, body included. Default 10 s.
	Timeout time.Duration
	// Logger gets one debug line per attempt (never the token). Default zap.NewNop().
	Logger *zap.Logger
	// Now is the clock used for the Gadget interval. Default time.Now.
	Now func() time.Time
	// RetryMax is how many times a GET is retried after a transport error, 600 or 602. 0 means
	// DefaultRetryMax; negative means never retry.
	RetryMax int
	// RetryBase is the first backoff delay; each retry doubles it (capped at 10 s) and a random jitter of up to
	// half the delay is taken off. Default 500 ms.
	RetryBase time.Duration
	// MinGadgetInterval is the least time between two Gadget status calls for one connection. Default 10 s, the
	// documented rule; tests scale it down. Negative turns the check off.
	MinGadgetInterval time.Duration
}

// Client calls the App APIs. It is safe for concurrent use. Every method takes the App Connection's
// appApiToken, so one Client serves every printer.
type Client struct {
	base      string
	http      *http.Client
	log       *zap.Logger
	now       func() time.Time
	retryMax  int
	retryBase time.Duration
	gadgetMin time.Duration

	mu         sync.Mutex
	lastGadget map[string]time.Time // connection key → when its last Gadget call was sent
}

// New returns a Client. It fails only when BaseURL is not an absolute http(s) URL.
func New(o Options) (*Client, error) {
	base := strings.TrimRight(o.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: octoeverywhere.api_url %q must be an absolute https URL without credentials or query, such as %s",
			ErrInvalidArgument, o.BaseURL, DefaultBaseURL)
	}
	c := &Client{
		base:       base,
		log:        o.Logger,
		now:        o.Now,
		retryMax:   o.RetryMax,
		retryBase:  o.RetryBase,
		gadgetMin:  o.MinGadgetInterval,
		lastGadget: map[string]time.Time{},
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.now == nil {
		c.now = time.Now
	}
	switch {
	case c.retryMax == 0:
		c.retryMax = DefaultRetryMax
	case c.retryMax < 0:
		c.retryMax = 0
	}
	if c.retryBase <= 0 {
		c.retryBase = DefaultRetryBase
	}
	if c.gadgetMin == 0 {
		c.gadgetMin = DefaultMinGadgetInterval
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rt := o.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.http = &http.Client{
		Transport: rt,
		Timeout:   timeout,
		// A redirect would carry the AppToken header to wherever it points (Go strips only Authorization and
		// Cookie on cross-host redirects); the App APIs do not redirect, so treat one as an error.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// CloseIdleConnections closes idle connections of the transport (useful before a process or test ends).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// call is one App API call.
type call struct {
	name   string // for errors and logs: "info", "create Live Link", ...
	method string
	path   string
	token  string
	body   any // JSON-encoded for POST; nil sends {}
}

// do sends the call (retrying GETs where safe) and returns the payload: the envelope's Result or the bare body.
func (c *Client) do(ctx context.Context, k call) ([]byte, error) {
	if err := checkToken(k.token); err != nil {
		return nil, err
	}
	var reqBody []byte
	if k.method == http.MethodPost {
		b := k.body
		if b == nil {
			b = struct{}{}
		}
		var err error
		if reqBody, err = json.Marshal(b); err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", k.name, err)
		}
	}
	attempts := 1
	if k.method == http.MethodGet {
		attempts += c.retryMax
	}
	var err error
	for attempt := 1; ; attempt++ {
		var payload []byte
		var retryable bool
		payload, retryable, err = c.attempt(ctx, k, reqBody, attempt)
		if err == nil {
			return payload, nil
		}
		if !retryable || attempt >= attempts || ctx.Err() != nil {
			break
		}
		if serr := sleep(ctx, c.backoff(attempt)); serr != nil {
			break // ctx ended while waiting: return the last real error, it says more
		}
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
	}
	return nil, fmt.Errorf("OctoEverywhere %s: %w", k.name, err)
}

// attempt sends the request once. retryable says whether a GET may try again after err.
func (c *Client) attempt(ctx context.Context, k call, reqBody []byte, n int) (payload []byte, retryable bool, err error) {
	var body io.Reader
	if reqBody != nil {
		body = bytes.NewReader(reqBody)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, c.base+k.path, body)
	if err != nil {
		return nil, false, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("AppToken", k.token)
	req.Header.Set("Accept", "application/json")
	if reqBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.log.Debug("app api transport error", zap.String("call", k.name), zap.Int("attempt", n), zap.Error(err))
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrUnreachable, ctx.Err())
		}
		return nil, true, fmt.Errorf("%w: %w; check the network, octoeverywhere.api_url and octoeverywhere.connect_to", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		c.log.Debug("app api body read error", zap.String("call", k.name), zap.Int("attempt", n), zap.Error(err))
		return nil, ctx.Err() == nil, fmt.Errorf("%w: reading the answer failed: %w", ErrUnreachable, err)
	}
	c.log.Debug("app api call", zap.String("call", k.name), zap.String("method", k.method), zap.String("path", k.path),
		zap.Int("attempt", n), zap.Int("status", resp.StatusCode), zap.Duration("took", c.now().Sub(start)))
	payload, err = decodeResponse(resp.StatusCode, resp.Header, raw, k.token)
	if err != nil {
		code := CodeOf(err)
		return nil, code == 600 || code == 602, err
	}
	return payload, false, nil
}

// backoff is the delay before retry number n (1-based): base·2^(n-1), capped, minus up to half of it at random
// so that many clients do not retry in step.
func (c *Client) backoff(n int) time.Duration {
	d := c.retryBase << (n - 1)
	if d <= 0 || d > maxRetryDelay {
		d = maxRetryDelay
	}
	return d - rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// checkToken refuses an empty token or one that cannot be a header value; the message never shows the token.
func checkToken(token string) error {
	if token == "" {
		return fmt.Errorf("%w: no App API token: this printer's App Connection has none; link it again with `oeproxy connect`", ErrInvalidArgument)
	}
	for _, r := range token {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%w: the App API token contains spaces or control characters; the stored value is damaged, link the printer again", ErrInvalidArgument)
		}
	}
	return nil
}

// retryAfter reads a Retry-After header given in seconds (0 if absent or a date).
func retryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

// tokenKey is the connection key used when the caller gives none: a hash, so the map never holds tokens.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "token:" + string(sum[:])
}

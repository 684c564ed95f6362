package portalflow

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type flowEnv struct {
	flow   *Flow
	portal string
	cb     string // the return URL
	client *http.Client
	logs   *observer.ObservedLogs
	clock  *clock
}

func newFlowEnv(t *testing.T, edit func(*FlowOptions)) *flowEnv {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	o := FlowOptions{
		PortalURL: "https://octoeverywhere.com/appportal/v1/", AppID: "devtest", RelayDomain: "octoeverywhere.com",
		Logger: zap.New(core), Now: clk.Now,
	}
	if edit != nil {
		edit(&o)
	}
	f, err := NewFlow(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	portal, err := f.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(portal)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e := &flowEnv{flow: f, portal: portal, cb: pu.Query().Get("returnUrl"), client: &http.Client{Transport: tr}, logs: logs, clock: clk}
	t.Cleanup(func() { e.checkLogs(t) })
	return e
}

// get fetches u and fails the test if the page shows any secret or lacks the safety headers.
func (e *flowEnv) get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := e.client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	for _, s := range append(secrets, "Other", "STATE-LEAK") {
		if strings.Contains(body, s) || strings.Contains(fmt.Sprint(resp.Header), s) {
			t.Fatalf("page shows %q:\n%s", s, body)
		}
	}
	if strings.Contains(body, strings.TrimPrefix(e.cb, "http://127.0.0.1")) && e.cb != "" {
		t.Fatalf("page echoes the callback address (with its state):\n%s", body)
	}
	for h, want := range map[string]string{"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
		if got := resp.Header.Get(h); got != want {
			t.Fatalf("%s = %q, want %q", h, got, want)
		}
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("CSP %q", resp.Header.Get("Content-Security-Policy"))
	}
	return resp.StatusCode, body
}

func (e *flowEnv) checkLogs(t *testing.T) {
	for _, entry := range e.logs.All() {
		line := entry.Message + fmt.Sprint(entry.ContextMap())
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log shows secret %q: %s", s, line)
			}
		}
		if st := stateOf(e.cb); st != "" && strings.Contains(line, st) {
			t.Errorf("log shows the state: %s", line)
		}
	}
}

func stateOf(cb string) string {
	_, st, _ := strings.Cut(cb, CallbackPathPrefix)
	return st
}

func (e *flowEnv) wait(t *testing.T) (Completion, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.flow.Wait(ctx)
}

func wantCompletion() Completion {
	c, err := ParseCompletion(build(goodParams(), nil), "octoeverywhere.com")
	if err != nil {
		panic(err)
	}
	return c
}

func TestFlowStart(t *testing.T) {
	e := newFlowEnv(t, func(o *FlowOptions) { o.PrinterID = testPrinterID })
	pu, _ := url.Parse(e.portal)
	q := pu.Query()
	if q.Get("appid") != "devtest" || q.Get("printerId") != testPrinterID || q.Get("octoPrintApiKeyAppName") == "" {
		t.Fatalf("portal URL %s", e.portal)
	}
	cb, err := url.Parse(e.cb)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Scheme != "http" || cb.Hostname() != "127.0.0.1" || cb.Port() == "" || !strings.HasPrefix(cb.Path, CallbackPathPrefix) {
		t.Fatalf("return URL %s", e.cb)
	}
	st, err := base64.RawURLEncoding.DecodeString(stateOf(e.cb))
	if err != nil || len(st) < 16 {
		t.Fatalf("state %q is not >= 128 random bits", stateOf(e.cb))
	}
	if _, err := e.flow.Start(context.Background()); err == nil {
		t.Fatal("second Start accepted")
	}
	// Two flows never share a state.
	e2 := newFlowEnv(t, nil)
	if stateOf(e2.cb) == stateOf(e.cb) {
		t.Fatal("two flows got the same state")
	}
}

func TestFlowGoodCallbackAndReplay(t *testing.T) {
	for _, spelling := range []string{"lowercase", "camelCase"} {
		t.Run(spelling, func(t *testing.T) {
			e := newFlowEnv(t, nil)
			q := build(goodParams(), nil)
			if spelling == "camelCase" {
				q = strings.NewReplacer("authbasichttpuser", "authBasicHttpUser", "authbasichttppassword", "authBasicHttpPassword").Replace(q)
			}
			status, body := e.get(t, e.cb+"?"+q)
			if status != 200 || !strings.Contains(body, "Connected — you can close this tab") || !strings.Contains(body, "Prusa MK4") {
				t.Fatalf("good callback: %d\n%s", status, body)
			}
			got, err := e.wait(t)
			if err != nil || got != wantCompletion() {
				t.Fatalf("Wait = %v, %v", got, err)
			}
			// Replay, also with other values: refused, nothing changes.
			for _, replay := range []string{q, build(goodParams(), map[string]string{"appApiToken": "Other"})} {
				status, body = e.get(t, e.cb+"?"+replay)
				if status != http.StatusConflict || !strings.Contains(body, "already used") {
					t.Fatalf("replay: %d\n%s", status, body)
				}
			}
			if got, err := e.wait(t); err != nil || got != wantCompletion() {
				t.Fatalf("Wait after replay = %v, %v", got, err)
			}
		})
	}
}

func TestFlowBadCallbacksKeepWaiting(t *testing.T) {
	e := newFlowEnv(t, nil)
	good := build(goodParams(), nil)
	base := strings.TrimSuffix(e.cb, stateOf(e.cb))
	st := stateOf(e.cb)
	for _, tc := range []struct {
		name, url string
		status    int
		text      string
	}{
		{"wrong state", base + "STATE-LEAKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx?" + good, 404, "not the address of the setup in progress"},
		{"state prefix", base + st[:len(st)-1] + "?" + good, 404, "not the address"},
		{"state plus suffix", base + st + "x?" + good, 404, "not the address"},
		{"no state", base + "?" + good, 404, "Not found"},
		{"extra path", e.cb + "/x?" + good, 404, "Not found"},
		{"other path", strings.TrimSuffix(base, CallbackPathPrefix) + "/favicon.ico", 404, "Not found"},
		{"invalid completion: foreign host", e.cb + "?" + build(goodParams(), map[string]string{"url": "https://app-x.octoeverywhere.com.evil.com"}), 400, "url"},
		{"invalid completion: no token", e.cb + "?" + build(goodParams(), map[string]string{"appApiToken": drop}), 400, "appApiToken is missing"},
		{"invalid completion: conflicting values", e.cb + "?" + good + "&authBearerToken=Other", 400, "authBearerToken"},
		{"no query: fragment bridge", e.cb, 200, "Waiting for OctoEverywhere"},
	} {
		status, body := e.get(t, tc.url)
		if status != tc.status || !strings.Contains(body, tc.text) {
			t.Fatalf("%s: %d\n%s", tc.name, status, body)
		}
		if strings.Contains(body, "Connected") {
			t.Fatalf("%s: page claims success", tc.name)
		}
	}
	select {
	case <-e.flow.finished:
		t.Fatal("a bad callback ended the flow")
	default:
	}
	resp, err := e.client.Post(e.cb+"?"+good, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	if status, _ := e.get(t, e.cb+"?"+good); status != 200 {
		t.Fatalf("good callback after bad ones: %d", status)
	}
	if got, err := e.wait(t); err != nil || got != wantCompletion() {
		t.Fatalf("Wait = %v, %v", got, err)
	}
}

func TestFlowBridgePageScriptMatchesCSP(t *testing.T) {
	e := newFlowEnv(t, nil)
	resp, err := e.client.Get(e.cb)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, rest, ok := strings.Cut(string(b), "<script>")
	script, _, ok2 := strings.Cut(rest, "</script>")
	if !ok || !ok2 {
		t.Fatalf("no script in the bridge page:\n%s", b)
	}
	sum := sha256.Sum256([]byte(script))
	if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(resp.Header.Get("Content-Security-Policy"), want) {
		t.Fatalf("CSP %q does not allow the page's script (hash %s)", resp.Header.Get("Content-Security-Policy"), want)
	}
}

func TestFlowExpired(t *testing.T) {
	e := newFlowEnv(t, nil)
	e.clock.Add(DefaultMaxAge + time.Second)
	status, body := e.get(t, e.cb+"?"+build(goodParams(), nil))
	if status != http.StatusGone || !strings.Contains(body, "expired") {
		t.Fatalf("expired callback: %d\n%s", status, body)
	}
	if _, err := e.wait(t); !errors.Is(err, ErrFlowExpired) {
		t.Fatalf("Wait = %v, want ErrFlowExpired", err)
	}
	if status, _ := e.get(t, e.cb+"?"+build(goodParams(), nil)); status != http.StatusGone {
		t.Fatalf("callback after expiry: %d", status)
	}

	// Just under the limit is still fine.
	e = newFlowEnv(t, nil)
	e.clock.Add(DefaultMaxAge - time.Second)
	if status, _ := e.get(t, e.cb+"?"+build(goodParams(), nil)); status != 200 {
		t.Fatalf("callback at 14m59s: %d", status)
	}
}

func TestFlowWaitDeadline(t *testing.T) {
	e := newFlowEnv(t, func(o *FlowOptions) { o.MaxAge = 50 * time.Millisecond })
	if _, err := e.wait(t); !errors.Is(err, ErrFlowExpired) {
		t.Fatalf("Wait = %v, want ErrFlowExpired", err)
	}
}

func TestFlowDeclined(t *testing.T) {
	e := newFlowEnv(t, func(o *FlowOptions) { o.PortalURL = "https://sim.example:8443/appportal/v1/" })
	status, body := e.get(t, e.cb+"?success=false")
	link := "https://sim.example:8443/appportal/v1/nosupporterperks?appid=devtest"
	if status != 200 || !strings.Contains(body, "Supporter Perks") || !strings.Contains(body, "cancelled") ||
		!strings.Contains(body, `href="`+link+`"`) {
		t.Fatalf("declined page: %d\n%s", status, body)
	}
	_, err := e.wait(t)
	if !errors.Is(err, ErrPortalDeclined) || !strings.Contains(err.Error(), link) {
		t.Fatalf("Wait = %v, want ErrPortalDeclined with %s", err, link)
	}
	// A success after the decline cannot revive this state.
	if status, _ := e.get(t, e.cb+"?"+build(goodParams(), nil)); status != http.StatusConflict {
		t.Fatalf("callback after decline: %d", status)
	}
}

func TestFlowConcurrentCallbacksOneWins(t *testing.T) {
	e := newFlowEnv(t, nil)
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.client.Get(e.cb + "?" + build(goodParams(), map[string]string{"appApiToken": fmt.Sprintf("%s%d", tApp, i)}))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	got, err := e.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	winners := 0
	for i, s := range statuses {
		switch s {
		case 200:
			winners++
			if got.AppAPIToken != fmt.Sprintf("%s%d", tApp, i) {
				t.Fatalf("Wait returned another callback's completion than the one shown as connected")
			}
		case http.StatusConflict:
		default:
			t.Fatalf("status %d", s)
		}
	}
	if winners != 1 {
		t.Fatalf("%d callbacks won", winners)
	}
}

func TestFlowCloseAndCancel(t *testing.T) {
	e := newFlowEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.flow.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled ctx = %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := e.flow.Wait(context.Background()); done <- err }()
	e.flow.Close()
	if err := <-done; !errors.Is(err, ErrFlowClosed) {
		t.Fatalf("Wait after Close = %v", err)
	}
	e.flow.Close() // idempotent
	if _, err := e.client.Get(e.cb); err == nil {
		t.Fatal("listener still answers after Close")
	}

	f, err := NewFlow(FlowOptions{AppID: "devtest"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Wait(context.Background()); err == nil {
		t.Fatal("Wait before Start accepted")
	}
	f.Close()
	if _, err := f.Start(context.Background()); !errors.Is(err, ErrFlowClosed) {
		t.Fatalf("Start after Close = %v", err)
	}
}

func TestFlowMountedHandler(t *testing.T) {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f, err := NewFlow(FlowOptions{AppID: "devtest", CallbackBaseURL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mux.Handle(CallbackPathPrefix, f.Handler())
	portal, err := f.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(portal)
	cb := pu.Query().Get("returnUrl")
	if !strings.HasPrefix(cb, srv.URL+CallbackPathPrefix) {
		t.Fatalf("return URL %q is not on the mounting server %s", cb, srv.URL)
	}
	resp, err := srv.Client().Get(cb + "?" + build(goodParams(), nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := f.Wait(ctx); err != nil || got != wantCompletion() {
		t.Fatalf("Wait = %v, %v", got, err)
	}
}

func TestNewFlowRejects(t *testing.T) {
	for name, o := range map[string]FlowOptions{
		"all interfaces":   {AppID: "devtest", ListenAddr: "0.0.0.0:0"},
		"LAN address":      {AppID: "devtest", ListenAddr: "192.168.1.2:0"},
		"host name":        {AppID: "devtest", ListenAddr: "example.com:0"},
		"no port":          {AppID: "devtest", ListenAddr: "127.0.0.1"},
		"no app id":        {},
		"bad relay domain": {AppID: "devtest", RelayDomain: "a b"},
		"bad printer id":   {AppID: "devtest", PrinterID: "nope"},
		"bad base":         {AppID: "devtest", CallbackBaseURL: "127.0.0.1:7080"},
	} {
		if f, err := NewFlow(o); err == nil {
			f.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	f, err := NewFlow(FlowOptions{AppID: "devtest", ListenAddr: "[::1]:0"})
	if err != nil {
		t.Fatalf("::1 refused: %v", err)
	}
	f.Close()
}

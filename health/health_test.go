package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/internal/simtest"
	"github.com/oeproxy/oeproxy/internal/testutil"
	"github.com/oeproxy/oeproxy/oesim"
	"github.com/oeproxy/oeproxy/proxy"
)

func newTestHealth(e *simtest.Env, name string, clock *testutil.Clock, mod func(*Options)) (*Health, *observer.ObservedLogs) {
	log, logs := testutil.Observed()
	o := Options{Name: name, API: e.API, Store: e.Store, Logger: log, Now: clock.Now, Interval: time.Minute, MinCheckGap: -1}
	if mod != nil {
		mod(&o)
	}
	return New(o), logs
}

func (h *Health) checkCount() int { return h.Snapshot().Checks }

// transitions counts the state-change log lines.
func transitions(logs *observer.ObservedLogs) int {
	return logs.FilterMessageSnippet("printer health changed").Len()
}

func get() *http.Request {
	return httptest.NewRequest(http.MethodGet, "http://127.0.0.1:5001/api/version", nil)
}

func upload(n int64) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:5001/api/files/local", strings.NewReader(""))
	r.ContentLength = n
	return r
}

// TestHealthInfoOutcomes: every answer of the Info API leads to its state, last error and gate behaviour.
func TestHealthInfoOutcomes(t *testing.T) {
	cases := []struct {
		name    string
		opts    oesim.Options
		setup   func(*oesim.Connection)
		state   State
		code    int // last_error code; 0: no error
		refuses int // gate status for a plain GET; 0: admitted
	}{
		{"online", oesim.Options{}, func(*oesim.Connection) {}, StateOnline, 0, 0},
		{"IsOnline false", oesim.Options{}, func(c *oesim.Connection) { c.Printer().SetOnline(false) }, StatePrinterOffline, 0, 0},
		{"601", oesim.Options{InfoOfflineError: true}, func(c *oesim.Connection) { c.Printer().SetOnline(false) }, StatePrinterOffline, 601, 0},
		{"603", oesim.Options{}, func(c *oesim.Connection) { c.Delete() }, StateNeedsRelink, 603, 603},
		{"604", oesim.Options{}, func(c *oesim.Connection) { c.Revoke() }, StateNeedsRelink, 604, 604},
		{"605", oesim.Options{}, func(c *oesim.Connection) { c.SetSupporter(false) }, StateNoSupporterPerks, 605, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := simtest.New(t, tc.opts)
			conn, _ := e.Add(t, "mk4", nil)
			h, logs := newTestHealth(e, "mk4", testutil.NewClock(), nil)
			tc.setup(conn)
			h.check(context.Background())
			h.check(context.Background()) // a second, identical answer logs nothing more
			s := h.Snapshot()
			if s.State != tc.state {
				t.Fatalf("state %q, want %q (last error %+v)", s.State, tc.state, s.LastError)
			}
			gotCode := 0
			if s.LastError != nil {
				gotCode = s.LastError.Code
				if s.LastError.Source != "info" || s.LastError.Meaning == "" {
					t.Errorf("last error %+v", s.LastError)
				}
			}
			if gotCode != tc.code {
				t.Errorf("last error code %d, want %d", gotCode, tc.code)
			}
			if n := transitions(logs); n != 1 {
				t.Errorf("%d state-change log lines, want 1 (unknown → %s):\n%s", n, tc.state, testutil.LogText(logs))
			}
			ref := h.Admit(get())
			switch {
			case tc.refuses == 0 && ref != nil:
				t.Errorf("gate refused: %+v", ref)
			case tc.refuses != 0 && (ref == nil || ref.Status != tc.refuses || !strings.Contains(ref.Action, "oeproxy remove mk4 && oeproxy connect --name mk4")):
				t.Errorf("gate answer %+v, want %d with the re-link command", ref, tc.refuses)
			}
			e.AssertNoSecrets(t, testutil.LogText(logs))
		})
	}
}

// fakeAPI is an App API client whose every answer is status (a transport error when status is 0).
func fakeAPI(t *testing.T, status *int) *appapi.Client {
	t.Helper()
	rt := roundTrip(func(r *http.Request) (*http.Response, error) {
		if *status == 0 {
			return nil, errors.New("connection refused")
		}
		body := `{"Status":` + strconv.Itoa(*status) + `,"Error":"x","Result":null}`
		if *status == 200 {
			body = `{"Status":200,"Error":"","Result":{"PrinterName":"P","IsOnline":true,"PrinterLimits":{"MaxUploadFileSizeBytes":1000}}}`
		}
		return &http.Response{StatusCode: *status, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	})
	c, err := appapi.New(appapi.Options{Transport: rt, RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestHealthCheckFailures: 602 means offline; 600 and an unreachable OctoEverywhere say nothing (unknown), and do
// not lift a confirmed needs_relink.
func TestHealthCheckFailures(t *testing.T) {
	e := simtest.New(t, oesim.Options{})
	e.Add(t, "mk4", nil)
	status := 200
	h, logs := newTestHealth(e, "mk4", testutil.NewClock(), func(o *Options) { o.API = fakeAPI(t, &status) })
	steps := []struct {
		status int
		want   State
	}{
		{200, StateOnline},
		{602, StatePrinterOffline},
		{600, StateUnknown},
		{0, StateUnknown},
		{200, StateOnline},
		{604, StateNeedsRelink},
		{600, StateNeedsRelink},
		{0, StateNeedsRelink},
		{603, StateNeedsRelink},
		{200, StateOnline},
	}
	for i, s := range steps {
		status = s.status
		h.check(context.Background())
		if got := h.Snapshot().State; got != s.want {
			t.Fatalf("step %d (answer %d): state %q, want %q", i, s.status, got, s.want)
		}
	}
	if n := transitions(logs); n != 6 {
		t.Errorf("%d state-change lines, want 6:\n%s", n, testutil.LogText(logs))
	}
}

// TestHealth606Transient is the OctoPod #696 case: the relay refuses the credential once (an OctoEverywhere
// incident), Info still succeeds, and the next requests are accepted: nothing is condemned, no request refused.
func TestHealth606Transient(t *testing.T) {
	e := simtest.New(t, oesim.Options{})
	e.Add(t, "mk4", nil)
	clock := testutil.NewClock()
	h, logs := newTestHealth(e, "mk4", clock, nil)
	hooks := h.Hooks()
	h.check(context.Background())

	hooks.RelayCode(606)
	h.check(context.Background()) // the check the 606 asked for: Info succeeds
	hooks.RequestDone(proxy.RequestStats{Status: 200})
	clock.Add(5 * time.Minute)
	hooks.RelayCode(606) // a later, separate 606 opens a new suspicion, it does not complete the old one
	clock.Add(10 * time.Second)
	hooks.RelayCode(606)
	if s := h.Snapshot(); s.State != StateOnline {
		t.Fatalf("state %q after transient 606s, want online", s.State)
	}
	if ref := h.Admit(get()); ref != nil {
		t.Fatalf("gate refused after a transient 606: %+v", ref)
	}
	if s := h.Snapshot(); s.LastError == nil || s.LastError.Code != 606 || s.LastError.Source != "relay" {
		t.Errorf("last error %+v, want the relay's 606", s.LastError)
	}
	if n := transitions(logs); n != 1 {
		t.Errorf("%d state-change lines, want 1:\n%s", n, testutil.LogText(logs))
	}
}

// TestHealth606Confirmed: 606 keeps coming for ConfirmAfter after Info succeeded, with nothing accepted: the
// printer needs re-linking; one probe per Interval still reaches the relay; an accepted probe recovers.
func TestHealth606Confirmed(t *testing.T) {
	e := simtest.New(t, oesim.Options{})
	e.Add(t, "mk4", nil)
	clock := testutil.NewClock()
	h, logs := newTestHealth(e, "mk4", clock, nil) // Interval and ConfirmAfter: 1 min
	hooks := h.Hooks()
	h.check(context.Background())

	hooks.RelayCode(606)
	clock.Add(30 * time.Second)
	hooks.RelayCode(606) // no Info check yet: nothing confirmed
	h.check(context.Background())
	hooks.RequestDone(proxy.RequestStats{Status: 606}) // a 6xx is not an accepted request
	hooks.RequestDone(proxy.RequestStats{Status: http.StatusBadGateway})
	hooks.RelayCode(606) // 30 s after the first: still inside ConfirmAfter
	if s := h.Snapshot(); s.State != StateOnline {
		t.Fatalf("condemned before ConfirmAfter: %q", s.State)
	}
	clock.Add(31 * time.Second)
	hooks.RelayCode(606)
	if s := h.Snapshot(); s.State != StateNeedsRelink {
		t.Fatalf("state %q, want needs_relink after 606 persisted past ConfirmAfter", s.State)
	}
	ref := h.Admit(get())
	if ref == nil || ref.Status != 606 || ref.Code != 606 || !strings.Contains(ref.Action, "oeproxy remove mk4 && oeproxy connect --name mk4") {
		t.Fatalf("gate answer %+v", ref)
	}
	h.check(context.Background()) // Info succeeding does not lift it: Info does not use the relay credential
	if h.Snapshot().State != StateNeedsRelink {
		t.Fatal("a successful Info lifted a 606 condemnation")
	}
	clock.Add(time.Minute)
	if ref := h.Admit(get()); ref != nil {
		t.Fatalf("no probe after Interval: %+v", ref)
	}
	if ref := h.Admit(get()); ref == nil {
		t.Fatal("a second request right after the probe was admitted")
	}
	hooks.WebSocket(true) // the relay accepted a WebSocket: the credential works again
	if s := h.Snapshot(); s.State != StateOnline {
		t.Fatalf("state %q after an accepted request, want online", s.State)
	}
	if ref := h.Admit(get()); ref != nil {
		t.Fatalf("gate still refuses after recovery: %+v", ref)
	}
	if n := transitions(logs); n != 3 {
		t.Errorf("%d state-change lines, want 3 (unknown→online→needs_relink→online):\n%s", n, testutil.LogText(logs))
	}
}

// TestHealth606WithoutInfo: when Info cannot confirm the connection, relay 606s never condemn it.
func TestHealth606WithoutInfo(t *testing.T) {
	e := simtest.New(t, oesim.Options{})
	e.Add(t, "mk4", nil)
	status := 600
	clock := testutil.NewClock()
	h, _ := newTestHealth(e, "mk4", clock, func(o *Options) { o.API = fakeAPI(t, &status) })
	h.NoteRelayCode(606)
	h.check(context.Background())
	clock.Add(time.Hour)
	h.NoteRelayCode(606)
	if s := h.Snapshot().State; s != StateUnknown {
		t.Fatalf("state %q, want unknown", s)
	}
}

func TestHealthUploadLimit(t *testing.T) {
	e := simtest.New(t, oesim.Options{})
	conn, _ := e.Add(t, "mk4", nil)
	conn.SetLimits(oesim.Limits{MaxUploadFileSizeBytes: 1000, MaxDownloadFileSizeBytes: 5000, MaxSingleWebcamStreamLength: 30 * time.Second})
	h, _ := newTestHealth(e, "mk4", testutil.NewClock(), nil)
	if ref := h.Admit(upload(1 << 40)); ref != nil {
		t.Fatalf("refused before the limits were known: %+v", ref)
	}
	h.check(context.Background())
	for _, n := range []int64{-1, 0, 999, 1000} {
		if ref := h.Admit(upload(n)); ref != nil {
			t.Errorf("Content-Length %d refused: %+v", n, ref)
		}
	}
	ref := h.Admit(upload(1001))
	if ref == nil || ref.Status != http.StatusRequestEntityTooLarge || ref.Code != 608 ||
		!strings.Contains(ref.Meaning, "1000 bytes") || !strings.Contains(ref.Meaning, "608") {
		t.Fatalf("gate answer %+v", ref)
	}
	if l := h.Snapshot().Info.Limits; l.MaxDownloadFileSizeBytes != 5000 || l.MaxSingleWebcamStreamLengthSeconds != 30 {
		t.Errorf("limits %+v", l)
	}
}

// TestHealthRun: Run checks at once, again soon after a relay 6xx, and stops with its context.
func TestHealthRun(t *testing.T) {
	e := simtest.New(t, oesim.Options{})
	e.Add(t, "mk4", nil)
	h, _ := newTestHealth(e, "mk4", testutil.NewClock(), func(o *Options) { o.Interval = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	testutil.WaitFor(t, "the first check", func() bool { return h.checkCount() >= 1 })
	h.NoteRelayCode(601)
	testutil.WaitFor(t, "the check after a 601", func() bool { return h.checkCount() >= 2 })
	cancel()
	<-done

	// Refresh (oeproxy status) checks even within MinCheckGap: the user asked now.
	g, _ := newTestHealth(e, "mk4", testutil.NewClock(), func(o *Options) { o.MinCheckGap = time.Hour })
	g.Refresh(context.Background())
	g.Refresh(context.Background())
	if n := g.checkCount(); n != 2 {
		t.Errorf("Refresh checked %d times, want 2", n)
	}
}

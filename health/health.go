package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/oeproxy/oeproxy/appapi"
	"github.com/oeproxy/oeproxy/config"
	"github.com/oeproxy/oeproxy/credstore"
	"github.com/oeproxy/oeproxy/internal/oe"
	"github.com/oeproxy/oeproxy/proxy"
)

// State is what oeproxy believes about a printer's App Connection. The values are a stable contract of
// `oeproxy status --json`.
type State string

const (
	// StateUnknown: not checked yet, or the last check said nothing about the connection (OctoEverywhere
	// unreachable, 600, an unexpected answer).
	StateUnknown State = "unknown"
	// StateOnline: the App Connection is valid and the printer is connected to OctoEverywhere.
	StateOnline State = "online"
	// StatePrinterOffline: the App Connection is valid but the printer is not connected (Info says IsOnline
	// false, or answers 601 or 602).
	StatePrinterOffline State = "printer_offline"
	// StateNoSupporterPerks: the owner lost Supporter Perks (605); it recovers when they renew, without re-linking.
	StateNoSupporterPerks State = "no_supporter_perks"
	// StateNeedsRelink: the stored credentials are worthless (Info answered 603 or 604, or the relay kept
	// answering 606 while Info succeeded; see Health). The proxy refuses the printer's requests without calling
	// the relay.
	StateNeedsRelink State = "needs_relink"
)

// Health timing defaults (Options; RenewOptions.Interval too).
const (
	defaultInterval    = 60 * time.Second
	defaultMinCheckGap = 5 * time.Second
)

// Options configure one printer's Health.
type Options struct {
	// Name is the printer's record name; its App API token is read from Store at each check, so a record
	// changed through the control socket is seen at the next poll.
	Name  string
	API   *appapi.Client
	Store *credstore.Store
	// Logger gets one line per state change, never a secret. Default zap.NewNop().
	Logger *zap.Logger
	// Interval is the time between two Info polls (default 60 s). It is also how often a printer condemned by
	// repeated 606 answers lets one request through to the relay, to notice that the relay accepts it again.
	Interval time.Duration
	// MinCheckGap is the least time between two checks, so that a burst of relay 6xx answers causes one Info call
	// (default 5 s; negative: no gap, for tests).
	MinCheckGap time.Duration
	// ConfirmAfter is how long the relay must keep answering 606, with Info succeeding meanwhile and no request
	// accepted, before the printer needs re-linking. Default Interval.
	ConfirmAfter time.Duration
	// Now is the clock for state times, the 606 rule and the webhook age (tests inject one). Default time.Now.
	Now func() time.Time
}

// Health tracks one printer's App Connection: it polls OctoEverywhere's Info API, hears the relay's 6xx answers
// through proxy.Hooks, derives a State, logs each change once, and acts as the proxy's Gate. The
// webhook's renewal is Renewer's, a loop of its own: it needs the record, not the state.
//
// The 606 rule. A 606 from the relay (credentials refused) does not condemn a connection by itself: OctoEverywhere
// has had incidents where valid credentials were refused for hours (OctoPod #696), and the App API token is a
// different credential, so Info succeeding proves the connection exists, not that the relay credential is good.
// The rule: the first 606 starts a suspicion and an Info check at once. Any request the relay then accepts (any
// answer that is not a 6xx or 502) ends the suspicion. If Info answers 603/604, the printer needs re-linking at once.
// If Info succeeded after the first 606 and the relay still answers 606 at least ConfirmAfter (default 60 s) after
// it, with no accepted request in between, the printer needs re-linking too. While condemned that way, one request
// per Interval still goes to the relay as a probe, so that the end of an OctoEverywhere incident is noticed.
type Health struct {
	o    Options
	log  *zap.Logger
	kick chan struct{}

	checkMu   sync.Mutex // one check at a time
	lastCheck time.Time  // real time of the last check, for MinCheckGap

	suspect atomic.Bool // fast path of noteAccepted: a 606 suspicion or condemnation is open

	mu         sync.Mutex
	state      State
	since      time.Time
	info       *appapi.Info // last successful Info
	checkedAt  time.Time    // last check attempt
	checks     int          // completed checks (Snapshot.Checks)
	lastErr    *StatusError
	infoCode   int       // OctoEverywhere code of the last check's error (0: none or not a 6xx)
	infoFailed bool      // the last check failed
	relinkCode int       // 603 or 604 from Info: sticky until Info succeeds again
	first606   time.Time // start of the open 606 suspicion (zero: none)
	infoOK606  bool      // Info succeeded since first606
	condemned  bool      // the 606 rule condemned the relay credential
	lastProbe  time.Time // when the gate last let a probe through while condemned
}

// New returns a Health in StateUnknown; nothing runs until Run.
func New(o Options) *Health {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Interval <= 0 {
		o.Interval = defaultInterval
	}
	if o.MinCheckGap == 0 {
		o.MinCheckGap = defaultMinCheckGap
	}
	if o.ConfirmAfter <= 0 {
		o.ConfirmAfter = o.Interval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Health{o: o, log: o.Logger.With(zap.String("printer", o.Name)), kick: make(chan struct{}, 1), state: StateUnknown}
}

// Run checks at once, then every Interval and soon after each relay 6xx, until ctx ends.
func (h *Health) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
			// Debounce: a burst of 6xx answers causes one check, at most one per MinCheckGap.
			if wait := h.gapLeft(); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		h.check(ctx)
		t.Reset(h.o.Interval)
	}
}

// requestCheck asks Run for a check soon; kicks that come while one is pending are merged.
func (h *Health) requestCheck() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Refresh checks now, for `oeproxy status`: a user who asks right after a change must not get the answer from
// before it, so MinCheckGap (which only merges bursts of relay codes) does not apply.
func (h *Health) Refresh(ctx context.Context) { h.check(ctx) }

func (h *Health) gapLeft() time.Duration {
	h.checkMu.Lock()
	defer h.checkMu.Unlock()
	if h.o.MinCheckGap < 0 || h.lastCheck.IsZero() {
		return 0
	}
	return time.Until(h.lastCheck.Add(h.o.MinCheckGap))
}

// check calls Info and updates the state.
func (h *Health) check(ctx context.Context) {
	h.checkMu.Lock()
	defer h.checkMu.Unlock()
	rec, err := h.o.Store.Get(h.o.Name)
	if err != nil {
		h.log.Debug("health check skipped: the printer is not in the store", zap.Error(err))
		return
	}
	var info *appapi.Info
	if h.o.API == nil {
		err = fmt.Errorf("no App API client: set octoeverywhere.api_url")
	} else {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		info, err = h.o.API.Info(cctx, rec.AppAPIToken)
		cancel()
	}
	if ctx.Err() != nil {
		return // shutting down: the answer says nothing about the printer
	}
	h.lastCheck = time.Now()
	h.apply(info, err)
}

// apply records an Info result and derives the state.
func (h *Health) apply(info *appapi.Info, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.o.Now()
	h.checkedAt = now
	h.checks++
	code := appapi.CodeOf(err)
	h.infoCode, h.infoFailed = code, err != nil
	switch {
	case err == nil:
		h.info = info
		h.relinkCode = 0
		if !h.first606.IsZero() {
			h.infoOK606 = true
		}
	case code == 603 || code == 604:
		h.relinkCode = code
	}
	if err != nil {
		h.lastErr = statusError(err, "info", now)
	}
	h.update()
}

// update derives the state from what is known and logs a change once. Called with h.mu held.
func (h *Health) update() {
	next := StateUnknown
	switch {
	case h.relinkCode != 0 || h.condemned:
		next = StateNeedsRelink
	case h.infoCode == 605:
		next = StateNoSupporterPerks
	case h.infoCode == 601 || h.infoCode == 602:
		next = StatePrinterOffline
	case h.infoFailed:
		next = StateUnknown
	case h.info != nil && h.info.IsOnline:
		next = StateOnline
	case h.info != nil:
		next = StatePrinterOffline
	}
	if next == h.state {
		return
	}
	prev := h.state
	h.state, h.since = next, h.o.Now()
	fields := []zap.Field{zap.String("from", string(prev)), zap.String("to", string(next))}
	if h.lastErr != nil && next != StateOnline {
		fields = append(fields, zap.Int("code", h.lastErr.Code), zap.String("meaning", h.lastErr.Meaning))
	}
	switch next {
	case StateOnline:
		h.log.Info("printer health changed", fields...)
	case StateNeedsRelink:
		h.log.Error("printer health changed: the App Connection must be linked again; requests are refused until then",
			append(fields, zap.String("action", oe.RelinkCommand(h.o.Name)))...)
	default:
		h.log.Warn("printer health changed", fields...)
	}
}

// NoteRelayCode hears a 6xx answer of the relay (proxy.Hooks.RelayCode) and asks for a check.
func (h *Health) NoteRelayCode(code int) {
	h.mu.Lock()
	now := h.o.Now()
	h.lastErr = statusError(&appapi.OEError{Code: code}, "relay", now)
	if code == 606 {
		h.suspect.Store(true)
		switch {
		case h.first606.IsZero():
			h.first606, h.infoOK606 = now, false
		case h.infoOK606 && !h.condemned && now.Sub(h.first606) >= h.o.ConfirmAfter:
			h.condemned, h.lastProbe = true, now
			h.update()
		}
	}
	h.mu.Unlock()
	h.requestCheck()
}

// noteAccepted hears a request the relay accepted: the credential works, whatever 606 said before.
func (h *Health) noteAccepted() {
	if !h.suspect.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.suspect.Store(false)
	h.first606, h.infoOK606 = time.Time{}, false
	if h.condemned {
		h.condemned = false
		h.log.Info("the relay accepts the App Connection credential again")
		h.update()
	}
}

// Hooks are the proxy hooks that feed this Health. A relay answer below 600 other than 502 (which may be
// oeproxy's own "relay unreachable") and every WebSocket that opens means the relay accepted the credential.
func (h *Health) Hooks() proxy.Hooks {
	return proxy.Hooks{
		RelayCode: h.NoteRelayCode,
		RequestDone: func(st proxy.RequestStats) {
			if st.Status >= 100 && st.Status < 600 && st.Status != http.StatusBadGateway {
				h.noteAccepted()
			}
		},
		WebSocket: func(open bool) {
			if open {
				h.noteAccepted()
			}
		},
	}
}

// Admit implements proxy.Gate: a printer that needs re-linking is refused (bar one probe per Interval while only
// the 606 rule condemns it), and an upload whose Content-Length exceeds the account's upload limit gets 413.
func (h *Health) Admit(r *http.Request) *proxy.Refusal {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == StateNeedsRelink {
		code := h.relinkCode
		if code == 0 {
			now := h.o.Now()
			if now.Sub(h.lastProbe) >= h.o.Interval {
				h.lastProbe = now
				return nil
			}
			code = 606
		}
		return &proxy.Refusal{Status: code, Code: code,
			Meaning: "oeproxy stopped sending this printer's requests to OctoEverywhere: " + relinkReason(code),
			Action:  oe.RelinkAdvice(h.o.Name)}
	}
	if h.info != nil {
		if limit := h.info.Limits.MaxUploadFileSizeBytes; limit > 0 && r.ContentLength > limit {
			return &proxy.Refusal{Status: http.StatusRequestEntityTooLarge, Code: 608,
				Meaning: fmt.Sprintf("This upload is %s; this OctoEverywhere account's upload limit is %s (%d bytes). OctoEverywhere would refuse it with 608 after receiving all of it, so oeproxy refused it at once.",
					config.FormatBytes(r.ContentLength), config.FormatBytes(limit), limit),
				Action: oe.Lookup(608).ActionFor(h.o.Name)}
		}
	}
	return nil
}

func relinkReason(code int) string {
	switch code {
	case 603:
		return "OctoEverywhere's Info API says it does not know this App Connection (603)."
	case 604:
		return "OctoEverywhere's Info API says this App Connection was revoked or has expired (604)."
	}
	return "the relay has kept refusing the App Connection credential (606) while the connection itself is valid."
}

// Snapshot is a copy of what a Health knows.
type Snapshot struct {
	State     State
	Since     time.Time
	Info      *appapi.Info // last successful Info (nil: none yet)
	CheckedAt time.Time
	LastError *StatusError
	// Checks counts the completed checks (a caller that caused one waits for it to change).
	Checks int
}

// Snapshot returns the current state.
func (h *Health) Snapshot() Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Snapshot{State: h.state, Since: h.since, CheckedAt: h.checkedAt, Checks: h.checks}
	if h.info != nil {
		in := *h.info
		s.Info = &in
	}
	if h.lastErr != nil {
		e := *h.lastErr
		s.LastError = &e
	}
	return s
}

// UploadLimit is the account's upload limit from the last successful Info (0: not known yet, or no Health).
func (h *Health) UploadLimit() int64 {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.info == nil {
		return 0
	}
	return h.info.Limits.MaxUploadFileSizeBytes
}

// StatusError is the last error seen for a printer: an OctoEverywhere code with its meaning, or code 0 for a
// failure that is not one (OctoEverywhere unreachable, an unexpected answer). Its JSON keys are part of
// `oeproxy status --json`.
type StatusError struct {
	Code    int    `json:"code"`
	Meaning string `json:"meaning"`
	// Unreachable is true when OctoEverywhere could not be reached at all (network, DNS, TLS, timeout).
	Unreachable bool `json:"unreachable,omitempty"`
	// Source is "info" (the App API) or "relay" (an answer to proxied traffic).
	Source string    `json:"source"`
	At     time.Time `json:"at"`
}

func statusError(err error, source string, at time.Time) *StatusError {
	se := &StatusError{Source: source, At: at.UTC()}
	var oe *appapi.OEError
	if errors.As(err, &oe) {
		se.Code = oe.Code
		if d, ok := appapi.Describe(oe.Code); ok {
			se.Meaning = d.Meaning
		} else {
			se.Meaning = oe.Error()
		}
		return se
	}
	se.Meaning = err.Error()
	se.Unreachable = errors.Is(err, appapi.ErrUnreachable)
	return se
}

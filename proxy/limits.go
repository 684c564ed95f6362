package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// RelaySlots caps the HTTP requests one printer has in flight to its relay, so that a request beyond the cap
// waits a bounded time for a free one and is then answered 503 with Retry-After, instead of queueing for good
// inside the transport's MaxConnsPerHost (where stalled clients holding every connection froze the port).
// One RelaySlots is shared by the handlers a printer's reloads build, so the cap holds across a reload.
type RelaySlots struct {
	ch chan struct{}
}

// NewRelaySlots returns slots for n requests at once (n ≤ 0: nil, no cap). Give the transport the same
// MaxConnsPerHost: each request holds one relay connection.
func NewRelaySlots(n int) *RelaySlots {
	if n <= 0 {
		return nil
	}
	return &RelaySlots{ch: make(chan struct{}, n)}
}

// acquire takes a slot, waiting at most wait; it reports whether it got one. A nil RelaySlots always has room.
func (s *RelaySlots) acquire(r *http.Request, wait time.Duration) bool {
	if s == nil {
		return true
	}
	select {
	case s.ch <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.ch <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-r.Context().Done():
		return false
	}
}

func (s *RelaySlots) release() {
	if s != nil {
		<-s.ch
	}
}

// retryAfter is the Retry-After sent with the 503 of a request that found every relay connection busy.
const retryAfter = 5

// relayBusy answers a request that waited relayWait for a relay connection in vain.
func (h *Handler) relayBusy(w http.ResponseWriter, r *http.Request) {
	if r.Context().Err() != nil {
		w.WriteHeader(http.StatusServiceUnavailable) // the client went away while waiting
		return
	}
	h.logLimited(r, "every relay connection busy", "", zap.Int("max_connections", cap(h.opts.RelaySlots.ch)),
		zap.Duration("waited", h.opts.RelayWait))
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close") // the body is left unread
	}
	writeExplanation(w, r, http.StatusServiceUnavailable, explanation{Code: http.StatusServiceUnavailable,
		Meaning: fmt.Sprintf("All %d connections of printer %q to its OctoEverywhere relay stayed busy for %s.",
			cap(h.opts.RelaySlots.ch), h.printer.Name, h.opts.RelayWait),
		Action: fmt.Sprintf("Try again in %d seconds. If it lasts, other clients hold the connections with stalled uploads, "+
			"long polls or webcam streams: close them, or raise octoeverywhere.max_connections.", retryAfter)})
}

// countingBody counts the request body and guards it: a body that stops arriving for bodyIdle fails (a total
// deadline would cut long uploads), and a body that cannot be read is remembered so that the answer blames the
// client, not the relay. Read runs on the transport's goroutine; failure is read by the handler's.
type countingBody struct {
	io.ReadCloser
	rc   *http.ResponseController // nil: no idle bound
	idle time.Duration
	n    atomic.Int64 // added by the transport's goroutine, summed after the response

	mu       sync.Mutex
	failure  error
	deadline bool // a read deadline is set on the client's connection
	finished bool // the handler returned: the connection's deadlines are net/http's again
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.rc != nil {
		c.setDeadline(time.Now().Add(c.idle))
	}
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	if err != nil {
		// Cleared at once: net/http starts its own background read of the connection at the end of the body,
		// and it must not inherit the idle deadline while the relay takes its time to answer.
		c.clearDeadline()
		// A read after the transport closed the body (the relay connection broke) is not the client's doing.
		if !errors.Is(err, io.EOF) && !errors.Is(err, http.ErrBodyReadAfterClose) {
			c.mu.Lock()
			c.failure = err
			c.mu.Unlock()
		}
	}
	return n, err
}

func (c *countingBody) setDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.finished && c.rc.SetReadDeadline(t) == nil {
		c.deadline = true
	}
}

// clearDeadline lifts the idle deadline, if one is set (also when the transport stopped reading the body early).
func (c *countingBody) clearDeadline() {
	if c == nil || c.rc == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deadline && !c.finished {
		_ = c.rc.SetReadDeadline(time.Time{})
		c.deadline = false
	}
}

// finish lifts the idle deadline for good when the handler returns: a transport still reading the body must not
// set or clear deadlines that net/http now sets for the connection's next request.
func (c *countingBody) finish() {
	if c == nil || c.rc == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deadline {
		_ = c.rc.SetReadDeadline(time.Time{})
		c.deadline = false
	}
	c.finished = true
}

func (c *countingBody) err() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failure
}

// clientBodyError answers a request whose body could not be read from the local client: 408 when it stopped
// arriving, 400 when it was malformed (a broken chunked encoding). The connection closes: its framing is lost.
func (h *Handler) clientBodyError(w http.ResponseWriter, r *http.Request, err error) {
	status, e := http.StatusBadRequest, explanation{Code: http.StatusBadRequest,
		Meaning: "The request body sent to oeproxy could not be read: " + err.Error() + ".",
		Action:  "The client (slicer, script) sent a malformed body; this is not a problem with the printer or OctoEverywhere. Update or fix the client."}
	if isTimeout(err) {
		status, e = http.StatusRequestTimeout, explanation{Code: http.StatusRequestTimeout,
			Meaning: fmt.Sprintf("The request body stopped arriving for %s.", h.opts.BodyIdleTimeout),
			Action:  "The client (slicer, script) stopped sending its upload. Check it and try again."}
	}
	h.logLimited(r, "the client's request body could not be read", "", zap.Int("status", status), zap.Error(err))
	w.Header().Set("Connection", "close")
	writeExplanation(w, r, status, e)
}

// refusalWindow is how often one line is logged per client and reason; the line counts the refusals since.
const refusalWindow = time.Minute

// refusalLog rate-limits the warnings about refused local clients: a page or script retrying in a loop must not
// flood the log, and the count still shows how hard it tried.
type refusalLog struct {
	mu sync.Mutex
	m  map[string]*refusalCount
}

type refusalCount struct {
	since time.Time
	n     int // refusals not logged since since
}

// logLimited logs msg at Warn for r's client once per refusalWindow, message and reason, with count: how many
// such events this line stands for. The others go to Debug.
func (h *Handler) logLimited(r *http.Request, msg, reason string, fields ...zap.Field) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	key := ip + "\x00" + msg + "\x00" + reason
	now := h.now()
	rl := &h.refusals
	rl.mu.Lock()
	if rl.m == nil {
		rl.m = make(map[string]*refusalCount)
	}
	c := rl.m[key]
	count := 0
	if c == nil || now.Sub(c.since) >= refusalWindow {
		if c != nil {
			count = c.n
		}
		if len(rl.m) >= 4096 { // clients that went quiet: drop their windows
			for k, v := range rl.m {
				if now.Sub(v.since) >= refusalWindow {
					delete(rl.m, k)
				}
			}
			if len(rl.m) >= 4096 {
				clear(rl.m)
			}
		}
		rl.m[key] = &refusalCount{since: now}
	} else {
		c.n++
		count = -1
	}
	rl.mu.Unlock()
	fields = append(fields, zap.String("method", r.Method), zap.String("remote", r.RemoteAddr))
	if count < 0 {
		h.log.Debug(msg, fields...)
		return
	}
	h.log.Warn(msg, append(fields, zap.Int("count", count+1))...)
}

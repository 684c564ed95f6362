// Package testutil holds the helpers that tests of several packages share: waiting for a condition under a
// deadline, picking a free loopback port, a clock that moves when told, and an observed logger. It is imported
// only by tests, and imports nothing of oeproxy (so every package's tests may use it).
package testutil

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// WaitTimeout bounds WaitFor: generous, because it is a deadline for something that must happen, not a
// timing assumption, and the machines that run the tests are shared.
const WaitTimeout = 20 * time.Second

// WaitFor polls cond until it holds, failing t with what when WaitTimeout passes first.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", WaitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago, for a server the test starts right after
// (another process may take it in between; the tests that use it retry or accept that).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Clock is an injected clock that only moves when told.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at a fixed moment, so that times in failures read the same on every run.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// Now is the clock's time (a func() time.Time for options).
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Observed returns a logger that keeps every entry, down to debug, for the test to read.
func Observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// LogText is the observed entries, one line each (level, message, fields), for failure messages and for
// looking for secrets.
func LogText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

// Package testutil holds the helpers that tests of several packages share: waiting for a condition under a
// deadline, and picking a free loopback port. It is imported only by tests.
package testutil

import (
	"net"
	"testing"
	"time"
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

package reliability

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every case is counted once, by name, for the summary line.
var (
	passed, failed atomic.Int64
	failedNames    sync.Map
)

// track counts t as one case of the summary: passed unless it failed (a skipped case counts as neither).
func track(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		switch {
		case t.Skipped():
		case t.Failed():
			failed.Add(1)
			failedNames.Store(t.Name(), true)
		default:
			passed.Add(1)
		}
	})
}

// soak reports whether OEPROXY_SOAK=1 asks for the full sizes.
func soak() bool { return os.Getenv("OEPROXY_SOAK") == "1" }

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	// The secrets check runs after every other case, over every log and the binary's files they produced.
	if err := checkAllSecrets(); err != nil {
		fmt.Fprintln(os.Stderr, "--- FAIL: secrets:", err)
		failed.Add(1)
		failedNames.Store("secrets (after the suite)", true)
		code = 1
	} else if secretsChecked() {
		passed.Add(1)
	}
	if err := leftGoroutines(); err != nil {
		fmt.Fprintln(os.Stderr, "--- FAIL: goroutines left after the suite:", err)
		failed.Add(1)
		failedNames.Store("goleak (after the suite)", true)
		code = 1
	}
	var names []string
	failedNames.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
	sort.Strings(names)
	fmt.Printf("reliability: %d passed, %d failed\n", passed.Load(), failed.Load())
	if len(names) > 0 {
		fmt.Printf("reliability failures: %s\n", strings.Join(names, ", "))
	}
	if code == 0 && failed.Load() > 0 {
		code = 1
	}
	os.Exit(code)
}

// leftGoroutines reports the goroutines still running once those that are ending have ended. A net/http server
// connection that closes after its response waits 500 ms (the server's RST-avoidance delay, which nothing can
// cut short) before its goroutine returns, longer than goleak.Find polls (about 0.4 s); so Find is asked again
// until it comes back clean or leakWait has passed, and a real leak still fails after that.
func leftGoroutines(opts ...goleak.Option) error {
	deadline := time.Now().Add(leakWait)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// leakWait bounds how long leftGoroutines waits for goroutines that are ending.
const leakWait = 10 * time.Second

// A server connection closed after its response is still in its close delay when the test ends; the leak
// check waits for it instead of reporting it.
func TestLeakCheckWaitsForClosingConnections(t *testing.T) {
	track(t)
	before := goleak.IgnoreCurrent()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Headers over MaxHeaderBytes: the server answers 431 and closes the connection with its delay.
	srv := &http.Server{MaxHeaderBytes: 1 << 10, Handler: http.NotFoundHandler()}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n"))
	reply, _ := io.ReadAll(c) // until the server closes its side
	c.Close()
	if !strings.Contains(string(reply), "431") {
		t.Fatalf("server answered %q, want 431", reply)
	}
	srv.Close() // returns at once; the connection's goroutine is in its close delay
	<-served
	start := time.Now()
	err = leftGoroutines(before)
	t.Logf("goroutines of the closed connection ended after %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("leak check reported goroutines that were ending: %v", err)
	}
}

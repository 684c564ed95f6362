package reliability

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

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
	// The secrets check runs after every other case, over every log and the binary's files they produced.
	if err := checkAllSecrets(); err != nil {
		fmt.Fprintln(os.Stderr, "--- FAIL: secrets:", err)
		failed.Add(1)
		failedNames.Store("secrets (after the suite)", true)
		code = 1
	} else if secretsChecked() {
		passed.Add(1)
	}
	if err := goleak.Find(); err != nil {
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

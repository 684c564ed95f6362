package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// envE2E=1 makes missing tools a failure and the upload 1 GiB.
const envE2E = "OEPROXY_E2E"

func strict() bool { return os.Getenv(envE2E) == "1" }

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if bin.dir != "" {
			os.RemoveAll(bin.dir)
		}
	}))
}

// need returns the path of a tool, or skips the test (fails it under OEPROXY_E2E=1) when none of names is found.
func need(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if strict() {
		t.Fatalf("%s=1 but none of %v is installed (Debian: apt-get install chromium curl)", envE2E, names)
	}
	t.Skipf("none of %v is installed; set %s=1 to make this a failure", names, envE2E)
	return ""
}

// bin is the oeproxy binary, built once per test run: the daemon under test is the real program.
var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func oeproxyBinary(t *testing.T) string {
	t.Helper()
	bin.once.Do(func() {
		bin.dir, bin.err = os.MkdirTemp("", "oeproxy-e2e-bin-")
		if bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "oeproxy")
		cmd := exec.Command("go", "build", "-o", bin.path, "github.com/oeproxy/oeproxy/cmd/oeproxy")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		bin.out, bin.err = cmd.CombinedOutput()
	})
	if bin.err != nil {
		t.Fatalf("go build ./cmd/oeproxy: %v\n%s", bin.err, bin.out)
	}
	return bin.path
}

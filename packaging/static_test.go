package packaging

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const versionPkg = "github.com/oeproxy/oeproxy/internal/version"

type stamp struct{ Version, Commit, Date string }

// ldflags are the flags of the Dockerfile, the Makefile's build target and scripts/release.sh
// (TestBuildFlagsAgree checks that those files still say so).
func (s stamp) ldflags() string {
	return fmt.Sprintf("-s -w -X %[1]s.Version=%[2]s -X %[1]s.Commit=%[3]s -X %[1]s.Date=%[4]s",
		versionPkg, s.Version, s.Commit, s.Date)
}

// buildOeproxy builds ./cmd/oeproxy for goos and the host's architecture the way the image is built.
func buildOeproxy(t *testing.T, goos string, s stamp) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "oeproxy")
	if goos == "windows" {
		out += ".exe"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", s.ldflags(), "-o", out, "./cmd/oeproxy")
	cmd.Dir = ".." // the module root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build (CGO_ENABLED=0 -trimpath) failed: %v\n%s", err, b)
	}
	return out
}

// runBin runs the built binary with a clean configuration environment (no config file, no OEPROXY_* from the
// caller) plus env, and returns its exit status and output.
func runBin(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	dir := t.TempDir()
	cmd.Env = []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "PATH=" + os.Getenv("PATH")}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return code, out.String(), errb.String()
}

// TestStaticBinary builds the binary as the Dockerfile does and checks what a FROM scratch or distroless image
// needs: no ELF interpreter and no shared libraries, the version stamp, and a healthcheck that exits 0 only on
// a 200 from the admin listener.
func TestStaticBinary(t *testing.T) {
	s := stamp{
		Version: fmt.Sprintf("v0.0.0-packaging.%d", time.Now().UnixNano()%100000),
		Commit:  "0123456789abcdef0123456789abcdef01234567",
		Date:    "2026-01-02T03:04:05Z",
	}
	linuxBin := buildOeproxy(t, "linux", s)

	t.Run("static ELF", func(t *testing.T) {
		f, err := elf.Open(linuxBin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary has a PT_INTERP program header: it needs a dynamic loader (is cgo on?)")
			}
			if p.Type == elf.PT_DYNAMIC {
				t.Error("the binary has a PT_DYNAMIC program header: it is dynamically linked")
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		if len(libs) != 0 {
			t.Errorf("the binary needs shared libraries (DT_NEEDED): %v", libs)
		}
		if f.Section(".symtab") != nil {
			t.Error("the binary keeps its symbol table: -s was not applied")
		}
	})

	if runtime.GOOS != "linux" {
		t.Logf("host is %s: running a second build for the host", runtime.GOOS)
	}
	bin := linuxBin
	if runtime.GOOS != "linux" {
		bin = buildOeproxy(t, runtime.GOOS, s)
	}

	t.Run("version stamp", func(t *testing.T) {
		code, out, errOut := runBin(t, bin, nil, "version", "--json")
		if code != 0 {
			t.Fatalf("version --json: exit %d: %s", code, errOut)
		}
		var got struct{ Version, Commit, Date string }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("version --json: %v: %s", err, out)
		}
		if got != (struct{ Version, Commit, Date string }(s)) {
			t.Errorf("version --json = %+v, want the stamp %+v", got, s)
		}
		code, out, _ = runBin(t, bin, nil, "version")
		if code != 0 || !strings.HasPrefix(out, "oeproxy "+s.Version+" (commit "+s.Commit) {
			t.Errorf("version: exit %d, %q", code, out)
		}
	})

	t.Run("healthcheck", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("GET /broken", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "not ready", http.StatusInternalServerError)
		})
		srv := httptest.NewServer(mux)
		defer srv.Close()
		gone := httptest.NewServer(http.NotFoundHandler())
		goneAddr := gone.Listener.Addr().String()
		gone.Close()

		cases := []struct {
			name   string
			env    []string
			args   []string
			code   int
			stderr string
		}{
			// What the image runs: no flags, the URL from OEPROXY_ADMIN_LISTEN.
			{"admin.listen from env", []string{"OEPROXY_ADMIN_LISTEN=" + srv.Listener.Addr().String()}, nil, 0, ""},
			{"explicit url", nil, []string{"--url", srv.URL + "/healthz"}, 0, ""},
			{"500", nil, []string{"--url", srv.URL + "/broken"}, 1, "500 Internal Server Error: not ready"},
			{"404", []string{"OEPROXY_ADMIN_LISTEN=" + srv.Listener.Addr().String()}, []string{"--url", srv.URL + "/missing"}, 1, "404"},
			{"no daemon", []string{"OEPROXY_ADMIN_LISTEN=" + goneAddr}, nil, 1, "connection refused"},
		}
		for _, c := range cases {
			code, out, errOut := runBin(t, bin, c.env, append([]string{"healthcheck"}, c.args...)...)
			if code != c.code {
				t.Errorf("%s: exit %d, want %d (stdout %q, stderr %q)", c.name, code, c.code, out, errOut)
				continue
			}
			if !strings.Contains(errOut, c.stderr) {
				t.Errorf("%s: stderr %q lacks %q", c.name, errOut, c.stderr)
			}
			if c.code != 0 && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("%s: want a one-line reason, got %q", c.name, errOut)
			}
		}
	})
}

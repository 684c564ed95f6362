package reliability

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/bench"
)

// The real binary: SIGTERM during an upload drains it within the grace time and exits 0; afterwards the
// daemon's log, `list --json`, the admin endpoints and every file of the data directory are handed to the
// secrets check; the real listener refuses oversized headers and a smuggling attempt too.
func TestBinary(t *testing.T) {
	ctx, env, oe := binaryUnderTest(t, 3*time.Minute)
	const grace = 10 * time.Second
	oe.SetEnv("OEPROXY_SHUTDOWN_GRACE=" + grace.String())
	if _, err := oe.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = oe.Stop()
		}
	}()
	base := "http://" + oe.Addr()

	t.Run("refuses oversized headers", func(t *testing.T) {
		track(t)
		c := rawDial(t, oe.Addr())
		fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", oe.Addr(), strings.Repeat("a", 2<<20))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s, want 431", resp.Status)
		}
	})
	t.Run("closes after Content-Length with Transfer-Encoding", func(t *testing.T) {
		track(t)
		before := len(env.Conn.Requests())
		c := rawDial(t, oe.Addr())
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: %[1]s\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /small HTTP/1.1\r\nHost: %[1]s\r\n\r\n", oe.Addr())
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp2, err := http.ReadResponse(br, nil); err == nil {
			resp2.Body.Close()
			t.Errorf("the hidden request was served on the same connection (%s)", resp2.Status)
		}
		for _, q := range env.Conn.Requests()[before:] {
			if q.Path == "/small" {
				t.Error("the hidden GET /small reached the relay")
			}
		}
	})
	t.Run("admin endpoints hold no secret", func(t *testing.T) {
		track(t)
		admin := adminAddr(t, oe.LogFile)
		for _, p := range []string{"/healthz", "/readyz", "/metrics", "/"} {
			resp, err := http.Get("http://" + admin + p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			registerText("admin "+p, string(b))
		}
	})
	t.Run("SIGTERM during an upload drains it", func(t *testing.T) {
		track(t)
		const size = 48 << 20
		type result struct {
			status, body string
			err          error
		}
		done := make(chan result, 1)
		go func() {
			// About 24 MiB/s: the upload is still being sent when SIGTERM comes, and ends well within the grace.
			body := &throttled{r: io.LimitReader(zeros{}, size), perSecond: 24 << 20}
			req, _ := http.NewRequest(http.MethodPost, base+"/upload", body)
			req.ContentLength = size
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- result{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- result{status: resp.Status, body: string(b)}
		}()
		waitFor(t, "the upload to start", func() bool { return env.Origin.UploadBytes.Load() == 0 && relaySeen(env, "/upload") })
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		err := oe.Stop() // SIGTERM, waits for the exit
		stopped = true
		took := time.Since(start)
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		if took > grace {
			t.Errorf("took %s to stop, grace is %s", took, grace)
		}
		res := <-done
		if res.err != nil || res.status != "200 OK" || res.body != fmt.Sprintf(`{"bytes":%d}`, size) {
			t.Errorf("the upload in flight at SIGTERM: %s %q %v", res.status, res.body, res.err)
		}
		t.Logf("stopped %s after SIGTERM; the upload finished: %s", took.Round(time.Millisecond), res.body)
	})
	t.Run("list --json, store and log hold no secret", func(t *testing.T) {
		track(t)
		out, err := oe.Command(ctx, "list", "--json").CombinedOutput()
		if err != nil {
			t.Fatalf("list --json: %v\n%s", err, out)
		}
		var list []map[string]any
		if err := json.Unmarshal(out, &list); err != nil || len(list) != 1 {
			t.Errorf("list --json: %v %s", err, out)
		}
		registerText("list --json", string(out))
		registerFile(t, oe.LogFile)
		n := 0
		_ = filepath.WalkDir(oe.DataDir(), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				registerFile(t, p)
				n++
			}
			return nil
		})
		if n == 0 {
			t.Error("the data directory holds no file to search")
		}
		// The check itself runs after the whole suite; this case makes sure it has something to read.
		if err := checkAllSecrets(); err != nil {
			t.Error(err)
		}
	})
}

func rawDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

var adminRE = regexp.MustCompile(`"admin":"http://([0-9.:]+)"`)

// adminAddr reads the admin listener's address from the daemon's JSON log.
func adminAddr(t testing.TB, logFile string) string {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	m := adminRE.FindAllSubmatch(b, -1)
	if m == nil {
		t.Fatalf("the daemon's log names no admin address:\n%s", b)
	}
	return string(m[len(m)-1][1])
}

func relaySeen(env *bench.Env, path string) bool {
	for _, r := range env.Conn.Requests() {
		if r.Path == path {
			return true
		}
	}
	return false
}

// throttled reads at most perSecond bytes per second.
type throttled struct {
	r         io.Reader
	perSecond int
	start     time.Time
	n         int
}

func (t *throttled) Read(p []byte) (int, error) {
	if t.start.IsZero() {
		t.start = time.Now()
	}
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	if due := t.start.Add(time.Duration(float64(t.n) / float64(t.perSecond) * float64(time.Second))); time.Until(due) > 0 {
		time.Sleep(time.Until(due))
	}
	n, err := t.r.Read(p)
	t.n += n
	return n, err
}

package printer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// deadline bounds every wait in these tests; it is a hang guard, never an assertion on speed.
const deadline = 15 * time.Second

const testID = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGHIJKLMNOPQRSTUVWX"

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// serve runs h on a loopback httptest server; closer (the printer's Close) runs before the
// server closes, since long-lived handlers would otherwise keep server.Close waiting.
func serve(t *testing.T, h http.Handler, closer func()) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if closer != nil {
		t.Cleanup(closer)
	}
	return srv
}

func newOctoPrint(t *testing.T, o OctoPrintOptions) (*OctoPrint, *httptest.Server) {
	p := NewOctoPrint(o)
	return p, serve(t, p, p.Close)
}

func newMoonraker(t *testing.T, o MoonrakerOptions) (*Moonraker, *httptest.Server, *httptest.Server) {
	m := NewMoonraker(o)
	fe := serve(t, m.Frontend(), nil)
	api := serve(t, m.API(), m.Close)
	return m, api, fe
}

func do(t *testing.T, method, url string, hdr map[string]string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, b)
	}
	return v
}

// dig walks a decoded JSON value along keys.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// multipartBody builds a slicer-shaped multipart body whose file part is size pseudo-random
// bytes generated while the body is read (never held whole in memory). It returns the body,
// its exact length, the content type, and a func giving the file's sha256 once read.
func multipartBody(t *testing.T, fields [][2]string, filename string, size int64) (io.Reader, int64, string, func() string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mw.CreateFormFile("file", filename); err != nil {
		t.Fatal(err)
	}
	prefix := bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	suffix := bytes.Clone(buf.Bytes())
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{byte(size)}), size), h)
	body := io.MultiReader(bytes.NewReader(prefix), src, bytes.NewReader(suffix))
	return body, int64(len(prefix)) + size + int64(len(suffix)), mw.FormDataContentType(),
		func() string { return hex.EncodeToString(h.Sum(nil)) }
}

// postUpload sends a multipart upload; chunked sends it without Content-Length.
func postUpload(t *testing.T, url string, hdr map[string]string, fields [][2]string, filename string, size int64, chunked bool) (*http.Response, []byte, func() string) {
	t.Helper()
	body, n, ctype, sum := multipartBody(t, fields, filename, size)
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = n
	if chunked {
		req.ContentLength = -1
	}
	req.Header.Set("Content-Type", ctype)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, sum
}

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

func dialWS(t *testing.T, url string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(testCtx(t), url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: status %d: %v", url, status, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	typ, b, err := c.Read(testCtx(t))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("message type %v, want text", typ)
	}
	return string(b)
}

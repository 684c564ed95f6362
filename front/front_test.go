package front

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakePlugin answers plugin commands from a table and records what it was sent.
type fakePlugin struct {
	mu      sync.Mutex
	calls   []string
	uploads map[string][]byte
	answer  func(r *http.Request) (*http.Response, error) // nil: the default answers
}

func (p *fakePlugin) relay(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.calls = append(p.calls, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	if p.answer != nil {
		return p.answer(r)
	}
	if strings.HasSuffix(r.URL.Path, "/files/upload") {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		if p.uploads == nil {
			p.uploads = map[string][]byte{}
		}
		p.uploads[r.URL.Query().Get("path")] = b
		p.mu.Unlock()
	}
	return jsonResp(200, `{"Status":200,"Result":{}}`), nil
}

func jsonResp(status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
}

func newTestFront(t *testing.T, p *fakePlugin) *Front {
	t.Helper()
	f, err := New(Options{Relay: p.relay, APIKey: "k3y", PrinterName: "x1c"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNewRefusesAFrontWithoutKey(t *testing.T) {
	if _, err := New(Options{Relay: (&fakePlugin{}).relay}); err == nil {
		t.Fatal("a front without an API key was built")
	}
}

func TestAPIKeyCarriers(t *testing.T) {
	p := &fakePlugin{}
	f := newTestFront(t, p)
	for _, tc := range []struct {
		name string
		mod  func(*http.Request)
		want int
	}{
		{"none", func(*http.Request) {}, 403},
		{"wrong", func(r *http.Request) { r.Header.Set("X-Api-Key", "nope") }, 403},
		{"prefix", func(r *http.Request) { r.Header.Set("X-Api-Key", "k3") }, 403},
		{"header", func(r *http.Request) { r.Header.Set("X-Api-Key", "k3y") }, 200},
		{"query", func(r *http.Request) { r.URL.RawQuery = "apikey=k3y" }, 200},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer k3y") }, 200},
		{"basic", func(r *http.Request) { r.SetBasicAuth("k3y", "k3y") }, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/version", nil)
			tc.mod(r)
			w := httptest.NewRecorder()
			f.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("%d, want %d: %s", w.Code, tc.want, w.Body)
			}
		})
	}
	if len(p.calls) != 0 {
		t.Fatalf("version reached the relay: %v", p.calls)
	}
}

func TestPluginStatusMapping(t *testing.T) {
	for _, tc := range []struct {
		relayStatus int
		body        string
		want        int
	}{
		{200, `{"Status":786,"Error":"Printer state is not printing."}`, 409},
		{200, `{"Status":751,"Error":"bad"}`, 400},
		{200, `{"Status":754,"Error":"?"}`, 501},
		{200, `{"Status":788,"Error":"no"}`, 501},
		{200, `{"Status":785,"Error":"no host"}`, 503},
		{200, `{"Status":789,"Error":"auth"}`, 502},
		{200, `{"Status":404,"Error":"file not found"}`, 404},
		{200, `not json`, 502},
		{601, `{"Status":601,"Error":"offline"}`, 601},
		{605, ``, 605},
		{500, `oops`, 502},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.relayStatus, tc.body), func(t *testing.T) {
			p := &fakePlugin{answer: func(*http.Request) (*http.Response, error) { return jsonResp(tc.relayStatus, tc.body), nil }}
			f := newTestFront(t, p)
			r := httptest.NewRequest("POST", "/api/job", strings.NewReader(`{"command":"cancel"}`))
			r.Header.Set("X-Api-Key", "k3y")
			w := httptest.NewRecorder()
			f.ServeHTTP(w, r)
			if w.Code != tc.want || !strings.Contains(w.Body.String(), `"error"`) {
				t.Fatalf("%d %s, want %d with an OctoPrint error body", w.Code, w.Body, tc.want)
			}
		})
	}
}

func multipartBody(t *testing.T, fields [][2]string, fileAt int, file []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i, kv := range fields {
		if i == fileAt {
			fw, _ := mw.CreateFormFile("file", "part.gcode")
			_, _ = fw.Write(file)
		}
		_ = mw.WriteField(kv[0], kv[1])
	}
	if fileAt >= len(fields) {
		fw, _ := mw.CreateFormFile("file", "part.gcode")
		_, _ = fw.Write(file)
	}
	_ = mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

func TestUploadFieldsAfterTheFileStillPrint(t *testing.T) {
	p := &fakePlugin{}
	f := newTestFront(t, p)
	ct, body := multipartBody(t, [][2]string{{"select", "true"}, {"print", "true"}}, 0, []byte("G28\nG1 X1\n"))
	r := httptest.NewRequest("POST", "/api/files/local", bytes.NewReader(body))
	r.Header.Set("Content-Type", ct)
	r.Header.Set("X-Api-Key", "k3y")
	w := httptest.NewRecorder()
	f.ServeHTTP(w, r)
	if w.Code != 201 || string(p.uploads["gcode/part.gcode"]) != "G28\nG1 X1\n" {
		t.Fatalf("%d %s, uploads %v", w.Code, w.Body, p.uploads)
	}
	if want := []string{"PUT /octoeverywhere-command-api/files/upload", "POST /octoeverywhere-command-api/start"}; strings.Join(p.calls, ",") != strings.Join(want, ",") {
		t.Fatalf("calls %v, want %v", p.calls, want)
	}
}

func TestUploadRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, fileName, ct string
		want               int
	}{
		{"not multipart", "", "application/json", 400},
		{"stl", "model.stl", "", 415},
		{"hidden", ".bashrc", "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePlugin{}
			f := newTestFront(t, p)
			var b bytes.Buffer
			mw := multipart.NewWriter(&b)
			if tc.fileName != "" {
				fw, _ := mw.CreateFormFile("file", tc.fileName)
				_, _ = fw.Write([]byte("x"))
			}
			_ = mw.Close()
			ct := tc.ct
			if ct == "" {
				ct = mw.FormDataContentType()
			}
			r := httptest.NewRequest("POST", "/api/files/local", &b)
			r.Header.Set("Content-Type", ct)
			r.Header.Set("X-Api-Key", "k3y")
			w := httptest.NewRecorder()
			f.ServeHTTP(w, r)
			if w.Code != tc.want || len(p.calls) != 0 {
				t.Fatalf("%d %s (calls %v), want %d and nothing sent", w.Code, w.Body, p.calls, tc.want)
			}
		})
	}
}

// TestUploadStreams proves the front passes the file on while the slicer is still sending it: the relay sees the
// first MiB before the client has written the rest (a front that buffered would never get there).
func TestUploadStreams(t *testing.T) {
	got := make(chan struct{})
	var received int64
	p := &fakePlugin{}
	p.answer = func(r *http.Request) (*http.Response, error) {
		if !strings.HasSuffix(r.URL.Path, "/files/upload") {
			return jsonResp(200, `{"Status":200,"Result":{}}`), nil
		}
		buf := make([]byte, 64<<10)
		signalled := false
		for {
			n, err := r.Body.Read(buf)
			received += int64(n)
			if !signalled && received >= 1<<20 {
				close(got)
				signalled = true
			}
			if err != nil {
				return jsonResp(200, `{"Status":200,"Result":{}}`), nil
			}
		}
	}
	f := newTestFront(t, p)
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	r := httptest.NewRequest("POST", "/api/files/local", pr)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	r.Header.Set("X-Api-Key", "k3y")
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); f.ServeHTTP(w, r) }()

	fw, _ := mw.CreateFormFile("file", "big.gcode")
	chunk := bytes.Repeat([]byte("G1 X1\n"), (1<<20)/6+1)
	if _, err := fw.Write(chunk); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the relay saw no upload bytes while the client was still sending: the front buffers")
	}
	_, _ = fw.Write(chunk)
	_ = mw.Close()
	_ = pw.Close()
	<-done
	if w.Code != 201 || received != int64(2*len(chunk)) {
		t.Fatalf("%d %s; relay received %d of %d", w.Code, w.Body, received, 2*len(chunk))
	}
}

func TestHandles(t *testing.T) {
	for p, want := range map[string]bool{
		"/api/version": true, "/api": true, "/webcam/": true, "/webcam": true,
		"/octoeverywhere-command-api/status": false, "/websocket": false, "/apiary": false, "/": false,
	} {
		if Handles(p) != want {
			t.Errorf("Handles(%q) = %v", p, !want)
		}
	}
}

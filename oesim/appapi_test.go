package oesim

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// callAPI calls an App API with the token in the AppToken header (token "" sends none).
func callAPI(t *testing.T, s *Sim, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.APIURL+path, rd)
	if token != "" {
		req.Header.Set("AppToken", token)
	}
	resp, raw := do(t, s.HTTPClient(), req)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
	}
	return resp.StatusCode, m
}

func result(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	r, ok := m["Result"].(map[string]any)
	if !ok || m["Status"] != float64(200) || m["Error"] != "" || m["IsUserError"] != false {
		t.Fatalf("not a success envelope: %v", m)
	}
	return r
}

var dotnetTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)

func TestInfoAPI(t *testing.T) {
	s, _ := newSim(t, Options{Limits: Limits{MaxSingleWebcamStreamLength: 1500 * time.Millisecond}})
	c := s.Connect(nil)
	tok := c.Credentials().AppAPIToken

	code, m := callAPI(t, s, http.MethodGet, "/api/appconnection/info", tok, nil)
	if code != 200 {
		t.Fatalf("status %d: %v", code, m)
	}
	r := result(t, m)
	if r["PrinterName"] != "Test Printer" || r["IsOnline"] != true || r["PrinterLocalIp"] != "127.0.0.1" ||
		!strings.HasPrefix(r["UserFacingPrinterUrl"].(string), "https://octoeverywhere.com/view/Test%20Printer") {
		t.Errorf("info %v", r)
	}
	if !dotnetTimeRE.MatchString(r["LastConnectionTimeUtc"].(string)) || r["LastDisconnectTimeUtc"] != "0001-01-01T00:00:00" {
		t.Errorf("timestamps %v / %v", r["LastConnectionTimeUtc"], r["LastDisconnectTimeUtc"])
	}
	lim := r["PrinterLimits"].(map[string]any)
	if lim["MaxDownloadFileSizeBytes"] != float64(500<<20) || lim["MaxUploadFileSizeBytes"] != float64(500<<20) ||
		lim["MaxSingleWebcamStreamLengthSeconds"] != float64(2) {
		t.Errorf("limits %v", lim)
	}
	for _, k := range []string{"MaxTotalWebcamStreamTimePerTimeWindowSeconds", "WebcamStreamTimeWindow"} {
		if v, ok := lim[k]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}

	c.Printer().SetOnline(false)
	_, m = callAPI(t, s, http.MethodGet, "/API/AppConnection/Info", tok, nil) // paths are case-insensitive
	if r := result(t, m); r["IsOnline"] != false || !dotnetTimeRE.MatchString(r["LastDisconnectTimeUtc"].(string)) {
		t.Errorf("offline info %v", r)
	}
	c.Printer().SetOnline(true)

	cases := []struct {
		name  string
		token string
		setup func()
		want  int
	}{
		{"missing token", "", func() {}, 400},
		{"unknown token", "nope", func() {}, 603},
		{"no supporter", tok, func() { c.SetSupporter(false) }, 605},
		{"revoked", tok, func() { c.Revoke() }, 604},
		{"deleted", tok, func() { c.Delete() }, 603},
	}
	for _, tc := range cases {
		tc.setup()
		code, m := callAPI(t, s, http.MethodGet, "/api/appconnection/info", tc.token, nil)
		if code != tc.want || m["Status"] != float64(tc.want) || m["Error"] == "" || m["Result"] != nil {
			t.Errorf("%s: %d %v, want %d with an error envelope", tc.name, code, m, tc.want)
		}
	}

	t.Run("InfoOfflineError", func(t *testing.T) {
		s2, _ := newSim(t, Options{InfoOfflineError: true})
		c2 := s2.Connect(nil)
		c2.Printer().SetOnline(false)
		if code, _ := callAPI(t, s2, http.MethodGet, "/api/appconnection/info", c2.Credentials().AppAPIToken, nil); code != 601 {
			t.Errorf("status %d, want 601", code)
		}
	})
	t.Run("bare", func(t *testing.T) {
		s2, _ := newSim(t, Options{BareAPI: true})
		c2 := s2.Connect(nil)
		code, m := callAPI(t, s2, http.MethodGet, "/api/appconnection/info", c2.Credentials().AppAPIToken, nil)
		if code != 200 || m["PrinterName"] != "Test Printer" || m["Result"] != nil {
			t.Errorf("bare info %d %v", code, m)
		}
	})
}

func TestLiveLinkAPI(t *testing.T) {
	s, _ := newSim(t, Options{})
	c := s.Connect(nil)
	tok := c.Credentials().AppAPIToken
	const path = "/api/live/createfromappconnection"

	code, m := callAPI(t, s, http.MethodPost, path, tok, nil)
	r := result(t, m)
	id, _ := r["LiveId"].(string)
	if code != 200 || id == "" || r["Url"] != "https://octoeverywhere.com/live/"+id || r["ShortUrl"] != "https://oe.ink/l/"+id {
		t.Fatalf("live link %d %v", code, r)
	}
	if ll := c.LiveLinks(); len(ll) != 1 || ll[0].ExpirationHours != 24 {
		t.Errorf("default expiration: %+v", ll)
	}
	cases := []struct {
		name string
		body map[string]any
		want int
	}{
		{"token in body", map[string]any{"AppToken": tok, "ExpirationHours": 1}, 200},
		{"max hours", map[string]any{"ExpirationHours": 17520}, 200},
		{"zero hours", map[string]any{"ExpirationHours": 0}, 400},
		{"too many hours", map[string]any{"ExpirationHours": 17521}, 400},
		{"not printing", map[string]any{"EndWhenCurrentPrintIsComplete": true}, 613},
	}
	for _, tc := range cases {
		token := tok
		if _, ok := tc.body["AppToken"]; ok {
			token = ""
		}
		if code, m := callAPI(t, s, http.MethodPost, path, token, tc.body); code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, m, tc.want)
		}
	}
	c.Printer().SetPrinting(true)
	if code, _ := callAPI(t, s, http.MethodPost, path, tok, map[string]any{"EndWhenCurrentPrintIsComplete": true, "ExpirationHours": 0}); code != 200 {
		t.Errorf("with a print running: %d", code)
	}
	if code, _ := callAPI(t, s, http.MethodGet, path, tok, nil); code != 405 {
		t.Errorf("GET: %d, want 405", code)
	}
}

func TestGadgetAPI(t *testing.T) {
	s, _ := newSim(t, Options{GadgetMinInterval: 300 * time.Millisecond})
	c := s.Connect(nil)
	tok := c.Credentials().AppAPIToken
	const path = "/api/gadget/GetStatusFromAppConnection"
	c.SetGadget(GadgetStatus{State: 3, Status: "Looking good", StatusColor: "g", Rating: 9})

	code, m := callAPI(t, s, http.MethodPost, path, tok, nil)
	if r := result(t, m); code != 200 || r["State"] != float64(3) || r["Status"] != "Looking good" || r["StatusColor"] != "g" || r["Rating"] != float64(9) {
		t.Fatalf("gadget %d %v", code, m)
	}
	if code, m := callAPI(t, s, http.MethodPost, path, tok, nil); code != 429 || m["Status"] != float64(429) {
		t.Errorf("second call inside the interval: %d %v, want 429", code, m)
	}
	other := s.Connect(nil) // the rule is per connection
	if code, _ := callAPI(t, s, http.MethodPost, path, "", map[string]any{"AppToken": other.Credentials().AppAPIToken}); code != 200 {
		t.Errorf("another connection: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := callAPI(t, s, http.MethodPost, path, tok, nil)
		if code == 200 {
			break
		}
		if code != 429 || time.Now().After(deadline) {
			t.Fatalf("after the interval: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Printer().SetOnline(false)
	// The next call after the interval (429 until then) finds the printer offline.
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, _ := callAPI(t, s, http.MethodPost, path, tok, nil)
		if code == 601 {
			break
		}
		if code != 429 || time.Now().After(deadline) {
			t.Fatalf("offline: %d, want 601", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// webhookReceiver is an https receiver the sim's WebhookClient trusts.
type webhookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []map[string]any
	urls   []string
	status int
}

func newReceiver(t *testing.T) *webhookReceiver {
	wr := &webhookReceiver{status: 200}
	wr.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		wr.mu.Lock()
		wr.got, wr.urls = append(wr.got, m), append(wr.urls, r.URL.RequestURI())
		status := wr.status
		wr.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(wr.srv.Close)
	return wr
}

func TestWebhookAPIs(t *testing.T) {
	recv := newReceiver(t)
	client := recv.srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	s, _ := newSim(t, Options{WebhookClient: client})
	t.Cleanup(client.CloseIdleConnections)
	c := s.Connect(nil)
	tok := c.Credentials().AppAPIToken
	hook := recv.srv.URL + "/hook?secret=abc"

	for _, tc := range []struct {
		name string
		body map[string]any
		want int
	}{
		{"http", map[string]any{"WebhookUrl": "http://example.com/x"}, 400},
		{"relative", map[string]any{"WebhookUrl": "/x"}, 400},
		{"missing", map[string]any{}, 400},
		{"bad filter", map[string]any{"WebhookUrl": hook, "InclusiveEventTypesFilter": []int{1, 17}}, 400},
		{"ok", map[string]any{"WebhookUrl": hook, "InclusiveEventTypesFilter": []int{2, 3}}, 200},
	} {
		if code, m := callAPI(t, s, http.MethodPost, "/api/appconnection/SetNotificationWebhook", tok, tc.body); code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, m, tc.want)
		}
	}
	if u, f, at := c.Webhook(); u != hook || len(f) != 2 || at.IsZero() {
		t.Fatalf("stored webhook %q %v %v", u, f, at)
	}

	code, m := callAPI(t, s, http.MethodGet, "/api/appconnection/TestWebhook", tok, nil)
	if r := result(t, m); code != 200 || r["StatusCode"] != float64(200) {
		t.Fatalf("TestWebhook %d %v", code, m)
	}
	if err := s.FireEvent(c, EventPrintStarted); err != nil { // filtered out: nothing sent
		t.Fatal(err)
	}
	if err := s.FireEvent(c, EventPrintComplete); err != nil {
		t.Fatal(err)
	}
	recv.mu.Lock()
	got, urls := recv.got, recv.urls
	recv.status = 500
	recv.mu.Unlock()
	if len(got) != 2 || got[0]["EventType"] != float64(16) || got[1]["EventType"] != float64(2) ||
		got[0]["PrinterId"] != c.Printer().ID || got[0]["PrinterName"] != "Test Printer" || urls[0] != "/hook?secret=abc" {
		t.Errorf("receiver got %v at %v", got, urls)
	}
	if err := s.FireEvent(c, EventPrintFailed); err == nil {
		t.Error("a 500 from the receiver must be an error")
	}
	code, m = callAPI(t, s, http.MethodGet, "/api/appconnection/TestWebhook", tok, nil)
	if r := result(t, m); code != 200 || r["StatusCode"] != float64(500) {
		t.Errorf("TestWebhook reports %v, want 500", r)
	}
	if d := s.Webhooks(); len(d) != 4 || d[3].StatusCode != 500 || d[3].EventType != 16 {
		t.Errorf("deliveries %+v", d)
	}
	if err := s.FireEvent(c, 17); err == nil {
		t.Error("event type 17 accepted")
	}

	if code, _ := callAPI(t, s, http.MethodPost, "/api/appconnection/DeleteNotificationWebhook", "", map[string]any{"AppToken": tok}); code != 200 {
		t.Errorf("delete: %d", code)
	}
	if u, _, _ := c.Webhook(); u != "" {
		t.Errorf("webhook still set: %q", u)
	}
	if code, _ := callAPI(t, s, http.MethodGet, "/api/appconnection/TestWebhook", tok, nil); code != 400 {
		t.Errorf("TestWebhook without a webhook: %d, want 400", code)
	}
	if code, _ := callAPI(t, s, http.MethodPost, "/api/appconnection/SetNotificationWebhook", "", map[string]any{"AppToken": "nope", "WebhookUrl": hook}); code != 603 {
		t.Errorf("unknown token in body: %d, want 603", code)
	}
	c.Revoke()
	if code, _ := callAPI(t, s, http.MethodPost, "/api/appconnection/SetNotificationWebhook", tok, map[string]any{"WebhookUrl": hook}); code != 604 {
		t.Errorf("revoked: %d, want 604", code)
	}
}

func TestDotNetTime(t *testing.T) {
	if got := DotNetTime(time.Time{}); got != "0001-01-01T00:00:00" {
		t.Errorf("zero: %q", got)
	}
	ts := time.Date(2023, 2, 4, 9, 51, 17, 614404700, time.FixedZone("x", 3600))
	if got := DotNetTime(ts); got != "2023-02-04T08:51:17.6144047Z" {
		t.Errorf("got %q", got)
	}
}

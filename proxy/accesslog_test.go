package proxy

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// At debug level each request gets one access line: method, path, status, bytes, duration, route, and never
// the query, which may hold the client's API key.
func TestAccessLogAtDebug(t *testing.T) {
	rr := &recordingRelay{status: 200, body: "hello"}
	h, logs := newUnitHandler(t, rr, nil)
	r := httptest.NewRequest("POST", "http://127.0.0.1:5001/api/files/local?apikey=SECRETKEY123", strings.NewReader("abc"))
	if w := serve(h, r); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	entries := logs.FilterMessage("request").All()
	if len(entries) != 1 {
		t.Fatalf("%d access lines:\n%s", len(entries), logText(logs))
	}
	f := entries[0].ContextMap()
	if f["method"] != "POST" || f["path"] != "/api/files/local" || f["status"] != int64(200) || f["bytes_in"] != int64(3) ||
		f["bytes_out"] != int64(5) || f["route"] != "relay" || f["duration"] == nil {
		t.Errorf("access line fields: %v", f)
	}
	assertNoSecrets(t, logs, "SECRETKEY123", testPassword)
}

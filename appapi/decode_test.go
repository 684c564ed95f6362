package appapi

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestSplitEnvelope(t *testing.T) {
	cases := []struct {
		name, body string
		payload    string // "" means nil
		envelope   bool
		status     int
		errText    string
		unexpected bool
	}{
		{name: "envelope", body: wrap(`{"A":1}`), payload: `{"A":1}`, envelope: true, status: 200},
		{name: "lower-case envelope", body: `{"status":200,"error":"","result":{"A":1}}`, payload: `{"A":1}`, envelope: true, status: 200},
		{name: "envelope null result", body: `{"Status":605,"Error":"no perks","Result":null}`, envelope: true, status: 605, errText: "no perks"},
		{name: "status as string", body: `{"Status":"603","Result":null}`, envelope: true, status: 603},
		{name: "bare", body: `{"PrinterName":"x"}`, payload: `{"PrinterName":"x"}`},
		{name: "bare with Result only", body: `{"Result":{"A":1}}`, payload: `{"Result":{"A":1}}`},
		{name: "bare with Status only", body: `{"Status":500}`, payload: `{"Status":500}`},
		{name: "array", body: `[1]`, payload: `[1]`},
		{name: "empty", body: " \n"},
		{name: "garbage", body: `{"Status":`, unexpected: true},
		{name: "html", body: `<html></html>`, unexpected: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			payload, env, err := splitEnvelope([]byte(c.body))
			if c.unexpected {
				if !errors.Is(err, ErrUnexpectedResponse) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(payload) != c.payload || (payload == nil) != (c.payload == "") {
				t.Errorf("payload %q, want %q", payload, c.payload)
			}
			if (env != nil) != c.envelope {
				t.Fatalf("envelope %v, want %v", env, c.envelope)
			}
			if env != nil && (env.Status != c.status || env.Error != c.errText) {
				t.Errorf("envelope %+v", env)
			}
		})
	}
}

func TestErrorDetail(t *testing.T) {
	cases := map[string]string{
		`{"Status":601,"Error":"Printer offline.","Result":null}`: "Printer offline.",
		`{"Message":"nope"}`:                    "nope",
		`{"title":"Bad","detail":"worse"}`:      "worse",
		"plain\ntext\x00 with " + testToken:     "plain text with [redacted]",
		`<html><body>Bad gateway</body></html>`: "",
		strings.Repeat("x", 1000):               strings.Repeat("x", maxDetail) + "...",
	}
	for body, want := range cases {
		if got := errorDetail([]byte(body), testToken); got != want {
			t.Errorf("errorDetail(%.40q) = %q, want %q", body, got, want)
		}
	}
}

// FuzzDecode feeds arbitrary status codes and bodies through everything that reads a response: it must never
// panic, and a success must never come with an error-shaped envelope status.
func FuzzDecode(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, wrap(infoJSON)}, {200, infoJSON}, {200, wrap(`{"LiveId":"a","Url":"u","ShortUrl":"s"}`)},
		{200, `{"State":3,"Status":"ok","StatusColor":"g","Rating":9}`}, {200, wrap(`{"StatusCode":200}`)},
		{200, `{"Status":604,"Error":"x","Result":null}`}, {604, `{"Status":604,"Error":"x","Result":null}`},
		{200, `{"Status":{},"Result":[],"Error":{"a":1}}`}, {200, `{"LastConnectionTimeUtc":"0001-01-01T00:00:00"}`},
		{200, `{"LastConnectionTimeUtc":"9999-99-99"}`}, {200, `{"PrinterLimits":{"WebcamStreamTimeWindow":1e400}}`},
		{200, "\xff\xfe"}, {200, ""}, {200, "null"}, {601, "offline"}, {429, ""}, {400, `{"Error":""}`}, {999, "{"},
		{200, `{"Status":"99999999999999999999","Result":1}`}, {200, wrap(`"x"`)}, {200, `{"State":-5,"Rating":99}`},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		h := http.Header{"Retry-After": {string(body)}}
		payload, err := decodeResponse(status, h, body, testToken)
		if err != nil {
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("error shows the token: %v", err)
			}
			return
		}
		if status < 200 || status > 299 {
			t.Fatalf("status %d decoded as success", status)
		}
		if in, err := decodeInfo(payload); err == nil {
			_, _ = in.LastConnection.MarshalJSON()
			_ = in.LastDisconnect.String()
		}
		if l, err := decodeLiveLink(payload); err == nil && l.URL == "" && l.ShortURL == "" {
			t.Fatal("a Live Link without any URL was accepted")
		}
		if g, err := decodeGadget(payload); err == nil {
			_, _ = g.State.MarshalText()
			_ = g.StatusColor.String() + g.Rating.String()
		}
		_, _ = decodeWebhookTest(payload)
	})
}

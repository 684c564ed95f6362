package logging

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestNoSecretReachesOutput logs every kind of secret through the helpers, in both formats, and greps the
// output for each secret value.
func TestNoSecretReachesOutput(t *testing.T) {
	secrets := map[string]string{
		"basic":    "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
		"bearer":   "bearerTOKEN0123456789abcdef",
		"password": "pa55w0rdXYZ0123456789abcdefghij",
		"apikey":   "APIKEY0123456789ABCDEF",
		"token":    "moonrakerONESHOT123",
		"access":   "accessTOKENzzz999",
		"oe":       "b2Vfa2V5X3ZhbHVl",
		"apptoken": "appTOKEN42deadbeef",
		"user":     "UsErNaMe10",
	}
	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log, err := New("debug", format, &buf)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("Authorization", "Basic "+secrets["basic"])
		h.Set("X-Api-Key", secrets["apikey"])
		h.Set("X-Api-Key-Extra", secrets["apikey"])
		h.Set("AppToken", secrets["apptoken"])
		h.Set("Cookie", "session="+secrets["token"])
		h.Set("User-Agent", "PrusaSlicer/2.8")
		log.Info("request",
			Header("headers", h),
			Secret("bearer", secrets["bearer"]),
			Secret("password", secrets["password"]),
			URL("url", "https://"+secrets["user"]+":"+secrets["password"]+"@app-x.octoeverywhere.com/webcam/?action=stream&apikey="+secrets["apikey"]),
			URL("ws", "ws://127.0.0.1:5001/websocket?token="+secrets["token"]+"&x=1"),
			URL("a", "http://h/p?access_token="+secrets["access"]),
			URL("mqtt", "wss://h/octoeverywhere-command-api/proxy/mqtt?OE_API_KEY="+secrets["oe"]),
			URL("frag", "http://127.0.0.1/cb#authBearerToken="+secrets["bearer"]+"&appApiToken="+secrets["apptoken"]),
			URL("bad", "http://[::1%x/"+secrets["token"]),
		)
		out := buf.String()
		for kind, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s: secret %s leaked into the log output:\n%s", format, kind, out)
			}
		}
		if !strings.Contains(out, Redacted) || !strings.Contains(out, "PrusaSlicer/2.8") {
			t.Errorf("%s: expected redaction markers and non-secret values in output:\n%s", format, out)
		}
	}
}

func TestRedactURLKeepsShape(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://app-x.octoeverywhere.com/api/job", "https://app-x.octoeverywhere.com/api/job"},
		{"http://h/p?apikey=S&keep=1", "http://h/p?apikey=%5Bredacted%5D&keep=1"},
		{"http://u:p@h/", "http://%5Bredacted%5D@h/"},
	}
	for _, c := range cases {
		if got := RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNewRejectsBadValues(t *testing.T) {
	if _, err := New("loud", "json", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("bad level: got %v", err)
	}
	if _, err := New("info", "xml", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Errorf("bad format: got %v", err)
	}
	var buf bytes.Buffer
	log, err := New("", "", &buf) // not a terminal: JSON
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", zap.Int("n", 1))
	if !strings.HasPrefix(strings.TrimSpace(buf.String()), "{") {
		t.Errorf("non-terminal output should be JSON, got %q", buf.String())
	}
}

// Durations are logged with their unit, as the config writes them.
func TestDurationsHaveUnits(t *testing.T) {
	var buf bytes.Buffer
	l, err := New("info", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("x", zap.Duration("grace", 30*time.Second), zap.Duration("took", 1500*time.Millisecond))
	if out := buf.String(); !strings.Contains(out, `"grace":"30s"`) || !strings.Contains(out, `"took":"1.5s"`) {
		t.Errorf("durations: %s", out)
	}
}

package appapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/oeproxy/oeproxy/internal/oe"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TestClientSideValidation: invalid arguments are refused before anything is sent, and the message never shows
// the token or the webhook URL (which may carry a secret).
func TestClientSideValidation(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) })
	c := f.client(Options{})
	ctx := context.Background()
	const secretURL = "http://hook.example/?key=hooksecret"
	cases := map[string]func() error{
		"hours 0 with until": func() error {
			_, e := c.CreateLiveLink(ctx, testToken, LiveLinkRequest{Hours: 3, UntilPrintDone: true})
			return e
		},
		"hours negative":     func() error { _, e := c.CreateLiveLink(ctx, testToken, LiveLinkRequest{Hours: -1}); return e },
		"hours too many":     func() error { _, e := c.CreateLiveLink(ctx, testToken, LiveLinkRequest{Hours: 17521}); return e },
		"webhook http":       func() error { return c.SetWebhook(ctx, testToken, secretURL, nil) },
		"webhook relative":   func() error { return c.SetWebhook(ctx, testToken, "/hook?key=hooksecret", nil) },
		"webhook no host":    func() error { return c.SetWebhook(ctx, testToken, "https:///x?key=hooksecret", nil) },
		"webhook bad":        func() error { return c.SetWebhook(ctx, testToken, "https://h.example/%zz?key=hooksecret", nil) },
		"webhook space":      func() error { return c.SetWebhook(ctx, testToken, "https://h.example/a b?key=hooksecret", nil) },
		"event 0":            func() error { return c.SetWebhook(ctx, testToken, "https://h.example/", []EventType{0}) },
		"event 17":           func() error { return c.SetWebhook(ctx, testToken, "https://h.example/", []EventType{1, 17}) },
		"no token":           func() error { _, e := c.Info(ctx, ""); return e },
		"token with newline": func() error { _, e := c.Info(ctx, testToken+"\r\nX: y"); return e },
		"gadget no token":    func() error { _, e := c.GadgetStatus(ctx, "k", ""); return e },
		"delete no token":    func() error { return c.DeleteWebhook(ctx, "") },
		"test webhook token": func() error { _, e := c.TestWebhook(ctx, " "); return e },
	}
	for name, run := range cases {
		err := run()
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: err %v, want ErrInvalidArgument", name, err)
			continue
		}
		if strings.Contains(err.Error(), "hooksecret") || strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: error shows a secret: %v", name, err)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests were sent for invalid calls", n)
	}
	for _, h := range []int{oe.MinLiveLinkHours, oe.MaxLiveLinkHours} {
		if _, err := c.CreateLiveLink(ctx, testToken, LiveLinkRequest{Hours: h}); !errors.Is(err, ErrUnexpectedResponse) {
			t.Errorf("hours %d should be sent (and the empty answer refused): %v", h, err)
		}
	}
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	for _, u := range []string{"octoeverywhere.com", "ftp://x", "https://user:pw@octoeverywhere.com", "https://x/?a=b", "://"} {
		if _, err := New(Options{BaseURL: u}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("New(%q) err %v", u, err)
		}
	}
	c, err := New(Options{BaseURL: "https://octoeverywhere.com/"})
	if err != nil || c.base != "https://octoeverywhere.com" {
		t.Fatalf("trailing slash: %v %v", c, err)
	}
	if c, _ := New(Options{}); c.base != DefaultBaseURL || c.retryMax != DefaultRetryMax || c.gadgetMin != DefaultMinGadgetInterval {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestParseEventType(t *testing.T) {
	good := map[string]EventType{"1": EventPrintStarted, "16": EventTestNotification, "PrintComplete": EventPrintComplete,
		"print-complete": EventPrintComplete, "bed_cool_down_complete": EventBedCoolDownComplete, " error ": EventError}
	for in, want := range good {
		if got, err := ParseEventType(in); err != nil || got != want {
			t.Errorf("ParseEventType(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"0", "17", "", "print", "-1"} {
		if _, err := ParseEventType(in); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseEventType(%q) err %v", in, err)
		}
	}
	for i, e := range EventTypes {
		if int(e) != i+1 || !e.Valid() || strings.HasPrefix(e.String(), "EventType(") {
			t.Errorf("EventTypes[%d] = %v", i, e)
		}
		if back, err := ParseEventType(e.String()); err != nil || back != e {
			t.Errorf("round trip of %v: %v %v", e, back, err)
		}
	}
	if EventType(17).String() != "EventType(17)" || EventType(17).Valid() {
		t.Error("17 is not an event type")
	}
}

// TestLogsNeverShowTheToken runs calls that succeed, fail and retry with a debug logger.
func TestLogsNeverShowTheToken(t *testing.T) {
	var buf bytes.Buffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel))
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n % 3 {
		case 0:
			dropConn(t, w)
		case 1:
			reply(w, 600, `{"Status":600,"Error":"bad `+testToken+`","Result":null}`)
		default:
			reply(w, 200, infoJSON)
		}
	})
	c := f.client(Options{Logger: logger})
	_, _ = c.Info(context.Background(), testToken)
	_ = c.SetWebhook(context.Background(), testToken, "https://h.example/?key=hooksecret", nil)
	_ = c.SetWebhook(context.Background(), testToken, "https://h.example/?key=hooksecret", nil)
	if buf.Len() == 0 {
		t.Fatal("nothing was logged at debug level")
	}
	if s := buf.String(); strings.Contains(s, testToken) || strings.Contains(s, "hooksecret") {
		t.Fatalf("a secret reached the log:\n%s", s)
	}
}

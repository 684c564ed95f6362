package appapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/oeproxy/oeproxy/internal/oe"
)

// EventType is a notification event OctoEverywhere can send to a webhook. Values never change (research §4.6).
type EventType int

const (
	EventPrintStarted                EventType = 1
	EventPrintComplete               EventType = 2
	EventPrintFailed                 EventType = 3
	EventPrintPaused                 EventType = 4
	EventPrintResumed                EventType = 5
	EventPrintProgress               EventType = 6 // every 10 % and every hour
	EventGadgetPossibleFailure       EventType = 7
	EventGadgetPausedPrint           EventType = 8 // only with Smart Pause
	EventError                       EventType = 9
	EventFirstLayerComplete          EventType = 10
	EventFilamentChangeRequired      EventType = 11
	EventUserInteractionRequired     EventType = 12
	EventNonSupporterNotificationCap EventType = 13 // free accounts get 3 webhook notifications a day
	EventThirdLayerComplete          EventType = 14
	EventBedCoolDownComplete         EventType = 15
	EventTestNotification            EventType = 16
)

// EventTypes lists every documented event type in order.
var EventTypes = []EventType{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

var eventNames = [...]string{"", "PrintStarted", "PrintComplete", "PrintFailed", "PrintPaused", "PrintResumed",
	"PrintProgress", "GadgetPossibleFailure", "GadgetPausedPrint", "Error", "FirstLayerComplete",
	"FilamentChangeRequired", "UserInteractionRequired", "NonSupporterNotificationLimit", "ThirdLayerComplete",
	"BedCoolDownComplete", "TestNotification"}

// Valid reports whether e is one of the 16 documented event types.
func (e EventType) Valid() bool { return e >= 1 && int(e) < len(eventNames) }

func (e EventType) String() string {
	if e.Valid() {
		return eventNames[e]
	}
	return "EventType(" + strconv.Itoa(int(e)) + ")"
}

// ParseEventType reads an event type given as its number ("2") or its name in any case, with or without dashes
// ("PrintComplete", "print-complete").
func ParseEventType(s string) (EventType, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if e := EventType(n); e.Valid() {
			return e, nil
		}
	} else {
		flat := strings.NewReplacer("-", "", "_", "", " ", "").Replace(s)
		for i, name := range eventNames[1:] {
			if strings.EqualFold(flat, name) {
				return EventType(i + 1), nil
			}
		}
	}
	return 0, fmt.Errorf("%w: unknown webhook event type %q: use 1-16 or a name such as print-complete", ErrInvalidArgument, s)
}

type wireSetWebhook struct {
	WebhookUrl                string
	InclusiveEventTypesFilter []int `json:",omitempty"`
}

// SetWebhook makes OctoEverywhere POST the printer's notifications to webhookURL
// (POST /api/appconnection/SetNotificationWebhook). The URL must be https; OctoEverywhere calls it exactly as
// given, query included, so it may carry a secret and is never put in errors or logs. events filters which
// notifications are sent; empty means all. Each call replaces the previous setting, and a webhook expires 180
// days after the last successful call, so callers record when they set it. Never retried.
func (c *Client) SetWebhook(ctx context.Context, token, webhookURL string, events []EventType) error {
	if err := oe.CheckWebhookURL(webhookURL); err != nil {
		return err
	}
	body := wireSetWebhook{WebhookUrl: webhookURL}
	for _, e := range events {
		if !e.Valid() {
			return fmt.Errorf("%w: webhook event type %d is not one of the documented 1-16", ErrInvalidArgument, int(e))
		}
		if !slices.Contains(body.InclusiveEventTypesFilter, int(e)) {
			body.InclusiveEventTypesFilter = append(body.InclusiveEventTypesFilter, int(e))
		}
	}
	_, err := c.do(ctx, call{name: "set webhook", method: http.MethodPost, path: "/api/appconnection/SetNotificationWebhook", token: token, body: body})
	return err
}

// DeleteWebhook removes the printer's notification webhook (POST /api/appconnection/DeleteNotificationWebhook).
// Never retried.
func (c *Client) DeleteWebhook(ctx context.Context, token string) error {
	_, err := c.do(ctx, call{name: "delete webhook", method: http.MethodPost, path: "/api/appconnection/DeleteNotificationWebhook", token: token})
	return err
}

// WebhookTest is what OctoEverywhere got when it sent a test notification (event 16) to the webhook.
type WebhookTest struct {
	// StatusCode is the HTTP status the webhook receiver answered; 0 if OctoEverywhere's answer did not say
	// (the field name is undocumented: StatusCode, HttpStatusCode, ResponseCode and Status are looked for).
	StatusCode int `json:"status_code"`
	// Raw is OctoEverywhere's answer as received (the envelope's Result), for what StatusCode cannot say.
	Raw json.RawMessage `json:"raw,omitempty"`
}

// OK reports whether the receiver answered 200, which OctoEverywhere requires.
func (t *WebhookTest) OK() bool { return t.StatusCode == http.StatusOK }

func decodeWebhookTest(payload []byte) (*WebhookTest, error) {
	t := &WebhookTest{}
	if len(payload) == 0 {
		return t, nil
	}
	if !json.Valid(payload) {
		return nil, fmt.Errorf("%w: the body is not JSON", ErrUnexpectedResponse)
	}
	t.Raw = append(json.RawMessage(nil), payload...)
	var top map[string]json.RawMessage
	if json.Unmarshal(payload, &top) != nil {
		t.StatusCode = jsonInt(payload) // a bare number is the status itself
		return t, nil
	}
	for _, k := range []string{"StatusCode", "HttpStatusCode", "ResponseCode", "ResponseStatusCode", "Status"} {
		if v, ok := field(top, k); ok {
			if n := jsonInt(v); n != 0 {
				t.StatusCode = n
				break
			}
		}
	}
	return t, nil
}

// TestWebhook makes OctoEverywhere send a test notification (event 16, sent even if the filter excludes it) and
// returns the status the receiver answered (GET /api/appconnection/TestWebhook). Retried like every GET, so a
// retry after a lost answer may send a second test notification.
func (c *Client) TestWebhook(ctx context.Context, token string) (*WebhookTest, error) {
	payload, err := c.do(ctx, call{name: "test webhook", method: http.MethodGet, path: "/api/appconnection/TestWebhook", token: token})
	if err != nil {
		return nil, err
	}
	t, err := decodeWebhookTest(payload)
	if err != nil {
		return nil, fmt.Errorf("OctoEverywhere test webhook: %w", err)
	}
	return t, nil
}

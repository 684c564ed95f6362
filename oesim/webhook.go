package oesim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"go.uber.org/zap"
)

// Webhook event types (§4.6; values never change).
const (
	EventPrintStarted        = 1
	EventPrintComplete       = 2
	EventPrintFailed         = 3
	EventPrintPaused         = 4
	EventPrintResumed        = 5
	EventPrintProgress       = 6
	EventGadgetWarning       = 7
	EventGadgetPaused        = 8
	EventError               = 9
	EventFirstLayerComplete  = 10
	EventFilamentChange      = 11
	EventUserInteraction     = 12
	EventNonSupporterLimit   = 13
	EventThirdLayerComplete  = 14
	EventBedCooldownComplete = 15
	EventTestNotification    = 16
)

// WebhookDelivery is one webhook POST the sim sent.
type WebhookDelivery struct {
	Time         time.Time
	ConnectionID string
	URL          string
	EventType    int
	Payload      []byte // the JSON body sent
	StatusCode   int    // what the receiver answered; 0 when unreachable
	Err          string // transport error, if any
}

// webhookPayload is the standard OctoEverywhere webhook JSON (§4.6). SecretKey is empty: App Connection webhooks
// carry their secret in the URL instead.
type webhookPayload struct {
	PrinterId         string
	SecretKey         string
	PrintId           string
	EventType         int
	PrinterName       string
	SnapshotUrl       string
	QuickViewUrl      string
	FileName          string
	DurationSec       int
	Progress          float64
	TimeRemainingSec  int
	ZOffsetMM         float64
	CurrentLayer      int
	TotalLayers       int
	Error             string
	PlatformErrorCode string
}

// Webhooks returns every webhook POST sent so far, oldest first.
func (s *Sim) Webhooks() []WebhookDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// FireEvent sends c's notification webhook for eventType (1..16) if one is set and its filter (empty = all)
// includes the type. It returns an error for an unknown type, an unreachable receiver or a non-200 answer.
func (s *Sim) FireEvent(c *Connection, eventType int) error {
	if eventType < 1 || eventType > 16 {
		return fmt.Errorf("oesim: FireEvent: event type %d is not one of the documented 1..16", eventType)
	}
	target, filter, _ := c.Webhook()
	if target == "" || (len(filter) > 0 && !slices.Contains(filter, eventType)) {
		return nil
	}
	d := s.deliver(c, target, eventType)
	switch {
	case d.Err != "":
		return fmt.Errorf("oesim: webhook for event %d: %s", eventType, d.Err)
	case d.StatusCode != http.StatusOK:
		return fmt.Errorf("oesim: webhook for event %d: receiver answered %d, want 200", eventType, d.StatusCode)
	}
	return nil
}

// deliver POSTs one payload to target exactly as given (query included) and records the result.
func (s *Sim) deliver(c *Connection, target string, eventType int) WebhookDelivery {
	p := c.printer
	_, printing, _, _ := p.state()
	payload := webhookPayload{
		PrinterId:    p.ID,
		PrintId:      randomString(16, mixedAlnum),
		EventType:    eventType,
		PrinterName:  p.Name,
		QuickViewUrl: s.userFacingURL(p),
	}
	if printing {
		payload.FileName, payload.Progress, payload.DurationSec, payload.TimeRemainingSec = "oesim-benchy.gcode", 42, 1260, 1740
		payload.CurrentLayer, payload.TotalLayers = 42, 100
	}
	body, _ := json.Marshal(payload)
	d := WebhookDelivery{Time: time.Now(), ConnectionID: c.creds.ID, URL: target, EventType: eventType, Payload: body}

	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, target, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "OctoEverywhere-Webhooks (oesim)")
		var resp *http.Response
		if resp, err = s.webhookClient.Do(req); err == nil {
			d.StatusCode = resp.StatusCode
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
	}
	if err != nil {
		d.Err = err.Error()
		// The URL carries the receiver's secret (its query): log the cause only, never the *url.Error.
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		s.log.Debug("webhook delivery failed", zap.Int("event", eventType), zap.Error(cause))
	}
	s.mu.Lock()
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
	return d
}

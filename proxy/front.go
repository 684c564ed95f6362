package proxy

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/oeproxy/oeproxy/front"
	"github.com/oeproxy/oeproxy/internal/oe"
)

// newFront builds the printer's OctoPrint front. Its requests leave only through relayDo, so this handler stays
// the one place that decides what reaches the relay.
func (h *Handler) newFront() (*front.Front, error) {
	f, err := front.New(front.Options{
		Relay: h.relayDo, APIKey: h.printer.FrontAPIKey, UploadLimit: h.opts.UploadLimit,
		PrinterName: h.printer.Name, Logger: h.log, Webcams: h.cams,
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: printer %q: %w", h.printer.Name, err)
	}
	return f, nil
}

// serveFront hands a request to the front, holding a relay slot (octoeverywhere.max_connections) for it as a
// proxied request would, and reports it to RequestDone with Route "front".
func (h *Handler) serveFront(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cw := &countingWriter{ResponseWriter: w}
	var cb *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		cb = &countingBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: h.opts.BodyIdleTimeout}
		r.Body = cb
	}
	defer func() {
		cb.finish()
		if h.opts.Hooks.RequestDone == nil {
			return
		}
		st := RequestStats{Status: cw.status, BytesOut: cw.n, Route: "front", Duration: time.Since(start)}
		if cb != nil {
			st.BytesIn = cb.n.Load()
		}
		h.opts.Hooks.RequestDone(st)
	}()
	if !h.opts.RelaySlots.acquire(r, h.opts.RelayWait) {
		h.relayBusy(cw, r)
		return
	}
	defer h.opts.RelaySlots.release()
	h.front.ServeHTTP(cw, r)
}

// relayDo sends one of the front's requests (a path and query only) to the relay host over the handler's
// transport, with the relay view applied: the App Connection credential set, every client copy of it and every
// forwarding header removed. 6xx answers are noted as for proxied requests.
func (h *Handler) relayDo(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.URL.Scheme = "https"
	out.URL.Host = h.relayHost
	out.Host = h.relayHost
	if out.Header == nil {
		out.Header = http.Header{}
	}
	relayView(out.Header, h.credential)
	resp, err := h.opts.Transport.RoundTrip(out)
	if err != nil {
		return nil, safeErr(err)
	}
	if oe.IsCode(resp.StatusCode) {
		h.noteRelayCode(resp.StatusCode)
	} else {
		h.noteRelayOK()
	}
	return resp, nil
}

// DetectPlatform asks the printer's OctoEverywhere plugin which platform it runs (front.Detect), through the
// relay with the credential.
func (h *Handler) DetectPlatform(ctx context.Context) (string, error) {
	return front.Detect(ctx, h.relayDo)
}

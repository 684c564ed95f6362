package oesim

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// mqttProxyPath is the one path where OctoEverywhere documents the ?oe_api_key= alternative to the header.
const mqttProxyPath = "/octoeverywhere-command-api/proxy/mqtt"

// serveRelay is https://app-<label>.<Domain>: the checks of §8.3 in order, then the plugin's forwarding.
func (s *Sim) serveRelay(w http.ResponseWriter, r *http.Request, label string) {
	c := s.connectionByLabel(label)
	if c == nil {
		writeRelayError(w, StatusNotFound) // unknown subdomain: nothing to record it on
		return
	}
	rec := &Request{
		Time: time.Now(), Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), WebSocket: isWebSocketUpgrade(r),
	}
	c.record(rec)
	fail := func(code int) {
		c.setStatus(rec, code)
		writeRelayError(w, code)
	}

	if code := c.admit(r); code != 0 {
		fail(code)
		return
	}
	c.mu.Lock()
	fault, summon := c.fault, !c.summoned
	c.summoned = true
	c.mu.Unlock()
	switch fault {
	case FaultTimeout:
		if sleep(r.Context(), timeoutFaultDelay) {
			fail(StatusPluginTimeout)
		}
		return
	case FaultServerError:
		fail(StatusServerError)
		return
	case FaultStall:
		<-r.Context().Done()
		abortResponse(w)
		return
	}
	if summon && s.opts.FirstRequestDelay > 0 && !sleep(r.Context(), s.opts.FirstRequestDelay) {
		return
	}

	if rec.WebSocket {
		s.relayWebSocket(w, r, c, rec, fault == FaultDrop)
		return
	}
	s.relayHTTP(w, r, c, rec, fault == FaultDrop)
}

// admit runs checks 1-5 of §8.3 (603, 604, 605, 606, 601) and returns the first failing code, or 0.
func (c *Connection) admit(r *http.Request) int {
	c.mu.Lock()
	deleted, revoked, supporter := c.deleted, c.revoked, c.supporter
	c.mu.Unlock()
	switch {
	case deleted:
		return StatusNotFound
	case revoked:
		return StatusRevoked
	case !supporter:
		return StatusNoSupporter
	case !c.authorized(r):
		return StatusBadCredentials
	}
	if online, _, _, _ := c.printer.state(); !online {
		return StatusPrinterOffline
	}
	return 0
}

// authorized accepts Basic user:password or the Bearer token (every connection is "enhanced", so both work), and on
// the MQTT proxy path also ?oe_api_key= carrying base64(user:password) or the bearer token.
func (c *Connection) authorized(r *http.Request) bool {
	if user, pass, ok := r.BasicAuth(); ok && same(user, c.creds.BasicUser) && same(pass, c.creds.BasicPassword) {
		return true
	}
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") &&
		same(strings.TrimSpace(auth[7:]), c.creds.BearerToken) {
		return true
	}
	if strings.EqualFold(r.URL.Path, mqttProxyPath) {
		if k := r.URL.Query().Get("oe_api_key"); k != "" {
			basic := base64.StdEncoding.EncodeToString([]byte(c.creds.BasicUser + ":" + c.creds.BasicPassword))
			return same(k, basic) || same(k, c.creds.BearerToken)
		}
	}
	return false
}

func same(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// relayHTTP is store-and-forward (peers file §0.1): the whole body is read (spooled to disk when large) before
// the printer sees the request, which is then sent with a Content-Length.
func (s *Sim) relayHTTP(w http.ResponseWriter, r *http.Request, c *Connection, rec *Request, drop bool) {
	lim := c.Limits()
	if r.ContentLength > lim.MaxUploadFileSizeBytes {
		c.setStatus(rec, StatusUploadTooLarge)
		writeRelayError(w, StatusUploadTooLarge)
		return
	}
	body, err := spoolBody(r.Body, lim.MaxUploadFileSizeBytes, s.opts.TempDir)
	if body != nil {
		defer body.Close()
		c.setBodySize(rec, body.size)
	}
	switch {
	case errors.Is(err, errBodyTooLarge):
		c.setStatus(rec, StatusUploadTooLarge)
		writeRelayError(w, StatusUploadTooLarge)
		return
	case err != nil:
		s.log.Debug("relay: request body not received", zap.Error(err))
		abortResponse(w)
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	target := c.printer.target(r.URL.Path)
	out, err := http.NewRequestWithContext(ctx, r.Method, (&url.URL{
		Scheme: "http", Host: target.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery,
	}).String(), nil)
	if err != nil {
		c.setStatus(rec, http.StatusBadRequest)
		http.Error(w, "oesim: bad request URL", http.StatusBadRequest)
		return
	}
	out.Header = pluginRequestHeader(r.Header, r.Host, target.Host, "https", s.opts.ForwardAuthorization)
	out.Host = target.Host
	if body.size > 0 {
		out.Body, out.ContentLength = body.reader()
		if s.opts.PrinterLinkRate > 0 {
			out.Body = &pacedReader{r: out.Body, rate: s.opts.PrinterLinkRate, ctx: ctx, start: time.Now()}
		}
	}

	resp, err := s.backend.RoundTrip(out)
	if err != nil {
		if r.Context().Err() != nil {
			abortResponse(w)
			return
		}
		// The plugin reached the printer's host but not its HTTP server. Undocumented; we answer 502.
		s.log.Debug("relay: printer backend unreachable", zap.String("printer", c.printer.Name), zap.Error(err))
		c.setStatus(rec, http.StatusBadGateway)
		http.Error(w, "oesim: the printer's HTTP server did not answer the plugin", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()

	stream := isWebcamStream(resp.Header.Get("Content-Type"))
	if stream && !c.webcamStart(time.Now()) {
		c.setStatus(rec, StatusWebcamLimit)
		writeRelayError(w, StatusWebcamLimit)
		return
	}
	if !stream && resp.ContentLength > lim.MaxDownloadFileSizeBytes {
		c.setStatus(rec, StatusDownloadTooLarge)
		writeRelayError(w, StatusDownloadTooLarge)
		return
	}

	if drop && (resp.ContentLength == 0 || r.Method == http.MethodHead) {
		c.setCut(rec)
		abortResponse(w) // nothing to cut mid-body: close before the headers
		return
	}
	pluginResponseHeader(w.Header(), resp.Header, r.Host, r.URL.Path)
	c.setStatus(rec, resp.StatusCode)
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)

	var timedOut atomic.Bool
	if stream {
		t := time.AfterFunc(lim.MaxSingleWebcamStreamLength, func() { timedOut.Store(true); cancel() })
		defer t.Stop()
	}
	flushEach := stream || resp.ContentLength < 0
	dropAfter := int64(-1)
	if drop {
		dropAfter = 4096
		if resp.ContentLength >= 0 && resp.ContentLength/2 < dropAfter {
			dropAfter = resp.ContentLength / 2
		}
	}

	buf := make([]byte, 32<<10)
	var sent int64
	for {
		if dropAfter >= 0 && sent >= dropAfter {
			_ = rc.Flush()
			c.setCut(rec)
			abortResponse(w)
			return
		}
		chunk := buf
		if dropAfter >= 0 && int64(len(chunk)) > dropAfter-sent {
			chunk = chunk[:dropAfter-sent]
		}
		n, rerr := resp.Body.Read(chunk)
		if n > 0 {
			if !stream && sent+int64(n) > lim.MaxDownloadFileSizeBytes {
				// The body grew past the limit after the headers went out: all the relay can do is cut it.
				_, _ = w.Write(chunk[:lim.MaxDownloadFileSizeBytes-sent])
				_ = rc.Flush()
				c.setCut(rec)
				abortResponse(w)
				return
			}
			if _, werr := w.Write(chunk[:n]); werr != nil {
				return // the client went away; ctx ends the backend request
			}
			sent += int64(n)
			// A short read of an unfinished body means the printer has sent nothing more yet: pass on what came
			// (a trickling body, a long poll) instead of holding it until net/http's buffer fills.
			if flushEach || (n < len(chunk) && sent < resp.ContentLength) {
				_ = rc.Flush()
			}
		}
		if rerr == io.EOF {
			if drop { // a short body ended before the drop point: drop before the end is signalled
				_ = rc.Flush()
				c.setCut(rec)
				abortResponse(w)
			}
			return
		}
		if rerr != nil {
			if timedOut.Load() {
				c.setCut(rec) // MaxSingleWebcamStreamLength: end the stream cleanly, the image freezes
				return
			}
			// The printer broke off, the client left, or the sim is closing: never pretend the body was complete.
			abortResponse(w)
			return
		}
	}
}

// abortResponse closes the client's TCP connection without a (further) response.
func abortResponse(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// sleep waits d or until ctx ends; it reports whether the full time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func isWebcamStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "multipart/x-mixed-replace"
}

func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

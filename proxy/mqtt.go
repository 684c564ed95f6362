package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/oeproxy/oeproxy/internal/oe"
)

// MQTTProxyPath is the App Connection's MQTT-over-WebSocket proxy (Bambu Lab, Elegoo CC2; research §7).
const MQTTProxyPath = "/octoeverywhere-command-api/proxy/mqtt"

// DialMQTT opens one WebSocket to the relay's MQTT proxy for package mqttbridge: subprotocol mqtt, the relay view
// of the headers (the credential and nothing else), the handler's WebSocket client. On a refused handshake the
// relay's response comes back with the error (its status is the 6xx to report). release must be called when the
// connection is finished: the handshake's context lives as long as the connection.
func (h *Handler) DialMQTT(ctx context.Context) (conn *websocket.Conn, resp *http.Response, release func(), err error) {
	hdr := http.Header{"User-Agent": {""}}
	relayView(hdr, h.credential)
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	timer := time.AfterFunc(h.opts.DialTimeout, cancel)
	conn, resp, err = websocket.Dial(dctx, "wss://"+h.relayHost+MQTTProxyPath, &websocket.DialOptions{
		HTTPClient:      h.wsClient,
		HTTPHeader:      hdr,
		Host:            h.relayHost,
		Subprotocols:    []string{"mqtt"},
		CompressionMode: websocket.CompressionDisabled,
	})
	timer.Stop()
	stop()
	if resp != nil && oe.IsCode(resp.StatusCode) {
		h.noteRelayCode(resp.StatusCode)
	}
	if err != nil {
		cancel()
		return nil, resp, nil, safeErr(err)
	}
	h.noteRelayOK()
	conn.SetReadLimit(h.opts.MaxMessageBytes)
	return conn, resp, cancel, nil
}

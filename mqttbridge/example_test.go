package mqttbridge_test

import (
	"context"
	"net"
	"net/http"

	"github.com/coder/websocket"

	"github.com/oeproxy/oeproxy/mqttbridge"
)

// A bridge serves a loopback MQTT port; each client gets its own WebSocket from Dial (in oeproxy,
// proxy.Handler.DialMQTT, which opens the relay's MQTT proxy with the App Connection credential).
func Example() {
	var dial func(ctx context.Context) (*websocket.Conn, *http.Response, func(), error) // h.DialMQTT
	b, err := mqttbridge.New(mqttbridge.Options{Dial: dial, Printer: "x1c"})
	if err != nil {
		return // Dial is required: New refuses a bridge without one
	}
	ln, err := net.Listen("tcp", "127.0.0.1:1883")
	if err != nil {
		return
	}
	go b.Serve(ln) //nolint:errcheck // Serve returns nil after Close
	defer b.Close()
}

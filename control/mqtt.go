package control

import (
	"context"

	"github.com/oeproxy/oeproxy/credstore"
)

// MQTTControl turns a printer's MQTT bridge on or off.
type MQTTControl interface {
	SetMQTT(ctx context.Context, name string, req MQTTRequest) (credstore.PublicRecord, error)
}

// MQTTRequest is `oeproxy mqtt enable|disable`.
type MQTTRequest struct {
	Enable bool `json:"enable"`
	// Port is the MQTT port; 0: the printer's, or the next free one from the daemon's first MQTT port (1883).
	Port int `json:"port,omitempty"`
	// TLS makes the port speak TLS with a self-signed certificate (for clients that insist on TLS).
	TLS bool `json:"tls,omitempty"`
}

package appapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Info is what OctoEverywhere knows about an App Connection's printer and account (GET
// /api/appconnection/info). A successful Info means the connection is valid; IsOnline says whether the
// printer's plugin is connected to OctoEverywhere right now.
type Info struct {
	PrinterName string `json:"printer_name"`
	// PrinterLocalIP is the printer's last known LAN address ("" if unknown).
	PrinterLocalIP string `json:"printer_local_ip"`
	IsOnline       bool   `json:"is_online"`
	// LastDisconnect and LastConnection are when the plugin last left and joined OctoEverywhere (zero: never).
	LastDisconnect Time `json:"last_disconnect_time"`
	LastConnection Time `json:"last_connection_time"`
	// UserFacingPrinterURL is OctoEverywhere's normal remote-access page; it needs the user's OctoEverywhere login.
	UserFacingPrinterURL string `json:"user_facing_printer_url"`
	Limits               Limits `json:"limits"`
}

// Limits are the account's limits, which depend on its supporter level. A zero field was not reported.
type Limits struct {
	MaxDownloadFileSizeBytes           int64 `json:"max_download_file_size_bytes"`
	MaxUploadFileSizeBytes             int64 `json:"max_upload_file_size_bytes"`
	MaxSingleWebcamStreamLengthSeconds int64 `json:"max_single_webcam_stream_length_seconds"`
	// The two fields below are undocumented and have been seen as null; nil means null or absent.
	MaxTotalWebcamStreamTimePerTimeWindowSeconds *int64 `json:"max_total_webcam_stream_time_per_time_window_seconds"`
	WebcamStreamTimeWindow                       *int64 `json:"webcam_stream_time_window"`
}

// wireInfo is the object OctoEverywhere sends (research §4.3).
type wireInfo struct {
	PrinterName           string
	PrinterLocalIp        *string
	IsOnline              bool
	LastDisconnectTimeUtc Time
	LastConnectionTimeUtc Time
	UserFacingPrinterUrl  string
	PrinterLimits         *struct {
		MaxDownloadFileSizeBytes                     int64
		MaxUploadFileSizeBytes                       int64
		MaxSingleWebcamStreamLengthSeconds           int64
		MaxTotalWebcamStreamTimePerTimeWindowSeconds *int64
		WebcamStreamTimeWindow                       *int64
	}
}

func (w wireInfo) info() *Info {
	in := &Info{
		PrinterName:          w.PrinterName,
		IsOnline:             w.IsOnline,
		LastDisconnect:       w.LastDisconnectTimeUtc,
		LastConnection:       w.LastConnectionTimeUtc,
		UserFacingPrinterURL: w.UserFacingPrinterUrl,
	}
	if w.PrinterLocalIp != nil {
		in.PrinterLocalIP = *w.PrinterLocalIp
	}
	if l := w.PrinterLimits; l != nil {
		in.Limits = Limits{
			MaxDownloadFileSizeBytes:                     l.MaxDownloadFileSizeBytes,
			MaxUploadFileSizeBytes:                       l.MaxUploadFileSizeBytes,
			MaxSingleWebcamStreamLengthSeconds:           l.MaxSingleWebcamStreamLengthSeconds,
			MaxTotalWebcamStreamTimePerTimeWindowSeconds: l.MaxTotalWebcamStreamTimePerTimeWindowSeconds,
			WebcamStreamTimeWindow:                       l.WebcamStreamTimeWindow,
		}
	}
	return in
}

// decodeInfo reads an Info payload. An empty payload or one that is not an object is an unexpected response.
func decodeInfo(payload []byte) (*Info, error) {
	var w wireInfo
	if err := decodeObject(payload, &w); err != nil {
		return nil, err
	}
	return w.info(), nil
}

// decodeObject unmarshals a payload that must be a JSON object.
func decodeObject(payload []byte, v any) error {
	if len(payload) == 0 || payload[0] != '{' {
		return fmt.Errorf("%w: expected a JSON object", ErrUnexpectedResponse)
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %w", ErrUnexpectedResponse, err)
	}
	return nil
}

// Info returns the connection's printer, online state and limits. 603/604 mean the connection is gone (re-link),
// 605 that the owner lost Supporter Perks; 600 and 602 and transport errors are retried.
func (c *Client) Info(ctx context.Context, token string) (*Info, error) {
	payload, err := c.do(ctx, call{name: "connection info", method: http.MethodGet, path: "/api/appconnection/info", token: token})
	if err != nil {
		return nil, err
	}
	in, err := decodeInfo(payload)
	if err != nil {
		return nil, fmt.Errorf("OctoEverywhere connection info: %w", err)
	}
	return in, nil
}

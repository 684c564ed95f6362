package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Printer UIs and apps find the webcam through the printer's own JSON: OctoPrint's /api/settings (webcam
// streamUrl and snapshotUrl) and Moonraker's /server/webcams/list (stream_url, snapshot_url). Relative URLs there
// already lead back through oeproxy. An absolute URL that names the printer itself (its LAN address, or
// localhost as seen from the printer, as OctoPi's snapshotUrl http://127.0.0.1:8080/?action=snapshot does) would
// send the client to an address it cannot reach, or to its own machine: such URLs are made relative, so the UI
// keeps using oeproxy. mjpg-streamer's port 8080 maps to /webcam/, where OctoPi (and the OctoEverywhere plugin's
// own fallback) serve it. Other absolute URLs (a camera on another host) are left alone.

// discoveryPaths are the answers whose webcam URLs are mapped.
var discoveryPaths = map[string]bool{"/api/settings": true, "/server/webcams/list": true, "/server/webcams/get": true}

// discoveryKeys are the JSON keys that hold a webcam URL.
var discoveryKeys = map[string]bool{"streamUrl": true, "snapshotUrl": true, "stream_url": true, "snapshot_url": true}

// maxDiscoveryBody bounds the answer read to map it; a larger one passes untouched.
const maxDiscoveryBody = 1 << 20

// mapWebcamURLs rewrites the webcam URLs of a discovery answer in place (the rest of the body keeps its bytes).
func (h *Handler) mapWebcamURLs(resp *http.Response) {
	if resp.StatusCode != http.StatusOK || !discoveryPaths[resp.Request.URL.Path] ||
		!strings.Contains(resp.Header.Get("Content-Type"), "json") || resp.Header.Get("Content-Encoding") != "" {
		return
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBody+1))
	if err != nil || len(head) > maxDiscoveryBody {
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		return
	}
	_ = resp.Body.Close()
	body := head
	var doc any
	if json.Unmarshal(head, &doc) == nil {
		for _, old := range webcamURLs(doc, nil) {
			if nu, ok := h.localWebcamURL(old); ok {
				from, _ := json.Marshal(old)
				to, _ := json.Marshal(nu)
				body = bytes.ReplaceAll(body, from, to)
			}
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.TransferEncoding = nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// webcamURLs collects the string values of discoveryKeys anywhere in doc.
func webcamURLs(doc any, out []string) []string {
	switch v := doc.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && discoveryKeys[k] {
				out = append(out, s)
			} else {
				out = webcamURLs(x, out)
			}
		}
	case []any:
		for _, x := range v {
			out = webcamURLs(x, out)
		}
	}
	return out
}

// localWebcamURL maps an absolute URL on the printer itself to the relative URL that reaches it through the relay.
func (h *Handler) localWebcamURL(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !h.isPrinterHost(u.Hostname()) {
		return "", false
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.Port() == "8080" && !strings.HasPrefix(path, "/webcam") {
		path = "/webcam" + path
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return path, true
}

// isPrinterHost reports whether host names the printer as the printer sees itself.
func (h *Handler) isPrinterHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, lan := range append(h.printer.LANHosts, h.lanHosts...) {
		if strings.EqualFold(host, lan) {
			return true
		}
	}
	return false
}

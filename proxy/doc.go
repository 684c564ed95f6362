// Package proxy owns one printer's local endpoint: an http.Handler that carries HTTP requests, uploads,
// WebSockets and webcam MJPEG streams from a local port to the printer's OctoEverywhere App Connection host,
// with the App Connection credential added on the way out and the answers rewritten back to the local origin.
//
// The handler guards the local side first (Host allow-list against DNS rebinding, Origin check against
// cross-site requests), then decides in one place what the relay may see (relayview.go): every client
// Authorization and forwarding header is removed and the credential is set, inside ReverseProxy.Rewrite so that
// no client header can undo it. OctoEverywhere's 6xx answers keep their status and get an explanation body.
//
// It must not read configuration files, open listeners, or know about the credential store: the daemon builds
// a Printer and Options and mounts the Handler. It never logs a secret.
package proxy

package route

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"time"
)

// LANDialTimeout is how long a LAN connect may take before the request goes to the relay instead: a printer on
// the same network answers a connect within milliseconds, so waiting longer only delays the fallback.
const LANDialTimeout = 300 * time.Millisecond

// NewLANTransport returns the transport for LAN requests (the proof's and the proxied ones): plain HTTP with no
// environment proxy (HTTP_PROXY must not see LAN traffic), no added compression, a LANDialTimeout connect and
// no response-header timeout (uploads: the printer answers when it has the whole file).
func NewLANTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: LANDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
	}
}

// ConnectFailed reports whether err says the LAN host could not be connected to at all (refused, no route,
// no answer to the connect within LANDialTimeout): such a request reached nothing and may go to the relay.
func ConnectFailed(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

package oesim

import (
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Options configures Start. The zero value is a working sim: domain octoeverywhere.com, the Authorize page shown,
// the documented envelope, two printers (OctoPrint- and Moonraker-flavoured) and OctoEverywhere's observed limits.
type Options struct {
	// Domain is the OctoEverywhere domain: portal and App APIs on https://<Domain>, relays on
	// https://app-<id>.<Domain>. Default "octoeverywhere.com", so clients keep the real URL shapes and reach the sim
	// through connect-to (Sim.Addr).
	Domain string
	// AutoApprove makes the portal redirect at once (302) instead of showing the Authorize page.
	AutoApprove bool
	// CamelCaseCompletion emits authBasicHttpUser/authBasicHttpPassword instead of the lowercase spelling that
	// every real client reads (authbasichttpuser/authbasichttppassword), to test tolerant parsing.
	CamelCaseCompletion bool
	// BareAPI makes the App APIs answer the bare documented objects instead of the
	// {"Status","Error","IsUserError","Result"} envelope that real responses carry.
	BareAPI bool
	// GadgetMinInterval is the least time between two Gadget status calls of one connection (default 10 s, the
	// documented rule); a faster call gets 429. Negative turns the rule off.
	GadgetMinInterval time.Duration
	// Limits are the limits of new connections; zero fields take OctoEverywhere's observed values (500 MiB down and
	// up, 120 s per webcam stream, no back-to-back webcam window).
	Limits Limits
	// Printers to start; default one OctoPrint-flavoured "Prusa MK4" and one Moonraker-flavoured "Voron 2.4".
	Printers []PrinterOptions
	// WebhookClient posts notification webhooks (tests pass one that trusts their receiver). Default: a client
	// with the documented 10 s timeout that does not follow redirects.
	WebhookClient *http.Client
	// Logger receives the sim's logs; default zap.NewNop(). Secrets are never logged.
	Logger *zap.Logger

	// ForwardAuthorization passes the client's Authorization header (the OctoEverywhere credential) on to the
	// printer. Whether OctoEverywhere strips it is not documented; the default strips it.
	ForwardAuthorization bool
	// InfoOfflineError makes the Info API answer 601 when the printer is offline, instead of the documented
	// 200 with IsOnline false.
	InfoOfflineError bool
	// IgnoreWebSocketPings makes the relay never answer a client's WebSocket ping (one third-party app claims the
	// real tunnel does not); by default pings get pongs.
	IgnoreWebSocketPings bool
	// FirstRequestDelay delays the first relayed request of every connection, modelling OctoEverywhere summoning
	// the printer to another server region. Default none.
	FirstRequestDelay time.Duration
	// TempDir holds spooled upload bodies (store-and-forward); default os.TempDir().
	TempDir string
	// PrinterLinkRate is the rate, in bytes per second, at which the relay passes a stored request body on to the
	// printer: the printer's home connection (its download side), over which the OE plugin fetches the body
	// after the relay has stored all of it. While it runs the client hears nothing, since the printer answers
	// only once it has the whole body (the plugin's store and forward, peers research file §0.1), so with this
	// set an upload of n bytes keeps the client waiting about n/PrinterLinkRate seconds after its last byte. The
	// printer's link is not documented anywhere (a home line, often slower up than down). Default 0: no limit.
	PrinterLinkRate int64
	// Listener, when set, is where the relay, App APIs and portal are served (TLS is added on top) instead of a
	// new listener on 127.0.0.1; Sim.Addr is its address. The bench passes one inside a network namespace, behind
	// a simulated WAN link. Close closes it.
	Listener net.Listener
	// HTTP2 makes the relay offer h2 before http/1.1 in ALPN. Whether OctoEverywhere's relay offers h2 is not
	// documented (research file); the default offers http/1.1 only. WebSocket upgrades always need HTTP/1.1, so
	// a client that wants one asks for http/1.1 alone.
	HTTP2 bool
}

// Limits are an App Connection's account limits as the Info API reports them and the relay enforces them.
type Limits struct {
	// MaxDownloadFileSizeBytes: a response body larger than this gets 607 (or is cut when it grows past it).
	MaxDownloadFileSizeBytes int64
	// MaxUploadFileSizeBytes: a request body larger than this gets 608.
	MaxUploadFileSizeBytes int64
	// MaxSingleWebcamStreamLength ends a webcam (multipart/x-mixed-replace) response after this long. Info
	// reports it in whole seconds, at least 1.
	MaxSingleWebcamStreamLength time.Duration
	// WebcamStartsPerWindow webcam stream starts are allowed within WebcamWindow; the next gets 609. 0 = off.
	WebcamStartsPerWindow int
	WebcamWindow          time.Duration
}

// Observed OctoEverywhere defaults (Mobileraker sample, 2023): 500 MiB each way and 120 s per webcam stream.
const (
	defaultMaxTransfer     = 500 << 20
	defaultStreamLength    = 120 * time.Second
	defaultGadgetInterval  = 10 * time.Second
	defaultWebhookTimeout  = 10 * time.Second
	defaultDomain          = "octoeverywhere.com"
	timeoutFaultDelay      = 200 * time.Millisecond
	spoolMemoryThreshold   = 1 << 20
	websocketReadLimit     = 256 << 20
	maxAPIBodyBytes        = 1 << 20
	maxPortalAppNameLength = 60
)

// withDefaults fills zero fields of l from d.
func (l Limits) withDefaults(d Limits) Limits {
	if l.MaxDownloadFileSizeBytes == 0 {
		l.MaxDownloadFileSizeBytes = d.MaxDownloadFileSizeBytes
	}
	if l.MaxUploadFileSizeBytes == 0 {
		l.MaxUploadFileSizeBytes = d.MaxUploadFileSizeBytes
	}
	if l.MaxSingleWebcamStreamLength == 0 {
		l.MaxSingleWebcamStreamLength = d.MaxSingleWebcamStreamLength
	}
	if l.WebcamStartsPerWindow == 0 && l.WebcamWindow == 0 {
		l.WebcamStartsPerWindow, l.WebcamWindow = d.WebcamStartsPerWindow, d.WebcamWindow
	}
	return l
}

var observedLimits = Limits{
	MaxDownloadFileSizeBytes:    defaultMaxTransfer,
	MaxUploadFileSizeBytes:      defaultMaxTransfer,
	MaxSingleWebcamStreamLength: defaultStreamLength,
}

func defaultPrinters() []PrinterOptions {
	return []PrinterOptions{
		{Name: "Prusa MK4", Kind: KindOctoPrint},
		{Name: "Voron 2.4", Kind: KindMoonraker},
	}
}

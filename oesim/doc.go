// Package oesim is an offline, faithful simulation of OctoEverywhere for tests, `oeproxy demo` and benchmarks:
// the App Connection portal, the relay on app-<id>.<domain>, the App APIs, and (through package oesim/printer)
// the printers behind the relay. It follows §8 of research/octoeverywhere-app-connections.md; where the real
// behaviour is unknown, the sim makes a documented choice or offers a switch.
//
// It owns the simulation only. It must not be imported by non-test code of proxy, credstore, appapi or
// portalflow, and it listens on 127.0.0.1 only.
//
// # Hosts
//
// Start opens one TLS listener (Sim.Addr, HTTP/1.1 only, no server read or write timeouts) with a certificate for
// <Domain> and *.<Domain> signed by a CA generated per run (Sim.RootCAs, Sim.CACertPEM). Requests are routed by
// Host: <Domain> serves the portal and the App APIs (paths match case-insensitively, as on OctoEverywhere's
// ASP.NET backend); app-<label>.<Domain> is a relay; any other host gets 421. The default Domain is
// octoeverywhere.com, so a client keeps the real URL shapes and dials Sim.Addr (connect-to); Sim.HTTPClient
// does exactly that. Each printer backend is a plain-HTTP server on its own 127.0.0.1 port (Printer.BackendURL,
// and Printer.FrontendURL for the Moonraker kind), its "LAN address".
//
// # Portal (GET /appportal/v1/)
//
// Query keys match case-insensitively (appid, returnUrl, printerId, appLogoUrl, octoPrintApiKeyAppName, authType;
// unknown keys are kept in PortalSession.Params and ignored). A missing appid gets an error page (400) and no
// redirect. printerId selects that printer; an unknown one selects the first. Each visit takes the next queued
// Outcome (QueueOutcome, FIFO; default OutcomeApprove) and shows an Authorize page: a real HTML form that POSTs
// to /appportal/v1/authorize with a per-session token, a printer choice, an Authorize and a Cancel button.
// Options.AutoApprove skips the page. The portal then answers with a 302 (the real portal may navigate with
// JavaScript) to returnUrl (default https://<Domain>/appportal/v1/complete), appending with "&" when returnUrl
// already has a query:
//
//	success, id, url, appApiToken, printername, userPrinterAccessUrl, printerLastKnownLocalIp,
//	authbasichttpuser, authbasichttppassword, authBearerToken[, octoPrintApiKey]
//
// Every value is fresh from crypto/rand: id (also the host label) 32 [a-z0-9], Basic user 10 and password 32
// [A-Za-z0-9] (the observed formats); bearer and App API tokens 64 [A-Za-z0-9] (format unknown).
// Options.CamelCaseCompletion spells the Basic keys authBasicHttpUser/authBasicHttpPassword (the documented
// spelling; every real client reads the lowercase one). octoPrintApiKey comes only when octoPrintApiKeyAppName has
// 2 to 60 characters, the printer is KindOctoPrint and the outcome is not OutcomeKeygenFail; it is the printer's
// PrinterOptions.APIKey when set (the built-in OctoPrint knows one key), else a fresh key.
// Outcomes: OutcomeFailure and Cancel append only success=false; OutcomeNoSupporter redirects to
// /appportal/v1/nosupporterperks, whose "Not now" button (at once with AutoApprove) ends with success=false;
// OutcomeNoRedirect shows a page that never finishes. /appportal/v1/complete and /appportal/v1/nosupporterperks
// are plain 200 pages otherwise.
//
// # Relay (app-<label>.<Domain>)
//
// Checks, in this order (research §8.3): unknown or deleted connection 603, revoked 604, owner not a supporter
// 605, credentials 606 (Authorization Basic user:password or Bearer token, both always accepted; ?oe_api_key=
// holding base64(user:password) or the bearer token only on /octoeverywhere-command-api/proxy/mqtt), printer
// offline 601, then the injected Fault (FaultTimeout: 602 after 200 ms; FaultServerError: 600; FaultStall: no
// answer until the client leaves or Close), then the optional Options.FirstRequestDelay, then 608 when
// Content-Length or the body actually read exceeds MaxUploadFileSizeBytes. WebSocket handshakes go through the
// same checks and get the 6xx instead of 101. A 6xx body is {"Status":6xx,"Error":"..."} (JSON; the real body is
// undocumented, so clients must not depend on it). Every request to a known host is recorded (Connection.Requests)
// as it arrived, with the status the relay answered.
//
// Forwarding copies the OE plugin: the request body is stored in full first (store and forward, spooled to a
// temporary file above 1 MiB, in Options.TempDir) and sent with a Content-Length, at Options.PrinterLinkRate
// bytes per second when set (the printer's home link: the client hears nothing for size/rate seconds after its
// last byte, as over the real relay); Accept-Encoding becomes
// identity; X-Forwarded-For, X-Real-IP, X-Original-Proto, Upgrade-Insecure-Requests, Transfer-Encoding, Expect and
// hop-by-hop headers are dropped; Host becomes the backend address and Origin/Referer "http://<backend address>";
// X-Forwarded-Host (the app host) and X-Forwarded-Proto: https are added. The OE Authorization header is dropped
// unless Options.ForwardAuthorization (whether OE strips it is undocumented). Redirects are not followed;
// every Location (except ws:// ones) is rewritten to https://<app host><path>[?<query>] with the original in
// x-og-location, as the plugin's CorrectLocationResponseHeaderIfNeeded does; Transfer-Encoding and
// X-Clacks-Overhead are dropped from responses. A response whose Content-Length exceeds MaxDownloadFileSizeBytes
// gets 607; one of unknown length that grows past it is cut (the TCP connection closes; Request.Cut).
// A printer that cannot be reached gets 502 (undocumented; our choice). multipart/x-mixed-replace (webcam)
// responses and bodies of unknown length are relayed unbuffered, flushed per write; a webcam stream ends
// cleanly after MaxSingleWebcamStreamLength (Request.Cut), is exempt from the download limit, and the start after
// WebcamStartsPerWindow starts within WebcamWindow gets 609. FaultDrop sends the headers and up to 4 KiB (half
// of a known length) and then closes the TCP connection (before the headers when there is no body).
//
// Moonraker printers are routed as the plugin does: paths starting /websocket, /printer/, /api/, /access/,
// /machine/, /server/ or /debug/ go to Moonraker's API server, everything else to the frontend. OctoPrint and
// generic printers have one backend.
//
// WebSockets: the printer is dialed (coder/websocket) with only X-Api-Key*, Cookie and the client's
// subprotocols; its refusal (status and up to 1 KiB of body) is passed to the client. The client is accepted
// with the subprotocol the printer chose. Text and binary messages stream frame by frame both ways (read limit
// 256 MiB per message); a close frame's code and reason pass through; a side that dies without a close frame
// makes the relay close the other side abruptly. SetSilentWebSockets stops the relay reading client frames (no
// pongs, nothing forwarded) until turned off; Options.IgnoreWebSocketPings never answers pings.
// DropWebSockets, SetOnline(false), Revoke and Delete close open WebSockets with 1001 (StatusGoingAway,
// "plugin disconnected") on both sides; Close ends them abruptly (clients see 1006).
//
// # Printers behind the companion plugin (KindBambu, KindElegoo)
//
// A Bambu Lab printer has no HTTP server; an Elegoo Centauri Carbon has only its SDCP WebSocket (/websocket:
// "ping" → "pong", requests acknowledged) and its page on / (with "ELEGOO", what OrcaSlicer's ElegooLink test
// looks for). GET / on a Bambu backend is the companion's local web API (printer-ID discovery, research §6.3).
// ElegooLink's chunked /uploadFile/upload is not modelled. Both answer the plugin command APIs (research §7, printer.PluginPrinter)
// under /octoeverywhere-command-api/: GET status (JobStatus, PlatformVersion "<firmware>-<model>", Features,
// ListWebcams), ping, webcam/list, webcam/snapshot and webcam/stream (MJPEG, boundary oestreamboundary; both with
// x-oe-webcam-transform from PrinterOptions.WebcamTransform), files/list, PUT files/upload?path=gcode/<name>
// (raw body), files/download (raw, 404 with the error body when missing), files/delete, and POST start
// ({"Path":"gcode/<name>"}: the body is undocumented, our choice), pause, resume, cancel. Answers are HTTP 200 with
// {"Status":200,"Result":…} or {"Status":<75x/78x/4xx>,"Error":…}: 754 unknown command, 751 bad arguments, 786 a
// command the print state does not allow. Files are kept on disk (a temporary directory per printer).
//
// The Bambu kind also has the MQTT proxy at /octoeverywhere-command-api/proxy/mqtt: a WebSocket (subprotocol mqtt,
// binary frames, MQTT 3.1.1, no MQTT credentials) that becomes one client of the printer's broker, a real
// mochi-mqtt server in-process. The printer publishes device/<Serial>/report (print.command push_status,
// gcode_state, ...) on every state change and when device/<Serial>/request carries {"pushing":{"command":"pushall"}};
// print.pause, resume and stop on the request topic act on the print. The relay's checks (6xx on the handshake)
// and DropWebSockets apply as to any WebSocket; PluginPrinter.SetMQTTFailure closes the proxy's WebSockets as the
// plugin does when its printer connection fails, with close status 4000+<OE code> and reason "<code> ..." (how the
// real code is carried is undocumented). The real plugin shares one printer connection among proxy clients; the
// in-process broker treats each client the same way. The Elegoo kind answers 788 there (the MQTT proxy is the CC2's).
//
// # App APIs (https://<Domain>/api/...)
//
// GET /api/appconnection/info, POST /api/live/createfromappconnection, POST /api/gadget/GetStatusFromAppConnection,
// POST /api/appconnection/SetNotificationWebhook, POST /api/appconnection/DeleteNotificationWebhook and GET
// /api/appconnection/TestWebhook. The token comes in the AppToken header, or as "AppToken" in the JSON body of the
// POSTs (not for TestWebhook). Missing token 400, unknown or deleted 603, revoked 604. Info answers 605 without
// Supporter Perks and, for an offline printer, 200 with IsOnline false (Options.InfoOfflineError: 601 instead);
// its two undocumented nullable limit fields are always null. Live Links: ExpirationHours 1..17520 (default 24)
// else 400; EndWhenCurrentPrintIsComplete without a running print (Printer.SetPrinting) 613. Gadget: 601 when the
// printer is offline; a second call within Options.GadgetMinInterval (default 10 s) gets 429 (the code is
// undocumented; our choice). SetNotificationWebhook needs an absolute https URL (kept exactly, query included)
// and event types 1..16. TestWebhook POSTs an EventType 16 payload whatever the filter and answers
// {"StatusCode":N} (the status the receiver gave; 0 when unreachable; field name our choice). FireEvent sends
// other events through the filter. Webhooks go through Options.WebhookClient (default: 10 s timeout, redirects
// not followed) and are recorded (Webhooks).
// Successes are wrapped in {"Status":200,"Error":"","IsUserError":false,"Result":{...}} as real responses are;
// Options.BareAPI answers the bare documented objects. Errors always use the envelope with a null Result and the
// code as HTTP status. Timestamps are .NET style: 7 fractional digits and Z, "0001-01-01T00:00:00" for never.
//
// # LAN side (PrinterOptions.LAN)
//
// A printer with LAN also answers on 127.0.0.2 (Printer.LANURL, LANAddr), the same backend the relay reaches and
// no App Connection auth: OctoPrint's /api/plugin/octoeverywhere, Moonraker's database (octoeverywhere
// public.printerId read-only; other namespaces writable with POST /server/database/item, as oeproxy's nonce proof
// needs). Printer.SetLAN switches what answers there: LANImpostorOtherID, LANImpostorSameID (the id copied, a
// database of its own), LANGone (refused, open connections cut). Printer.LANRequests records every request that
// arrived there. Sim.ChangeNetwork signals Sim.NetworkChanges channels, standing for the OS's address events.
//
// # Not modelled
//
// The OE web portal itself (login, printer pages such as userPrinterAccessUrl), shared connections (shared-
// hosts), plugin command APIs of the OctoPrint and Moonraker kinds, the MQTT proxy's legacy JSON mode, the plugin's
// OctoPrint port fallbacks (haproxy, mjpg-streamer) and /webcam?action normalisation, absolute LAN URLs, the
// plugin's 304 cache answers, webhook disabling after repeated failures and the 180-day webhook expiry, codes
// 610 to 612, rate limits other than Gadget's, and timing of the real service (602 fires only when injected).
//
// # Switches
//
//	Options.Domain                default octoeverywhere.com
//	Options.AutoApprove           portal redirects at once
//	Options.CamelCaseCompletion   authBasicHttpUser/authBasicHttpPassword spelling
//	Options.BareAPI               bare App API objects instead of the envelope
//	Options.GadgetMinInterval     Gadget rate rule (default 10 s; negative: off)
//	Options.Limits                default limits of new connections (500 MiB down/up, 120 s stream, no 609 window)
//	Options.ForwardAuthorization  pass the OE Authorization header to the printer
//	Options.InfoOfflineError      Info answers 601 for an offline printer
//	Options.IgnoreWebSocketPings  the relay never answers client pings
//	Options.FirstRequestDelay     delay of each connection's first relayed request ("summon")
//	Options.TempDir               where uploads are spooled
//	Options.PrinterLinkRate       bytes/s at which a stored body is passed on to the printer (default no limit)
//	Sim.QueueOutcome              how the next portal session ends
//	Printer.SetOnline, SetPrinting, SetLAN
//	Sim.ChangeNetwork
//	Connection.Revoke, Delete, SetSupporter, SetFault, SetLimits, SetGadget, SetSilentWebSockets, DropWebSockets
package oesim

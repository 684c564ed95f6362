// Package appapi is the client of the OctoEverywhere App APIs that an App Connection may call with its
// appApiToken: connection info and account limits, Live Links, Gadget AI status and app-owned notification
// webhooks. It also owns the meaning of OctoEverywhere's 6xx status codes (Describe, OEError), which the proxy
// reuses to explain relay errors.
//
// It must not proxy printer traffic (that is package proxy) nor store anything (the caller keeps tokens and
// webhook dates). The token is sent only in the AppToken header, to the configured base URL, and never
// appears in an error, a log line or a redirect (redirects are not followed).
//
// # Wire format
//
// OctoEverywhere documents bare response objects, but real responses are wrapped in an envelope
// {"Status":200,"Error":"","IsUserError":false,"Result":{...}}. Both are accepted: a top-level object with both a
// Result and a Status key (any letter case) is unwrapped. Timestamps are .NET style (seven fractional digits)
// and "0001-01-01T00:00:00" means never; see Time.
//
// # JSON output
//
// The exported result types (Info, Limits, LiveLink, GadgetStatus, WebhookTest) carry snake_case JSON tags that
// are a stable contract for `oeproxy ... --json` and for the daemon's control socket: keys are never renamed or
// removed, only added. Times are RFC 3339 in UTC, or null for never. Gadget state and colour are names
// ("Active", "green"); ratings and event types are numbers.
//
// # Retries and rate limits
//
// Only GET calls (Info, TestWebhook) are retried, with exponential backoff and jitter, on transport errors and on
// 600 and 602; POSTs are never retried because OctoEverywhere may already have acted on them. GadgetStatus is
// never sent twice within MinGadgetInterval (10 s) for one connection: a call that comes too early returns a
// *RateLimitError (errors.Is ErrRateLimited) saying how long to wait, at once and without sending anything, so
// that a poller can schedule its next call and an interactive command can tell the user.
package appapi

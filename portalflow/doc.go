// Package portalflow owns getting an App Connection from the OctoEverywhere App Connection portal: the portal
// start URL, the one-time loopback callback that catches the portal's completion, parsing and validating the
// completion URL (also for the paste fallback), and discovering the printer's OctoEverywhere ID on the LAN so
// the portal can preselect it.
//
// It returns a Completion and must not store it: the caller (credstore through daemon) does that. The
// completion carries secrets that OctoEverywhere returns only once; nothing in this package logs them, puts
// them in an error, or shows them on a page.
package portalflow

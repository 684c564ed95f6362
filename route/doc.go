// Package route owns LAN-first routing for each printer: the proof that a LAN host is the same printer as the
// App Connection, keeping that proof fresh, and the decision, asked per request, of which route a request takes
// now (the LAN or the relay), with the reason and the time of the last proof, for status pages and metrics.
//
// A LAN host is trusted only after it proves it is the App Connection's printer: it must report the same
// OctoEverywhere printer id as the printer behind the relay (OctoPrint's plugin API, Moonraker's database), and
// where the printer offers a place to write (Moonraker's database) a random 128-bit nonce written through the
// relay must be read back over the LAN. A host at the same private address on another network (a café) cannot
// read what was written to the printer at home, so for Moonraker the proof holds even against a host that copied
// the printer id; for OctoPrint it is a claim of the id only. A printer behind an OctoEverywhere companion
// (PrusaLink, Elegoo) cannot say its id itself: there the companion's optional local web API must report it, which
// proves the home network rather than the host (see README, "LAN-first routing").
//
// The proof is re-checked when the machine's addresses or routes change (Watch: netlink on Linux, polling
// elsewhere), when a LAN request fails (LANFailed), and every few minutes; a failed or stale proof switches to
// the relay at once. Every switch is one log line with its reason.
//
// The package must not carry client traffic (package proxy does, asking Router.Decide once per request and per
// WebSocket or stream at its start), must not hold or add the App Connection credential (its Relay transport,
// built by package proxy, does), and must not read configuration or the store.
package route

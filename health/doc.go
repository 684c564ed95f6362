// Package health owns what oeproxy believes about each printer's App Connection: the state machine fed by
// OctoEverywhere's Info API and by the relay's 6xx answers (the 606 rule), the gate the proxy asks before it
// sends a request to the relay (a printer that needs re-linking, an upload over the account's limit), and the
// snapshot that `oeproxy status` and the admin page show. The webhook's renewal is here too, as a loop of its own
// (Renewer): it reads the record, not the state, so a slow or failing renewal never delays a health check.
//
// It does not serve, store or proxy: the daemon runs one Health and one Renewer per served printer, the proxy
// sees a Health only as its Gate and Hooks, and the records belong to credstore.
package health

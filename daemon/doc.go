// Package daemon owns oeproxy's lifecycle: one listener per stored printer (each serving a proxy.Handler),
// Printers (the store-backed control.Control: naming, ports, validation, storing, status; the command line uses
// it directly when no daemon runs), the control socket it listens on and serves with control.Handler while it
// runs, the admin listener (it runs package admin's page on Printers and on the live views only the daemon has,
// and serves /readyz and /metrics there), metrics, reloads and graceful shutdown. It wires the packages below it
// together and must not duplicate what they do: the control interface, its types and its socket protocol are
// control's, the admin page is admin's, proxying is proxy's, storage is credstore's, the portal is portalflow's,
// a printer's health and its webhook renewal are health's (the daemon runs one health.Health and one
// health.Renewer per served printer).
package daemon

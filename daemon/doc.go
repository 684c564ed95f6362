// Package daemon owns oeproxy's lifecycle: one listener per stored printer (each serving a proxy.Handler),
// Printers (the store-backed control.Control: naming, ports, validation, storing, status; the command line uses
// it directly when no daemon runs), the control socket it listens on and serves with control.Handler while it
// runs, the admin listener (a client of control.Control, like the command line; it never opens the store),
// metrics, reloads and graceful shutdown. It wires the packages below it together and must not duplicate what
// they do: the control interface, its types and its socket protocol are control's, proxying is proxy's, storage
// is credstore's, the portal is portalflow's, a printer's health and its webhook renewal are health's (the
// daemon runs one health.Health and one health.Renewer per served printer).
package daemon

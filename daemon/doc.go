// Package daemon owns oeproxy's lifecycle: one listener per stored printer (each serving a proxy.Handler), the
// control socket through which the command line adds, lists and removes printers while the daemon runs
// (Control: Printers on the store, ControlClient over the socket, errors that keep their sentinels across it),
// the admin listener (a client of Control, like the command line; it never opens the store), metrics, reloads
// and graceful shutdown. It wires the packages below it together and must not duplicate what they do: proxying
// is proxy's, storage is credstore's, the portal is portalflow's, a printer's health and its webhook renewal
// are health's (the daemon runs one health.Health and one health.Renewer per served printer).
package daemon

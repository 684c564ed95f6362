// Package daemon owns oeproxy's lifecycle: one listener per stored printer (each serving a proxy.Handler),
// the control socket through which the command line adds, lists and removes printers while the daemon runs,
// the admin listener, and graceful shutdown. It wires the packages below it together and must not duplicate
// what they do: proxying is proxy's, storage is credstore's, the portal is portalflow's.
package daemon

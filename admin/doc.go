// Package admin owns the admin page on admin.listen: its login (a one-time URL in the data directory traded for
// a session cookie), its Host, Origin and CSRF checks, the printers page, and the actions it offers (connect
// through the portal, remove, Live Link, Gadget). It is a client of control.Control like the command line: it
// adds, lists and removes printers only through it (plus StatusNow, the health the daemon knows without asking
// OctoEverywhere), and it never opens the store. What only the running daemon knows (the configuration in
// force, each printer's router, traffic counters, spooled uploads) it reads through Live, which the daemon
// implements; /metrics and /readyz are the daemon's handlers, mounted behind the Host check.
//
// No page shows a secret: the views are built from credstore.PublicRecord, control.PrinterStatus and the
// counters, never from a stored Record.
package admin

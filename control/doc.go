// Package control owns oeproxy's control interface: what the command line and the admin page ask of oeproxy
// (Control and its parts AppControl, LANControl, MQTTControl), the requests and answers it carries (AddRequest,
// Change, LANRequest, MQTTRequest, PrinterStatus, WebhookInfo), the error sentinels and how they cross the
// control socket so that errors.Is and the message are the same on both sides, and the socket itself: its path
// and private directory (SocketPath), the listener (Listen), the HTTP API served on it (Handler) and its client
// (Dial, Client).
//
// It implements none of the operations: daemon.Printers does, on the store, whether a daemon runs or not. The
// package must not open the store or call OctoEverywhere, so that every client of the interface (cmd, the admin
// page) sees the same answers through the same types.
package control

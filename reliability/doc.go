// Package reliability holds oeproxy's fault, bad-input, attack, secret, load and leak suite. It has no
// code of its own outside its tests: each case runs oesim (with the bench origin behind it) and the real proxy
// handler, the real daemon, or the real binary, injects a fault or an attack, and checks a clear pass condition
// (a status, a close code, a deadline, goroutines and file descriptors back to their baseline, no secret
// anywhere). TestMain prints one line, `reliability: N passed, N failed`.
//
// `go test ./reliability` is the reduced suite that `make test` runs; OEPROXY_SOAK=1 selects the full sizes
// (10-minute load, 10,000 WebSocket cycles and aborted requests) for `make soak`.
//
// It must not be imported, and it listens on 127.0.0.1 only.
package reliability

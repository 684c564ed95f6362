// Package e2e holds oeproxy's end-to-end tests: the real `oeproxy serve` binary as a child process, the
// OctoEverywhere simulation (oesim) in the test process, and real clients on loopback: a headless Chromium that
// opens the printer pages through oeproxy, and curl uploading a PrusaSlicer-shaped file.
//
// The package has no code outside its tests. It must not be imported, and it never reaches beyond 127.0.0.1.
//
// Gates: without Chromium or curl the tests that need them skip, unless OEPROXY_E2E=1 is set, which turns a
// missing tool into a failure (CI and `make e2e`) and raises the upload to 1 GiB (64 MiB otherwise).
// Screenshots are kept in e2e/out/ (ignored by git) for a human to look at.
package e2e

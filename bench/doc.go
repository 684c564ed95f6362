// Package bench is the benchmark harness behind `make bench`: it measures the ways of reaching a printer through
// OctoEverywhere's relay (simulated by oesim, over TLS, with a fast origin behind it) in the same run, interleaved
// round by round so that machine drift affects all alike:
//
//   - direct: the client talks to the relay itself and sets the App Connection credential;
//   - oeproxy: the client talks to the real `oeproxy serve` binary (a child process, so its memory is its own);
//   - nginx: the client talks to nginx configured for the same job (credential injected, no buffering,
//     WebSocket upgrade, TLS to the relay with SNI), when nginx is installed;
//   - haproxy: HAProxy configured for the same job, when installed, shown beside nginx (the targets are judged
//     against nginx).
//
// Figures: small GET requests/s (wrk, or a Go closed-loop client without wrk) and open-loop p50/p99 latency; large
// download and upload MB/s and the proxy's peak RSS; WebSocket round trip and one-way messages/s; RSS per idle
// WebSocket; MJPEG frame latency and relay bytes with several viewers; idle RSS and start-to-first-request; and the
// proxy's CPU time per small request and per GiB transferred (/proc/<pid>/stat).
// Report renders the medians with min and max, the ratios oeproxy/direct and oeproxy/nginx and the targets.
//
// Command bench (bench/cmd/bench) runs it and writes bench/RESULTS.md with bench/NOTES.md appended; command
// benchprof (bench/cmd/benchprof) runs the proxy handler in-process under the same load to take CPU and heap
// profiles of the proxy alone.
//
// It owns measurement only: it must not change how oeproxy behaves, and it listens on 127.0.0.1 only. It is not
// part of `make test` except through the quick smoke test, which never judges speed.
package bench

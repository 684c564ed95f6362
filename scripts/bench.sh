#!/usr/bin/env bash
# `make bench`: installs nginx and wrk when missing (scripts/bench-deps.sh), then measures direct vs oeproxy vs
# nginx through oesim's relay and writes bench/RESULTS.md. Extra arguments go to the harness, e.g. -rounds 3.
# `make bench-quick` runs: scripts/bench.sh -quick (tiny sizes, one round, prints only).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! scripts/bench-deps.sh; then
	echo "bench: could not install nginx/wrk; measuring what is available" >&2
fi
out=(-out bench/RESULTS.md)
for a in "$@"; do
	if [ "$a" = "-quick" ] || [ "$a" = "--quick" ]; then out=(); fi
done
exec go run ./bench/cmd/bench "${out[@]}" "$@"

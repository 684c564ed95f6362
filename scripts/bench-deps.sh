#!/usr/bin/env bash
# Installs what `make bench` compares against: nginx and HAProxy (the peer proxies) and wrk (closed-loop load)
# from apt.
# Open-loop latency is measured in Go by the bench harness itself, so vegeta is not needed.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -eq 0 ]; then
	echo "bench-deps: nginx, haproxy and wrk are installed"
	exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
		echo "bench-deps: need root to install ${need[*]} (apt-get); install them, or run make bench-quick, which works without nginx" >&2
		exit 1
	fi
fi
echo "bench-deps: installing ${need[*]}"
$sudo apt-get update -qq
# The image's policy-rc.d keeps apt from starting nginx or haproxy as a service; the bench runs its own instances.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"

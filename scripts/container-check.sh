#!/usr/bin/env bash
# container-check: build the real Dockerfile with buildah and run the resulting image, without a Docker engine
# and without a registry (`make container-check`; not part of `make test`).
#
# No base image can be pulled here, so both base images are replaced through the Dockerfile's build arguments
# by local images made FROM scratch; the Dockerfile itself is used unchanged, both stages:
#   - BUILD_IMAGE: a static busybox shell with the host's Go toolchain and module cache bind-mounted at the
#     golang image's paths (/usr/local/go, /go/pkg/mod), GOPROXY=off, so the build stage runs `go mod download`
#     and `go build` offline;
#   - RUNTIME_IMAGE: what distroless static:nonroot holds and oeproxy uses: CA certificates, an /etc/passwd with
#     nonroot (uid 65532), /tmp, /home/nonroot.
# Then, in the built image (buildah run --isolation chroot): `oeproxy version` shows the stamped version, and
# `oeproxy healthcheck` (the image's HEALTHCHECK) exits 0 against `oeproxy serve` running in the same image and
# 1 once it has stopped. The image's config (user, env, ports, volume, healthcheck, entrypoint) is checked too.
#
# Needs root (buildah with the vfs driver, chroot isolation). Installs buildah with apt-get when missing.
# State lives in $CONTAINER_CHECK_DIR (default /var/tmp/oeproxy-container-check): its own image store and a Go
# build cache, so later runs are faster. Remove that directory to start clean.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

WORK=${CONTAINER_CHECK_DIR:-/var/tmp/oeproxy-container-check}
VERSION=${VERSION:-containercheck-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
DATE=${DATE:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
IMAGE=localhost/oeproxy:container-check
BUILD_BASE=localhost/oeproxy-check/build-base:latest
RUNTIME_BASE=localhost/oeproxy-check/runtime-base:latest

ctr=""
serve_pid=""
tmp=$(mktemp -d)
cleanup() {
	if [[ -n $serve_pid ]] && kill -0 "$serve_pid" 2>/dev/null; then
		kill -TERM "$serve_pid" 2>/dev/null || true
		wait "$serve_pid" 2>/dev/null || true
	fi
	if [[ -n $ctr ]]; then bah rm "$ctr" >/dev/null 2>&1 || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "container-check: FAIL: $*" >&2
	echo "container-check: FAIL ($((SECONDS - start))s)"
	exit 1
}
step() { echo "container-check: $*"; }

[[ $(id -u) == 0 ]] || fail "run as root (buildah's vfs storage and chroot isolation need it)"
if ! command -v buildah >/dev/null; then
	step "installing buildah (apt-get)"
	apt-get install -y --no-install-recommends buildah fuse-overlayfs uidmap >/dev/null ||
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends buildah fuse-overlayfs uidmap >/dev/null; } ||
		fail "could not install buildah"
fi
command -v go >/dev/null || fail "go is not on PATH"
GOROOT_HOST=$(go env GOROOT)
GOMODCACHE_HOST=$(go env GOMODCACHE)
GOVERSION_HOST=$(go env GOVERSION)
# The build stage runs with GOPROXY=off on the host's module cache: fill it first (a no-op when complete).
go mod download || fail "go mod download failed: the build stage needs every module in the host's module cache"
mkdir -p "$WORK/gocache"
BAH=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
bah() { "${BAH[@]}" "$@"; }

# busybox: static, so it runs in a FROM scratch image.
busybox=$(command -v busybox || true)
if [[ -z $busybox ]] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
	step "installing busybox-static (apt-get)"
	apt-get install -y --no-install-recommends busybox-static >/dev/null || fail "could not install busybox-static"
	busybox=$(command -v busybox)
fi
cacerts=/etc/ssl/certs/ca-certificates.crt
[[ -f $cacerts ]] || fail "$cacerts is missing (apt-get install ca-certificates)"

step "making local base images (FROM scratch)"
mkdir -p "$tmp/build-base" "$tmp/runtime-base/rootfs/etc/ssl/certs" "$tmp/runtime-base/rootfs/home/nonroot" \
	"$tmp/runtime-base/rootfs/tmp"
cp "$busybox" "$tmp/build-base/busybox"
cat >"$tmp/build-base/Containerfile" <<EOF
# Stand-in for golang:1.26-bookworm: a shell, the golang image's paths and environment; Go itself is mounted.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /usr/local/go /go/pkg/mod /root/.cache/go-build /tmp && chmod 1777 /tmp
ENV PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOPATH=/go GOTOOLCHAIN=local HOME=/root GOPROXY=off GOSUMDB=off GOFLAGS=-buildvcs=false
EOF
cp "$cacerts" "$tmp/runtime-base/rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
	>"$tmp/runtime-base/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$tmp/runtime-base/rootfs/etc/group"
chmod 1777 "$tmp/runtime-base/rootfs/tmp"
cat >"$tmp/runtime-base/Containerfile" <<'EOF'
# Stand-in for gcr.io/distroless/static-debian12:nonroot: CA certificates, passwd with nonroot (65532), /tmp.
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
EOF
bah bud --quiet --isolation chroot --pull=never -t "$BUILD_BASE" "$tmp/build-base" >/dev/null ||
	fail "could not build the local build base image"
bah bud --quiet --isolation chroot --pull=never -t "$RUNTIME_BASE" "$tmp/runtime-base" >/dev/null ||
	fail "could not build the local runtime base image"

step "building ./Dockerfile (both stages; Go $GOVERSION_HOST mounted; version $VERSION)"
bah bud --isolation chroot --format docker --pull=never --layers=false \
	-v "$GOROOT_HOST:/usr/local/go:ro" -v "$GOMODCACHE_HOST:/go/pkg/mod:ro" -v "$WORK/gocache:/root/.cache/go-build" \
	--build-arg "BUILD_IMAGE=$BUILD_BASE" --build-arg "RUNTIME_IMAGE=$RUNTIME_BASE" \
	--build-arg "VERSION=$VERSION" --build-arg "COMMIT=$COMMIT" --build-arg "DATE=$DATE" \
	-f Dockerfile -t "$IMAGE" . >"$tmp/bud.log" 2>&1 || { tail -30 "$tmp/bud.log" >&2; fail "buildah bud of ./Dockerfile failed"; }

step "checking the image config"
cfg() { bah inspect --type image --format "$1" "$IMAGE"; }
expect() { # name, got, want (exact)
	[[ $2 == "$3" ]] || fail "image $1 is '$2', want '$3'"
	echo "  ok  $1 = $2"
}
expect user "$(cfg '{{.Docker.Config.User}}')" "65532:65532"
# (buildah 1.28's --format has no json function: slices print as [a b].)
expect entrypoint "$(cfg '{{.Docker.Config.Entrypoint}}')" '[/oeproxy]'
expect cmd "$(cfg '{{.Docker.Config.Cmd}}')" '[serve]'
expect healthcheck "$(cfg '{{.Docker.Config.Healthcheck.Test}}')" '[CMD /oeproxy healthcheck]'
expect volumes "$(cfg '{{range $k, $v := .Docker.Config.Volumes}}{{$k}} {{end}}')" "/data "
ports=$(cfg '{{range $k, $v := .Docker.Config.ExposedPorts}}{{$k}} {{end}}')
# Docker expands a range into one key per port; buildah keeps "5001-5010/tcp". Accept either.
[[ " $ports" == *" 5001-5010/tcp "* || (" $ports" == *" 5001/tcp "* && " $ports" == *" 5010/tcp "*) ]] ||
	fail "ports 5001-5010/tcp are not exposed (exposed: $ports)"
[[ " $ports" == *" 7080/tcp "* ]] || fail "port 7080/tcp is not exposed (exposed: $ports)"
echo "  ok  exposed ports: $ports"
envs=$(cfg '{{range .Docker.Config.Env}}{{.}} {{end}}')
for e in OEPROXY_DATA_DIR=/data OEPROXY_LISTEN_HOST=0.0.0.0 OEPROXY_LISTEN_ALLOW_NON_LOOPBACK=true \
	OEPROXY_ADMIN_LISTEN=0.0.0.0:7080 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt; do
	[[ " $envs" == *" $e "* ]] || fail "image environment lacks $e (has: $envs)"
done
echo "  ok  environment: $envs"
[[ $envs != *OEPROXY_MASTER_KEY* && $envs != *OEPROXY_PASSPHRASE* ]] || fail "the image must not carry a master key"

ctr=$(bah from --pull=never "$IMAGE") || fail "buildah from $IMAGE failed"
# Everything inside stays on 127.0.0.1 for this check (the image's 0.0.0.0 defaults are for published ports).
run_args() { RUN=("${BAH[@]}" run --isolation chroot -e "OEPROXY_ADMIN_LISTEN=127.0.0.1:$port" -e OEPROXY_LISTEN_HOST=127.0.0.1 "$ctr"); }
run_in() { run_args && "${RUN[@]}" "$@"; }

step "running 'oeproxy version' in the image"
port=0
out=$(run_in /oeproxy version 2>&1) || fail "oeproxy version failed in the image: $out"
echo "  $out"
[[ $out == "oeproxy $VERSION (commit $COMMIT, "*"linux/"*"built $DATE" ]] || fail "version output does not show the stamp $VERSION/$COMMIT/$DATE"

# A free loopback port for the admin listener (nothing answers on it now).
for _ in $(seq 50); do
	port=$((20000 + RANDOM % 20000))
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done

step "running 'oeproxy serve' in the image, then its HEALTHCHECK command"
run_args
# Started directly (not through a function) so that $! is buildah itself, which passes SIGTERM on to serve.
"${RUN[@]}" /oeproxy serve >"$tmp/serve.log" 2>&1 &
serve_pid=$!
healthy=""
for _ in $(seq 60); do
	if hc=$(run_in /oeproxy healthcheck 2>&1); then healthy=1 && break; fi
	kill -0 "$serve_pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; fail "oeproxy serve exited in the image"; }
	sleep 0.5
done
[[ -n $healthy ]] || { cat "$tmp/serve.log" >&2; fail "oeproxy healthcheck never passed against serve on 127.0.0.1:$port: $hc"; }
echo "  $hc (exit 0)"
ready=$(run_in /oeproxy healthcheck --url "http://127.0.0.1:$port/readyz" 2>&1) || fail "/readyz: $ready"
echo "  $ready (exit 0)"

# The daemon runs as the image's user: the master key it created in /data (an anonymous volume that
# buildah keeps under the container's storage) belongs to 65532 and is private.
ctr_id=$(bah inspect --format '{{.ContainerID}}' "$ctr")
key=$(find "$WORK/storage" -path "*$ctr_id*" -name master.key -print -quit 2>/dev/null || true)
[[ -n $key ]] || fail "serve created no master.key under /data"
owner=$(stat -c '%u:%g %a' "$key")
[[ $owner == "65532:65532 600" ]] || fail "/data/master.key is '$owner', want '65532:65532 600'"
echo "  ok  /data/master.key created by uid 65532, mode 600"

# buildah run answers SIGTERM by killing its child, so the signal goes to oeproxy itself, as `docker stop` would.
descendants() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done; }
oe_pid=""
for c in $(descendants "$serve_pid"); do
	[[ $(cat "/proc/$c/comm" 2>/dev/null) == oeproxy ]] && oe_pid=$c
done
[[ -n $oe_pid ]] || fail "cannot find the oeproxy serve process under buildah (pid $serve_pid)"
kill -TERM "$oe_pid"
status=0
wait "$serve_pid" || status=$?
serve_pid=""
grep -q '"oeproxy stopped"' "$tmp/serve.log" || { cat "$tmp/serve.log" >&2; fail "serve did not log a clean stop on SIGTERM"; }
[[ $status == 0 ]] || { cat "$tmp/serve.log" >&2; fail "oeproxy serve exited $status on SIGTERM, want 0"; }
echo "  ok  serve stopped on SIGTERM with status 0"
if hc=$(run_in /oeproxy healthcheck 2>&1); then fail "healthcheck passed with no daemon running: $hc"; fi
hc=$(grep -m1 '^oeproxy: ' <<<"$hc" || echo "$hc")
echo "  ${hc#oeproxy: } (exit 1, as it should with no daemon)"

echo "container-check: PASS ($((SECONDS - start))s): image $IMAGE built from ./Dockerfile and checked"

#!/usr/bin/env bash
# release: cross-compile oeproxy for every supported platform into dist/, version-stamped, with SHA256SUMS
# (`make release`). Static binaries (CGO_ENABLED=0), no local paths (-trimpath), stripped (-s -w): the same
# flags as `make build` and the Dockerfile.
#
#   scripts/release.sh                       # version from `git describe`
#   VERSION=v1.2.0 scripts/release.sh        # explicit version (also COMMIT, DATE)
#   TARGETS="linux/arm64 linux/arm/7" scripts/release.sh   # a subset (os/arch or os/arm/GOARM)
#
# Output: dist/oeproxy-<version>-<os>-<arch>[v7][.exe] and dist/SHA256SUMS. After building, the binary for the
# machine running the script (when it is one of the targets) is run to check that `oeproxy version` shows the
# stamp; the script fails otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
DATE=${DATE:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
DIST=${DIST:-dist}
# linux/arm/7: 32-bit Raspberry Pi OS (Pi 2 and later); linux/arm64: 64-bit Raspberry Pi OS (Pi 3, 4, 5).
TARGETS=${TARGETS:-linux/amd64 linux/arm64 linux/arm/7 darwin/arm64 darwin/amd64 windows/amd64}
PKG=github.com/oeproxy/oeproxy/internal/version
LDFLAGS="-s -w -X $PKG.Version=$VERSION -X $PKG.Commit=$COMMIT -X $PKG.Date=$DATE"

case $VERSION in
*[!A-Za-z0-9._+-]*) echo "release: VERSION '$VERSION' may only hold letters, digits and . _ + -" >&2; exit 2 ;;
esac

mkdir -p "$DIST"
rm -f "$DIST"/oeproxy-* "$DIST/SHA256SUMS"
host="$($GO env GOHOSTOS)/$($GO env GOHOSTARCH)"
host_bin=""
for t in $TARGETS; do
	IFS=/ read -r goos goarch goarm <<<"$t"
	name="oeproxy-$VERSION-$goos-$goarch${goarm:+v$goarm}"
	[[ $goos == windows ]] && name+=.exe
	echo "release: $t -> $DIST/$name"
	CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
		"$GO" build -trimpath -ldflags "$LDFLAGS" -o "$DIST/$name" ./cmd/oeproxy
	if [[ "$goos/$goarch" == "$host" && -z $goarm ]]; then host_bin="$DIST/$name"; fi
done

# SHA256SUMS in the format `sha256sum -c` and `shasum -a 256 -c` read, with names relative to dist/.
(
	cd "$DIST"
	files=(oeproxy-*)
	if command -v sha256sum >/dev/null; then sha256sum "${files[@]}"; else shasum -a 256 "${files[@]}"; fi
) >"$DIST/SHA256SUMS.tmp"
mv "$DIST/SHA256SUMS.tmp" "$DIST/SHA256SUMS"

if [[ -n $host_bin ]]; then
	got=$("$host_bin" version)
	want="oeproxy $VERSION (commit $COMMIT, "
	if [[ $got != "$want"* || $got != *" built $DATE" ]]; then
		echo "release: FAIL: $host_bin version printed '$got', want '$want...built $DATE'" >&2
		exit 1
	fi
	echo "release: $host_bin version: $got"
else
	echo "release: no binary for this machine ($host) among the targets: the version stamp was not run-checked"
fi
echo "release: $(wc -l <"$DIST/SHA256SUMS") binaries and $DIST/SHA256SUMS for $VERSION"

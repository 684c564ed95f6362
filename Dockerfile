# oeproxy container image: one static binary on a distroless base, running as uid 65532 with /data as its data
# directory (store, master key unless given as a secret, control socket).
#
#   docker build -t oeproxy --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse HEAD)" .
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t oeproxy .   # Raspberry Pi too
#
# Running it (ports published on 127.0.0.1 only, the master key as a secret): README "Docker" and
# docker-compose.yml. Both base images are build arguments so that the image can be built from mirrored or
# local bases; scripts/container-check.sh builds this file offline with buildah that way.
ARG BUILD_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

# The build stage runs on the build machine's platform and cross-compiles (pure Go, no emulation needed).
FROM --platform=$BUILDPLATFORM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
# The same flags as `make build` and scripts/release.sh: static (no cgo), no local paths, stamped version.
RUN mkdir -p /out/data && \
    GOARM="${TARGETVARIANT#v}" && \
    CGO_ENABLED=0 GOOS="${TARGETOS:-linux}" GOARCH="${TARGETARCH:-$(go env GOARCH)}" GOARM="${GOARM}" \
    go build -trimpath \
      -ldflags "-s -w -X github.com/oeproxy/oeproxy/internal/version.Version=${VERSION} -X github.com/oeproxy/oeproxy/internal/version.Commit=${COMMIT} -X github.com/oeproxy/oeproxy/internal/version.Date=${DATE}" \
      -o /out/oeproxy ./cmd/oeproxy

FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="oeproxy" \
      org.opencontainers.image.description="Local ports that reach 3D printers through OctoEverywhere App Connections" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/oeproxy /oeproxy
# An empty /data owned by the runtime user: a named volume starts as a copy of it, so the daemon can write there.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# Inside a container the listeners must bind beyond loopback to be reachable through published ports; that is
# allowed explicitly here. Publish the ports on the host's 127.0.0.1 only (-p 127.0.0.1:5001:5001): anyone who
# reaches a printer port controls the printer. The master key belongs in a secret file
# (OEPROXY_STORE_KEY_FILE=/run/secrets/oeproxy_master_key), not in OEPROXY_MASTER_KEY: environment variables
# show in `docker inspect`, in /proc and in crash reports.
ENV OEPROXY_DATA_DIR=/data \
    OEPROXY_LISTEN_HOST=0.0.0.0 \
    OEPROXY_LISTEN_ALLOW_NON_LOOPBACK=true \
    OEPROXY_ADMIN_LISTEN=0.0.0.0:7080
VOLUME /data
# 5001-5010: printer ports (listen.port_base and up, one per printer); 7080: admin page, /metrics, /healthz.
EXPOSE 5001-5010 7080
# The image has no curl: the binary checks its own admin /healthz (derived from OEPROXY_ADMIN_LISTEN).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/oeproxy", "healthcheck"]
ENTRYPOINT ["/oeproxy"]
CMD ["serve"]

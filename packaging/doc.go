// Package packaging holds the checks of oeproxy's packaging that `make test` can run without a container engine
// or a second OS: the binary built with the flags of the Dockerfile, `make build` and scripts/release.sh is static
// and version-stamped, its `healthcheck` command (the image's HEALTHCHECK) exits 0 or 1 as it should, and the
// Dockerfile, docker-compose.yml, systemd units and launchd plist keep the settings the README promises.
// It holds no product code. The image itself is built and run by scripts/container-check.sh
// (`make container-check`).
package packaging

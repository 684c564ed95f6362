# oeproxy: build, test and run. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN ?= bin/oeproxy
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
PKG := github.com/oeproxy/oeproxy/internal/version
LDFLAGS := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT) -X $(PKG).Date=$(DATE)
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2

.PHONY: help build test vet fmt-check unit lint clean demo e2e release container-check bench bench-quick soak

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build bin/oeproxy (static, version-stamped)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/oeproxy

test: vet fmt-check build unit ## vet, gofmt check, build, race-enabled tests (with fuzz seed corpora)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /reliability$$)
	@# gotestsum prints one line per case and every failing case's output whole; the suite's own summary
	@# line (printed by its TestMain) is taken from the JSON record so that it ends the run.
	set -o pipefail; $(GO) tool gotestsum --format testname --jsonfile reliability.json -- -race -count=1 -timeout 10m ./reliability/; \
	rc=$$?; grep -o 'reliability: [0-9]* passed, [0-9]* failed' reliability.json | tail -1; \
	grep -o 'reliability failures: [^"]*' reliability.json | sed 's/\\n$$//' | tail -1; exit $$rc

lint: ## staticcheck (installed by this target)
	@test -x $(GOBIN_DIR)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN_DIR)/staticcheck ./...

e2e: ## end to end: headless Chromium on both printer pages and on a webcam across relay cuts, ffmpeg across cuts, a 1 GiB PrusaSlicer-shaped upload through the real daemon (needs chromium, ffmpeg, curl)
	OEPROXY_E2E=1 $(GO) test -count=1 -timeout 10m -v ./e2e/

demo: ## offline end to end: simulated OctoEverywhere + two printers served through oeproxy (Ctrl-C stops)
	$(GO) run ./cmd/oeproxy demo $(DEMO_FLAGS)

release: ## cross-compile dist/ (linux amd64/arm64/armv7, macOS, Windows) with SHA256SUMS
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' DATE='$(DATE)' GO='$(GO)' scripts/release.sh

container-check: ## build ./Dockerfile with buildah (root, offline) and run the image; not part of `make test`
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' DATE='$(DATE)' scripts/container-check.sh

bench: ## measure direct vs oeproxy vs nginx (and HAProxy) through oesim's relay, write bench/RESULTS.md (installs nginx, haproxy and wrk; ~12 min)
	scripts/bench.sh

bench-quick: ## the benchmark with tiny sizes and one round (< 2 min): proves the harness works, judges nothing
	scripts/bench.sh -quick

soak: ## full reliability suite (10-minute load, 10,000 WebSocket cycles and aborted requests) and 10 minutes of each fuzz target
	set -o pipefail; OEPROXY_SOAK=1 $(GO) test -count=1 -timeout 60m -v ./reliability/ 2>&1 | tee soak.log | grep -E '^(--- |reliability|ok|FAIL)'
	$(GO) test -run '^$$' -fuzz '^FuzzParseCompletion$$' -fuzztime 10m ./portalflow/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime 10m ./credstore/
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 10m -fuzzminimizetime 10s ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 10m ./appapi/

clean: ## remove build output
	rm -rf bin dist soak.log reliability.json

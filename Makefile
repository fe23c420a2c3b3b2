# dropline — developer entry points.
#   make run    install what is missing, build, serve a test pattern at http://localhost:8080/?stream=demo
#   make test   install what is missing, lint, unit/integration tests, then end-to-end player tests
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
NODE ?= node
NPM ?= npm
PYTHON ?= python3

DROPLINE := target/debug/dropline
SRT_LISTEN ?= 0.0.0.0:9000
HTTP_LISTEN ?= 0.0.0.0:8080
DEMO_STREAM ?= demo

# Debian 12 packages the build and the tests need (see shared notes: environment.md).
DEB_PACKAGES := libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools pkg-config build-essential \
	ffmpeg srt-tools chromium nginx python3-pip
M3U8_VERSION := 6.0.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

GOLDEN_CHECK := fixtures/golden/playlist/check_m3u8.py

.PHONY: help deps deps-apt deps-node deps-python build run test e2e bench bench-load bench-bonding bench-cues

help:
	@echo "make run    build and serve the demo test pattern on http://localhost:8080/?stream=$(DEMO_STREAM)"
	@echo "make test   fmt + clippy + cargo test + playlist checks + player SDK unit tests + end-to-end player tests"
	@echo "make build  cargo build --workspace --all-targets"
	@echo "make deps   install missing Debian packages, web/node_modules and Python m3u8"
	@echo "make bench  part-latency benchmark"
	@echo "make bench-load  N blocked players on one core vs nginx, and memory per stream"
	@echo "make bench-bonding  SRTLA bonding benchmark (impaired links)"
	@echo "make bench-cues  cue API → player latency, cues/s sustained, placement error"

## deps: idempotent; does nothing when everything is already installed.
deps: deps-apt deps-node deps-python

deps-apt:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if ! command -v $(NODE) >/dev/null || ! command -v $(NPM) >/dev/null; then \
	  echo "deps: node/npm not found; installing Debian's nodejs and npm (node >= 20 is expected)"; \
	  missing="$$missing nodejs npm"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y$$missing; \
	fi

# npm ci whenever node_modules is missing or older than the lockfile (npm ci writes the hidden
# lockfile node_modules/.package-lock.json, which serves as the stamp).
deps-node: web/node_modules/.package-lock.json

web/node_modules/.package-lock.json: web/package-lock.json web/package.json | deps-apt
	cd web && $(NPM) ci --no-audit --no-fund
	touch $@

deps-python: | deps-apt
	@if ! $(PYTHON) -c 'import m3u8' 2>/dev/null; then \
	  echo "deps: installing m3u8==$(M3U8_VERSION)"; \
	  $(PYTHON) -m pip install --quiet "m3u8==$(M3U8_VERSION)" \
	    || $(PYTHON) -m pip install --quiet --break-system-packages "m3u8==$(M3U8_VERSION)"; \
	fi

build: deps-apt
	$(CARGO) build --workspace --all-targets

## run: the binary prints `dropline ready srt=… http=…` once its listeners are bound; the URL to
## open is printed right after it. Ctrl-C stops it.
run: deps build
	@http_port="$(HTTP_LISTEN)"; http_port="$${http_port##*:}"; \
	srt_port="$(SRT_LISTEN)"; srt_port="$${srt_port##*:}"; \
	$(DROPLINE) serve --srt-listen $(SRT_LISTEN) --http-listen $(HTTP_LISTEN) --test-source $(DEMO_STREAM) \
	  | while IFS= read -r line; do \
	      printf '%s\n' "$$line"; \
	      case "$$line" in "dropline ready "*) \
	        echo "open http://localhost:$$http_port/?stream=$(DEMO_STREAM)"; \
	        echo "publish to srt://HOST:$$srt_port?streamid=publish:NAME (MPEG-TS, H.264 + AAC)";; \
	      esac; \
	    done

test: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace
	$(PYTHON) $(GOLDEN_CHECK) fixtures/golden/playlist/*.m3u8
	$(MAKE) --no-print-directory fuzz-smoke FUZZ_SMOKE_SECONDS=$(TEST_FUZZ_SECONDS) $(TEST_FUZZ_FLAGS)
	$(NODE) --test overlay/sdk/test/
	$(MAKE) --no-print-directory e2e

## e2e: end-to-end tests only (expects `make build` to have run). One file at a time: each one
## starts its own gateway and browser, and latency measurements should not compete for 2 cores.
e2e: deps-node
	$(NODE) --test --test-concurrency=1 tests/e2e/

## bench: part-latency benchmark (about 4 min); `make bench BENCH_ARGS="--parts 100"` for a 30 s check.
bench: deps-apt
	$(CARGO) build --release -p gateway
	$(CARGO) run --release -p bench --bin part-latency -- $(BENCH_ARGS)

## bench-load: 1k and 10k blocked players (HTTP/1.1, HTTP/2) on a gateway pinned to core 0, the
## same parts from nginx, and RSS per stream (about 8 min; see bench/README.md), then what the
## kernel alone charges per answer (tcp-floor, 10 s). Needs 2 cores and an open-file hard limit
## above 10k. `make bench-load LOAD_ARGS="--clients 1000 --runs gateway"`.
bench-load: deps-apt
	$(CARGO) build --release -p gateway -p bench
	target/release/hls-load $(LOAD_ARGS)
	target/release/tcp-floor

## bench-bonding: SRTLA over impaired links (about 4 min; bench/README.md): throughput vs the sum of
## the links' rate caps, recovery after a link death, latency the bonding layer adds (p50/p99).
## `make bench-bonding BONDING_ARGS="--only latency"` for one measurement. Not part of `make test`.
bench-bonding: deps-apt
	$(CARGO) build --release -p bench --bin bonding-bench --bin srtla-send
	target/release/bonding-bench $(BONDING_ARGS)

## bench-cues: the commerce overlay's cues (about 1 min; bench/README.md): API accept → player
## event latency (p50/p95) next to the player's latency, placement error in media time, and cues/s
## sustained by N API clients. `make bench-cues CUE_ARGS="--clients 8 --seconds 20"`.
bench-cues: deps-apt
	$(CARGO) build --release -p gateway -p bench --bin dropline --bin cue-bench
	target/release/cue-bench $(CUE_ARGS)

## fuzz: libFuzzer targets in fuzz/ (cargo-fuzz; its -Z flags run on stable rustc through
## RUSTC_BOOTSTRAP=1, set for these commands only). Each target starts from its committed seeds
## (fuzz/seeds/<target>, from the table tests) plus what earlier runs found (fuzz/corpus/<target>,
## not committed); a crash lands in fuzz/artifacts/<target>/ and fails the run.
##   make fuzz-smoke                   every target for FUZZ_SMOKE_SECONDS (20) each
##   make fuzz FUZZ_SECONDS=600        every target for FUZZ_SECONDS (300) each
##   make fuzz FUZZ_TARGETS=segmenter  one target
FUZZ_TARGETS ?= directives object_name streamid ts_demux segmenter media_playlist cue_body webhooks srtla
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 20
# `make test` runs every target briefly, so a parser change that panics on its seeds fails CI.
TEST_FUZZ_SECONDS ?= 5
# The segmenter target still finds parts under 85 % of PART-TARGET (a SHOULD of rfc8216bis §4.4.4.9)
# for pathological variable-frame-rate input; CI checks the MUSTs, `make fuzz` checks everything.
TEST_FUZZ_FLAGS := DROPLINE_FUZZ_SEGMENTER=skip-85
# No sanitizer by default: every crate of ours forbids unsafe code, and without ASan the targets run
# 2-4x more inputs per second; `make fuzz FUZZ_SANITIZER=address` for ASan. (Switching rebuilds all.)
FUZZ_SANITIZER ?= none
FUZZ_CARGO := RUSTC_BOOTSTRAP=1 PATH="$(CURDIR)/target/tools/bin:$$PATH" $(CARGO) fuzz
# Under target/ so that CI's build cache keeps the fuzz build and cargo-fuzz itself.
FUZZ_DIRS := --fuzz-dir fuzz --target-dir target/fuzz
# Longer inputs for the op-sequence targets: a few hundred frames.
FUZZ_MAX_LEN_segmenter := 8192
FUZZ_MAX_LEN_media_playlist := 4096
FUZZ_MAX_LEN_srtla := 16384

.PHONY: fuzz fuzz-smoke fuzz-build deps-fuzz

deps-fuzz:
	@command -v cargo-fuzz >/dev/null || [ -x target/tools/bin/cargo-fuzz ] \
	  || $(CARGO) install --locked --root target/tools cargo-fuzz

fuzz-build: deps-fuzz
	$(FUZZ_CARGO) build $(FUZZ_DIRS) -s $(FUZZ_SANITIZER)

fuzz: fuzz-build
	@failed=""; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  max_len=$$(case $$t in segmenter) echo $(FUZZ_MAX_LEN_segmenter);; media_playlist) echo $(FUZZ_MAX_LEN_media_playlist);; srtla) echo $(FUZZ_MAX_LEN_srtla);; *) echo 4096;; esac); \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_CARGO) run $(FUZZ_DIRS) -s $(FUZZ_SANITIZER) $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=$$max_len -timeout=10 -print_final_stats=1 \
	    2>&1 | grep -vE '^(#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)[[:space:]]|INFO: |"|###### )' \
	    || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed (see fuzz/artifacts/)"; exit 1; fi; \
	echo "fuzz: all targets ran $(FUZZ_SECONDS) s without a failure"

fuzz-smoke:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

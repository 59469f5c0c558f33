# Tollgate's developer entry points. `make test` is the one command that runs every test; CI
# (.ci/run) calls it on a clean machine after installing the toolchain pieces it needs.
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1

E2E_VENV := tests/e2e/.venv

.PHONY: run test lint build wasm wasm-smoke web plugin collector e2e-deps e2e bench bench-envoy detection-report rules-doc help

help:
	@echo "make run               - Envoy with the filter on :10000 (mock provider unless UPSTREAM=...)"
	@echo "make test              - every test: fmt, clippy (native + wasm), wasm build, unit/integration tests, detection quality gates"
	@echo "make build             - release build of the tollgate CLI"
	@echo "make plugin            - the Envoy filter: target/$(WASM_TARGET)/release/tollgate_filter.wasm"
	@echo "make e2e               - end-to-end tests against a real Envoy"
	@echo "make wasm              - release build of the engine for $(WASM_TARGET)"
	@echo "make web               - the engine for browsers (target/web/pkg), embedded in the collector's console"
	@echo "make bench             - criterion benchmarks (see docs/benchmarks.md)"
	@echo "make bench-envoy       - Envoy with and without the filter, interleaved (see docs/benchmarks.md)"
	@echo "make detection-report  - detection metrics on eval/corpus (see docs/detection.md)"
	@echo "make rules-doc         - regenerate docs/rules.md from the rule tables"

# Envoy + the filter on :10000 against the bundled mock provider (UPSTREAM=https://... for a real one)
run:
	envoy/run.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p tollgate-engine -p tollgate-plugin --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy -p tollgate-web --target wasm32-unknown-unknown -- -D warnings

wasm:
	$(CARGO) build -p tollgate-engine --target $(WASM_TARGET) --release
	$(CARGO) build -p tollgate-engine --example wasm_size --target $(WASM_TARGET) --release

build:
	$(CARGO) build -p tollgate-cli --release

# the engine compiled for wasm must decide exactly as it does natively (run under wasmtime)
wasm-smoke: wasm
	$(CARGO) build -p tollgate-engine --example wasm_size --release
	python3 filter/engine/tests/wasm/run_wasm.py target/$(WASM_TARGET)/release/examples/wasm_size.wasm target/release/examples/wasm_size eval/corpus

# the Envoy filter
plugin:
	$(CARGO) build -p tollgate-plugin --target $(WASM_TARGET) --release

# a local environment with the pinned Envoy and SDK clients (Python and Node) for the end-to-end tests
e2e-deps:
	test -x $(E2E_VENV)/bin/python || python3 -m venv $(E2E_VENV)
	$(E2E_VENV)/bin/python -m pip install -q -r tests/e2e/requirements.txt
	cd tests/e2e/node && npm ci --no-audit --no-fund --loglevel=error

# real Envoy + the built filter + the mock provider, driven by the official SDKs
e2e: plugin collector build e2e-deps
	$(E2E_VENV)/bin/python -m pytest tests/e2e -q -p no:cacheprovider

# the engine for browsers: cargo + wasm-bindgen-cli pinned to the crate's version (filter/web/build.sh)
web:
	CARGO=$(CARGO) filter/web/build.sh

# the collector binary the end-to-end tests and `make run` start, with the console (and the
# playground's engine) embedded
collector: web
	$(CARGO) build -p tollgate-collector

test: lint wasm build wasm-smoke e2e
	$(CARGO) test --workspace
	python3 eval/score.py --tollgate target/release/tollgate --check > /dev/null

bench:
	$(CARGO) bench -p tollgate-engine --bench analysis

# Envoy with and without the filter in the same run (taskset: Envoy on CPU 0, load on CPU 1), in
# both request-hold modes (ADR 0013);
# BENCH_ARGS="--pairs 5 --millis 3000 --plugin-config cfg.json" to vary it
bench-envoy: plugin e2e-deps
	$(CARGO) build -p tollgate-loadgen --release
	$(E2E_VENV)/bin/python tests/bench/envoy_compare.py --mode default $(BENCH_ARGS)
	$(E2E_VENV)/bin/python tests/bench/envoy_compare.py --mode strict $(BENCH_ARGS)

rules-doc: build
	python3 docs/render_rules.py target/release/tollgate

detection-report: build
	python3 eval/score.py --tollgate target/release/tollgate

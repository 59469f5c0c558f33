# Tollgate's developer entry points. `make test` is the one command that runs every test; CI
# (.ci/run) calls it on a clean machine after installing the toolchain pieces it needs.
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1

.PHONY: test lint build wasm bench detection-report help

help:
	@echo "make test              - every test: fmt, clippy (native + wasm), wasm build, unit/integration tests, detection quality gates"
	@echo "make build             - release build of the tollgate CLI"
	@echo "make wasm              - release build of the engine for $(WASM_TARGET)"
	@echo "make bench             - criterion benchmarks (see docs/benchmarks.md)"
	@echo "make detection-report  - detection metrics on eval/corpus (see docs/detection.md)"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p tollgate-engine --target $(WASM_TARGET) -- -D warnings

wasm:
	$(CARGO) build -p tollgate-engine --target $(WASM_TARGET) --release

build:
	$(CARGO) build -p tollgate-cli --release

test: lint wasm build
	$(CARGO) test --workspace
	python3 eval/score.py --tollgate target/release/tollgate --check > /dev/null

bench:
	$(CARGO) bench -p tollgate-engine --bench analysis

detection-report: build
	python3 eval/score.py --tollgate target/release/tollgate

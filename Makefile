# Tollgate's developer entry points. `make test` is the one command that runs every test; CI
# (.ci/run) calls it on a clean machine after installing the toolchain pieces it needs.
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1

.PHONY: test lint build wasm wasm-smoke bench detection-report help

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
	$(CARGO) build -p tollgate-engine --example wasm_size --target $(WASM_TARGET) --release

build:
	$(CARGO) build -p tollgate-cli --release

# the engine compiled for wasm must decide exactly as it does natively (run under wasmtime)
wasm-smoke: wasm
	$(CARGO) build -p tollgate-engine --example wasm_size --release
	python3 filter/engine/tests/wasm/run_wasm.py target/$(WASM_TARGET)/release/examples/wasm_size.wasm target/release/examples/wasm_size

test: lint wasm build wasm-smoke
	$(CARGO) test --workspace
	python3 eval/score.py --tollgate target/release/tollgate --check > /dev/null

bench:
	$(CARGO) bench -p tollgate-engine --bench analysis

detection-report: build
	python3 eval/score.py --tollgate target/release/tollgate

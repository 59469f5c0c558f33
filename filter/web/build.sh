#!/usr/bin/env bash
# Builds the engine for browsers (`make web`): the tollgate-web crate for wasm32-unknown-unknown,
# then wasm-bindgen-cli of exactly the wasm-bindgen version in Cargo.lock writes
# $TARGET/web/pkg/tollgate_web{.js,_bg.wasm}, which the collector embeds for the console's
# playground. No bundler, no Node.js.
# wasm-bindgen-cli is installed from crates.io on first use into a per-version folder outside
# the checkout (TOLLGATE_TOOLS, default ~/.cache/tollgate/tools), so fresh clones on the same
# machine, CI's included, reuse it. `build.sh --install-only` installs it and stops (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO=${CARGO:-cargo}
TARGET=${CARGO_TARGET_DIR:-target}
version=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/[^0-9.]/, "", $0); print; exit }' Cargo.lock)
[ -n "$version" ] || { echo "wasm-bindgen is not in Cargo.lock" >&2; exit 1; }
root=${TOLLGATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/tools}/wasm-bindgen-$version
bin=$root/bin/wasm-bindgen
if [ "$("$bin" --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
  echo "installing wasm-bindgen-cli $version into $root (once)" >&2
  # --locked first; a registry without the lock file's exact dependency versions gets the newest
  # compatible ones
  "$CARGO" install -q --root "$root" wasm-bindgen-cli --version "=$version" --locked 2>/dev/null \
    || "$CARGO" install -q --root "$root" wasm-bindgen-cli --version "=$version"
fi
[ "${1:-}" = "--install-only" ] && exit 0
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
fi
"$CARGO" build -p tollgate-web --target wasm32-unknown-unknown --release
"$bin" --target web --no-typescript --out-dir "$TARGET/web/pkg" \
  "$TARGET/wasm32-unknown-unknown/release/tollgate_web.wasm"
ls -l "$TARGET/web/pkg"

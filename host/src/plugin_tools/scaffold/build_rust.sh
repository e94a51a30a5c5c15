#!/usr/bin/env bash
# Builds {name}.wasm (exit 3 when the Rust toolchain or its wasm32-wasip2 target is missing).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found — install Rust with rustup (https://rustup.rs), then: rustup target add wasm32-wasip2" >&2
    exit 3
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "error: the wasm32-wasip2 target is missing — install it with: rustup target add wasm32-wasip2" >&2
    exit 3
fi
# This project's own target folder, whatever the caller's environment says.
export CARGO_TARGET_DIR="$PWD/target"
unset CARGO_ENCODED_RUSTFLAGS RUSTFLAGS CARGO_BUILD_TARGET
cargo build --release --target wasm32-wasip2 --quiet
cp target/wasm32-wasip2/release/{name}.wasm {name}.wasm
echo "built {name}.wasm — run it with: perfhost run --plugin {name}.wasm"

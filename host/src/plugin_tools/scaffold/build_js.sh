#!/usr/bin/env bash
# Builds {name}.wasm from {name}.js with jco's QuickJS backend (exit 3 when jco is missing).
set -euo pipefail
cd "$(dirname "$0")"
tools="${PERFHOST_TOOLS:-${HOME:-/root}/.cache/perfhost-tools}"
export PATH="$tools/npm/node_modules/.bin:$PATH"
if ! command -v jco >/dev/null 2>&1; then
    echo "error: jco not found — install it with: npm install @bytecodealliance/jco@1.35.0" >&2
    exit 3
fi
jco componentize app.js --wit ./wit --world-name plugin-sync --backend qjs \
    --backend-qjs-disable-async -o {name}.wasm >/dev/null
echo "built {name}.wasm — run it with: perfhost run --plugin {name}.wasm"

#!/usr/bin/env bash
# Builds {name}.wasm from {name}.py with componentize-py (exit 3 when it is missing).
set -euo pipefail
cd "$(dirname "$0")"
tools="${PERFHOST_TOOLS:-${HOME:-/root}/.cache/perfhost-tools}"
export PATH="$tools/venv/bin:$PATH"
if ! command -v componentize-py >/dev/null 2>&1; then
    echo "error: componentize-py not found — install it with: pip install componentize-py==0.25.1" >&2
    exit 3
fi
componentize-py -d wit -w plugin componentize app -o {name}.wasm >/dev/null
echo "built {name}.wasm — run it with: perfhost run --plugin {name}.wasm"

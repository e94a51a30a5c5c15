#!/usr/bin/env bash
# Builds {name}.wasm from {name}.js (exit 3 when its tool is missing). The default function picks
# the world: a plain one (k6's usual form) is built for the sync world with jco's QuickJS
# backend, one instance per user; `export default async` for the async world with
# componentize-qjs, up to 500 users per instance. app.js, the entry, is written here each time.
set -euo pipefail
cd "$(dirname "$0")"
tools="${PERFHOST_TOOLS:-${HOME:-/root}/.cache/perfhost-tools}"
export PATH="$tools/bin:$tools/npm/node_modules/.bin:$PATH"
if grep -Eq '^export[[:space:]]+default[[:space:]]+async\b' {name}.js; then
    if ! command -v componentize-qjs >/dev/null 2>&1; then
        echo "error: componentize-qjs not found — install it with: cargo install componentize-qjs-cli --version 0.5.0" >&2
        exit 3
    fi
    cat >app.js <<'JS'
import * as host from "perfhost:plugin/host@0.2.4";
import * as script from "./{name}.js";
import { asyncPlugin } from "./perfhost.js";

export const behaviour = asyncPlugin(script, host);
JS
    componentize-qjs --wit ./wit --world plugin --js app.js -o {name}.wasm >/dev/null
else
    if ! command -v jco >/dev/null 2>&1; then
        echo "error: jco not found — install it with: npm install @bytecodealliance/jco@1.35.0" >&2
        exit 3
    fi
    cat >app.js <<'JS'
import * as host from "perfhost:plugin/host-sync@0.2.4";
import * as script from "./{name}.js";
import { plugin } from "./perfhost.js";

export const behaviourSync = plugin(script, host);
JS
    jco componentize app.js --wit ./wit --world-name plugin-sync --backend qjs \
        --backend-qjs-disable-async -o {name}.wasm >/dev/null
fi
echo "built {name}.wasm — run it with: perfhost run --plugin {name}.wasm"

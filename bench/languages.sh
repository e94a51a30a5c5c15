#!/usr/bin/env bash
# Cost per plugin language: component size, first compile, cached load, idle RSS per user at
# 100 and 1,000 users, and host CPU per request at 100 users (no wait, built-in demo target),
# for the Rust BurstUser and the examples built by plugins/examples/build.sh.
#   bash bench/languages.sh [PERFHOST]      (default: target/release/perfhost)
# Prints two Markdown tables. Loads are the median of 3; CPU and RSS come from
# `perfhost plugin bench` (10 s at 100 users, then 1,000 users instantiated); PAIRS=N sets the
# number of Rust/language pairs of the second table (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
perfhost="${1:-target/release/perfhost}"
examples=plugins/target/examples
plugins=(burst_user "$examples/burst_user_py.wasm" "$examples/burst_user_qjs.wasm"
    "$examples/burst_user_sm.wasm" "$examples/burst_user_c.wasm")
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT

load_ms() { # PLUGIN → load time in ms from `plugin inspect --json`
    PERFHOST_CACHE_DIR="$cache" "$perfhost" plugin inspect --json "$1" |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["load_ms"]))'
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
field() { # TEXT KIND USERS → CPU µs/req of that row
    awk -v k="$2" -v u="$3" '$1 == k && $2 == u { print $NF }' <<<"$1"
}
idle() { sed -n 's/.*idle RSS per WASM user.*: \([0-9.]*\) KiB/\1/p' <<<"$1"; }

echo "| plugin | world | size | first compile | cached load | RSS/user at 100 | RSS/user at 1,000 | CPU µs/req at 100 |"
echo "|---|---|---|---|---|---|---|---|"
for p in "${plugins[@]}"; do
    [ "$p" = burst_user ] || [ -f "$p" ] || { echo "missing $p: run plugins/examples/build.sh" >&2; exit 3; }
    rm -rf "${cache:?}"/*
    first=$(load_ms "$p")
    cached=$(median3 "$(load_ms "$p")" "$(load_ms "$p")" "$(load_ms "$p")")
    info=$(PERFHOST_CACHE_DIR="$cache" "$perfhost" plugin inspect --json "$p")
    world=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["world"])' "$info")
    size=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["size_bytes"])' "$info")
    a=$(PERFHOST_CACHE_DIR="$cache" "$perfhost" plugin bench "$p" --users 100 --idle-users 100 --duration 10s 2>&1)
    b=$(PERFHOST_CACHE_DIR="$cache" "$perfhost" plugin bench "$p" --users 1000 --idle-users 1000 --duration 3s 2>&1)
    printf '| %s | %s | %s KB | %s ms | %s ms | %s KiB | %s KiB | %s |\n' "$(basename "$p" .wasm)" \
        "$world" "$((size / 1000))" "$first" "$cached" "$(idle "$a")" "$(idle "$b")" "$(field "$a" wasm 100)"
done

# Paired CPU per request against the Rust BurstUser: Rust, language, Rust, language, … at 100
# users, 5 s each; the median of the per-pair ratios (min–max) holds on a noisy machine.
pairs="${PAIRS:-3}"
cpu() { field "$(PERFHOST_CACHE_DIR="$cache" "$perfhost" plugin bench "$1" --users 100 --idle-users 1 --duration 5s 2>&1)" wasm 100; }
echo
echo "| plugin | CPU µs/req (median of $pairs) | Rust's in the same pairs | ratio to Rust, median (min–max) |"
echo "|---|---|---|---|"
for p in "${plugins[@]:1}"; do
    ratios=() ours=() rusts=()
    for _ in $(seq "$pairs"); do
        r=$(cpu burst_user); o=$(cpu "$p")
        rusts+=("$r"); ours+=("$o")
        ratios+=("$(python3 -c "print(f'{$o / $r:.2f}')")")
    done
    med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    lo=$(printf '%s\n' "${ratios[@]}" | sort -n | head -1); hi=$(printf '%s\n' "${ratios[@]}" | sort -n | tail -1)
    printf '| %s | %s | %s | %s (%s–%s) |\n' "$(basename "$p" .wasm)" "$(med "${ours[@]}")" \
        "$(med "${rusts[@]}")" "$(med "${ratios[@]}")" "$lo" "$hi"
done

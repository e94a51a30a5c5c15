#!/usr/bin/env bash
# usage: bash bench/request_cost.sh [--help] [BIN [WASM]]
#
# Where perfhost's cost per request goes, for the plain GET of the generator benchmarks
# (plugins/examples/plain_get against nginx on loopback). A benchmark, not a test: results go to
# docs/benchmarks.md ("Per-request cost"). Three measurements, each printed as a table:
#
#   allocs        valgrind's DHAT (a counting allocator) at N and 2N requests: allocations and
#                 bytes per request (the marginal: start-up cancels) and the sites that make them.
#                 DHAT sees glibc's malloc only: give it a binary built with
#                 --no-default-features (the default links jemalloc; the step says so).
#                 Calls made on a wasmtime fiber stack (the guest's host calls) cannot be unwound
#                 by valgrind and are counted together as "(no frames …)".
#   instructions  callgrind at N and 2N requests: user-space instructions per request by crate
#                 and the top functions (self cost), and how often per request the guest is
#                 entered, host functions are called, tasks are woken, the clock is read and
#                 malloc is called. Independent of how busy the machine is.
#   native        `perfhost plugin bench http_get` against the same nginx, pinned: the plain GET
#                 as WASM users and as native Rust users on the same client and statistics
#                 (CPU µs per request of each), at 100 and 1,000 users (NATIVE_USERS),
#                 NATIVE_SECONDS (10) per measurement, and oha for as long at each user count
#                 (if installed: `cargo install oha --locked`), alternating NATIVE_ROUNDS (3)
#                 times: the medians and the median of each round's ratios.
#   memory        (only when asked for: STEPS=memory) DHAT of `auditor_user` against the demo
#                 server at MEM_USERS (1000) and twice as many users for MEM_SECONDS (30): the
#                 heap per user at its peak, by the site that allocates it (marginal between
#                 the two runs). glibc's malloc only, as allocs.
#   profile       perf with the CPU clock and DWARF call graphs, REQUESTS requests, perfhost
#                 pinned to GEN_CPU: self time by part of the program (kernel, wasmtime, the
#                 allocator, hyper, tokio, the guest …), top symbols, the kernel's call paths.
#
# BIN defaults to target/release/perfhost, WASM to this checkout's plain_get.wasm.
# Environment: STEPS ("allocs instructions native profile"), USERS (100), N (10000), REQUESTS
# (200000), NATIVE_USERS (100,1000), NATIVE_SECONDS (10), NATIVE_ROUNDS (3), MEM_USERS (1000),
# MEM_SECONDS (30), SERVER_CPU (1), GEN_CPU (0), OUT_DIR (raw outputs; default a new /tmp folder).
# Needs: nginx, valgrind, perf (Debian: apt-get install -y nginx valgrind linux-perf), taskset,
# python3. Load goes to 127.0.0.1 only; every run is bounded by its request count and `timeout`.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "error: $*" >&2; exit 2; }
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac

BIN=$(realpath "${1:-$REPO/target/release/perfhost}")
WASM=$(realpath "${2:-$REPO/target/wasm-plugins/wasm32-wasip2/release/plain_get.wasm}")
STEPS_GIVEN=${STEPS:-}
STEPS=${STEPS:-"allocs instructions native profile"}
NATIVE_USERS=${NATIVE_USERS:-100,1000}
NATIVE_SECONDS=${NATIVE_SECONDS:-10}
NATIVE_ROUNDS=${NATIVE_ROUNDS:-3}
MEM_USERS=${MEM_USERS:-1000}
MEM_SECONDS=${MEM_SECONDS:-30}
USERS=${USERS:-100}
N=${N:-10000}
REQUESTS=${REQUESTS:-200000}
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
[ -d "$HOME/.cargo/bin" ] && PATH=$PATH:$HOME/.cargo/bin # where cargo install puts oha
[ -x "$BIN" ] || die "no perfhost binary at $BIN (cargo build --release -j 2)"
[ -f "$WASM" ] || die "no plugin at $WASM (cargo build --release -j 2 builds plain_get)"
for tool in nginx python3 taskset; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
for step in $STEPS; do
  case $step in
    allocs | instructions | memory) command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install -y valgrind)" ;;&
    allocs | memory)
      # DHAT sees glibc's malloc only: jemalloc's and mimalloc's allocations would not be counted.
      if [ "$(nm "$BIN" 2>/dev/null | grep -c -E ' (_rjem_malloc|mi_malloc)$')" != 0 ]; then
        why="the $step step counts glibc's malloc, and $BIN links jemalloc or mimalloc — build one with glibc's: cargo build --release -j 2 --no-default-features && cp target/release/perfhost /tmp/perfhost-glibc, then: STEPS=$step bash bench/request_cost.sh /tmp/perfhost-glibc"
        [ -n "$STEPS_GIVEN" ] && die "$why"
        echo "note: skipping $step: $why" >&2
        STEPS=${STEPS/$step /}
      fi
      ;;
    profile) command -v perf >/dev/null || die "perf is not installed (apt-get install -y linux-perf)" ;;
    native) ;;
    *) die "unknown step '$step' (allocs, instructions, native, profile, memory)" ;;
  esac
done

hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard"
NOFILE=$(ulimit -n)
OUT=${OUT_DIR:-$(mktemp -d /tmp/perfhost-request-cost.XXXXXX)}
mkdir -p "$OUT"
chmod 755 "$OUT"
# shellcheck source=bench/nginx_target.sh
. "$REPO/bench/nginx_target.sh"
DEMO_PID=""
cleanup() {
  stop_nginx
  [ -z "$DEMO_PID" ] || kill "$DEMO_PID" 2>/dev/null || true
}
trap cleanup EXIT
start_nginx

# run NAME REQUESTS [WRAPPER…] — perfhost's plain GET, bounded by its count and by `timeout`.
run() {
  local name=$1 n=$2
  shift 2
  timeout 1800 taskset -c "$GEN_CPU" "$@" "$BIN" run -H "$URL" --plugin "$WASM" -u "$USERS" \
    -r "$((USERS > 1000 ? USERS : 1000))" -n "$n" --no-report --json-file "$OUT/$name.json" \
    --request-timeout 120s --stop-timeout 120s >"$OUT/$name.out" 2>&1 || die "$name failed: see $OUT/$name.out"
  python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['total']; print(f'  {sys.argv[2]}: {t[\"requests\"]} requests, {t[\"failures\"]} failures')" "$OUT/$name.json" "$name"
}

echo "# perfhost $BIN, plugin $WASM, $USERS users; raw output in $OUT"
# A first run fills the compiled-plugin cache (valgrind's emulated CPU has a cache entry of its own).
run warmup 2000
for step in $STEPS; do
  case $step in
    allocs)
      echo "## allocations (DHAT), $N and $((2 * N)) requests"
      run dhat-warmup 500 valgrind --tool=dhat --dhat-out-file=/dev/null
      for n in "$N" "$((2 * N))"; do
        run "dhat-$n" "$n" valgrind --tool=dhat --dhat-out-file="$OUT/dhat-$n.dhat"
      done
      python3 "$REPO/bench/request_cost.py" allocs "$OUT/dhat-$N.dhat" "$OUT/dhat-$((2 * N)).dhat" "$N"
      ;;
    instructions)
      echo "## instructions (callgrind), $N and $((2 * N)) requests"
      for n in "$N" "$((2 * N))"; do
        run "cg-$n" "$n" valgrind --tool=callgrind --callgrind-out-file="$OUT/cg-$n.callgrind"
        callgrind_annotate --auto=no --threshold=100 --inclusive=no "$OUT/cg-$n.callgrind" >"$OUT/cg-$n.txt"
      done
      python3 "$REPO/bench/request_cost.py" instructions "$OUT/cg-$N.txt" "$OUT/cg-$((2 * N)).txt" "$N"
      python3 "$REPO/bench/request_cost.py" calls "$OUT/cg-$N.callgrind" "$OUT/cg-$((2 * N)).callgrind" "$N"
      ;;
    native)
      echo "## WASM and native users, plain GET (perfhost plugin bench http_get), ${NATIVE_SECONDS} s each; oha beside"
      for round in $(seq "$NATIVE_ROUNDS"); do
        timeout $((NATIVE_SECONDS * 8 + 120)) taskset -c "$GEN_CPU" "$BIN" plugin bench http_get -H "$URL" \
          --users "$NATIVE_USERS" --duration "${NATIVE_SECONDS}s" --idle-users 100 >"$OUT/native-$round.out" ||
          die "plugin bench failed: see $OUT/native-$round.out"
        command -v oha >/dev/null && [ -x /usr/bin/time ] || continue
        for users in ${NATIVE_USERS//,/ }; do
          timeout $((NATIVE_SECONDS + 60)) taskset -c "$GEN_CPU" /usr/bin/time -f "%U %S" -o "$OUT/oha-$round-$users.time" \
            oha -z "${NATIVE_SECONDS}s" -c "$users" --no-tui --output-format json "$URL/" >"$OUT/oha-$round-$users.json" ||
            die "oha failed: see $OUT/oha-$round-$users.json"
        done
      done
      python3 "$REPO/bench/request_cost.py" native "$OUT" "$NATIVE_ROUNDS"
      ;;
    memory)
      echo "## heap per user at its peak (DHAT): auditor_user on the demo server, $MEM_USERS and $((2 * MEM_USERS)) users, ${MEM_SECONDS} s"
      start_demo_server
      for users in "$MEM_USERS" "$((2 * MEM_USERS))"; do
        # Exit 1 (a request failed: valgrind is slow) still measured the heap; anything else did not.
        timeout 1800 taskset -c "$GEN_CPU" valgrind --tool=dhat --dhat-out-file="$OUT/mem-$users.dhat" \
          "$BIN" run -H "$DEMO_URL" --plugin auditor_user -u "$users" -r "$((users / 5))" -t "${MEM_SECONDS}s" \
          --no-report --json-file "$OUT/mem-$users.json" >"$OUT/mem-$users.out" 2>&1 ||
          [ $? = 1 ] || die "the $users-user run failed: see $OUT/mem-$users.out"
      done
      kill "$DEMO_PID" 2>/dev/null || true
      DEMO_PID=""
      python3 "$REPO/bench/request_cost.py" memory "$OUT/mem-$MEM_USERS.dhat" "$OUT/mem-$((2 * MEM_USERS)).dhat" "$MEM_USERS"
      ;;
    profile)
      echo "## CPU profile (perf, CPU clock), $REQUESTS requests"
      run perf "$REQUESTS" perf record -F 1500 -m 64M --call-graph dwarf,4096 -o "$OUT/perf.data"
      perf script -i "$OUT/perf.data" -F ip,sym,dso --no-inline 2>/dev/null >"$OUT/perf.txt"
      python3 "$REPO/bench/request_cost.py" profile "$OUT/perf.txt"
      ;;
  esac
done

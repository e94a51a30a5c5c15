#!/usr/bin/env bash
# Measures the shared-instance prototype (this folder) beside perfhost as it is, against the
# same target: host CPU per request with no wait, and marginal RSS per user with 1–3 s waits.
# A benchmark, not a test; results go to docs/benchmarks.md ("Shared-instance prototype").
#
#   bash bench/shared_instance/run.sh          # ~3 min after the builds
#
# Target: `perfhost demo-server --threads 1` pinned to core 1, path /health. Generators pinned
# to core 0, one at a time:
#   CPU:    the prototype (all users in one instance) and `perfhost run --plugin http_get
#           --config-value path=/health` (one instance per user), 10 s at each of CPU_USERS;
#           CPU = user+sys from /usr/bin/time / requests.
#   Memory: the prototype with 1–3 s waits and `perfhost run --plugin two_tasks.wasm`
#           (plugins/examples/two_tasks: GETs with 1–3 s waits) at each of MEM_USERS, VmRSS
#           two seconds before the end of a 20 s run; marginal = ΔRSS / Δusers.
# Builds the prototype with its own target folder (PROTO_TARGET, default
# ~/.cache/perfhost-shared-instance-target): it needs wasmtime's component-model-async feature,
# a clean wasmtime build of 5–9 min the first time.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${PERFHOST_BIN:-target/release/perfhost}
PROTO_TARGET=${PROTO_TARGET:-$HOME/.cache/perfhost-shared-instance-target}
CPU_USERS=${CPU_USERS:-"100 1000 5000"}
MEM_USERS=${MEM_USERS:-"1000 10000"}
TWO_TASKS=target/wasm-plugins/wasm32-wasip2/release/two_tasks.wasm
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time not found — apt-get install -y time" >&2; exit 2; }
if [ ! -x "$BIN" ] || [ ! -f "$TWO_TASKS" ]; then cargo build --release -j 2; fi
(cd bench/shared_instance/host && CARGO_TARGET_DIR=$PROTO_TARGET cargo build --release -j 2 -q)
(cd bench/shared_instance/guest && CARGO_TARGET_DIR=$PROTO_TARGET cargo build --release -q --target wasm32-wasip2)
PROTO=$PROTO_TARGET/release/shared-instance-host
GUEST=$PROTO_TARGET/wasm32-wasip2/release/shared_instance_guest.wasm

hard=$(ulimit -Hn); [ "$hard" = unlimited ] && hard=1048576; ulimit -n "$hard"
OUT=$(mktemp -d /tmp/perfhost-shared.XXXXXX)
taskset -c 1 "$BIN" demo-server --bind 127.0.0.1:0 --threads 1 >"$OUT/demo.out" 2>&1 &
DEMO=$!
trap 'kill $DEMO 2>/dev/null || true' EXIT
url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^perfhost demo-server listening on //p' "$OUT/demo.out"); [ -n "$url" ] && break; sleep 0.05
done
[ -n "$url" ] || { cat "$OUT/demo.out" >&2; echo "error: demo-server did not start" >&2; exit 2; }
authority=${url#http://}
echo "# target: perfhost demo-server on core 1 ($url/health); generators on core 0; raw output in $OUT"

cpu_of() { awk '{printf "%.2f", $1 + $2}' "$1"; }
per_request() { python3 -c "print(f'{$1 * 1e6 / max($2, 1):.1f}')"; }

echo
echo "generator                      users  wait    requests   CPU s  µs/request"
for users in $CPU_USERS; do
  /usr/bin/time -f "%U %S" -o "$OUT/proto-$users.time" taskset -c 0 \
    "$PROTO" "$GUEST" "$authority" /health "$users" 10 0 >"$OUT/proto-$users.out"
  n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$OUT/proto-$users.out"); c=$(cpu_of "$OUT/proto-$users.time")
  printf "%-28s %7s %5s %11s %7s %11s\n" "prototype (one instance)" "$users" 0 "$n" "$c" "$(per_request "$c" "$n")"
  /usr/bin/time -f "%U %S" -o "$OUT/perfhost-$users.time" taskset -c 0 "$BIN" run -H "$url" \
    --plugin http_get --config-value path=/health -u "$users" -r "$users" -t 10s --no-report \
    --json-file "$OUT/perfhost-$users.json" >/dev/null 2>&1
  n=$(python3 -c "import json; print(json.load(open('$OUT/perfhost-$users.json'))['total']['requests'])")
  c=$(cpu_of "$OUT/perfhost-$users.time")
  printf "%-28s %7s %5s %11s %7s %11s\n" "perfhost (instance per user)" "$users" 0 "$n" "$c" "$(per_request "$c" "$n")"
done

echo
echo "generator                      users  wait     VmRSS KiB"
declare -A first last
for users in $MEM_USERS; do
  rss=$(taskset -c 0 "$PROTO" "$GUEST" "$authority" /health "$users" 20 2000 | sed -n 's/.*rss_kib=\([0-9]*\).*/\1/p')
  printf "%-28s %7s %5s %13s\n" "prototype (one instance)" "$users" 1-3s "$rss"
  first[proto]=${first[proto]:-$users:$rss}; last[proto]=$users:$rss
  taskset -c 0 "$BIN" run -H "$url" --plugin "$TWO_TASKS" -u "$users" -r "$users" -t 20s --no-report >/dev/null 2>&1 &
  pid=$!
  sleep 18
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  wait "$pid" || true
  printf "%-28s %7s %5s %13s\n" "perfhost two_tasks" "$users" 1-3s "$rss"
  first[perfhost]=${first[perfhost]:-$users:$rss}; last[perfhost]=$users:$rss
done
for g in proto perfhost; do
  IFS=: read -r u1 r1 <<<"${first[$g]}"; IFS=: read -r u2 r2 <<<"${last[$g]}"
  if [ "$u1" != "$u2" ]; then
    echo "marginal RSS, $g: ($r2 - $r1) KiB / ($u2 - $u1) users = $(python3 -c "print(f'{($r2 - $r1) / ($u2 - $u1):.1f}')") KiB/user"
  fi
done

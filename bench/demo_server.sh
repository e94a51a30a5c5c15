#!/usr/bin/env bash
# Benchmarks `perfhost demo-server` POST /verify on ONE core with wrk, loopback only.
#
#   bench/demo_server.sh                 # server on CPU 1 (--threads 1), wrk on CPU 0
#   bench/demo_server.sh --latency 5ms   # extra arguments go to demo-server
#
# Environment: SERVER_CPU (1), WRK_CPU (0), CONNECTIONS (50), DURATION (10s), WARMUP (2s),
# PERFHOST_BIN (target/release/perfhost). Needs wrk (Debian: apt-get install -y wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${PERFHOST_BIN:-target/release/perfhost}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
CONNECTIONS=${CONNECTIONS:-50}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}

command -v wrk >/dev/null || { echo "error: wrk not found — install it with: apt-get install -y wrk" >&2; exit 2; }
command -v taskset >/dev/null || { echo "error: taskset not found — install util-linux" >&2; exit 2; }
[ -x "$BIN" ] || cargo build --release -j 2

out=$(mktemp)
taskset -c "$SERVER_CPU" "$BIN" demo-server --bind 127.0.0.1:0 --threads 1 "$@" >"$out" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$out"' EXIT

url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^perfhost demo-server listening on //p' "$out")
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { echo "error: demo-server did not start" >&2; exit 3; }

echo "# server: taskset -c $SERVER_CPU $BIN demo-server --bind 127.0.0.1:0 --threads 1 $*"
echo "# load:   taskset -c $WRK_CPU wrk -t1 -c$CONNECTIONS -d$DURATION --latency -s bench/verify.lua $url/verify"
taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" -s bench/verify.lua "$url/verify" >/dev/null
taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/verify.lua "$url/verify"
rss=$(awk '/VmRSS/ {print $2, $3}' "/proc/$server/status")
echo "# server RSS after the run: $rss"

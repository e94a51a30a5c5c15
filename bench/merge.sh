#!/usr/bin/env bash
# The cost of `perfhost merge`: SHARDS shard results of a DURATION-second run (one interval
# histogram per second and endpoint each, as `perfhost local` writes them) merged REPS times;
# prints the median and range of wall time and the peak memory of the merge. A benchmark,
# not a test: results go to docs/benchmarks.md ("Merging shards").
#
#   bash bench/merge.sh                     # 8 shards of a 60 s run, 5 merges
#   SHARDS=32 DURATION=120 bash bench/merge.sh
#
# Environment: SHARDS (8), DURATION (60), USERS (4 per shard), REPS (5), PERFHOST_BIN
# (target/release/perfhost). Needs python3 and GNU time (/usr/bin/time). Loopback only: the
# shards load the built-in demo server.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${PERFHOST_BIN:-target/release/perfhost}
SHARDS=${SHARDS:-8}
DURATION=${DURATION:-60}
USERS=${USERS:-4}
REPS=${REPS:-5}
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time not found — apt-get install -y time" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release -j 2 >&2
BIN=$(realpath "$BIN")

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cd "$OUT"
echo "Running $SHARDS shards for ${DURATION}s (burst, auditor and heavy users) ..." >&2
"$BIN" local --shards "$SHARDS" --start-delay 5s -u $((USERS * SHARDS)) -r 100 \
    -t "${DURATION}s" --seed 1 >/dev/null 2>"$OUT/local.log" || { cat "$OUT/local.log" >&2; exit 1; }
RUN=$(ls -d reports/*_local_*)
FILES=("$RUN"/shard-*.json)
BYTES=$(cat "${FILES[@]}" | wc -c)

for i in $(seq "$REPS"); do
    /usr/bin/time -f "%e %M" -o "$OUT/time.$i" \
        "$BIN" merge "${FILES[@]}" --json-file "$OUT/merged.json" --hlog "$OUT/merged.hlog" \
        --html "$OUT/merged.html" --csv "$OUT/merged" >/dev/null 2>&1
done
python3 - "$OUT" "$REPS" "$SHARDS" "$DURATION" "$BYTES" <<'PY'
import json, statistics, sys
out, reps, shards, duration, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
runs = [open(f"{out}/time.{i}").read().split() for i in range(1, reps + 1)]
wall = [float(r[0]) * 1000 for r in runs]
rss = [int(r[1]) / 1024 for r in runs]
merged = json.load(open(f"{out}/merged.json"))
rows = len(merged["stats"])
print("| shards | run | rows | history points | shard files | merge + JSON + hlog + HTML + CSV (median, min–max) | peak RSS |")
print("|---|---|---|---|---|---|---|")
print(f"| {shards} | {duration} s | {rows} | {len(merged['history'])} | {size / 2**20:.1f} MiB "
      f"| {statistics.median(wall):.0f} ms ({min(wall):.0f}–{max(wall):.0f}) | {statistics.median(rss):.0f} MiB |")
PY

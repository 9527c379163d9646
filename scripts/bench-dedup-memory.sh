#!/usr/bin/env bash
# Resident memory of weir with a million remembered message ids against none (docs/benchmarks.md,
# "Failure handling (issue 3)"). For each run and each case (IDS ids, then 0):
#
#   1. start `weir serve` (the quickstart demo, its data in a fresh ./weir-data) on 127.0.0.1,
#   2. post IDS distinct orders in NDJSON batches of 500 (none for the empty case) and wait until
#      every one is in SQLite and delivered to the demo partner, then stop weir (SIGTERM),
#   3. start it again on the same data dir and read VmRSS from /proc/PID/status once it answers
#      and has been idle for SETTLE seconds ("startup"),
#   4. post a small steady load (open loop, LOAD_RATE req/s for LOAD_SECS s), wait for it to
#      drain, idle SETTLE seconds and read VmRSS again ("steady").
#
# Alongside VmRSS it records VmHWM, RssAnon/RssFile and the Go heap figures (from the admin
# listener's /debug/pprof/heap?debug=1), which tell the Go heap from Pebble's block cache and
# memtables (allocated outside the Go heap). Everything listens on 127.0.0.1 only; the script
# kills only the processes it started and bounds every wait.
#
# Usage: scripts/bench-dedup-memory.sh [RUNS] [IDS]     (defaults 3 and 1000000; ~5 min a run)
# Output: a table per run on stdout, bench-results/dedup-memory.tsv, and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
ids=${2:-1000000}
settle=${SETTLE:-5}
load_rate=${LOAD_RATE:-200}
load_secs=${LOAD_SECS:-20}
drain_timeout=${DRAIN_TIMEOUT:-1200} # seconds to wait for IDS messages to drain

work=$(mktemp -d "${TMPDIR:-/tmp}/weir-dedup-mem.XXXXXX")
bin=$work/weir
out=bench-results
mkdir -p "$out"
tsv=$out/dedup-memory.tsv
pid=""

cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$bin" ./cmd/weir
echo "weir $(git log -1 --format=%h 2>/dev/null || echo '?'), $(nproc) cores, $(date -u +%FT%TZ)" >&2

# start DIR: runs weir serve in DIR (its data in DIR/weir-data), sets pid, ingest and admin.
start() {
  local dir=$1 log=$1/serve.log
  mkdir -p "$dir"
  : >"$log"
  (cd "$dir" && exec "$bin" serve --ingest-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --log-level warn) >"$log" 2>&1 &
  pid=$!
  ingest="" admin=""
  for _ in $(seq 1 600); do # 60 s: opening a large data dir reads every dedup key
    if ! kill -0 "$pid" 2>/dev/null; then echo "weir exited:" >&2; cat "$log" >&2; exit 1; fi
    ingest=$(sed -n 's|^  ingest:  http://\([0-9.:]*\) .*|\1|p' "$log")
    admin=$(sed -n 's|.*admin/metrics: http://\([0-9.:]*\)/metrics.*|\1|p' "$log")
    if [[ -n $ingest && -n $admin ]] && curl -fsS -m 2 "http://$admin/healthz" >/dev/null 2>&1; then
      return
    fi
    sleep 0.1
  done
  echo "weir did not come up in 60 s" >&2
  exit 1
}

# stop: SIGTERM to the weir this script started; it shuts down in order.
stop() {
  kill "$pid"
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; pid=""; return; }; sleep 0.1; done
  echo "weir did not stop in 60 s; killing it" >&2
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
}

metric() { # NAME LABELS: the value of one counter on the admin listener (0 when absent)
  curl -fsS -m 5 "http://$admin/metrics" | awk -v m="$1{$2}" '$1 == m { v = $2 } END { printf "%d\n", v + 0 }'
}

# drain TIMEOUT: waits until every accepted message is persisted and delivered.
drain() {
  local deadline=$((SECONDS + $1)) acc per del
  while ((SECONDS < deadline)); do
    acc=$(metric weir_ingest_accepted_total 'type="order"')
    per=$(metric weir_stage_records_total 'outcome="ok",stage="persist"')
    del=$(metric weir_stage_records_total 'outcome="ok",stage="deliver.demo-partner"')
    if ((per >= acc && del >= acc)); then return; fi
    sleep 1
  done
  echo "not drained in $1 s: accepted $acc persisted $per delivered $del" >&2
  exit 1
}

status() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status"; } # kB

# sample: prints VmRSS VmHWM RssAnon RssFile (MiB) and the Go heap's HeapInuse HeapSys Sys (MiB).
sample() {
  local heap
  heap=$(curl -fsS -m 10 "http://$admin/debug/pprof/heap?debug=1" | awk '
    $2 == "HeapInuse" { hi = $4 } $2 == "HeapSys" { hs = $4 } $2 == "Sys" { sys = $4 }
    END { printf "%.1f %.1f %.1f", hi / 1048576, hs / 1048576, sys / 1048576 }')
  printf "%.1f %.1f %.1f %.1f %s\n" "$(bc -l <<<"$(status VmRSS)/1024")" "$(bc -l <<<"$(status VmHWM)/1024")" \
    "$(bc -l <<<"$(status RssAnon)/1024")" "$(bc -l <<<"$(status RssFile)/1024")" "$heap"
}

printf "run\tids\tphase\trss_mib\thwm_mib\trss_anon_mib\trss_file_mib\tgo_heap_inuse_mib\tgo_heap_sys_mib\tgo_sys_mib\tdata_dir_mib\n" >"$tsv"

for run in $(seq 1 "$runs"); do
  for n in "$ids" 0; do
    dir=$work/run$run-ids$n
    start "$dir"
    if ((n > 0)); then
      echo "== run $run: posting $n distinct orders (batches of 500) to $ingest" >&2
      "$bin" bench --url "http://$ingest" --mode batch --batch 500 -c 4 -d 10m --messages "$n" --seed "$run" >"$dir/fill.txt" 2>/dev/null
      grep -E '^(requests|messages)' "$dir/fill.txt" >&2
      drain "$drain_timeout"
    fi
    stop
    data_mib=$(du -sm --apparent-size "$dir/weir-data" | cut -f1)

    start "$dir"
    sleep "$settle"
    read -r rss hwm anon file hi hs sys < <(sample)
    printf "%s\t%s\tstartup\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$run" "$n" "$rss" "$hwm" "$anon" "$file" "$hi" "$hs" "$sys" "$data_mib" | tee -a "$tsv"
    # The steady load's ids are new (another seed), so they are dedup misses.
    "$bin" bench --url "http://$ingest" --rate "$load_rate" -c 4 -d "${load_secs}s" --seed "$((1000 + run))" >"$dir/load.txt" 2>/dev/null
    drain 120
    sleep "$settle"
    read -r rss hwm anon file hi hs sys < <(sample)
    printf "%s\t%s\tsteady\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$run" "$n" "$rss" "$hwm" "$anon" "$file" "$hi" "$hs" "$sys" "$data_mib" | tee -a "$tsv"
    stop
    rm -rf "$dir"
  done
done

python3 - "$tsv" "$ids" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
ids = sys.argv[2]
print(f"\nmedians over {len({r['run'] for r in rows})} runs (MiB)")
print(f"{'phase':8} {'ids':>8} {'VmRSS':>7} {'VmHWM':>7} {'anon':>7} {'file':>6} {'heap inuse':>10} {'heap sys':>8} {'go sys':>7}")
for phase in ["startup", "steady"]:
    for n in [ids, "0"]:
        rs = [r for r in rows if r["phase"] == phase and r["ids"] == n]
        m = lambda k: statistics.median(float(r[k]) for r in rs)
        print(f"{phase:8} {n:>8} {m('rss_mib'):7.1f} {m('hwm_mib'):7.1f} {m('rss_anon_mib'):7.1f} {m('rss_file_mib'):6.1f} "
              f"{m('go_heap_inuse_mib'):10.1f} {m('go_heap_sys_mib'):8.1f} {m('go_sys_mib'):7.1f}")
    diffs = []
    for run in sorted({r["run"] for r in rows}):
        a = [float(r["rss_mib"]) for r in rows if r["run"] == run and r["phase"] == phase and r["ids"] == ids]
        b = [float(r["rss_mib"]) for r in rows if r["run"] == run and r["phase"] == phase and r["ids"] == "0"]
        if a and b:
            diffs.append(a[0] - b[0])
    print(f"{phase}: VmRSS with {ids} ids minus with none, per run: {', '.join(f'{d:+.1f}' for d in diffs)} MiB; "
          f"median {statistics.median(diffs):+.1f} MiB")
PY

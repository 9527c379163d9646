#!/usr/bin/env bash
# Runs the figures of docs/benchmarks.md: each scenario RUNS times (default 3), reports in
# bench-results/<scenario>-<n>.json, then prints the medians. Needs PostgreSQL on 127.0.0.1:5432
# for the postgres scenario. Usage: scripts/bench.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
go build -o bin/weir ./cmd/weir
out=bench-results
mkdir -p "$out"
w=./bin/weir

scenario() { # name, args...
  local name=$1; shift
  for i in $(seq 1 "$runs"); do
    echo "== $name run $i: weir bench $*" >&2
    $w bench "$@" --json "$out/$name-$i.json" >/dev/null 2>&1
  done
}

scenario single-ingest   --self --hold --ceiling -c 64 -d 10s
scenario single-pipeline --self -c 64 -d 10s
scenario open-10k        --self --hold --rate 10000 -c 256 -d 10s
scenario open-5k         --self --hold --rate 5000 -c 256 -d 10s
scenario batch-ingest    --self --hold --mode batch --batch 500 -c 4 -d 10s
scenario batch-pipeline  --self --mode batch --batch 100 -c 8 -d 10s
scenario postgres        --self --hold --self-config examples/quickstart/weir-postgres.yaml -c 64 -d 10s

python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def load(name):
    return [json.load(open(f"{out}/{name}-{i}.json")) for i in range(1, runs + 1)]
def med(xs): return statistics.median(xs)
ms = lambda ns: ns / 1e6
print(f"{'scenario':16} {'ceiling req/s':>13} {'weir req/s':>10} {'msg/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'p999 ms':>7} {'errors':>6} {'e2e msg/s':>9}")
for name in ["single-ingest", "single-pipeline", "open-10k", "open-5k", "batch-ingest", "batch-pipeline", "postgres"]:
    rs = load(name)
    w = [r["weir"] for r in rs]
    c = [r["ceiling"]["req_per_sec"] for r in rs if "ceiling" in r]
    ceil = med(c) if c else 0
    ratio = med([r["weir"]["req_per_sec"] / r["ceiling"]["req_per_sec"] for r in rs]) if c else 0
    e2e = med([r["end_to_end"]["msg_per_sec"] for r in rs])
    print(f"{name:16} {ceil:13.0f} {med([x['req_per_sec'] for x in w]):10.0f} {med([x['msg_per_sec'] for x in w]):8.0f} "
          f"{ratio:6.0%} {med([ms(x['latency']['p50_ns']) for x in w]):7.1f} {med([ms(x['latency']['p99_ns']) for x in w]):7.1f} "
          f"{med([ms(x['latency']['p999_ns']) for x in w]):7.1f} {med([x['error_count'] for x in w]):6.0f} {e2e:9.0f}")
PY

#!/usr/bin/env bash
# Runs the figures of docs/benchmarks.md: each scenario RUNS times (default 3), reports in
# bench-results/<scenario>-<n>.json, then prints the medians. Needs PostgreSQL on 127.0.0.1:5432
# for the postgres scenario. Usage: scripts/bench.sh [RUNS] [all|throughput|failure|xml|workflow|buffers]
# "failure" runs only the poison-message pairs of "Failure handling (issue 3)"; the memory figure
# of that section is scripts/bench-dedup-memory.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
which=${2:-all}
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

if [[ $which == all || $which == xml ]]; then
  # XML partners: a 2 KB ACME purchase order (XSD + XSLT) beside the JSON order, same config,
  # interleaved; the XML runs measure the bare ceiling with the same body.
  xcfg=examples/xml-partner/weir.yaml
  for i in $(seq 1 "$runs"); do
    echo "== xml-ingest run $i" >&2
    $w bench --self --hold --ceiling --self-config $xcfg --client acme --token acme-token \
      --payload examples/xml-partner/bench/acme-order.template.xml -c 64 -d 10s --json "$out/xml-ingest-$i.json" >/dev/null 2>&1
    echo "== xml-json-ingest run $i" >&2
    $w bench --self --hold --self-config $xcfg --client demo --token demo-token -c 64 -d 10s \
      --json "$out/xml-json-ingest-$i.json" >/dev/null 2>&1
  done
  python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
for name in ("xml-ingest", "xml-json-ingest"):
    rs = [json.load(open(f"{out}/{name}-{i}.json")) for i in range(1, runs + 1)]
    w = [r["weir"]["req_per_sec"] for r in rs]
    c = [r["ceiling"]["req_per_sec"] for r in rs if "ceiling" in r]
    print(f"{name:16} req/s {statistics.median(w):8.0f} (runs {', '.join(f'{x:.0f}' for x in w)})"
          + (f"  ceiling {statistics.median(c):.0f}" if c else ""))
PY
fi

if [[ $which == all || $which == failure ]]; then
  # Poison messages: a clean run and a run with 1% poison, interleaved so that both see the same
  # neighbours on a shared machine, with the same seed per pair and the same short delivery
  # retry schedule (poison messages are dead letters after 4 attempts within ~2 s).
  for i in $(seq 1 "$runs"); do
    for kind in clean poison; do
      extra=()
      [[ $kind == poison ]] && extra=(--poison 0.01)
      echo "== poison-$kind run $i" >&2
      $w bench --self -c 64 -d 10s --retry-schedule 200ms,500ms,1s --seed "$i" "${extra[@]}" \
        --json "$out/poison-$kind-$i.json" >/dev/null 2>&1
    done
  done
  python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
med = statistics.median
ms = lambda ns: ns / 1e6
rows = {k: [json.load(open(f"{out}/poison-{k}-{i}.json")) for i in range(1, runs + 1)] for k in ("clean", "poison")}
def fig(r):
    e = r["end_to_end"]
    return {"ingest req/s": r["weir"]["req_per_sec"], "e2e msg/s": e["msg_per_sec"], "good msg/s": e["good_msg_per_sec"],
            "good p50 ms": ms(e["good_latency"]["p50_ns"]), "good p99 ms": ms(e["good_latency"]["p99_ns"]),
            "cpu us/msg": r.get("cpu", {}).get("total_cpu_per_msg_ns", 0) / 1e3}
print(f"{'':14}" + "".join(f"{k:>14}" for k in fig(rows["clean"][0])))
for k in ("clean", "poison"):
    fs = [fig(r) for r in rows[k]]
    print(f"{k:14}" + "".join(f"{med([f[n] for f in fs]):14.1f}" for n in fs[0]))
fc, fp = [fig(r) for r in rows["clean"]], [fig(r) for r in rows["poison"]]
for n in fc[0]:
    ratios = [p[n] / c[n] if c[n] else 0 for c, p in zip(fc, fp)]
    print(f"poison/clean {n:12}: per pair {', '.join(f'{x:.2f}' for x in ratios)}; median {med(ratios):.2f}")
for r in rows["poison"]:
    e = r["end_to_end"]
    print(f"poison run: {e['poisoned']} poison of {e['accepted']}, {e['refused_attempts']} attempts refused, complete {e['complete']}")
PY
  # Single-message ingest alone, priced in CPU per message (weir and the load generator share
  # the process): the denominator of "dedup lookup adds under 5% to single-message ingest cost".
  scenario ingest-cpu --self --hold -c 64 -d 10s
  python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rs = [json.load(open(f"{out}/ingest-cpu-{i}.json")) for i in range(1, runs + 1)]
cpu = [r["cpu"]["load_cpu_per_msg_ns"] / 1e3 for r in rs]
rps = [r["weir"]["req_per_sec"] for r in rs]
print(f"ingest alone: {statistics.median(rps):.0f} req/s (runs {', '.join(f'{x:.0f}' for x in rps)}); "
      f"{statistics.median(cpu):.1f} µs CPU per message, generator included (runs {', '.join(f'{x:.1f}' for x in cpu)})")
PY
fi
if [[ $which == all || $which == workflow ]]; then
  # Workflows (issue 5): the Drone Delivery example's five-step workflow against the built-in
  # services (5–20 ms per call): at saturation with the bare ceiling (the same five calls from a
  # plain Go loop), the same without sharing fsyncs (min_sync_interval 0s), and open loop at
  # 2,000 requests/s for the latency of a run that is not queued behind a backlog.
  for i in $(seq 1 "$runs"); do
    echo "== workflow-saturated run $i" >&2
    $w bench --workflow --ceiling --messages 20000 -c 64 -d 60s --json "$out/workflow-saturated-$i.json" >/dev/null 2>&1
    echo "== workflow-nosync run $i" >&2
    $w bench --workflow --min-sync-interval 0s --messages 20000 -c 64 -d 60s --json "$out/workflow-nosync-$i.json" >/dev/null 2>&1
    echo "== workflow-open2k run $i" >&2
    $w bench --workflow --rate 2000 -c 128 -d 20s --json "$out/workflow-open2k-$i.json" >/dev/null 2>&1
  done
  python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
med = statistics.median
ms = lambda ns: ns / 1e6
for name in ("workflow-saturated", "workflow-nosync", "workflow-open2k"):
    rs = [json.load(open(f"{out}/{name}-{i}.json")) for i in range(1, runs + 1)]
    f = [r["workflows"] for r in rs]
    per = [x["completed_per_sec"] for x in f]
    line = (f"{name:19} completed/s {med(per):6.0f} (runs {', '.join(f'{x:.0f}' for x in per)})"
            f"  e2e p50 {med([ms(x['latency']['p50_ns']) for x in f]):6.1f} ms  p99 {med([ms(x['latency']['p99_ns']) for x in f]):6.1f} ms"
            f"  failed {sum(x['failed'] for x in f)}  ingest req/s {med([r['weir']['req_per_sec'] for r in rs]):6.0f}"
            f"  cpu µs/run {med([r['cpu']['total_cpu_per_msg_ns'] / 1e3 for r in rs]):5.0f}")
    c = [r["workflow_ceiling"]["requests_per_sec"] for r in rs if "workflow_ceiling" in r]
    if c:
        ratio = med([r["workflows"]["completed_per_sec"] / r["workflow_ceiling"]["requests_per_sec"] for r in rs])
        line += f"  ceiling {med(c):.0f}/s (weir/ceiling {ratio:.2f})"
    print(line)
PY
fi
if [[ $which == all || $which == buffers ]]; then
  # The same end-to-end run (quickstart: ingest → jq → SQLite → signed webhook, pipeline running)
  # on the embedded log, on a 3-node NATS JetStream cluster (in another process, fsync always,
  # R3) and on a 3-broker kfake cluster — all on the same two cores; then NATS with the state in
  # PostgreSQL (a fresh schema per run), as the instances of a scale-out deployment run.
  go build -o bin/weir-devcluster ./cmd/weir-devcluster
  pg=postgres://postgres@127.0.0.1:5432/test?sslmode=disable
  for kind in embedded nats kafka nats-pg; do
    url=""
    if [[ $kind != embedded ]]; then
      bin/weir-devcluster ${kind%-pg} > "$out/devcluster-$kind.txt" 2>&1 &
      dc=$!
      for _ in $(seq 1 120); do grep -q '^buffer:' "$out/devcluster-$kind.txt" && break; sleep 0.5; done
      url=$(sed -n 's/^buffer: //p' "$out/devcluster-$kind.txt")
    fi
    for i in $(seq 1 "$runs"); do
      echo "== buffer-$kind run $i" >&2
      state=()
      if [[ $kind == *-pg ]]; then
        psql "$pg" -qc "drop schema if exists weirbench cascade; create schema weirbench" 2>/dev/null
        state=(--state "$pg&search_path=weirbench")
      fi
      $w bench --self ${url:+--buffer "$url"} "${state[@]}" -c 64 -d 10s --json "$out/buffer-$kind-$i.json" >"$out/buffer-$kind-$i.log" 2>&1
    done
    [[ $kind != embedded ]] && kill "$dc" && wait "$dc" 2>/dev/null || true
  done
  python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
med = statistics.median
for kind in ("embedded", "nats", "kafka", "nats-pg"):
    rs = [json.load(open(f"{out}/buffer-{kind}-{i}.json")) for i in range(1, runs + 1)]
    rps = [r["weir"]["req_per_sec"] for r in rs]
    e2e = [r["end_to_end"]["msg_per_sec"] for r in rs]
    p99 = [r["weir"]["latency"]["p99_ns"] / 1e6 for r in rs]
    lat = [r["end_to_end"]["good_latency"]["p99_ns"] / 1e6 for r in rs]
    print(f"{kind:9} ingest req/s {med(rps):7.0f} (runs {', '.join(f'{x:.0f}' for x in rps)})  ingest p99 {med(p99):6.1f} ms"
          f"  e2e msg/s {med(e2e):7.0f}  e2e p99 {med(lat):7.1f} ms  complete {all(r['end_to_end']['complete'] for r in rs)}")
PY
fi
[[ $which == all || $which == throughput ]] || exit 0

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

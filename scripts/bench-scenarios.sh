#!/usr/bin/env bash
# Runs each `weir bench` scenario once against an in-process weir (--self: the quickstart config
# on a fresh data dir, pipeline running), with short defaults that still show the effect on a
# 2-core machine: the spike and the overload go past what weir takes there (~4-6K req/s with the
# pipeline running), and the phase after them shows the recovery. Writes
# bench-results/scenario-<name>.json (report, per-second series, end to end), .svg (chart) and
# .txt (the summary). About 2 minutes; every run ends by itself (its schedule, then the drain of
# at most 5 minutes), and `timeout` stops a run that would not.
#
# The exact commands (seed 1; a run is repeated by its flags and seed):
#
#   weir bench --self --scenario steady   --rate 2000 -d 15s --seed 1
#   weir bench --self --scenario spike    --base 2000 --peak 10000 --before 5s --burst-for 5s --after 15s --seed 1
#   weir bench --self --scenario overload --probe-for 3s --burst-for 10s --base 2000 --after 20s --timeout 3s --seed 1
#   weir bench --self --scenario batch    --batch 100 --rate 30 -d 15s --seed 1
#
# each followed by --json bench-results/scenario-<name>.json --chart bench-results/scenario-<name>.svg.
# The overload scenario first measures the capacity with a 3 s closed-loop probe (on an
# in-process weir of its own), then sends 5x that for 10 s and 2000 req/s for 20 s. (Its default
# recovery rate, half the capacity, is too high here: a short probe of a fresh weir measures
# ingest before the pipeline competes for the two cores, ~8K req/s, and the pipeline sustains
# ~4K msg/s.) --timeout 3s drops a request still waiting for a connection 3 s after it was due,
# as a client would, so the recovery shows within the run.
#
# Usage: scripts/bench-scenarios.sh [SCENARIO...]   (default: steady spike overload batch)
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/weir ./cmd/weir
out=bench-results
mkdir -p "$out"

declare -A flags=(
  [steady]="--rate 2000 -d 15s"
  [spike]="--base 2000 --peak 10000 --before 5s --burst-for 5s --after 15s"
  [overload]="--probe-for 3s --burst-for 10s --base 2000 --after 20s --timeout 3s"
  [batch]="--batch 100 --rate 30 -d 15s"
)
names=("$@")
[[ ${#names[@]} -eq 0 ]] && names=(steady spike overload batch)

status=0
for name in "${names[@]}"; do
  if [[ -z ${flags[$name]:-} ]]; then
    echo "unknown scenario $name (want: ${!flags[*]})" >&2
    exit 2
  fi
  # shellcheck disable=SC2086 # the flags are words on purpose
  set -- --self --scenario "$name" ${flags[$name]} --seed 1 \
    --json "$out/scenario-$name.json" --chart "$out/scenario-$name.svg"
  echo "== weir bench $*" >&2
  # SIGINT first: weir bench stops the load, reports what it has and shuts the in-process weir down.
  if ! timeout --signal=INT --kill-after=30s 15m ./bin/weir bench "$@" >"$out/scenario-$name.txt" 2>"$out/scenario-$name.log"; then
    echo "   failed: see $out/scenario-$name.log" >&2
    status=1
  fi
  grep -E '^(== scenario|capacity|requests|latency|errors|worst second|end to end)' "$out/scenario-$name.txt" | sed 's/^/   /' >&2 || true
done
exit $status

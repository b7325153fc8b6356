#!/usr/bin/env bash
# The overload bench on a fresh local 3-node cluster, with each node's resident memory
# sampled while it runs and printed beside the node's configured memory budgets.
#
#   scripts/overload-bench.sh                       # 2x the calibrated rate, 32 connections
#   scripts/overload-bench.sh --overload 4 --seconds 20 --connections 64
#
# Arguments go to `evlog bench produce` (defaults: --overload 2 --connections 32
# --seconds 10 --in-flight 64 --events-per-request 100 --size 1024). The nodes run with
# `EVLOG_MEMORY__PRODUCE_BYTES_MAX` (default here 64 MiB) and the other defaults; set it,
# or any EVLOG_* setting, in the environment to change them.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

export EVLOG_MEMORY__PRODUCE_BYTES_MAX=${EVLOG_MEMORY__PRODUCE_BYTES_MAX:-67108864}
cargo build --release -p evlog-client -p evlog-node
bin=$CARGO_TARGET_DIR/release
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

base=${EVLOG_BENCH_BASE_PORT:-7401}
initial=""
for i in 1 2 3; do initial+="${initial:+,}$i=127.0.0.1:$((base + 10 + i))"; done
bootstrap=""
for i in 1 2 3; do
  "$bin/evlog-node" --node-id "$i" --listen "127.0.0.1:$((base + i))" \
    --peer-listen "127.0.0.1:$((base + 10 + i))" --data-dir "$dir/node-$i" \
    --initial-cluster "$initial" >"$dir/node-$i.log" 2>&1 &
  pids+=($!)
  bootstrap+="${bootstrap:+,}127.0.0.1:$((base + i))"
done
export EVLOG_BOOTSTRAP=$bootstrap

# Waits until every node answers (registration takes a moment after start).
for _ in $(seq 100); do
  "$bin/evlog" cluster status 2>/dev/null | grep -q 'nodes answering: 3/3' && break
  sleep 0.2
done

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
declare -A rest peak
for pid in "${pids[@]}"; do rest[$pid]=$(rss_kib "$pid"); peak[$pid]=${rest[$pid]}; done

# Samples every node's RSS every 100 ms until the bench ends.
sampler() {
  while true; do
    for pid in "${pids[@]}"; do echo "$pid $(rss_kib "$pid")"; done
    sleep 0.1
  done
}
sampler >"$dir/rss" &
sampler_pid=$!

status=0
"$bin/evlog" bench produce --overload 2 --connections 32 --seconds 10 --in-flight 64 \
  --events-per-request 100 --size 1024 "$@" || status=$?
kill "$sampler_pid"
while read -r pid kib; do
  [[ -n "$kib" && "$kib" -gt "${peak[$pid]}" ]] && peak[$pid]=$kib
done <"$dir/rss"
sleep 3
# The node's memory as docs/operations.md adds it up: 2 x produce budget + subscribe
# budget + block cache + 2 x write buffer + 50 MiB (defaults unless set here).
mib=1048576
produce_mib=$((EVLOG_MEMORY__PRODUCE_BYTES_MAX / mib))
subscribe_mib=$((${EVLOG_MEMORY__SUBSCRIBE_BYTES_MAX:-268435456} / mib))
cache_mib=$((${EVLOG_STORAGE__BLOCK_CACHE_BYTES:-67108864} / mib))
memtable_mib=$((${EVLOG_STORAGE__WRITE_BUFFER_BYTES:-67108864} / mib))
budget_mib=$((2 * produce_mib + subscribe_mib + cache_mib + 2 * memtable_mib + 50))
echo "node memory (budget ${budget_mib} MiB: 2 x ${produce_mib} produce + ${subscribe_mib} subscribe" \
  "+ ${cache_mib} block cache + 2 x ${memtable_mib} write buffer + 50):"
n=1
for pid in "${pids[@]}"; do
  printf '  node %d: RSS at rest %d MiB, peak %d MiB (+%d), 3 s after %d MiB\n' "$n" \
    $((rest[$pid] / 1024)) $((peak[$pid] / 1024)) $(((peak[$pid] - rest[$pid]) / 1024)) \
    $(($(rss_kib "$pid") / 1024))
  n=$((n + 1))
done
grep -h -E ' (WARN|ERROR) ' "$dir"/node-*.log | head -20 || true
exit "$status"

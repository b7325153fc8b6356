#!/usr/bin/env bash
# Runs the durability simulation over many seeds, in parallel jobs, and adds up their
# summaries: seeds, faults injected by kind, operations and events checked, failures.
#
#   scripts/sweep.sh 10000           # seeds 1..=10000 (an overnight run on 2 cores)
#   scripts/sweep.sh 500 20001       # 500 seeds from 20001
#   EVLOG_SWEEP_JOBS=4 scripts/sweep.sh 10000
#
# Every seed runs even if some fail (EVLOG_SIM_KEEP_GOING=1); failing seeds are listed
# with their replay command at the end, and the script exits non-zero if there are any.
# Per-job logs stay under $EVLOG_SWEEP_DIR (default: a fresh temp dir, printed).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

count=${1:-1000}
first=${2:-1}
jobs=${EVLOG_SWEEP_JOBS:-$(nproc)}
dir=${EVLOG_SWEEP_DIR:-$(mktemp -d -t evlog-sweep-XXXXXX)}
mkdir -p "$dir"

# Build once, then run the test binary directly from every job (cargo would serialise
# the jobs on its build lock).
binary=$(scripts/sim.sh --test durability --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)
[[ -x $binary ]] || { echo "could not build the durability test" >&2; exit 1; }
echo "==> $count seeds from $first in $jobs jobs; logs in $dir"

started=$SECONDS
per_job=$(((count + jobs - 1) / jobs))
# Each process runs at most $chunk seeds: a finished seed leaves ~4 MB resident (~11 MB
# of address space) behind in its process (a dropped madsim runtime does not free every
# task of its run, see madsim-rs/madsim#242), so one process per job would grow by
# gigabytes over thousands of seeds and hit the cap below.
chunk=${EVLOG_SWEEP_CHUNK:-200}
for ((job = 0; job < jobs; job++)); do
  job_first=$((first + job * per_job))
  job_count=$((per_job < count - job * per_job ? per_job : count - job * per_job))
  ((job_count > 0)) || continue
  # Each process's memory is capped, so a seed that runs away fails alone (its chunk
  # stops and the summary says how many seeds reported) instead of starving the machine.
  (
    ulimit -v "${EVLOG_SWEEP_JOB_MEMORY_KB:-8000000}"
    for ((done_count = 0; done_count < job_count; done_count += chunk)); do
      n=$((chunk < job_count - done_count ? chunk : job_count - done_count))
      MADSIM_TEST_SEED=$((job_first + done_count)) MADSIM_TEST_NUM=$n EVLOG_SIM_KEEP_GOING=1 \
        "$binary" --exact no_acknowledged_event_is_lost_duplicated_or_reordered --nocapture ||
        true
    done
  ) >"$dir/job-$job.log" 2>&1 &
done
wait || true

echo "==> sweep of $count seeds done in $(((SECONDS - started) / 60))m$(((SECONDS - started) % 60))s"
cat "$dir"/job-*.log | awk '
  /^SUMMARY / { total[$2] += $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
  END { for (i = 1; i <= n; i++) printf "  %-28s %d\n", order[i], total[order[i]] }'
failed=$(grep -h '^FAILED seed' "$dir"/job-*.log || true)
ran=$(cat "$dir"/job-*.log | awk '/^SUMMARY seeds / { s += $3 } END { print s + 0 }')
if [[ -n $failed ]]; then
  echo "$failed"
  echo "replay one with: MADSIM_TEST_SEED=<seed> scripts/sim.sh --test durability"
  exit 1
fi
if ((ran != count)); then
  echo "only $ran of $count seeds reported (a job crashed?): see $dir" >&2
  exit 1
fi
echo "==> all $count seeds passed"

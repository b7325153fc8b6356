#!/usr/bin/env bash
# Builds evlog's fuzz targets (fuzz/) with libFuzzer on the stable toolchain and runs
# each for SECONDS (default 30), starting from its checked-in corpus (fuzz/corpus/<target>)
# and keeping the new inputs it finds under ~/.cache/evlog/fuzz-corpus/<target>, so runs
# never change the checkout. A crash stops the run and leaves the input in
# fuzz/artifacts/<target>/: fix the bug, then add the input to fuzz/corpus/<target>/.
# To fold a long run's finds into the checked-in corpus (minimized):
#   ~/.cache/evlog/target-fuzz/<host>/release/<target> -merge=1 fuzz/corpus/<target> \
#       ~/.cache/evlog/fuzz-corpus/<target>
#
#   scripts/fuzz.sh               # every target, 30 s each (what scripts/test.sh runs)
#   scripts/fuzz.sh 3600          # every target, an hour each
#   scripts/fuzz.sh 600 config    # one target
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
seconds=${1:-30}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(stored_records raft_messages index_values config)
fi

# What cargo fuzz passes to rustc, minus the sanitizer (which needs a nightly toolchain):
# edge coverage, comparison tracing and the tables libFuzzer reads. --target keeps these
# flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
export CARGO_TARGET_DIR="$HOME/.cache/evlog/target-fuzz"
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --manifest-path fuzz/Cargo.toml --target "$host" --bins

for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  found=$HOME/.cache/evlog/fuzz-corpus/$target
  artifacts=fuzz/artifacts/$target
  mkdir -p "$corpus" "$found" "$artifacts"
  echo "fuzz: $target for ${seconds}s"
  # New inputs go to the first directory; both are read at start.
  "$CARGO_TARGET_DIR/$host/release/$target" "$found" "$corpus" \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 2>&1 |
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)|panicked|ERROR' || true
  if compgen -G "$artifacts/*" >/dev/null; then
    echo "fuzz: $target found a crash: $(ls "$artifacts")" >&2
    exit 1
  fi
done

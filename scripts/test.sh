#!/usr/bin/env bash
# The one command that runs every evlog test, on a fresh machine or a warm one:
#
#   scripts/test.sh                      # everything
#   EVLOG_SKIP_LINT=1 scripts/test.sh    # everything but rustfmt and clippy
#
# Steps, each announced with a `==>` line and timed:
#   1. setup        system packages and Rust components (scripts/setup.sh)
#   2. fmt, clippy  formatting and lints, warnings are errors
#   3. build        the release binaries, which the integration tests spawn
#   4. test         unit and integration tests (sim-tests compiles to nothing here)
#   5. simulation   the madsim tests: RUSTFLAGS="--cfg madsim", own target dir, reusing the
#                   RocksDB library step 3 compiled
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

skip_lint=${EVLOG_SKIP_LINT:-0}
# evlog-node refuses EVLOG_* variables it does not know: keep ours from the nodes tests spawn.
unset EVLOG_SKIP_LINT

started=$SECONDS
current_step="start"

duration() {
  printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

on_exit() {
  local status=$?
  if ((status != 0)); then
    echo "==> FAILED in step '$current_step' (exit $status) after $(duration $((SECONDS - started)))" >&2
  fi
}
trap on_exit EXIT

# step NAME COMMAND...: announces, runs and times one step.
step() {
  local name=$1 step_started=$SECONDS
  shift
  current_step=$name
  echo "==> $name"
  "$@"
  echo "    $name: $(duration $((SECONDS - step_started)))"
}

# The simulation build compiles every crate again under --cfg madsim, but RocksDB's C++ does
# not depend on it: link the librocksdb.a of the normal build instead of compiling it again.
# With ROCKSDB_LIB_DIR set, librocksdb-sys 0.19's build script still generates its bindings
# (libclang), then links `static=rocksdb` from that dir plus libstdc++. LZ4 needs nothing:
# the lz4-sys crate still builds and links its own liblz4.a, which the library calls into.
simulation() {
  local lib
  lib=$(find "$CARGO_TARGET_DIR/release/build" -path '*/librocksdb-sys-*/out/librocksdb.a' \
    -printf '%T@ %p\n' 2>/dev/null | sort -nr | head -n 1 | cut -d' ' -f2- || true)
  local rocksdb_env=()
  if [[ -n $lib ]]; then
    echo "    linking the RocksDB of the normal build: $lib"
    rocksdb_env=(ROCKSDB_LIB_DIR="$(dirname "$lib")" ROCKSDB_STATIC=1)
  else
    echo "    no librocksdb.a under $CARGO_TARGET_DIR: compiling RocksDB for the simulation too"
  fi
  env ${rocksdb_env[@]+"${rocksdb_env[@]}"} \
    RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--cfg madsim" \
    CARGO_TARGET_DIR="$EVLOG_SIM_TARGET_DIR" \
    cargo test --release -p evlog-sim-tests
}

step "setup" scripts/setup.sh
if [[ $skip_lint == 1 ]]; then
  echo "==> fmt, clippy: skipped (EVLOG_SKIP_LINT=1)"
else
  step "fmt" cargo fmt --all -- --check
  step "clippy" cargo clippy --release --workspace --all-targets -- -D warnings
fi
step "build" cargo build --release --workspace --bins
step "test" cargo test --release --workspace
step "simulation" simulation

echo "==> all tests passed in $(duration $((SECONDS - started)))"

#!/usr/bin/env bash
# Builds and runs the deterministic simulation tests (crate evlog-sim-tests) under
# RUSTFLAGS="--cfg madsim". Extra arguments go to `cargo test`, e.g.
#
#   scripts/sim.sh                                           # every simulation test, seed 1
#   MADSIM_TEST_SEED=42 scripts/sim.sh --test smoke          # replay one seed
#   MADSIM_TEST_NUM=200 scripts/sim.sh                       # seeds 1..200
#   MADSIM_TEST_CHECK_DETERMINISM=1 scripts/sim.sh           # run each seed twice, compare
#
# The simulation build compiles every crate again under --cfg madsim, but RocksDB's C++ does
# not depend on it: link the librocksdb.a of the normal build instead of compiling it again.
# With ROCKSDB_LIB_DIR set, librocksdb-sys 0.19's build script still generates its bindings
# (libclang), then links `static=rocksdb` from that dir plus libstdc++. LZ4 needs nothing:
# the lz4-sys crate still builds and links its own liblz4.a, which the library calls into.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

lib=$(find "$CARGO_TARGET_DIR/release/build" -path '*/librocksdb-sys-*/out/librocksdb.a' \
  -printf '%T@ %p\n' 2>/dev/null | sort -nr | head -n 1 | cut -d' ' -f2- || true)
rocksdb_env=()
if [[ -n $lib ]]; then
  echo "    linking the RocksDB of the normal build: $lib"
  rocksdb_env=(ROCKSDB_LIB_DIR="$(dirname "$lib")" ROCKSDB_STATIC=1)
else
  echo "    no librocksdb.a under $CARGO_TARGET_DIR: compiling RocksDB for the simulation too"
fi
exec env ${rocksdb_env[@]+"${rocksdb_env[@]}"} \
  RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--cfg madsim" \
  CARGO_TARGET_DIR="$EVLOG_SIM_TARGET_DIR" \
  cargo test --release -p evlog-sim-tests "$@"

# shellcheck shell=bash
# Sourced by the other scripts (not run): where builds go and how many jobs they use.
# Every value can be overridden from the environment.

# One target dir for tests, the dev cluster and benchmarks, outside the repository, so
# RocksDB's C++ (minutes on a small machine) is compiled once and survives `git clean`.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/evlog/target}"

# The simulation build (RUSTFLAGS="--cfg madsim") gets its own target dir: with different
# RUSTFLAGS, sharing one would rebuild every crate each time we switch between the two.
# Not exported: only scripts/test.sh reads it.
EVLOG_SIM_TARGET_DIR="${EVLOG_SIM_TARGET_DIR:-$HOME/.cache/evlog/target-madsim}"

# Parallel compile jobs: 2 suits the small shared builders; raise it on a big machine.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

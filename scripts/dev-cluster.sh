#!/usr/bin/env bash
# Builds evlog and runs a local cluster in the foreground; Ctrl-C stops it.
#
#   scripts/dev-cluster.sh                 # 3 nodes on 127.0.0.1:7101-7103, data in .evlog-dev/
#   scripts/dev-cluster.sh --fresh         # same, starting from empty data directories
#   scripts/dev-cluster.sh --nodes 5 --base-port 7201 --data-dir /tmp/evlog-dev
#
# Every argument goes to `evlog-node dev` (see `evlog-node dev --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

scripts/setup.sh

echo "==> building evlog-node and the evlog CLI (release; the first build takes a while)"
cargo build --release -p evlog-client -p evlog-node

echo "==> the evlog CLI is $CARGO_TARGET_DIR/release/evlog"
echo "    (export PATH=\"$CARGO_TARGET_DIR/release:\$PATH\" to call it as evlog)"
exec cargo run --release --quiet -p evlog-node --bin evlog-node -- dev "$@"

//! Deterministic simulation of evlog clusters (madsim). Everything here only exists under
//! `--cfg madsim`: the nodes run the production entry point (`Node::start` with the same
//! `Config` the binary builds), the real RocksDB storage and the real gRPC stack, on
//! simulated time and a simulated network. A failing seed replays exactly with
//! `MADSIM_TEST_SEED=<seed> scripts/sim.sh` (see [`runner`]).

#![cfg(madsim)]

pub mod cluster;
pub mod runner;

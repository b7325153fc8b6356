//! Deterministic simulation of evlog clusters (madsim), and the checkers that judge a
//! run. The simulation parts only exist under `--cfg madsim`: the nodes run the
//! production entry point (`Node::start_with_engine` with the same `Config` the binary
//! builds), the real RocksDB storage behind a simulated disk, and the real gRPC stack, on
//! simulated time and a simulated network. A failing seed replays exactly with
//! `MADSIM_TEST_SEED=<seed> scripts/sim.sh --test <binary> <test>` (see [`runner`]).
//!
//! The history, the checkers and the workload's loops are built in every mode: the
//! real-process kill loop (`node/tests/kill_loop.rs`) runs the same workload, records the
//! same history and runs the same checkers.
//!
//! Modules, in the order a run uses them:
//! - `cluster`: N nodes on simulated disks, and the levers (kill, pause, clog, power).
//! - `disk`: the storage fault layer (unsynced writes, power failure, bit flips, tears).
//! - [`workload`]: producers and consumers recording the [`history`] (both runtimes);
//!   `group_workload`: consumer-group members under churn, with their own logs.
//! - `nemesis`: seeded swarm fault injection.
//! - `scenario`: one seed: safety phase, heal, liveness phase, checkers.
//! - `runner`: seeds, sweeps, summaries, replay commands, determinism checks.
//! - [`checkers`]: one file per property.

pub mod checkers;
pub mod history;

#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod disk;
#[cfg(madsim)]
pub mod group_workload;
#[cfg(madsim)]
pub mod nemesis;
#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
pub mod scenario;
pub mod workload;

//! Goal: no acknowledged event is ever lost, duplicated or reordered, whatever the
//! faults, on the real node code (entry point, RocksDB behind the simulated disk, gRPC).
//!
//! Method: each seed starts 3 or 5 nodes (odd seeds 3, even seeds 5), runs producers and
//! consumers on two topics while a swarm nemesis drawn from the seed injects faults for
//! 20 simulated seconds (crashes, pauses, partitions, leader isolation, asymmetric links,
//! packet loss, latency spikes, power failures of one node / a minority / all nodes, bit
//! flips and torn writes on a minority, leader churn), heals everything, demands
//! liveness within the bounds of `scenario`, and runs the six checkers on the history.
//!
//! `MADSIM_TEST_NUM=200 scripts/sim.sh --test durability` runs 200 seeds; `scripts/sweep.sh`
//! runs thousands in parallel and adds up the summaries.

#![cfg(madsim)]

use evlog_sim_tests::scenario::{self, ScenarioConfig, SeedReport};

async fn swarm() -> SeedReport {
    evlog_sim_tests::runner::init_tracing("off");
    let seed = madsim::runtime::Handle::current().seed();
    scenario::run(ScenarioConfig::for_seed(seed)).await
}

#[test]
fn no_acknowledged_event_is_lost_duplicated_or_reordered() {
    evlog_sim_tests::runner::sweep(
        "durability",
        "no_acknowledged_event_is_lost_duplicated_or_reordered",
        swarm,
    );
}

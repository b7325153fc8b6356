//! Goal: the checkers are trusted because each has been seen to fail. Every bug the node
//! can plant in simulation (`evlog_node::sim_hooks::PlantedBug`) must be caught by the
//! checkers within a bounded number of seeds, under a fault mix that gives it a chance.
//!
//! Method: for each bug, run the durability scenario with the bug planted on seeds 1, 2,
//! ... until a seed fails; the test fails if none of the first `SEEDS_MAX` seeds does.
//! It prints which checkers caught the bug and on which seed.

#![cfg(madsim)]

use evlog_node::sim_hooks::PlantedBug;
use evlog_sim_tests::nemesis::Fault;
use evlog_sim_tests::runner::run_seed;
use evlog_sim_tests::scenario::{self, ScenarioConfig};

/// A planted bug not caught within this many seeds fails the test. A seed of these
/// scenarios takes ~0.1 s, and which seed first catches a bug moves whenever timing on
/// the data path changes (the queue-delay reset moved AckBeforeFsync from within the
/// first 20 to seed 30), so the bound is generous: a bug the checkers can catch is caught
/// well inside it, one they cannot is never caught.
const SEEDS_MAX: u64 = 100;

/// Runs seeds until the checkers catch `bug`; returns the seed and the checkers.
fn catch(bug: PlantedBug, cluster_size: u64, faults: &[Fault]) -> (u64, Vec<&'static str>) {
    catch_with(ScenarioConfig::planted(bug, cluster_size, faults))
}

/// Runs seeds until the checkers catch the planted bug of `config`.
fn catch_with(config: ScenarioConfig) -> (u64, Vec<&'static str>) {
    let bug = config.planted.expect("a planted bug");
    let first = std::env::var("MADSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u64);
    for seed in first..first + SEEDS_MAX {
        let config = config.clone();
        let report = run_seed(seed, move || {
            evlog_sim_tests::runner::init_tracing("off");
            scenario::run(config)
        });
        if !report.passed() {
            println!(
                "{bug:?}: caught on seed {seed} by {:?}\n{}",
                report.failed_checkers(),
                report.summary()
            );
            return (seed, report.failed_checkers());
        }
        println!("{bug:?}: seed {seed} passed, trying the next");
    }
    panic!("{bug:?} was not caught within {SEEDS_MAX} seeds from {first}");
}

#[test]
fn acknowledging_before_the_fsync_is_caught() {
    // A slow disk (20-50 ms fsyncs, slower than the network) leaves acknowledged but
    // unsynced entries for a power failure to take.
    let (_, checkers) = catch_with(ScenarioConfig {
        fsync_latency_us: (20_000, 50_000),
        ..ScenarioConfig::planted(
            PlantedBug::AckBeforeFsync,
            3,
            &[Fault::PowerFailAll, Fault::PowerFailMinority],
        )
    });
    // Lost acknowledged entries show as missing events, or as replicas that diverged.
    let durability = ["acked_readable", "readers_agree", "replicas_identical"];
    assert!(
        checkers.iter().any(|c| durability.contains(c)),
        "{checkers:?}"
    );
}

#[test]
fn a_vote_not_persisted_is_caught() {
    let (_, checkers) = catch(
        PlantedBug::VoteNotPersisted,
        3,
        &[
            Fault::LeaderChurn,
            Fault::Crash,
            Fault::AsymmetricLink,
            Fault::Partition,
        ],
    );
    assert!(checkers.contains(&"single_leader"), "{checkers:?}");
}

#[test]
fn skipping_the_checksum_is_caught() {
    catch(
        PlantedBug::SkipChecksum,
        3,
        &[Fault::BitFlip, Fault::LeaderChurn],
    );
}

#[test]
fn forgetting_producer_sequences_on_restart_is_caught() {
    let (_, checkers) = catch(
        PlantedBug::ForgetProducersOnRestart,
        3,
        &[Fault::LeaderChurn, Fault::Crash],
    );
    assert!(
        checkers.contains(&"no_duplicates") || checkers.contains(&"acked_readable"),
        "{checkers:?}"
    );
}

#[test]
fn an_idempotence_window_of_one_is_caught() {
    // Pipelined producers (5 requests in flight per partition) whose retries land after
    // later requests: with only the last request remembered, a retry inside the window
    // is answered DUPLICATE_SEQUENCE instead of with its offsets.
    let (_, checkers) = catch_with(ScenarioConfig {
        requests_in_flight: Some(5),
        ..ScenarioConfig::planted(
            PlantedBug::IdempotenceWindowOfOne,
            3,
            &[Fault::LeaderChurn, Fault::PacketLoss, Fault::LatencySpike],
        )
    });
    assert!(checkers.contains(&"no_duplicates"), "{checkers:?}");
}

#[test]
fn assigning_a_partition_before_its_owner_revoked_it_is_caught() {
    // Members join and leave under churn: with the coordinator handing partitions over at
    // once, the old owner still consumes them when the new one starts.
    let (_, checkers) = catch_with(ScenarioConfig {
        groups: Some(true),
        ..ScenarioConfig::planted(PlantedBug::AssignBeforeRevoke, 3, &[Fault::LeaderChurn])
    });
    assert!(checkers.contains(&"group_exclusive"), "{checkers:?}");
}

#[test]
fn accepting_a_commit_from_a_fenced_member_is_caught() {
    // The workload's zombie commits offset 0 as a member the group does not know: stored,
    // it moves the group's committed offsets back.
    let (_, checkers) = catch_with(ScenarioConfig {
        groups: Some(true),
        ..ScenarioConfig::planted(PlantedBug::AcceptFencedCommit, 3, &[Fault::LeaderChurn])
    });
    assert!(checkers.contains(&"group_offsets"), "{checkers:?}");
}

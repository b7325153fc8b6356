//! Goal: every bug the simulation found stays fixed. Each case is the seed (and fault
//! mix) that first showed the bug; see "Found and fixed" in docs/durability.md.
//!
//! Method: run the durability scenario on that seed with that mix and demand that every
//! checker passes.

#![cfg(madsim)]

use evlog_sim_tests::nemesis::Fault;
use evlog_sim_tests::runner::run_seed;
use evlog_sim_tests::scenario::{self, ScenarioConfig};

fn passes(seed: u64, config: ScenarioConfig) {
    evlog_sim_tests::runner::init_tracing("off");
    let report = run_seed(seed, move || scenario::run(config));
    assert!(
        report.passed(),
        "regression on seed {seed}:\n{}",
        report.summary()
    );
}

fn with_faults(seed: u64, faults: &[Fault]) -> ScenarioConfig {
    ScenarioConfig {
        faults: Some(faults.to_vec()),
        ..ScenarioConfig::for_seed(seed)
    }
}

/// A leader that read a corrupt log entry answered INTERNAL and kept leading: readers
/// could never get past the damaged entry and acknowledged events became unreadable.
/// Fixed: the replica fail-stops and the healthy replicas elect a leader.
#[test]
fn a_corrupt_read_stops_the_replica_and_the_majority_serves() {
    let faults = [Fault::BitFlip, Fault::LeaderChurn, Fault::Crash];
    passes(4, with_faults(4, &faults));
    passes(14, with_faults(14, &faults));
}

/// A failed fsync stopped the Raft groups waiting on it but the node went on running:
/// those replicas never came back, partitions ran a replica short or lost their majority.
/// Fixed: the node crashes on a failed fsync (`rt::crash`, exit status 70) and its
/// supervisor restarts it on what is really on disk.
#[test]
fn a_failed_fsync_crashes_the_node_which_comes_back() {
    let faults = [Fault::FsyncFailure, Fault::LeaderChurn, Fault::Partition];
    passes(1, with_faults(1, &faults));
    passes(2, with_faults(2, &faults));
}

/// A leader that lost power resumed leadership at once on restart (openraft restores a
/// stored committed vote for itself) with a log that had lost entries it had already
/// replicated (it replicates before its own fsync), and wrote other entries under the
/// same log ids: replicas diverged. Fixed: a node never resumes leadership from disk
/// (`LogStore::read_vote`), it must win a new election. Found by the 10,000-seed sweep.
#[test]
fn a_restarted_leader_does_not_resume_its_term_with_a_shorter_log() {
    passes(6515, ScenarioConfig::for_seed(6515));
}

/// A node whose metadata group had stopped (a corrupt record: bit flips on node 5) went
/// on answering from its frozen view: UNKNOWN_TOPIC for a topic created since, stale
/// placements to clients refreshing their metadata from it. Producers and a consumer of
/// orders/1 stalled to the end of the run (liveness). Fixed: such a node answers
/// UNAVAILABLE to metadata requests and for topics it does not know, and clients ask
/// another node. Found by
/// the second 10,000-seed sweep; that run had node 4 starting 100 ms late.
#[test]
fn a_node_whose_metadata_group_stopped_does_not_stall_a_partition() {
    let config = ScenarioConfig {
        late_start: Some((4, std::time::Duration::from_millis(100))),
        ..ScenarioConfig::for_seed(3342)
    };
    passes(3342, config);
}

//! Simulation hooks: what the deterministic simulation (`sim-tests`, built with
//! `--cfg madsim`) can switch on and observe inside a node.
//!
//! - **Planted bugs**: real bugs of the kinds that lose or duplicate data, each behind a
//!   switch, so the simulation can prove its checkers catch them. A checker that has never
//!   failed is not trusted.
//! - **Vote observations**: every vote a node persists, and the vote it finds on disk when
//!   it starts; "one leader per term" rests on votes never going backward, and is checked
//!   on them.
//! - **Fsync latency**: how long a simulated fsync takes (the simulated disk is instant).
//!
//! Outside the simulation every hook is a constant or a no-op: no planted bug can be
//! switched on in a real build. Inside it, the state is per thread: the simulation runs
//! each seed on a fresh thread, so a seed starts with no bug planted and no observations.

use std::time::Duration;

use crate::types::{NodeId, PartitionId};

/// A bug the simulation can plant to prove that its checkers catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlantedBug {
    /// Appends are reported durable to openraft as soon as they are written, before the
    /// fsync: the leader and followers count unsynced entries towards the quorum.
    AckBeforeFsync,
    /// The vote is kept in memory only (as if written to a file never synced): a
    /// restarted node forgets whom it voted for and can vote twice in one term.
    VoteNotPersisted,
    /// Reads skip the CRC32C check: a flipped bit is served and replicated.
    SkipChecksum,
    /// A restarted replica forgets its producers' sequence numbers: a retry of a batch
    /// that was appended before the restart is appended again.
    ForgetProducersOnRestart,
    /// Idempotence remembers only each producer's last request, not the last five: a
    /// pipelined producer's retry of an older request that is in the log is refused as
    /// out of order (its producer told "not written").
    IdempotenceWindowOfOne,
    /// The group coordinator gives a partition to its new owner as soon as the target
    /// says so, taking it from the member still revoking it (Iggy's duplicate bug): two
    /// members consume it at once.
    AssignBeforeRevoke,
    /// The group coordinator accepts a commit from a member that is not in the group (a
    /// zombie), storing its offsets over the owner's.
    AcceptFencedCommit,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 7] = [
        PlantedBug::AckBeforeFsync,
        PlantedBug::VoteNotPersisted,
        PlantedBug::SkipChecksum,
        PlantedBug::ForgetProducersOnRestart,
        PlantedBug::IdempotenceWindowOfOne,
        PlantedBug::AssignBeforeRevoke,
        PlantedBug::AcceptFencedCommit,
    ];
}

/// A node persisted a vote of a Raft group, or found one on disk at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteObservation {
    pub group: PartitionId,
    /// The node holding the vote.
    pub node: NodeId,
    pub term: u64,
    /// The candidate or leader voted for (openraft's leader id is `(term, node)`).
    pub voted_for: Option<NodeId>,
    /// Whether a quorum granted it: the vote of an established leader.
    pub committed: bool,
    /// Read from disk at start-up rather than saved.
    pub at_start: bool,
}

#[cfg(madsim)]
mod state {
    use std::cell::{Cell, RefCell};
    use std::time::Duration;

    use super::{PlantedBug, VoteObservation};

    thread_local! {
        pub static PLANTED: Cell<Option<PlantedBug>> = const { Cell::new(None) };
        pub static VOTES: RefCell<Vec<VoteObservation>> = const { RefCell::new(Vec::new()) };
        pub static FSYNC_LATENCY: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }
}

/// Plants `bug` (or none) for the rest of this simulation run.
#[cfg(madsim)]
pub fn plant(bug: Option<PlantedBug>) {
    state::PLANTED.with(|planted| planted.set(bug));
}

/// Whether `bug` is planted. Always false outside the simulation.
#[cfg(madsim)]
pub fn is_planted(bug: PlantedBug) -> bool {
    state::PLANTED.with(|planted| planted.get() == Some(bug))
}

#[cfg(not(madsim))]
#[inline(always)]
pub fn is_planted(_bug: PlantedBug) -> bool {
    false
}

/// Records a vote a node saved or found at start-up.
#[cfg(madsim)]
pub fn observe_vote(observation: VoteObservation) {
    state::VOTES.with(|votes| votes.borrow_mut().push(observation));
}

#[cfg(not(madsim))]
#[inline(always)]
pub fn observe_vote(_observation: VoteObservation) {}

/// Every observation since the last call.
#[cfg(madsim)]
pub fn take_vote_observations() -> Vec<VoteObservation> {
    state::VOTES.with(|votes| std::mem::take(&mut *votes.borrow_mut()))
}

/// Makes every simulated fsync take `latency` of simulated time.
#[cfg(madsim)]
pub fn set_fsync_latency(latency: Duration) {
    state::FSYNC_LATENCY.with(|cell| cell.set(latency));
}

/// How long an fsync takes in the simulation; zero outside it (the disk decides).
#[cfg(madsim)]
pub fn fsync_latency() -> Duration {
    state::FSYNC_LATENCY.with(|cell| cell.get())
}

#[cfg(not(madsim))]
#[inline(always)]
pub fn fsync_latency() -> Duration {
    Duration::ZERO
}

//! The history of a run: every operation the workload made with its outcome, what every
//! consumer saw, every vote the nodes cast, and the final state read after the cluster
//! healed. The checkers judge a run only from this (plain data, no simulator), so the
//! same checkers serve the simulation and the real-process kill loop.

use std::collections::BTreeMap;

/// A partition, by topic name and index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionRef {
    pub topic: String,
    pub index: u32,
}

impl std::fmt::Display for PartitionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.index)
    }
}

/// How one publish ended, as its producer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: durable on a majority at this offset.
    Acked { partition: u32, offset: u64 },
    /// Refused for sure: the event was not written (e.g. rejected as invalid).
    Failed(String),
    /// The producer gave up without an answer (deadline, connection lost): the event may
    /// or may not be in the log, once.
    Unknown(String),
    /// A retry answered DUPLICATE_SEQUENCE: in the log once, its offsets forgotten by the
    /// node (its request was older than the idempotence window).
    OffsetsForgotten(String),
}

/// One publish: a unique payload sent to a topic.
#[derive(Debug, Clone)]
pub struct Publish {
    pub producer: String,
    pub topic: String,
    pub payload: Vec<u8>,
    pub outcome: Outcome,
}

/// What one consumer saw of one partition, in the order it saw it.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub consumer: String,
    pub partition: PartitionRef,
    /// `(offset, payload)` in delivery order.
    pub events: Vec<(u64, Vec<u8>)>,
}

/// A vote a node persisted for a Raft group, or found on its disk at start-up, in the
/// order the node saw them. openraft's votes are ordered by `(term, voted_for)`, and a
/// committed vote (a leader's, granted by a quorum) above an uncommitted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteSeen {
    pub group: u64,
    pub node: u64,
    pub term: u64,
    pub voted_for: Option<u64>,
    pub committed: bool,
    pub at_start: bool,
}

impl VoteSeen {
    /// The vote's place in openraft's order.
    pub fn rank(&self) -> (u64, Option<u64>, bool) {
        (self.term, self.voted_for, self.committed)
    }
}

/// One replica's committed Raft log of one group: `(log index, stored bytes)`, with the
/// entries the fault injector damaged on purpose left out.
#[derive(Debug, Clone, Default)]
pub struct ReplicaLog {
    pub node: u64,
    pub committed_index: u64,
    pub entries: BTreeMap<u64, Vec<u8>>,
}

/// One thing a consumer-group member did, at a time of the run (milliseconds since its
/// start, simulated under madsim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEntry {
    /// It got a partition (the `on_assigned` callback).
    Assigned { at_ms: u64, partition: PartitionRef },
    /// It gave a partition up: revoked, lost, fenced, closed, or its process died.
    Released { at_ms: u64, partition: PartitionRef },
    /// It handed an event of a partition to the application.
    Consumed {
        at_ms: u64,
        partition: PartitionRef,
        offset: u64,
    },
}

/// One group member's own log, in the order it did things.
#[derive(Debug, Clone, Default)]
pub struct MemberLog {
    pub member: String,
    pub entries: Vec<MemberEntry>,
}

/// A committed offset of the group, as an observer fetched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSeen {
    pub at_ms: u64,
    pub partition: PartitionRef,
    pub offset: u64,
}

/// Everything a run recorded.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub publishes: Vec<Publish>,
    pub consumed: Vec<Consumed>,
    pub votes: Vec<VoteSeen>,
    /// Each partition's whole log read from its leader after the heal: payload by offset.
    pub final_logs: BTreeMap<PartitionRef, Vec<Vec<u8>>>,
    /// Per Raft group, the committed logs of its healthy replicas after convergence
    /// (empty when the run cannot inspect replicas' disks).
    pub replica_logs: BTreeMap<u64, Vec<ReplicaLog>>,
    /// Liveness after the heal: what was expected and whether it happened in time.
    pub liveness: Vec<LivenessProbe>,
    /// Consumer-group members' own logs (empty when the run has no group workload).
    pub group_members: Vec<MemberLog>,
    /// The group's committed offsets as an observer saw them, in the order it saw them;
    /// the last per partition is the final one.
    pub group_commits: Vec<CommitSeen>,
}

/// One liveness expectation after the heal.
#[derive(Debug, Clone)]
pub struct LivenessProbe {
    pub what: String,
    /// How long it took, or `None` if it did not happen within the bound.
    pub took_ms: Option<u64>,
    pub bound_ms: u64,
}

impl History {
    pub fn acked(&self) -> impl Iterator<Item = (&Publish, u32, u64)> {
        self.publishes.iter().filter_map(|p| match p.outcome {
            Outcome::Acked { partition, offset } => Some((p, partition, offset)),
            _ => None,
        })
    }

    /// How many events the final logs hold, over every partition.
    pub fn final_event_count(&self) -> usize {
        self.final_logs.values().map(Vec::len).sum()
    }
}

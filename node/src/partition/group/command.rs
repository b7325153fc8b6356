//! What a `__groups` partition's entries carry for consumer groups ([`GroupCommand`]) and
//! what applying one answers ([`GroupResponse`]). Plain data only. Every time a command
//! needs (a commit's time, when a group became empty) is stamped into it by the proposing
//! coordinator: `apply` never reads a clock, so every replica decides the same.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::types::{GroupId, MemberEpoch, MemberId, Offset};

/// One partition of one topic, as groups name them (by topic name and index: a group
/// outlives nothing of a topic's Raft groups, and clients speak in names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupCommand {
    /// A member joins (epoch 0), or a static member comes back under a new member id.
    Join(Join),
    /// A member reports a change: partitions it released, a new subscription.
    Update(Update),
    /// A member leaves cleanly. A static member's assignment is kept (idle) until the
    /// coordinator expels it after its session timeout.
    Leave {
        group: GroupId,
        member: MemberId,
        now_ms: i64,
    },
    /// The coordinator heard nothing from the member for its session timeout.
    Expel {
        group: GroupId,
        member: MemberId,
        now_ms: i64,
    },
    /// A subscribed topic's partition count changed (or the topic went away: absent).
    Topics {
        group: GroupId,
        partition_counts: BTreeMap<String, u32>,
    },
    Commit(Commit),
    /// Sets committed offsets by hand; only while the group has no members.
    Reset {
        group: GroupId,
        offsets: Vec<(TopicPartition, Offset)>,
        now_ms: i64,
    },
    /// Forgets an empty group and its offsets.
    Delete {
        group: GroupId,
    },
    /// Forgets a group that stayed empty since `empty_since_ms` for the retention.
    Expire {
        group: GroupId,
        empty_since_ms: i64,
    },
}

impl GroupCommand {
    pub fn group(&self) -> &GroupId {
        match self {
            GroupCommand::Join(join) => &join.group,
            GroupCommand::Update(update) => &update.group,
            GroupCommand::Commit(commit) => &commit.group,
            GroupCommand::Leave { group, .. }
            | GroupCommand::Expel { group, .. }
            | GroupCommand::Topics { group, .. }
            | GroupCommand::Reset { group, .. }
            | GroupCommand::Delete { group }
            | GroupCommand::Expire { group, .. } => group,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    pub group: GroupId,
    pub member: MemberId,
    /// Static membership: a restarted instance with the same id takes its partitions back.
    pub instance_id: Option<String>,
    pub subscription: BTreeSet<String>,
    /// Partition counts of every topic the group subscribes to once this member is in.
    pub partition_counts: BTreeMap<String, u32>,
    pub session_timeout_ms: u32,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub group: GroupId,
    pub member: MemberId,
    /// What the member holds now: partitions it was asked to revoke and no longer lists
    /// are released.
    pub owned: BTreeSet<TopicPartition>,
    pub subscription: BTreeSet<String>,
    pub partition_counts: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub group: GroupId,
    pub member: MemberId,
    pub epoch: MemberEpoch,
    pub offsets: Vec<OffsetCommit>,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommit {
    pub partition: TopicPartition,
    /// The next offset to consume: everything below has been processed.
    pub next_offset: Offset,
    /// Free text the application stores with the offset.
    pub metadata: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupResponse {
    /// A member's assignment after a Join or Update.
    Member(MemberAssignment),
    /// Done: Leave, Expel, Topics, Commit, Reset, Delete, Expire.
    Done,
    Refused(GroupRefusal),
}

/// What a member is told: its epoch, the partitions it may consume, and those it must
/// give up (stop, commit, then heartbeat without them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberAssignment {
    pub member: Option<MemberId>,
    pub epoch: MemberEpoch,
    pub assigned: BTreeSet<TopicPartition>,
    pub revoking: BTreeSet<TopicPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum GroupRefusal {
    #[error("group {0} does not exist")]
    UnknownGroup(GroupId),
    #[error("member {member} is not in group {group} (it left or was expelled): rejoin")]
    FencedMember { group: GroupId, member: MemberId },
    #[error("{0}")]
    StaleEpoch(String),
    #[error("group {group} has {members} members: {what} only while it has none")]
    NotEmpty {
        group: GroupId,
        members: usize,
        what: String,
    },
    #[error("{0}")]
    Invalid(String),
}

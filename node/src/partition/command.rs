//! A partition's commands: what its Raft entries carry ([`PartitionCommand`]) and what
//! applying one answers ([`PartitionResponse`]). Plain data only: `raft/` wraps these in
//! its `Command` and imports nothing else of `partition/`; the state machine that applies
//! them is `partition::state`.

use serde::{Deserialize, Serialize};

use super::group::command::{GroupCommand, GroupResponse};
use crate::types::{Event, Offset, ProducerId};

/// What a partition's Raft entry carries besides openraft's own blank and membership
/// entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionCommand {
    /// One or more produce requests coalesced into one entry.
    Append(AppendBatch),
    /// A consumer-group change (partitions of `__groups` only).
    Group(GroupCommand),
}

/// The partition state machine's answer for one [`PartitionCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionResponse {
    /// One outcome per segment of an [`AppendBatch`], in order.
    Append(Vec<SegmentOutcome>),
    Group(GroupResponse),
}

/// Events appended as one Raft entry. Offsets are assigned when the entry is applied,
/// densely, in segment order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendBatch {
    pub segments: Vec<ProduceSegment>,
}

/// The events of one produce request, with the idempotency key of its producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceSegment {
    /// [`ProducerId::NONE`]: not an idempotent producer, never deduplicated.
    pub producer_id: ProducerId,
    /// Sequence number of the first event within (producer, partition).
    pub first_sequence: u64,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentOutcome {
    /// Appended at `[base_offset, base_offset + events)`.
    Appended { base_offset: Offset },
    /// A retry of one of the producer's last requests: nothing written, its original
    /// offsets returned.
    Duplicate { base_offset: Offset },
    /// A retry of a request older than the producer's remembered ones: it is in the log,
    /// its offsets are forgotten; nothing written.
    DuplicateSequence { oldest_remembered_sequence: u64 },
    /// The sequence skips ahead, or overlaps appended ones without repeating a request:
    /// nothing written.
    OutOfOrder { expected_sequence: u64 },
}

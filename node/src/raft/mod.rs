//! openraft wiring shared by every Raft group of the node (the metadata group and each
//! partition): the type config, the commands entries carry, the log store and state
//! machine over [`crate::storage`], and the node-to-node network and transport service.
//!
//! One type config serves every group: a partition's entries carry
//! [`Command::Append`], the metadata group's carry [`Command::Metadata`]. A state machine
//! that receives the other kind has been wired to the wrong group: that is a bug, and it
//! asserts.

pub mod codec;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod transport;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::metadata::state::{MetadataCommand, MetadataResponse};
use crate::types::{Event, NodeId};

openraft::declare_raft_types!(
    /// The Raft type config of every evlog group.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::rt::RaftRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type RaftStorageError = openraft::StorageError<NodeId>;

/// What a Raft entry carries besides openraft's own blank and membership entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A metadata change (metadata group only).
    Metadata(MetadataCommand),
    /// Events for a partition (partition groups only): one or more produce requests
    /// coalesced into one entry.
    Append(AppendBatch),
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
    /// 0 = not an idempotent producer: never deduplicated.
    pub producer_id: u64,
    /// Sequence number of the first event within (producer, partition).
    pub first_sequence: u64,
    pub events: Vec<Event>,
}

/// The state machine's answer for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Blank and membership entries have nothing to answer.
    Empty,
    Metadata(MetadataResponse),
    /// One outcome per segment of an [`AppendBatch`], in order.
    Append(Vec<SegmentOutcome>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentOutcome {
    /// Appended at `[base_offset, base_offset + events)`.
    Appended { base_offset: u64 },
    /// A retry of one of the producer's last requests: nothing written, its original
    /// offsets returned.
    Duplicate { base_offset: u64 },
    /// A retry of a request older than the producer's remembered ones: it is in the log,
    /// its offsets are forgotten; nothing written.
    DuplicateSequence { oldest_remembered_sequence: u64 },
    /// The sequence skips ahead, or overlaps appended ones without repeating a request:
    /// nothing written.
    OutOfOrder { expected_sequence: u64 },
}

/// Timing of every group's Raft (from `config::RaftConfig`).
#[derive(Debug, Clone, Copy)]
pub struct RaftTiming {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub max_payload_entries: u64,
}

/// Largest snapshot chunk one InstallSnapshot RPC carries.
pub const SNAPSHOT_CHUNK_BYTES_MAX: u64 = 1 << 20;

/// Room for everything of a peer message besides its entries or snapshot chunk (vote,
/// log ids, framing), and for a response.
const PEER_MESSAGE_FRAMING_BYTES: usize = 1 << 20;

/// The largest Raft message a node sends or accepts from a peer: an AppendEntries of
/// `append_entries_bytes_max` (or one entry that alone is larger, which the produce limits
/// keep below it) or a snapshot chunk, plus framing. Larger messages are refused by the
/// transport before they are decoded.
pub fn peer_message_bytes_max(append_entries_bytes_max: u64) -> usize {
    let payload = append_entries_bytes_max.max(SNAPSHOT_CHUNK_BYTES_MAX);
    usize::try_from(payload)
        .unwrap_or(usize::MAX)
        .saturating_add(PEER_MESSAGE_FRAMING_BYTES)
}

/// openraft's config for every group. The Raft log IS the event log: snapshots are never
/// built by policy and logs are never purged by openraft (only retention purges).
pub fn openraft_config(cluster: &str, timing: RaftTiming) -> openraft::Config {
    let config = openraft::Config {
        cluster_name: cluster.to_string(),
        heartbeat_interval: timing.heartbeat_interval_ms,
        election_timeout_min: timing.election_timeout_min_ms,
        election_timeout_max: timing.election_timeout_max_ms,
        max_payload_entries: timing.max_payload_entries,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: u64::MAX,
        purge_batch_size: 1024,
        // Snapshots are small (offsets and producer tables): one chunk, within the peer
        // message limit.
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES_MAX,
        enable_tick: true,
        ..Default::default()
    };
    config
        .validate()
        .expect("openraft config is built from a validated node config")
}

/// Logs every leader change of a group with its id and term, so operators can follow
/// elections partition by partition. Ends when the group's Raft stops.
pub fn log_leader_changes(group: crate::types::PartitionId, node_id: NodeId, raft: &Raft) {
    let mut metrics = raft.metrics();
    crate::rt::spawn(async move {
        let mut last_leader = None;
        loop {
            let (leader, term) = {
                let m = metrics.borrow_and_update();
                (m.current_leader, m.current_term)
            };
            if leader.is_some() && leader != last_leader {
                match leader {
                    Some(id) if id == node_id => {
                        tracing::info!(%group, term, "this node now leads")
                    }
                    Some(id) => tracing::info!(%group, term, leader = id, "leader changed"),
                    None => {}
                }
                last_leader = leader;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

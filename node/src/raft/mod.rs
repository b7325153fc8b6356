//! openraft wiring shared by every Raft group of the node (the metadata group and each
//! partition): the type config, the wrapper of the commands entries carry, the log store
//! and state machine over [`crate::storage`], and the node-to-node network and transport
//! service.
//!
//! One type config serves every group: a partition's entries carry
//! [`Command::Partition`], the metadata group's carry [`Command::Metadata`]. Each layer owns
//! its commands (`partition::command`, `metadata::command`); this module only wraps them.

pub mod codec;
pub mod group;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod transport;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::metadata::command::{MetadataCommand, MetadataResponse};
use crate::partition::command::{PartitionCommand, PartitionResponse};
use crate::types::NodeId;

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

/// What a Raft entry carries besides openraft's own blank and membership entries: the
/// command of the layer that owns the group. A state machine handed the other kind has
/// been wired to the wrong group: that is a bug, and it asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A metadata change (metadata group only).
    Metadata(MetadataCommand),
    /// A partition's command (partition groups only).
    Partition(PartitionCommand),
}

/// The state machine's answer for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Blank and membership entries have nothing to answer.
    Empty,
    Metadata(MetadataResponse),
    Partition(PartitionResponse),
}

impl TryFrom<Command> for MetadataCommand {
    type Error = Command;
    fn try_from(command: Command) -> Result<Self, Command> {
        match command {
            Command::Metadata(command) => Ok(command),
            other => Err(other),
        }
    }
}

impl TryFrom<Command> for PartitionCommand {
    type Error = Command;
    fn try_from(command: Command) -> Result<Self, Command> {
        match command {
            Command::Partition(command) => Ok(command),
            other => Err(other),
        }
    }
}

impl From<MetadataResponse> for CommandResponse {
    fn from(response: MetadataResponse) -> Self {
        CommandResponse::Metadata(response)
    }
}

impl From<PartitionResponse> for CommandResponse {
    fn from(response: PartitionResponse) -> Self {
        CommandResponse::Partition(response)
    }
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

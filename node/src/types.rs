//! Identifiers and the event model shared by every module (newtypes, so a partition id
//! can never be passed where a log index or an offset is expected).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A node of the cluster (`--node-id`). Ids are >= 1.
pub type NodeId = u64;

/// Cluster-wide id of one Raft group: a partition, or [`PartitionId::METADATA`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u64);

impl PartitionId {
    /// The metadata group's reserved id. Partition ids start at 1.
    pub const METADATA: PartitionId = PartitionId(0);
}

impl std::fmt::Display for PartitionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::METADATA {
            write!(f, "metadata")
        } else {
            write!(f, "p{}", self.0)
        }
    }
}

/// Position of an event inside its partition, dense from 0. Not a Raft log index.
pub type Offset = u64;

/// An event as stored inside a Raft entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
    pub timestamp_ms: i64,
}

impl Event {
    /// What this event counts for in every byte limit of the path: its payload (key +
    /// value + headers) plus its fixed overhead, by the rule `evlog_proto::limits` owns.
    pub fn accounted_bytes(&self) -> usize {
        let payload = evlog_proto::limits::payload_bytes(
            self.key.as_deref(),
            &self.value,
            self.headers.iter().map(|(k, v)| (k.as_str(), &v[..])),
        );
        evlog_proto::limits::accounted_bytes(payload, self.headers.len())
    }
}

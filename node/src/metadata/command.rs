//! The metadata group's commands: what its Raft entries carry ([`MetadataCommand`]) and
//! what applying one answers ([`MetadataResponse`]), with the data types both hold. Plain
//! data only: `raft/` wraps these in its `Command` and imports nothing else of
//! `metadata/`.

use serde::{Deserialize, Serialize};

use crate::types::{NodeId, PartitionId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    /// Largest event accepted (key + value + headers), in bytes.
    pub max_event_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    CreateTopic(TopicSpec),
    DeleteTopic {
        name: String,
    },
    /// A member tells the cluster the address its clients use.
    RegisterNode {
        node_id: NodeId,
        client_addr: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataResponse {
    TopicCreated(TopicInfo),
    TopicDeleted { name: String },
    NodeRegistered { node_id: NodeId },
    Refused(MetadataRefusal),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MetadataRefusal {
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("replication factor {replication_factor} is larger than the cluster ({nodes} nodes)")]
    NotEnoughNodes {
        replication_factor: u32,
        nodes: usize,
    },
    #[error("node {0} is not a member of the cluster")]
    UnknownNode(NodeId),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    /// Index of the partition inside its topic (0..partitions).
    pub index: u32,
    /// Cluster-wide id of its Raft group; never reused.
    pub id: PartitionId,
    /// Nodes holding a replica; the first is the preferred leader.
    pub replicas: Vec<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub spec: TopicSpec,
    pub partitions: Vec<PartitionPlacement>,
}

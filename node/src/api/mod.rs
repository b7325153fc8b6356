//! gRPC services for clients: `EventLog` (produce, read, subscribe) and `Admin`.
//!
//! Every failure a client can act on is answered in the response's `error` field with a
//! stable [`ErrorCode`](evlog_proto::evlog::v1::ErrorCode); gRPC statuses are left for
//! transport-level failures (undecodable requests are refused by tonic itself).

pub mod admin;
pub mod errors;
pub mod event_log;
pub mod groups;
mod subscription;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::metadata::read_index;
use crate::metadata::state::MetadataView;
use crate::metadata::MetadataGroup;
use crate::partition::budget::MemoryBudget;
use crate::partition::group::coordinator::Coordinator;
use crate::partition::{Leadership, Registry, Replica};
use crate::raft::network::PeerChannels;
use crate::types::{NodeId, PartitionId};
use evlog_proto::evlog::v1 as pb;

/// Limits the services enforce (from the node config).
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    pub request_bytes_max: usize,
    pub request_events_max: usize,
    pub headers_per_event_max: usize,
    pub default_max_event_bytes: u32,
    pub request_timeout: Duration,
    pub response_bytes_max: usize,
    pub subscribe_buffer_bytes_max: usize,
    pub subscribe_heartbeat: Duration,
    pub slow_consumer_timeout: Duration,
}

/// How long a node waits to confirm that it has seen every topic before it answers
/// UNKNOWN_TOPIC (at most the request timeout).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// The retry hint when it could not.
const CATCH_UP_RETRY_AFTER_MS: u32 = 200;

/// What the services share.
#[derive(Clone)]
pub struct ApiContext {
    pub node_id: NodeId,
    pub cluster_id: Arc<str>,
    pub metadata: Arc<MetadataGroup>,
    /// Channels to the peers, for the metadata read index (see `topic_view`).
    pub peers: Arc<PeerChannels>,
    pub registry: Arc<Registry>,
    /// This node's side of consumer groups.
    pub coordinator: Arc<Coordinator>,
    pub limits: ApiLimits,
    /// The node's budget for events waiting in subscriptions (`memory.subscribe_bytes_max`).
    pub subscribe_budget: MemoryBudget,
    /// Turns true when the node starts shutting down.
    pub shutdown: watch::Receiver<bool>,
}

/// A partition resolved from (topic, index), with its local replica when it leads here.
pub struct Target {
    pub partition: PartitionId,
    pub max_event_bytes: u32,
    pub replica: Arc<Replica>,
}

impl ApiContext {
    /// This node's applied metadata, or UNAVAILABLE when its metadata replica has stopped:
    /// a frozen view would answer "unknown topic" for topics created since, and hand out
    /// stale placements, for good. The client asks another node instead. (The partitions
    /// this node leads are still served: their own Raft groups run.)
    pub fn metadata_view(&self) -> Result<Arc<MetadataView>, pb::Error> {
        if self.metadata.is_running() {
            return Ok(self.metadata.view());
        }
        Err(errors::error(
            pb::ErrorCode::Unavailable,
            format!(
                "node {}'s metadata replica has stopped; ask another node",
                self.node_id
            ),
        ))
    }

    /// This node's view once it holds `topic`; UNKNOWN_TOPIC only after the metadata leader
    /// confirmed (Raft's ReadIndex, `metadata::read_index`) that this replica has applied
    /// everything committed, so a topic created a moment ago on another node is never
    /// "unknown" here. UNAVAILABLE when that cannot be confirmed.
    pub async fn topic_view(&self, topic: &str) -> Result<Arc<MetadataView>, pb::Error> {
        // A known topic is served even from a stopped metadata replica's view: the
        // partitions this node leads run their own Raft groups.
        let view = self.metadata.view();
        if view.topics.contains_key(topic) {
            return Ok(view);
        }
        // A frozen view lacks what was created since: not knowing is not "no such topic".
        self.metadata_view()?;
        let timeout = CATCH_UP_TIMEOUT.min(self.limits.request_timeout);
        let caught_up = read_index::catch_up(self.node_id, &self.metadata, &self.peers, timeout);
        if let Err(why) = caught_up.await {
            return Err(errors::retry_after(
                pb::ErrorCode::Unavailable,
                format!(
                    "node {} cannot confirm whether topic {topic:?} exists: {why}",
                    self.node_id
                ),
                CATCH_UP_RETRY_AFTER_MS,
            ));
        }
        let view = self.metadata.view();
        if view.topics.contains_key(topic) {
            return Ok(view);
        }
        Err(errors::error(
            pb::ErrorCode::UnknownTopic,
            format!("topic {topic:?} does not exist"),
        ))
    }

    /// Resolves (topic, index) and checks that this node leads it. Every refusal is an
    /// answer the client can act on: unknown topic/partition, or NOT_LEADER with a hint.
    pub async fn leader_target(&self, topic: &str, index: u32) -> Result<Target, pb::Error> {
        if *self.shutdown.borrow() {
            return Err(errors::error(
                pb::ErrorCode::ShuttingDown,
                "node is shutting down",
            ));
        }
        if topic == crate::partition::group::GROUPS_TOPIC {
            return Err(errors::invalid(format!(
                "{topic} is internal (it holds consumer groups, not events)"
            )));
        }
        let view = self.topic_view(topic).await?;
        let info = &view.topics[topic];
        let Some(placement) = info.partitions.get(index as usize) else {
            return Err(errors::error(
                pb::ErrorCode::UnknownPartition,
                format!(
                    "topic {topic:?} has {} partitions, not {}",
                    info.partitions.len(),
                    u64::from(index) + 1
                ),
            ));
        };
        let Some(replica) = self.registry.get(placement.id) else {
            let message = format!(
                "node {} hosts no replica of {topic}/{index} (replicas: {:?})",
                self.node_id, placement.replicas
            );
            return Err(errors::not_leader(message, None, &view));
        };
        match replica.leadership() {
            Leadership::Leader => Ok(Target {
                partition: placement.id,
                max_event_bytes: info.spec.max_event_bytes,
                replica,
            }),
            Leadership::Follower { leader } => {
                let message = format!("node {} is not the leader of {topic}/{index}", self.node_id);
                Err(errors::not_leader(message, leader, &view))
            }
        }
    }
}

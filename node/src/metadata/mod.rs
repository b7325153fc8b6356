//! The metadata group: a Raft group (id 0) on the initial voters holding the cluster's
//! nodes, topics and partition placement, and the registration of this node's client
//! address. (The local replicas follow placement in `partition::reconciler`.)

pub mod command;
pub mod read_index;
pub mod registration;
pub mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use evlog_proto::raft::v1::raft_transport_client::RaftTransportClient;
use evlog_proto::raft::v1::Envelope;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::BasicNode;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::raft::group::GroupContext;
use crate::raft::network::PeerChannels;
use crate::raft::state_machine::load_applied;
use crate::raft::transport::LeaderRefusal;
use crate::raft::{Command, CommandResponse, Raft};
use crate::types::{NodeId, PartitionId};
use crate::NodeError;

use command::{MetadataCommand, MetadataResponse};
use state::{MetadataState, MetadataView};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProposeError {
    #[error("this node does not lead the metadata group")]
    NotLeader { leader: Option<NodeId> },
    #[error("metadata group unavailable: {0}")]
    Unavailable(String),
}

impl From<ProposeError> for LeaderRefusal {
    fn from(e: ProposeError) -> Self {
        let leader = match e {
            ProposeError::NotLeader { leader } => leader,
            ProposeError::Unavailable(_) => None,
        };
        LeaderRefusal {
            message: e.to_string(),
            leader,
        }
    }
}

/// How to reach the metadata leader from this node.
pub enum LeaderRoute {
    /// This node leads: use the local replica.
    Here,
    /// A peer leads: its transport, and the envelope for messages to it.
    Peer {
        id: NodeId,
        client: Box<RaftTransportClient<Channel>>,
        envelope: Envelope,
    },
}

pub struct MetadataGroup {
    pub raft: Raft,
    view: watch::Receiver<Arc<MetadataView>>,
}

impl MetadataGroup {
    /// Starts the local replica of the metadata group. Every initial voter initializes it
    /// with the same members (safe in openraft); a restarted node just resumes.
    pub async fn start(
        ctx: &GroupContext,
        initial_members: BTreeMap<NodeId, BasicNode>,
    ) -> Result<Self, NodeError> {
        let group = PartitionId::METADATA;
        let applied = load_applied(ctx.engine.as_ref(), group)?.unwrap_or_default();
        let state = MetadataState::restore(&applied.summary).map_err(|reason| {
            crate::storage::StorageError::Corrupt {
                cf: crate::keys::Cf::PartitionState.name(),
                key: crate::keys::partition_prefix(group).to_vec(),
                reason,
            }
        })?;
        let view = state.subscribe();
        let raft = ctx
            .start_group(group, applied, state, initial_members)
            .await?;
        Ok(Self { raft, view })
    }

    /// Whether this node's metadata replica still runs. One that stopped (a storage error,
    /// e.g. a corrupt record) keeps the view it had: frozen, it may lack topics and
    /// placements that exist.
    pub fn is_running(&self) -> bool {
        self.raft.metrics().borrow().running_state.is_ok()
    }

    /// The applied metadata as this node sees it.
    pub fn view(&self) -> Arc<MetadataView> {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataView>> {
        self.view.clone()
    }

    /// Current leader of the metadata group and its peer address, as seen here.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)?
            .addr
            .clone();
        Some((leader, addr))
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Proposes a metadata change; only the leader accepts. Waits for it to be applied.
    pub async fn propose(
        &self,
        command: MetadataCommand,
        timeout: Duration,
    ) -> Result<MetadataResponse, ProposeError> {
        let write = self.raft.client_write(Command::Metadata(command));
        let result = match tokio::time::timeout(timeout, write).await {
            Ok(result) => result,
            Err(_) => {
                return Err(ProposeError::Unavailable(format!(
                    "not committed within {timeout:?}"
                )))
            }
        };
        match result {
            Ok(response) => match response.data {
                CommandResponse::Metadata(answer) => Ok(answer),
                other => panic!("metadata command answered with {other:?}"),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(ProposeError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(other) => Err(ProposeError::Unavailable(other.to_string())),
        }
    }

    /// The route to the metadata leader as this node (`node_id`) knows it.
    pub fn leader_route(
        &self,
        node_id: NodeId,
        peers: &PeerChannels,
    ) -> Result<LeaderRoute, String> {
        let Some((leader, leader_peer_addr)) = self.leader() else {
            return Err("no metadata leader known yet".to_owned());
        };
        if leader == node_id {
            return Ok(LeaderRoute::Here);
        }
        let channel = peers
            .channel(&leader_peer_addr)
            .map_err(|e| format!("no channel to node {leader} at {leader_peer_addr}: {e}"))?;
        Ok(LeaderRoute::Peer {
            id: leader,
            client: Box::new(RaftTransportClient::new(channel)),
            envelope: peers.identity().envelope(leader),
        })
    }

    /// Raft's ReadIndex on the leader: confirms its leadership with a quorum's heartbeats
    /// and returns the log index a replica must have applied to have seen everything
    /// committed before the call (0: nothing yet).
    pub async fn read_index_here(&self) -> Result<u64, ProposeError> {
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _applied)) => Ok(read_log_id.map_or(0, |id| id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                Err(ProposeError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(other) => Err(ProposeError::Unavailable(other.to_string())),
        }
    }
}

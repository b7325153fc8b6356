//! The server side of the node-to-node Raft transport, on the peer listener: checks that
//! a message is for this cluster and this node, finds the local replica of its group and
//! hands the request to its Raft; on the metadata leader, takes the registrations of
//! peers' client addresses, answers their metadata read-index questions and creates the
//! `__groups` topic on request; on a partition's leader, tells group coordinators its
//! high watermark.

use std::sync::Arc;

use evlog_proto::raft::v1::raft_transport_server::RaftTransport;
use evlog_proto::raft::v1::{
    EnsureGroupsTopicRequest, EnsureGroupsTopicResponse, MetadataReadIndexRequest,
    MetadataReadIndexResponse, PartitionWatermarkRequest, PartitionWatermarkResponse, RaftRequest,
    RaftResponse, RegisterNodeRequest, RegisterNodeResponse,
};
use openraft::error::RaftError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::codec::{decode, encode};
use super::network::PeerIdentity;
use super::Raft;
use crate::types::{NodeId, Offset, PartitionId};

/// Why the metadata leader's work (a registration, a read index) was not done here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRefusal {
    pub message: String,
    /// The metadata leader, when this node is not it and knows who is.
    pub leader: Option<NodeId>,
}

/// What the transport serves from: the local Raft groups, and the metadata group's
/// registration of a node's client address (the node wires both in).
#[tonic::async_trait]
pub trait PeerServices: Send + Sync + 'static {
    /// The local Raft of a group (the metadata group or a partition).
    fn raft(&self, group: PartitionId) -> Option<Raft>;
    /// Records `client_addr` for `node_id`, if this node leads the metadata group.
    async fn register_node(
        &self,
        node_id: NodeId,
        client_addr: String,
    ) -> Result<(), LeaderRefusal>;
    /// The metadata group's read index, if this node leads it.
    async fn metadata_read_index(&self) -> Result<u64, LeaderRefusal>;
    /// Creates the `__groups` topic unless it exists, if this node leads the metadata
    /// group.
    async fn ensure_groups_topic(&self) -> Result<(), LeaderRefusal>;
    /// The high watermark and log start of `group` (a partition), if this node leads it;
    /// confirmed with a quorum first when `offset` is past the local watermark.
    async fn partition_watermark(
        &self,
        group: PartitionId,
        offset: Offset,
    ) -> Result<(Offset, Offset), LeaderRefusal>;
}

pub struct TransportService {
    services: Arc<dyn PeerServices>,
    identity: PeerIdentity,
}

impl TransportService {
    pub fn new(services: Arc<dyn PeerServices>, identity: PeerIdentity) -> Self {
        Self { services, identity }
    }

    fn respond(transport_error: String, refused: String) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new(RaftResponse {
            transport_error,
            payload: Default::default(),
            refused,
        }))
    }

    /// Why the message is not for this node, logged (rate-limited) when it is not.
    fn refusal(&self, envelope: Option<&evlog_proto::raft::v1::Envelope>) -> Option<String> {
        let refusal = self.identity.refusal(envelope)?;
        crate::throttle::warn_every(
            "refused a peer message",
            format_args!("refused a Raft message: {refusal}"),
        );
        Some(refusal)
    }

    async fn handle<Req, Resp, E, F, Fut>(
        &self,
        request: RaftRequest,
        call: F,
    ) -> Result<Response<RaftResponse>, Status>
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        E: std::error::Error + Serialize,
        F: FnOnce(Raft, Req) -> Fut,
        Fut: std::future::Future<Output = Result<Resp, RaftError<u64, E>>>,
    {
        if let Some(refused) = self.refusal(request.envelope.as_ref()) {
            return Self::respond(String::new(), refused);
        }
        let group = PartitionId(request.group_id);
        let Some(raft) = self.services.raft(group) else {
            // Normal while a new topic's replicas start on their nodes: the sender retries.
            return Self::respond(
                format!("group {group} is not hosted here (yet)"),
                String::new(),
            );
        };
        let decoded: Req = decode(&request.payload).map_err(|e| {
            Status::invalid_argument(format!("undecodable raft request for {group}: {e}"))
        })?;
        let result = call(raft, decoded).await;
        Ok(Response::new(RaftResponse {
            transport_error: String::new(),
            payload: encode(&result).into(),
            refused: String::new(),
        }))
    }
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        self.handle(request.into_inner(), |raft, rpc| async move {
            raft.append_entries(rpc).await
        })
        .await
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftResponse>, Status> {
        self.handle(request.into_inner(), |raft, rpc| async move {
            raft.vote(rpc).await
        })
        .await
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        self.handle(request.into_inner(), |raft, rpc| async move {
            raft.install_snapshot(rpc).await
        })
        .await
    }

    async fn register_node(
        &self,
        request: Request<RegisterNodeRequest>,
    ) -> Result<Response<RegisterNodeResponse>, Status> {
        let request = request.into_inner();
        if let Some(refused) = self.refusal(request.envelope.as_ref()) {
            return Ok(Response::new(RegisterNodeResponse {
                refused,
                ..Default::default()
            }));
        }
        let from = request.envelope.map_or(0, |e| e.from_node);
        let answer = match self.services.register_node(from, request.client_addr).await {
            Ok(()) => RegisterNodeResponse::default(),
            Err(refusal) => RegisterNodeResponse {
                error: refusal.message,
                leader_id: refusal.leader,
                refused: String::new(),
            },
        };
        Ok(Response::new(answer))
    }

    async fn metadata_read_index(
        &self,
        request: Request<MetadataReadIndexRequest>,
    ) -> Result<Response<MetadataReadIndexResponse>, Status> {
        let request = request.into_inner();
        if let Some(refused) = self.refusal(request.envelope.as_ref()) {
            return Ok(Response::new(MetadataReadIndexResponse {
                refused,
                ..Default::default()
            }));
        }
        let answer = match self.services.metadata_read_index().await {
            Ok(index) => MetadataReadIndexResponse {
                index,
                ..Default::default()
            },
            Err(refusal) => MetadataReadIndexResponse {
                error: refusal.message,
                leader_id: refusal.leader,
                ..Default::default()
            },
        };
        Ok(Response::new(answer))
    }

    async fn ensure_groups_topic(
        &self,
        request: Request<EnsureGroupsTopicRequest>,
    ) -> Result<Response<EnsureGroupsTopicResponse>, Status> {
        let request = request.into_inner();
        if let Some(refused) = self.refusal(request.envelope.as_ref()) {
            return Ok(Response::new(EnsureGroupsTopicResponse {
                refused,
                ..Default::default()
            }));
        }
        let answer = match self.services.ensure_groups_topic().await {
            Ok(()) => EnsureGroupsTopicResponse::default(),
            Err(refusal) => EnsureGroupsTopicResponse {
                error: refusal.message,
                leader_id: refusal.leader,
                refused: String::new(),
            },
        };
        Ok(Response::new(answer))
    }

    async fn partition_watermark(
        &self,
        request: Request<PartitionWatermarkRequest>,
    ) -> Result<Response<PartitionWatermarkResponse>, Status> {
        let request = request.into_inner();
        if let Some(refused) = self.refusal(request.envelope.as_ref()) {
            return Ok(Response::new(PartitionWatermarkResponse {
                refused,
                ..Default::default()
            }));
        }
        let group = PartitionId(request.group_id);
        let answer = match self
            .services
            .partition_watermark(group, Offset(request.offset))
            .await
        {
            Ok((high, log_start)) => PartitionWatermarkResponse {
                high_watermark: high.0,
                log_start_offset: log_start.0,
                ..Default::default()
            },
            Err(refusal) => PartitionWatermarkResponse {
                error: refusal.message,
                leader_id: refusal.leader,
                ..Default::default()
            },
        };
        Ok(Response::new(answer))
    }
}

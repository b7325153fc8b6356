//! The server side of the node-to-node Raft transport: receives a group's request,
//! finds the local replica of that group and hands the request to its Raft.

use std::sync::Arc;

use evlog_proto::raft::v1::raft_transport_server::RaftTransport;
use evlog_proto::raft::v1::{RaftRequest, RaftResponse};
use openraft::error::RaftError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::codec::{decode, encode};
use super::Raft;
use crate::types::PartitionId;

/// Finds the local Raft of a group (the metadata group or a partition).
pub trait RaftGroups: Send + Sync + 'static {
    fn raft(&self, group: PartitionId) -> Option<Raft>;
}

pub struct TransportService {
    groups: Arc<dyn RaftGroups>,
}

impl TransportService {
    pub fn new(groups: Arc<dyn RaftGroups>) -> Self {
        Self { groups }
    }

    fn refuse(message: String) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new(RaftResponse {
            transport_error: message,
            payload: Default::default(),
        }))
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
        let group = PartitionId(request.group_id);
        let Some(raft) = self.groups.raft(group) else {
            return Self::refuse(format!("group {group} is not hosted here (yet)"));
        };
        let decoded: Req = decode(&request.payload).map_err(|e| {
            Status::invalid_argument(format!("undecodable raft request for {group}: {e}"))
        })?;
        let result = call(raft, decoded).await;
        Ok(Response::new(RaftResponse {
            transport_error: String::new(),
            payload: encode(&result).into(),
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
}

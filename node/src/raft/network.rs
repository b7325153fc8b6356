//! The client side of the node-to-node Raft transport: openraft's `RaftNetwork` over
//! gRPC (`raft.v1.RaftTransport`, on the peers' peer listeners). One channel per peer
//! address is shared by every group; each request names its group, so hundreds of
//! partitions multiplex one connection. Every request carries an [`Envelope`]: this
//! cluster's id, this node and the target node, which the receiver checks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog_proto::raft::v1::raft_transport_client::RaftTransportClient;
use evlog_proto::raft::v1::{Envelope, RaftRequest, RaftResponse};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::codec::{decode, encode};
use super::TypeConfig;
use crate::types::{NodeId, PartitionId};

/// Who this node is to its peers: what every envelope it sends says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub cluster_id: String,
    pub node_id: NodeId,
}

impl PeerIdentity {
    /// The envelope of a message from this node to `to_node`.
    pub fn envelope(&self, to_node: NodeId) -> Envelope {
        Envelope {
            cluster_id: self.cluster_id.clone(),
            from_node: self.node_id,
            to_node,
        }
    }

    /// Why a message with `envelope` is not for this node, if it is not.
    pub fn refusal(&self, envelope: Option<&Envelope>) -> Option<String> {
        let Some(envelope) = envelope else {
            return Some("a message without an envelope (not from an evlog peer)".to_owned());
        };
        if envelope.cluster_id != self.cluster_id {
            return Some(format!(
                "node {} of cluster {:?} sent a message for cluster {:?}, but this is cluster \
                 {:?}: check cluster_id and initial_cluster on both nodes",
                envelope.from_node, envelope.cluster_id, envelope.cluster_id, self.cluster_id
            ));
        }
        if envelope.to_node != self.node_id {
            return Some(format!(
                "node {} sent a message for node {} to node {}: check initial_cluster (an \
                 address of the wrong node?)",
                envelope.from_node, envelope.to_node, self.node_id
            ));
        }
        None
    }
}

/// How long a peer must stay unreachable before this node says so: nodes of a cluster
/// start, restart and elect at slightly different times, and a peer that is back within
/// seconds is normal operation, not a fault to log.
const PEER_DOWN_REPORT_AFTER: Duration = Duration::from_secs(10);

/// Since when calls to one peer address have been failing, and whether that was logged.
#[derive(Default)]
struct Outage {
    failing_since: Option<crate::rt::Instant>,
    reported: bool,
}

/// Lazily connected gRPC channels to peers, by address.
pub struct PeerChannels {
    channels: Mutex<HashMap<String, Channel>>,
    outages: Mutex<HashMap<String, Outage>>,
    /// How many addresses `outages` holds: a call that reached its peer looks at the map
    /// only when some outage is open (every AppendEntries passes here).
    open_outages: AtomicUsize,
    /// Largest message sent or accepted ([`super::peer_message_bytes_max`]).
    message_bytes_max: usize,
    identity: PeerIdentity,
}

impl PeerChannels {
    pub fn new(identity: PeerIdentity, message_bytes_max: usize) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            outages: Mutex::new(HashMap::new()),
            open_outages: AtomicUsize::new(0),
            message_bytes_max,
            identity,
        }
    }

    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    pub fn message_bytes_max(&self) -> usize {
        self.message_bytes_max
    }

    /// Records a call to `target` at `addr` that could not reach it; logs one line when
    /// the peer has been unreachable for [`PEER_DOWN_REPORT_AFTER`].
    fn record_unreachable(&self, target: NodeId, addr: &str, error: &dyn std::fmt::Display) {
        let now = crate::rt::now();
        let mut outages = self.outages.lock().expect("peer outage map poisoned");
        let outage = outages.entry(addr.to_owned()).or_insert_with(|| {
            self.open_outages.fetch_add(1, Ordering::Relaxed);
            Outage::default()
        });
        let since = *outage.failing_since.get_or_insert(now);
        if !outage.reported && now.duration_since(since) >= PEER_DOWN_REPORT_AFTER {
            outage.reported = true;
            tracing::warn!(
                "node {target} at {addr} has been unreachable for {}s ({error}): is it \
                 running, and is its peer_listen reachable from this node? Its partitions \
                 keep working while a majority of their replicas is up",
                PEER_DOWN_REPORT_AFTER.as_secs()
            );
        }
    }

    /// Records a call that reached `target`; logs one line if its outage was reported.
    fn record_reachable(&self, target: NodeId, addr: &str) {
        if self.open_outages.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut outages = self.outages.lock().expect("peer outage map poisoned");
        let Some(outage) = outages.remove(addr) else {
            return;
        };
        self.open_outages.fetch_sub(1, Ordering::Relaxed);
        if outage.reported {
            let down = outage
                .failing_since
                .map(|since| crate::rt::now().duration_since(since).as_secs())
                .unwrap_or_default();
            tracing::info!("node {target} at {addr} is reachable again after {down}s");
        }
    }

    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock().expect("peer channel map poisoned");
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// Creates per-target clients for one group.
#[derive(Clone)]
pub struct Network {
    group: PartitionId,
    peers: Arc<PeerChannels>,
}

impl Network {
    pub fn new(group: PartitionId, peers: Arc<PeerChannels>) -> Self {
        Self { group, peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            group: self.group,
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

pub struct PeerClient {
    group: PartitionId,
    target: NodeId,
    addr: String,
    peers: Arc<PeerChannels>,
}

/// Which transport RPC a request goes to.
#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        rpc: Rpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let unreachable = |e: &dyn std::fmt::Display| {
            RPCError::Unreachable(Unreachable::new(&TransportError(e.to_string())))
        };
        let channel = self
            .peers
            .channel(&self.addr)
            .map_err(|e| unreachable(&e))?;
        let mut client = RaftTransportClient::new(channel)
            .max_decoding_message_size(self.peers.message_bytes_max)
            .max_encoding_message_size(self.peers.message_bytes_max);
        let mut request = tonic::Request::new(RaftRequest {
            group_id: self.group.0,
            payload: encode(request).into(),
            envelope: Some(self.peers.identity.envelope(self.target)),
        });
        request.set_timeout(option.hard_ttl());
        let result = match rpc {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
        };
        let response: RaftResponse = match result {
            Ok(response) => response.into_inner(),
            Err(status) => {
                if status.code() == tonic::Code::Unavailable {
                    self.peers
                        .record_unreachable(self.target, &self.addr, &status.message());
                }
                return Err(classify(status));
            }
        };
        self.peers.record_reachable(self.target, &self.addr);
        if !response.refused.is_empty() {
            crate::throttle::warn_every(
                "peer refused",
                format_args!(
                    "node {} at {} refused this node's Raft messages: {}",
                    self.target, self.addr, response.refused
                ),
            );
            return Err(unreachable(&response.refused));
        }
        if !response.transport_error.is_empty() {
            return Err(unreachable(&response.transport_error));
        }
        let decoded: Result<Resp, RaftError<NodeId, E>> = decode(&response.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&TransportError(e))))?;
        decoded.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                BasicNode::new(&self.addr),
                e,
            ))
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("raft transport: {0}")]
struct TransportError(String);

/// openraft backs a replication stream off for ~500 ms after `Unreachable`, and retries at
/// once after a `Network` error. Only a peer that cannot be reached (connection refused,
/// no route) is unreachable; a call that timed out or was cancelled under load is a
/// network error, or a busy follower would stall its partition's commits for half a second.
fn classify<E: std::error::Error>(
    status: tonic::Status,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    let error = TransportError(status.to_string());
    match status.code() {
        tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&error)),
        _ => RPCError::Network(NetworkError::new(&error)),
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}

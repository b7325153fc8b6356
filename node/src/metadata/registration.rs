//! A node registers the address its clients use with the metadata group, as a Kafka broker
//! registers its listeners with the controller: the initial cluster lists only peer
//! addresses, and the client address is the node's own business (`advertise`).
//!
//! The loop: while the applied metadata lacks this node's current client address, propose
//! [`MetadataCommand::RegisterNode`]: directly when this node leads the metadata group,
//! else through the leader's peer listener (`raft.v1.RaftTransport/RegisterNode`); wait
//! when no leader is known. Then sleep until the metadata changes. Nothing here is an
//! error an operator must act on while the cluster forms: it logs at debug level.

use std::sync::Arc;
use std::time::Duration;

use evlog_proto::raft::v1::RegisterNodeRequest;
use tokio::sync::watch;

use super::command::{MetadataCommand, MetadataResponse};
use super::{LeaderRoute, MetadataGroup};
use crate::raft::network::PeerChannels;
use crate::raft::transport::LeaderRefusal;
use crate::types::NodeId;

/// Pause between two attempts while the registration is not applied yet.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// Upper bound on one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs until `shutdown` turns true.
pub async fn run(
    node_id: NodeId,
    client_addr: String,
    metadata: Arc<MetadataGroup>,
    peers: Arc<PeerChannels>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut view = metadata.subscribe();
    loop {
        let registered = view.borrow_and_update().client_addr(node_id) == Some(&client_addr);
        if !registered {
            let attempt = register_once(node_id, &client_addr, &metadata, &peers);
            match crate::rt::timeout(ATTEMPT_TIMEOUT, attempt).await {
                Some(Ok(())) => tracing::info!(node_id, %client_addr, "client address registered"),
                Some(Err(why)) => tracing::debug!(node_id, "registration not taken yet: {why}"),
                None => tracing::debug!(node_id, "registration attempt timed out"),
            }
        }
        let wait = async {
            if registered {
                std::future::pending::<()>().await
            } else {
                crate::rt::sleep(RETRY_DELAY).await
            }
        };
        tokio::select! {
            // biased: a deterministic branch order (tokio's random one is seeded per process,
            // which breaks the simulation's determinism check).
            biased;
            _ = shutdown.changed() => return,
            changed = view.changed() => if changed.is_err() { return },
            _ = wait => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One attempt: through the local metadata replica when it leads, else through the
/// leader's peer listener.
async fn register_once(
    node_id: NodeId,
    client_addr: &str,
    metadata: &MetadataGroup,
    peers: &PeerChannels,
) -> Result<(), String> {
    let (leader, mut client, envelope) = match metadata.leader_route(node_id, peers)? {
        LeaderRoute::Here => {
            return propose(metadata, node_id, client_addr.to_owned(), ATTEMPT_TIMEOUT)
                .await
                .map_err(|refusal| refusal.message)
        }
        LeaderRoute::Peer {
            id,
            client,
            envelope,
        } => (id, client, envelope),
    };
    let request = RegisterNodeRequest {
        envelope: Some(envelope),
        client_addr: client_addr.to_owned(),
    };
    let answer = client
        .register_node(request)
        .await
        .map_err(|status| format!("node {leader}: {status}"))?
        .into_inner();
    if !answer.refused.is_empty() {
        crate::throttle::warn_every(
            "registration refused",
            format_args!(
                "node {leader} refused this node's registration: {}",
                answer.refused
            ),
        );
        return Err(answer.refused);
    }
    if answer.error.is_empty() {
        Ok(())
    } else {
        Err(format!("node {leader}: {}", answer.error))
    }
}

/// Proposes a registration on this node's metadata replica (it must lead the group).
pub async fn propose(
    metadata: &MetadataGroup,
    node_id: NodeId,
    client_addr: String,
    timeout: Duration,
) -> Result<(), LeaderRefusal> {
    let command = MetadataCommand::RegisterNode {
        node_id,
        client_addr,
    };
    match metadata.propose(command, timeout).await {
        Ok(MetadataResponse::NodeRegistered { .. }) => Ok(()),
        Ok(MetadataResponse::Refused(refusal)) => Err(LeaderRefusal {
            message: refusal.to_string(),
            leader: None,
        }),
        Ok(other) => panic!("a registration answered with {other:?}"),
        Err(e) => Err(e.into()),
    }
}

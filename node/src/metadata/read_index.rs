//! Raft's ReadIndex for the metadata group, used before a node says a topic does not exist.
//!
//! A topic is created on the metadata leader and acknowledged once a majority has it; a
//! third node may apply it milliseconds (or, cut off, minutes) later. Without a check, a
//! client that creates a topic and then produces through that node is told the topic does
//! not exist, a permanent-looking answer that is not true. So a node that does not know a
//! topic first asks the metadata leader how far the group has committed (the leader
//! confirms its leadership with a quorum's heartbeats: `MetadataGroup::read_index_here`), waits until its
//! own replica has applied that far, and only then trusts its view. When it cannot (no
//! leader, the leader unreachable), the caller answers UNAVAILABLE, which clients retry.

use std::time::Duration;

use evlog_proto::raft::v1::MetadataReadIndexRequest;

use super::{LeaderRoute, MetadataGroup};
use crate::raft::network::PeerChannels;
use crate::types::NodeId;

/// Waits until this node's metadata replica has applied everything the metadata group had
/// committed when the call began. Fails (with why) when that cannot be confirmed in `timeout`.
pub async fn catch_up(
    node_id: NodeId,
    metadata: &MetadataGroup,
    peers: &PeerChannels,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        let index = read_index(node_id, metadata, peers).await?;
        metadata
            .raft
            .wait(None)
            .applied_index_at_least(Some(index), "metadata read index")
            .await
            .map_err(|e| format!("metadata replica stopped: {e}"))?;
        Ok(())
    };
    crate::rt::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|| {
            Err(format!(
                "the metadata group's commit index was not confirmed within {timeout:?}"
            ))
        })
}

/// The metadata log index to have applied: from the local Raft when it leads, else from
/// the leader's peer listener.
async fn read_index(
    node_id: NodeId,
    metadata: &MetadataGroup,
    peers: &PeerChannels,
) -> Result<u64, String> {
    let (leader, mut client, envelope) = match metadata.leader_route(node_id, peers)? {
        LeaderRoute::Here => return metadata.read_index_here().await.map_err(|e| e.to_string()),
        LeaderRoute::Peer {
            id,
            client,
            envelope,
        } => (id, client, envelope),
    };
    let request = MetadataReadIndexRequest {
        envelope: Some(envelope),
    };
    let answer = client
        .metadata_read_index(request)
        .await
        .map_err(|status| format!("node {leader}: {status}"))?
        .into_inner();
    if !answer.refused.is_empty() {
        return Err(format!("node {leader} refused: {}", answer.refused));
    }
    if !answer.error.is_empty() {
        return Err(format!("node {leader}: {}", answer.error));
    }
    Ok(answer.index)
}

//! Starting this node's member of one Raft group (a partition or the metadata group): the
//! log store, state machine and network every group is built from, what they share on
//! this node ([`GroupContext`]), and the one-time initialization of a new group.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::BasicNode;

use super::log_store::LogStore;
use super::network::{Network, PeerChannels};
use super::state_machine::{AppliedRecord, GroupState, StateMachine};
use super::Raft;
use crate::storage::{GroupCommit, StorageEngine};
use crate::types::{NodeId, PartitionId};
use crate::NodeError;

/// What every Raft group of this node shares.
#[derive(Clone)]
pub struct GroupContext {
    pub node_id: NodeId,
    pub engine: Arc<dyn StorageEngine>,
    pub commit: GroupCommit,
    pub peers: Arc<PeerChannels>,
    pub raft_config: Arc<openraft::Config>,
    /// Most entry bytes one AppendEntries carries (`raft.append_entries_bytes_max`).
    pub append_entries_bytes_max: usize,
}

impl GroupContext {
    /// Starts this node's member of `group` on its stored state, and initializes the
    /// group with `members` if it never was. Every member initializes with the same
    /// members, which openraft makes safe.
    pub async fn start_group<S: GroupState>(
        &self,
        group: PartitionId,
        applied: AppliedRecord,
        state: S,
        members: BTreeMap<NodeId, BasicNode>,
    ) -> Result<Raft, NodeError> {
        let log_store = LogStore::new(
            group,
            self.node_id,
            self.engine.clone(),
            self.commit.clone(),
            self.append_entries_bytes_max,
        );
        let state_machine = StateMachine::new(group, self.engine.clone(), applied, state);
        let network = Network::new(group, self.peers.clone());
        let raft = Raft::new(
            self.node_id,
            self.raft_config.clone(),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| NodeError::Raft(format!("starting {group}: {e}")))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        if !initialized {
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!(%group, "initialize: {e}");
            }
        }
        super::log_leader_changes(group, self.node_id, &raft);
        Ok(raft)
    }
}

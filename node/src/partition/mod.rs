//! Local replicas of partitions: the registry that owns them, and for each one its Raft,
//! its produce batcher and the watermark readers follow.

pub mod budget;
pub mod command;
pub mod group;
pub mod produce;
pub mod read;
pub mod reconciler;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use openraft::BasicNode;
use tokio::sync::watch;

use crate::raft::group::GroupContext;
use crate::raft::log_store::delete_partition_data;
use crate::raft::state_machine::load_applied;
use crate::raft::Raft;
use crate::storage::StorageEngine;
use crate::types::{NodeId, PartitionId};
use crate::NodeError;

use budget::MemoryBudget;
use produce::{BatchLimits, Batcher};
use state::{GroupsView, PartitionState, Watermark};

/// Who leads a partition, as this replica sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This replica leads: it takes appends and serves reads.
    Leader,
    /// Another replica leads (its node id when known; the api layer knows its address).
    Follower { leader: Option<NodeId> },
}

/// One local replica of a partition.
pub struct Replica {
    pub partition: PartitionId,
    raft: Raft,
    pub(crate) batcher: Batcher,
    /// The node's storage engine: the replica reads its own committed entries.
    engine: Arc<dyn StorageEngine>,
    watermark: watch::Receiver<Watermark>,
    /// The consumer groups this replica's state machine holds (`__groups` partitions).
    groups: watch::Receiver<GroupsView>,
    node_id: NodeId,
    /// Set by [`Replica::fail_stop`]: this replica found data it cannot trust.
    failed: AtomicBool,
}

impl Replica {
    pub fn watermark(&self) -> watch::Receiver<Watermark> {
        self.watermark.clone()
    }

    pub fn leadership(&self) -> Leadership {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.running_state.is_err() || self.failed.load(Ordering::Acquire) {
            // The group stopped (a storage error): it leads nothing and knows no leader;
            // pointing clients at its last known leader could point them back here.
            return Leadership::Follower { leader: None };
        }
        match metrics.current_leader {
            Some(leader) if leader == self.node_id && metrics.state.is_leader() => {
                Leadership::Leader
            }
            Some(leader) => Leadership::Follower {
                leader: Some(leader),
            },
            None => Leadership::Follower { leader: None },
        }
    }

    /// Whether this replica's Raft group runs: not stopped by a storage error, not
    /// fail-stopped.
    pub fn is_running(&self) -> bool {
        self.raft.metrics().borrow().running_state.is_ok() && !self.failed.load(Ordering::Acquire)
    }

    /// Stops this replica's Raft group for good: it found committed data it cannot read
    /// back (a checksum mismatch). Fail-stop is the only safe answer: it must not serve,
    /// replicate or vote with that log, and repairing it in place could drop an entry that
    /// counted towards a quorum. The healthy replicas elect a leader among themselves.
    pub fn fail_stop(&self, reason: &str) {
        if self.failed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::error!(partition = %self.partition, "replica stops for good: {reason}");
        let raft = self.raft.clone();
        crate::rt::spawn(async move {
            if let Err(e) = raft.shutdown().await {
                tracing::warn!("raft shutdown: {e}");
            }
        });
    }

    /// The Raft term this replica is in (a leader's term names its leadership: a node
    /// that lost and regained leadership is in a new term).
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// This replica's Raft (the peer transport delivers messages to it; the simulation
    /// observes it).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn current_leader(&self) -> Option<NodeId> {
        match self.leadership() {
            Leadership::Leader => Some(self.node_id),
            Leadership::Follower { leader } => leader,
        }
    }
}

/// What every replica of this node shares.
#[derive(Clone)]
pub struct ReplicaContext {
    pub group: GroupContext,
    pub limits: BatchLimits,
    /// The node's budget for admitted produce requests (`memory.produce_bytes_max`).
    pub produce_budget: MemoryBudget,
}

/// The local replicas, by partition id.
pub struct Registry {
    ctx: ReplicaContext,
    replicas: RwLock<HashMap<PartitionId, Arc<Replica>>>,
}

impl Registry {
    pub fn new(ctx: ReplicaContext) -> Self {
        Self {
            ctx,
            replicas: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, partition: PartitionId) -> Option<Arc<Replica>> {
        self.replicas
            .read()
            .expect("registry poisoned")
            .get(&partition)
            .cloned()
    }

    pub fn ids(&self) -> Vec<PartitionId> {
        self.replicas
            .read()
            .expect("registry poisoned")
            .keys()
            .copied()
            .collect()
    }

    /// Starts the local replica of `partition` (restoring its state from storage) and
    /// initializes the group with `members` if it has never been initialized.
    pub async fn start(
        &self,
        partition: PartitionId,
        members: BTreeMap<NodeId, BasicNode>,
    ) -> Result<Arc<Replica>, NodeError> {
        if let Some(existing) = self.get(partition) {
            return Ok(existing);
        }
        let ctx = &self.ctx;
        let engine = &ctx.group.engine;
        let applied = load_applied(engine.as_ref(), partition)?.unwrap_or_default();
        let state = PartitionState::restore(partition, engine.as_ref(), &applied.summary)?;
        let watermark = state.watermark();
        let groups = state.groups();
        let raft = ctx
            .group
            .start_group(partition, applied, state, members)
            .await?;
        let batcher = Batcher::start(
            partition,
            raft.clone(),
            ctx.limits,
            ctx.produce_budget.clone(),
        );
        let replica = Arc::new(Replica {
            partition,
            raft,
            batcher,
            engine: engine.clone(),
            watermark,
            groups,
            node_id: ctx.group.node_id,
            failed: AtomicBool::new(false),
        });
        self.replicas
            .write()
            .expect("registry poisoned")
            .insert(partition, replica.clone());
        tracing::info!(%partition, "replica started");
        Ok(replica)
    }

    /// Stops the local replica of `partition` and deletes its data.
    pub async fn remove(&self, partition: PartitionId) -> Result<(), NodeError> {
        let removed = self
            .replicas
            .write()
            .expect("registry poisoned")
            .remove(&partition);
        if let Some(replica) = removed {
            if let Err(e) = replica.raft.shutdown().await {
                tracing::warn!(%partition, "raft shutdown: {e}");
            }
        }
        delete_partition_data(self.ctx.group.engine.as_ref(), partition)?;
        tracing::info!(%partition, "replica removed");
        Ok(())
    }

    /// Stops every replica (node shutdown); their data stays.
    pub async fn shutdown_all(&self) {
        let replicas: Vec<_> = self
            .replicas
            .write()
            .expect("registry poisoned")
            .drain()
            .collect();
        for (partition, replica) in replicas {
            if let Err(e) = replica.raft.shutdown().await {
                tracing::warn!(%partition, "raft shutdown: {e}");
            }
        }
    }
}

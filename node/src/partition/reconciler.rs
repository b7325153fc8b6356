//! Makes the local replicas follow placement: starts a replica for every partition
//! placed on this node, removes (and deletes the data of) local replicas whose topic is
//! gone. Runs on every change of the applied metadata, and retries failed starts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use tokio::sync::watch;

use super::Registry;
use crate::metadata::state::MetadataView;
use crate::types::{NodeId, PartitionId};

/// Delay before retrying after a replica failed to start.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Runs until `shutdown` turns true.
pub async fn run(
    node_id: NodeId,
    mut view: watch::Receiver<Arc<MetadataView>>,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let current = view.borrow_and_update().clone();
        let complete = reconcile(node_id, &current, &registry).await;
        let retry = async {
            if complete {
                std::future::pending::<()>().await
            } else {
                crate::rt::sleep(RETRY_DELAY).await
            }
        };
        tokio::select! {
            // biased: a deterministic branch order (tokio's random one is seeded per process,
            // which breaks the simulation's determinism check).
            biased;
            changed = view.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
            _ = retry => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One pass; returns false when something failed and must be retried.
async fn reconcile(node_id: NodeId, view: &MetadataView, registry: &Registry) -> bool {
    let mut complete = true;
    let mut desired = BTreeSet::new();
    for topic in view.topics.values() {
        for placement in topic
            .partitions
            .iter()
            .filter(|p| p.replicas.contains(&node_id))
        {
            desired.insert(placement.id);
            if registry.get(placement.id).is_some() {
                continue;
            }
            let members: BTreeMap<NodeId, BasicNode> = placement
                .replicas
                .iter()
                .filter_map(|id| {
                    let peer = &view.nodes.get(id)?.peer_addr;
                    Some((*id, BasicNode::new(peer)))
                })
                .collect();
            if let Err(e) = registry.start(placement.id, members).await {
                crate::throttle::error_every(
                    "cannot start replica",
                    format_args!(
                        "cannot start the replica of partition {} (topic {}): {e}; retrying",
                        placement.id, topic.spec.name
                    ),
                );
                complete = false;
            }
        }
    }
    let stale: Vec<PartitionId> = registry
        .ids()
        .into_iter()
        .filter(|id| !desired.contains(id))
        .collect();
    for partition in stale {
        if let Err(e) = registry.remove(partition).await {
            crate::throttle::error_every(
                "cannot remove replica",
                format_args!("cannot remove the replica of partition {partition}: {e}; retrying"),
            );
            complete = false;
        }
    }
    complete
}

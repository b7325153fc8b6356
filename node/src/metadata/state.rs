//! The metadata group's state: the cluster's nodes, its topics and where each partition's
//! replicas live. Small, so it is persisted whole with every apply.
//!
//! A node's two addresses come from two places: its peer address from the group's Raft
//! membership (the initial cluster), its client address from the node itself, which
//! registers it with [`MetadataCommand::RegisterNode`] when it starts (Kafka's broker
//! registration): the initial cluster lists peer addresses only.
//!
//! Placement is decided inside `apply`, from the state alone, so every replica of the
//! metadata group computes the same placement.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::raft::codec::{decode, encode};
use crate::raft::state_machine::GroupState;
use crate::raft::StoredMembership;

use super::command::{
    MetadataCommand, MetadataRefusal, MetadataResponse, PartitionPlacement, TopicInfo, TopicSpec,
};
use crate::storage::WriteBatch;
use crate::types::{LogIndex, NodeId, PartitionId};

/// Longest topic name.
pub const TOPIC_NAME_MAX: usize = 249;
/// Most partitions one topic may have.
pub const PARTITIONS_MAX: u32 = 1024;

/// A member of the cluster and how to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Where the other nodes reach its peer listener (from the Raft membership).
    pub peer_addr: String,
    /// Where clients reach it; `None` until the node has registered it.
    pub client_addr: Option<String>,
}

/// The applied metadata, as every node sees it (possibly slightly behind the leader).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataView {
    /// The members, by id.
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub topics: BTreeMap<String, TopicInfo>,
    /// Next partition id to hand out (ids start at 1; 0 is the metadata group).
    pub next_partition_id: u64,
}

impl MetadataView {
    pub fn partition(&self, topic: &str, index: u32) -> Option<&PartitionPlacement> {
        self.topics.get(topic)?.partitions.get(index as usize)
    }

    /// The address clients use for `node`, once it has registered one.
    pub fn client_addr(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(&node)?.client_addr.as_deref()
    }
}

/// Checks a topic spec before it is proposed (and again when applied).
pub fn validate_topic_spec(
    spec: &TopicSpec,
    max_event_bytes_limit: u32,
) -> Result<(), MetadataRefusal> {
    let invalid = |m: String| Err(MetadataRefusal::Invalid(m));
    if spec.name.is_empty() || spec.name.len() > TOPIC_NAME_MAX {
        return invalid(format!(
            "topic name must be 1 to {TOPIC_NAME_MAX} characters, got {}",
            spec.name.len()
        ));
    }
    if let Some(bad) = spec
        .name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(format!(
            "topic name {:?} has {bad:?}: only ASCII letters, digits, '.', '_' and '-' are allowed",
            spec.name
        ));
    }
    if spec.name == "." || spec.name == ".." {
        return invalid(format!("topic name {:?} is reserved", spec.name));
    }
    if spec.partitions == 0 || spec.partitions > PARTITIONS_MAX {
        return invalid(format!(
            "partitions must be 1 to {PARTITIONS_MAX}, got {}",
            spec.partitions
        ));
    }
    if spec.replication_factor == 0 {
        return invalid("replication factor must be at least 1".to_string());
    }
    if spec.max_event_bytes == 0 || spec.max_event_bytes > max_event_bytes_limit {
        return invalid(format!(
            "max event size must be 1 to {max_event_bytes_limit} bytes, got {}",
            spec.max_event_bytes
        ));
    }
    Ok(())
}

pub struct MetadataState {
    view: MetadataView,
    published: Arc<watch::Sender<Arc<MetadataView>>>,
}

impl MetadataState {
    pub fn restore(summary: &[u8]) -> Result<Self, String> {
        let mut view: MetadataView = if summary.is_empty() {
            MetadataView::default()
        } else {
            decode(summary)?
        };
        view.next_partition_id = view.next_partition_id.max(1);
        let (published, _) = watch::channel(Arc::new(view.clone()));
        Ok(Self {
            view,
            published: Arc::new(published),
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataView>> {
        self.published.subscribe()
    }

    fn create_topic(&mut self, spec: TopicSpec) -> Result<TopicInfo, MetadataRefusal> {
        // Only checks that do not depend on this node's config: apply must decide the same
        // on every replica. The size limit was checked against the proposer's config.
        validate_topic_spec(&spec, u32::MAX)?;
        if self.view.topics.contains_key(&spec.name) {
            return Err(MetadataRefusal::TopicExists(spec.name));
        }
        let nodes: Vec<NodeId> = self.view.nodes.keys().copied().collect();
        if spec.replication_factor as usize > nodes.len() {
            return Err(MetadataRefusal::NotEnoughNodes {
                replication_factor: spec.replication_factor,
                nodes: nodes.len(),
            });
        }
        let partitions = (0..spec.partitions)
            .map(|index| {
                let id = PartitionId(self.view.next_partition_id);
                self.view.next_partition_id += 1;
                let start = (id.0 as usize) % nodes.len();
                let replicas = (0..spec.replication_factor as usize)
                    .map(|k| nodes[(start + k) % nodes.len()])
                    .collect();
                PartitionPlacement {
                    index,
                    id,
                    replicas,
                }
            })
            .collect();
        let info = TopicInfo { spec, partitions };
        self.view
            .topics
            .insert(info.spec.name.clone(), info.clone());
        Ok(info)
    }
}

impl GroupState for MetadataState {
    type Command = MetadataCommand;
    type Response = MetadataResponse;

    fn apply(
        &mut self,
        _log_index: LogIndex,
        command: MetadataCommand,
        _writes: &mut WriteBatch,
    ) -> MetadataResponse {
        match command {
            MetadataCommand::CreateTopic(spec) => match self.create_topic(spec) {
                Ok(info) => MetadataResponse::TopicCreated(info),
                Err(refusal) => MetadataResponse::Refused(refusal),
            },
            MetadataCommand::DeleteTopic { name } => match self.view.topics.remove(&name) {
                Some(_) => MetadataResponse::TopicDeleted { name },
                None => MetadataResponse::Refused(MetadataRefusal::UnknownTopic(name)),
            },
            MetadataCommand::RegisterNode {
                node_id,
                client_addr,
            } => match self.view.nodes.get_mut(&node_id) {
                Some(record) => {
                    record.client_addr = Some(client_addr);
                    MetadataResponse::NodeRegistered { node_id }
                }
                None => MetadataResponse::Refused(MetadataRefusal::UnknownNode(node_id)),
            },
        }
    }

    /// Members come and go with the membership; a member keeps its registered client
    /// address across membership changes.
    fn on_membership(&mut self, membership: &StoredMembership) {
        let mut previous = std::mem::take(&mut self.view.nodes);
        self.view.nodes = membership
            .membership()
            .nodes()
            .map(|(id, node)| {
                let client_addr = previous.remove(id).and_then(|r| r.client_addr);
                let record = NodeRecord {
                    peer_addr: node.addr.clone(),
                    client_addr,
                };
                (*id, record)
            })
            .collect();
    }

    fn summary(&self) -> Vec<u8> {
        encode(&self.view)
    }

    fn snapshot(&self) -> Vec<u8> {
        encode(&self.view)
    }

    fn install(&mut self, snapshot: &[u8], _writes: &mut WriteBatch) -> Result<(), String> {
        self.view = decode(snapshot)?;
        Ok(())
    }

    fn publish(&mut self) {
        if **self.published.borrow() != self.view {
            self.published.send_replace(Arc::new(self.view.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, partitions: u32, rf: u32) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: rf,
            max_event_bytes: 1024,
        }
    }

    fn state_with_nodes(n: u64) -> MetadataState {
        let mut state = MetadataState::restore(&[]).unwrap();
        state.view.nodes = (1..=n)
            .map(|id| {
                let record = NodeRecord {
                    peer_addr: format!("127.0.0.1:{}", 7200 + id),
                    client_addr: None,
                };
                (id, record)
            })
            .collect();
        state
    }

    #[test]
    fn placement_spreads_replicas_and_never_repeats_a_node() {
        let mut state = state_with_nodes(3);
        let info = state.create_topic(spec("orders", 6, 3)).unwrap();
        let mut preferred = std::collections::BTreeMap::<NodeId, usize>::new();
        for p in &info.partitions {
            let mut replicas = p.replicas.clone();
            replicas.sort();
            replicas.dedup();
            assert_eq!(replicas.len(), 3, "{p:?}");
            *preferred.entry(p.replicas[0]).or_default() += 1;
        }
        assert_eq!(
            preferred.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
        let ids: Vec<u64> = info.partitions.iter().map(|p| p.id.0).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn create_refuses_duplicates_bad_names_and_too_large_replication() {
        let mut state = state_with_nodes(3);
        state.create_topic(spec("a", 1, 1)).unwrap();
        assert_eq!(
            state.create_topic(spec("a", 1, 1)),
            Err(MetadataRefusal::TopicExists("a".into()))
        );
        assert!(matches!(
            state.create_topic(spec("a b", 1, 1)),
            Err(MetadataRefusal::Invalid(_))
        ));
        assert!(matches!(
            state.create_topic(spec("", 1, 1)),
            Err(MetadataRefusal::Invalid(_))
        ));
        assert!(matches!(
            state.create_topic(spec("z", 0, 1)),
            Err(MetadataRefusal::Invalid(_))
        ));
        assert_eq!(
            state.create_topic(spec("z", 1, 4)),
            Err(MetadataRefusal::NotEnoughNodes {
                replication_factor: 4,
                nodes: 3
            })
        );
    }
}

#[cfg(test)]
mod registration_tests {
    //! Goal: a member's client address is what it registered, kept across membership
    //! changes; a non-member cannot register. Method: apply commands to a fresh state.
    use super::*;

    fn membership(ids: &[u64]) -> StoredMembership {
        let nodes: BTreeMap<u64, openraft::BasicNode> = ids
            .iter()
            .map(|id| (*id, openraft::BasicNode::new(format!("n{id}:7201"))))
            .collect();
        let voters: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
        StoredMembership::new(None, openraft::Membership::new(vec![voters], nodes))
    }

    fn register(state: &mut MetadataState, node_id: u64, addr: &str) -> MetadataResponse {
        let command = MetadataCommand::RegisterNode {
            node_id,
            client_addr: addr.into(),
        };
        state.apply(LogIndex(1), command, &mut WriteBatch::default())
    }

    #[test]
    fn registered_client_addresses_survive_membership_changes() {
        let mut state = MetadataState::restore(&[]).unwrap();
        state.on_membership(&membership(&[1, 2]));
        assert_eq!(state.view.client_addr(1), None, "not registered yet");
        register(&mut state, 1, "127.0.0.1:7101");
        assert_eq!(state.view.client_addr(1), Some("127.0.0.1:7101"));
        assert_eq!(state.view.nodes[&1].peer_addr, "n1:7201");
        state.on_membership(&membership(&[1, 2, 3]));
        assert_eq!(state.view.client_addr(1), Some("127.0.0.1:7101"));
        assert_eq!(state.view.client_addr(3), None);
        let refused = register(&mut state, 9, "x:1");
        assert_eq!(
            refused,
            MetadataResponse::Refused(MetadataRefusal::UnknownNode(9))
        );
    }
}

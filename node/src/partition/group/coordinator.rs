//! The group coordinator: what this node does for the consumer groups whose `__groups`
//! partition it leads. It routes a request to the group's partition (creating `__groups`
//! through the metadata leader on the first request of the cluster), answers heartbeats
//! from the applied state when nothing changes, proposes a [`GroupCommand`] when something
//! does, checks commits against the data partitions' high watermarks, and keeps the soft
//! state that is never written: when it last heard from each member (`expiry` reads it).
//!
//! A heartbeat answer grants ownership, so it is given only after this replica confirmed
//! its leadership with a quorum (a deposed leader could otherwise keep a member consuming
//! partitions the new coordinator has given away).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};

use super::command::{
    Commit, GroupCommand, GroupRefusal, GroupResponse, Join, MemberAssignment, OffsetCommit,
    TopicPartition, Update,
};
use super::state::Group;
use super::{partition_of, GROUPS_TOPIC};
use crate::metadata::command::{MetadataCommand, MetadataResponse, TopicSpec};
use crate::metadata::state::MetadataView;
use crate::metadata::{LeaderRoute, MetadataGroup};
use crate::partition::command::{PartitionCommand, PartitionResponse};
use crate::partition::state::GroupsView;
use crate::partition::{Leadership, Registry, Replica};
use crate::raft::network::PeerChannels;
use crate::raft::transport::LeaderRefusal;
use crate::raft::{Command, CommandResponse};
use crate::rt::Instant;
use crate::types::{GroupId, MemberEpoch, MemberId, NodeId, Offset, PartitionId};

/// Most topics one member may subscribe to, partitions one commit may name, bytes of one
/// commit's metadata text.
pub const SUBSCRIPTION_TOPICS_MAX: usize = 1000;
pub const COMMIT_PARTITIONS_MAX: usize = 10_000;
pub const COMMIT_METADATA_BYTES_MAX: usize = 4096;
/// Longest instance id (static membership).
pub const INSTANCE_ID_BYTES_MAX: usize = 249;

/// The coordinator's settings (from `config::GroupsConfig` and the request timeout).
#[derive(Debug, Clone, Copy)]
pub struct GroupsSettings {
    pub partitions: u32,
    pub session_timeout_ms: u32,
    pub session_timeout_ms_min: u32,
    pub session_timeout_ms_max: u32,
    pub heartbeat_interval_ms: u32,
    pub offsets_retention_ms: u64,
    pub request_timeout: Duration,
    /// `max_event_bytes` of `__groups` (it holds no events; any valid value).
    pub max_event_bytes: u32,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GroupError {
    #[error("node {node} is not the coordinator of group {group}")]
    NotCoordinator {
        node: NodeId,
        group: GroupId,
        coordinator: Option<NodeId>,
    },
    /// Retryable: no quorum, no leader yet, `__groups` being created.
    #[error("{0}")]
    Unavailable(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Refused(#[from] GroupRefusal),
}

/// A heartbeat as the coordinator takes it (checked for shape by the api layer).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub group: GroupId,
    pub member: MemberId,
    pub epoch: MemberEpoch,
    pub instance_id: Option<String>,
    pub topics: BTreeSet<String>,
    pub owned: BTreeSet<TopicPartition>,
    /// 0: the node's default.
    pub session_timeout_ms: u32,
}

/// A heartbeat's answer.
#[derive(Debug, Clone)]
pub struct Beat {
    pub assignment: MemberAssignment,
    pub heartbeat_interval_ms: u32,
    pub session_timeout_ms: u32,
}

/// A partition's watermarks as its leader reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteWatermark {
    pub high: Offset,
    pub log_start: Offset,
}

pub struct Coordinator {
    pub(super) node_id: NodeId,
    pub(super) metadata: Arc<MetadataGroup>,
    pub(super) registry: Arc<Registry>,
    pub(super) peers: Arc<PeerChannels>,
    pub(super) settings: GroupsSettings,
    pub(super) liveness: Mutex<Liveness>,
}

/// Soft state, never replicated.
#[derive(Default)]
pub(super) struct Liveness {
    /// When this node last heard from each member of the groups it coordinates.
    pub heard: HashMap<(GroupId, MemberId), Instant>,
    /// Since when this node leads each `__groups` partition, and in which term: a new
    /// coordinator (a new term, even of the same node) gives every member a full session
    /// timeout before it expels anyone, whatever it heard in an earlier term.
    pub leading_since: HashMap<PartitionId, (u64, Instant)>,
    /// Members whose expulsion is being proposed: a heartbeat from one is answered
    /// FENCED_MEMBER, never with an assignment the expulsion is about to take back.
    pub expelling: std::collections::HashSet<(GroupId, MemberId)>,
}

impl Coordinator {
    pub fn new(
        node_id: NodeId,
        metadata: Arc<MetadataGroup>,
        registry: Arc<Registry>,
        peers: Arc<PeerChannels>,
        settings: GroupsSettings,
    ) -> Self {
        Self {
            node_id,
            metadata,
            registry,
            peers,
            settings,
            liveness: Mutex::new(Liveness::default()),
        }
    }

    pub fn settings(&self) -> &GroupsSettings {
        &self.settings
    }

    /// The local replica of `group`'s partition when this node leads it (the coordinator).
    pub async fn route(&self, group: &GroupId) -> Result<Arc<Replica>, GroupError> {
        let view = self.groups_topic_view().await?;
        let topic = &view.topics[GROUPS_TOPIC];
        let index = partition_of(group, topic.partitions.len() as u32);
        self.lead(group, topic.partitions[index as usize].id)
    }

    /// The local replica of `partition` (of `__groups`) when this node leads it.
    pub fn lead(
        &self,
        group: &GroupId,
        partition: PartitionId,
    ) -> Result<Arc<Replica>, GroupError> {
        let not_coordinator = |coordinator| GroupError::NotCoordinator {
            node: self.node_id,
            group: group.clone(),
            coordinator,
        };
        let Some(replica) = self.registry.get(partition) else {
            return Err(not_coordinator(None));
        };
        match replica.leadership() {
            Leadership::Leader => Ok(replica),
            Leadership::Follower { leader } => Err(not_coordinator(leader)),
        }
    }

    /// The metadata view once it holds `__groups`, asking the metadata leader to create it
    /// first if it does not exist yet.
    pub async fn groups_topic_view(&self) -> Result<Arc<MetadataView>, GroupError> {
        let view = self.metadata.view();
        if view.topics.contains_key(GROUPS_TOPIC) {
            return Ok(view);
        }
        self.ask_for_groups_topic().await?;
        let mut watch = self.metadata.subscribe();
        let created = async move {
            let view = watch
                .wait_for(|v| v.topics.contains_key(GROUPS_TOPIC))
                .await;
            view.map(|v| v.clone()).ok()
        };
        match crate::rt::timeout(self.settings.request_timeout, created).await {
            Some(Some(view)) => Ok(view),
            _ => Err(GroupError::Unavailable(format!(
                "{GROUPS_TOPIC} is being created; retry"
            ))),
        }
    }

    async fn ask_for_groups_topic(&self) -> Result<(), GroupError> {
        let unavailable = |why: String| {
            GroupError::Unavailable(format!("cannot create {GROUPS_TOPIC} yet: {why}"))
        };
        match self
            .metadata
            .leader_route(self.node_id, &self.peers)
            .map_err(unavailable)?
        {
            LeaderRoute::Here => self
                .create_groups_topic_here()
                .await
                .map_err(|r| unavailable(r.message)),
            LeaderRoute::Peer {
                id,
                mut client,
                envelope,
            } => {
                let request = evlog_proto::raft::v1::EnsureGroupsTopicRequest {
                    envelope: Some(envelope),
                };
                let answer = client
                    .ensure_groups_topic(request)
                    .await
                    .map_err(|status| unavailable(format!("node {id}: {status}")))?
                    .into_inner();
                if answer.refused.is_empty() && answer.error.is_empty() {
                    Ok(())
                } else {
                    Err(unavailable(format!(
                        "node {id}: {}{}",
                        answer.refused, answer.error
                    )))
                }
            }
        }
    }

    /// On the metadata leader: creates `__groups` (RF: the smaller of 3 and the cluster's
    /// size) unless it exists.
    pub async fn create_groups_topic_here(&self) -> Result<(), LeaderRefusal> {
        let view = self.metadata.view();
        if view.topics.contains_key(GROUPS_TOPIC) {
            return Ok(());
        }
        let spec = TopicSpec {
            name: GROUPS_TOPIC.to_owned(),
            partitions: self.settings.partitions,
            replication_factor: view.nodes.len().clamp(1, 3) as u32,
            max_event_bytes: self.settings.max_event_bytes,
        };
        let timeout = self.settings.request_timeout;
        match self
            .metadata
            .propose(MetadataCommand::CreateTopic(spec), timeout)
            .await
        {
            Ok(MetadataResponse::TopicCreated(_)) => {
                tracing::info!("created the internal topic {GROUPS_TOPIC} for consumer groups");
                Ok(())
            }
            Ok(MetadataResponse::Refused(refusal))
                if self.metadata.view().topics.contains_key(GROUPS_TOPIC) =>
            {
                tracing::debug!("{GROUPS_TOPIC} created concurrently: {refusal}");
                Ok(())
            }
            Ok(other) => Err(LeaderRefusal {
                message: format!("creating {GROUPS_TOPIC} answered {other:?}"),
                leader: None,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Proposes `command` to the coordinator's replica and waits for it to be applied.
    pub(super) async fn propose(
        &self,
        replica: &Replica,
        command: GroupCommand,
    ) -> Result<GroupResponse, GroupError> {
        let group = command.group().clone();
        let write = replica
            .raft
            .client_write(Command::Partition(PartitionCommand::Group(command)));
        let timeout = self.settings.request_timeout;
        match crate::rt::timeout(timeout, write).await {
            None => Err(GroupError::Unavailable(format!(
                "group {group}: not committed within {timeout:?}; retry"
            ))),
            Some(Ok(written)) => match written.data {
                CommandResponse::Partition(PartitionResponse::Group(answer)) => Ok(answer),
                other => panic!("a group command answered with {other:?}"),
            },
            Some(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Err(GroupError::NotCoordinator {
                    node: self.node_id,
                    group,
                    coordinator: forward.leader_id,
                })
            }
            Some(Err(other)) => Err(GroupError::Unavailable(format!("group {group}: {other}"))),
        }
    }

    /// The applied groups, once this replica confirmed it still leads and has applied
    /// everything committed before (a linearizable read).
    pub(super) async fn confirmed_groups(
        &self,
        replica: &Replica,
        group: &GroupId,
    ) -> Result<GroupsView, GroupError> {
        let timeout = self.settings.request_timeout;
        match crate::rt::timeout(timeout, replica.raft.ensure_linearizable()).await {
            Some(Ok(_)) => Ok(replica.groups.borrow().clone()),
            Some(Err(e)) => Err(GroupError::Unavailable(format!(
                "the coordinator of group {group} could not confirm its leadership: {e}"
            ))),
            None => Err(GroupError::Unavailable(format!(
                "the coordinator of group {group} could not confirm its leadership within {timeout:?}"
            ))),
        }
    }

    fn heard_from(&self, group: &GroupId, member: &MemberId) {
        let mut liveness = self.liveness.lock().expect("liveness poisoned");
        liveness
            .heard
            .insert((group.clone(), member.clone()), crate::rt::now());
    }

    fn is_expelling(&self, group: &GroupId, member: &MemberId) -> bool {
        let liveness = self.liveness.lock().expect("liveness poisoned");
        liveness
            .expelling
            .contains(&(group.clone(), member.clone()))
    }

    fn forget(&self, group: &GroupId, member: &MemberId) {
        let mut liveness = self.liveness.lock().expect("liveness poisoned");
        liveness.heard.remove(&(group.clone(), member.clone()));
    }

    /// The partition counts of `topics` in the metadata (absent: the topic is gone).
    pub(super) fn partition_counts<'t>(
        view: &MetadataView,
        topics: impl IntoIterator<Item = &'t String>,
    ) -> BTreeMap<String, u32> {
        topics
            .into_iter()
            .filter_map(|t| Some((t.clone(), view.topics.get(t)?.partitions.len() as u32)))
            .collect()
    }

    fn heartbeat_interval_ms(&self, session_timeout_ms: u32) -> u32 {
        self.settings
            .heartbeat_interval_ms
            .min(session_timeout_ms / 3)
            .max(1)
    }

    pub async fn heartbeat(&self, beat: Heartbeat) -> Result<Beat, GroupError> {
        let session_timeout_ms = match beat.session_timeout_ms {
            0 => self.settings.session_timeout_ms,
            asked => asked,
        };
        let (min, max) = (
            self.settings.session_timeout_ms_min,
            self.settings.session_timeout_ms_max,
        );
        if !(min..=max).contains(&session_timeout_ms) {
            return Err(GroupError::Invalid(format!(
                "session timeout {session_timeout_ms} ms is outside [{min}, {max}] \
                 (groups.session_timeout_ms_min/max)"
            )));
        }
        let view = self.metadata.view();
        if let Some(missing) = beat.topics.iter().find(|t| !view.topics.contains_key(*t)) {
            return Err(GroupError::UnknownTopic(missing.clone()));
        }
        if beat.topics.contains(GROUPS_TOPIC) {
            return Err(GroupError::Invalid(format!(
                "{GROUPS_TOPIC} is internal: it cannot be consumed"
            )));
        }
        let replica = self.route(&beat.group).await?;
        // Heard before the state is read: an expiry pass deciding after this sees it; one
        // that decided before is in `expelling` by the time the answer is checked below.
        self.heard_from(&beat.group, &beat.member);
        let groups = self.confirmed_groups(&replica, &beat.group).await?;
        let group = groups.get(&beat.group).map(|g| &**g);
        let assignment = if beat.epoch == MemberEpoch::JOINING {
            self.join(&replica, &beat, group, session_timeout_ms)
                .await?
        } else {
            self.rebeat(&replica, &beat, group).await?
        };
        if self.is_expelling(&beat.group, &beat.member) {
            return Err(GroupError::Refused(GroupRefusal::FencedMember {
                group: beat.group.clone(),
                member: beat.member.clone(),
            }));
        }
        Ok(Beat {
            assignment,
            heartbeat_interval_ms: self.heartbeat_interval_ms(session_timeout_ms),
            session_timeout_ms,
        })
    }

    async fn join(
        &self,
        replica: &Replica,
        beat: &Heartbeat,
        group: Option<&Group>,
        session_timeout_ms: u32,
    ) -> Result<MemberAssignment, GroupError> {
        let view = self.metadata.view();
        let others = group
            .into_iter()
            .flat_map(|g| g.members.values().flat_map(|m| &m.subscription));
        let counts = Self::partition_counts(&view, beat.topics.iter().chain(others));
        let join = GroupCommand::Join(Join {
            group: beat.group.clone(),
            member: beat.member.clone(),
            instance_id: beat.instance_id.clone(),
            subscription: beat.topics.clone(),
            partition_counts: counts,
            session_timeout_ms,
            now_ms: crate::rt::unix_time_ms(),
        });
        member_answer(self.propose(replica, join).await?)
    }

    /// A heartbeat of a member with an epoch: answered from the applied state, or with
    /// an `Update` when it released partitions or changed its subscription.
    async fn rebeat(
        &self,
        replica: &Replica,
        beat: &Heartbeat,
        group: Option<&Group>,
    ) -> Result<MemberAssignment, GroupError> {
        let fenced = || {
            GroupError::Refused(GroupRefusal::FencedMember {
                group: beat.group.clone(),
                member: beat.member.clone(),
            })
        };
        let Some(group) = group else {
            return Err(fenced());
        };
        let Some(member) = group.members.get(&beat.member) else {
            return Err(fenced());
        };
        // An older epoch is a member that missed answers (others' joins and leaves move its
        // epoch too): the answer brings it up to date. A newer one was never given.
        if beat.epoch > member.epoch {
            return Err(GroupError::Refused(GroupRefusal::FencedMember {
                group: beat.group.clone(),
                member: beat.member.clone(),
            }));
        }
        let told = group.assignment_of(&beat.member).expect("a member");
        let released = told.revoking.iter().any(|tp| !beat.owned.contains(tp));
        let view = self.metadata.view();
        let others = group
            .members
            .iter()
            .filter(|(id, _)| **id != beat.member)
            .flat_map(|(_, m)| &m.subscription);
        let counts = Self::partition_counts(&view, beat.topics.iter().chain(others));
        let changed = member.subscription != beat.topics || group.partition_counts != counts;
        if !(released || changed || member.departed) {
            return Ok(told);
        }
        let update = GroupCommand::Update(Update {
            group: beat.group.clone(),
            member: beat.member.clone(),
            owned: beat.owned.clone(),
            subscription: beat.topics.clone(),
            partition_counts: counts,
        });
        member_answer(self.propose(replica, update).await?)
    }

    pub async fn leave(&self, group: &GroupId, member: &MemberId) -> Result<(), GroupError> {
        let replica = self.route(group).await?;
        let leave = GroupCommand::Leave {
            group: group.clone(),
            member: member.clone(),
            now_ms: crate::rt::unix_time_ms(),
        };
        done(self.propose(&replica, leave).await?)?;
        self.forget(group, member);
        Ok(())
    }

    pub async fn commit(
        &self,
        group: &GroupId,
        member: &MemberId,
        epoch: MemberEpoch,
        offsets: Vec<OffsetCommit>,
    ) -> Result<(), GroupError> {
        let replica = self.route(group).await?;
        let view = self.metadata.view();
        for c in &offsets {
            let id = data_partition(&view, &c.partition)?;
            let watermark = self.watermark(id, c.next_offset).await?;
            if c.next_offset > watermark.high {
                return Err(GroupError::Invalid(format!(
                    "offset {} of {} is beyond its high watermark {}",
                    c.next_offset, c.partition, watermark.high
                )));
            }
        }
        let commit = GroupCommand::Commit(Commit {
            group: group.clone(),
            member: member.clone(),
            epoch,
            offsets,
            now_ms: crate::rt::unix_time_ms(),
        });
        done(self.propose(&replica, commit).await?)
    }

    /// The applied state of `group` (linearizable), or UNKNOWN_GROUP.
    pub async fn group(&self, group: &GroupId) -> Result<Arc<Group>, GroupError> {
        let replica = self.route(group).await?;
        let groups = self.confirmed_groups(&replica, group).await?;
        groups
            .get(group)
            .cloned()
            .ok_or_else(|| GroupError::Refused(GroupRefusal::UnknownGroup(group.clone())))
    }

    /// Every group of the `__groups` partition `index` this node leads.
    pub async fn list(&self, index: u32) -> Result<Vec<(GroupId, Arc<Group>)>, GroupError> {
        let view = self.groups_topic_view().await?;
        let topic = &view.topics[GROUPS_TOPIC];
        let Some(placement) = topic.partitions.get(index as usize) else {
            return Err(GroupError::Invalid(format!(
                "{GROUPS_TOPIC} has {} partitions, not {}",
                topic.partitions.len(),
                u64::from(index) + 1
            )));
        };
        let label = GroupId::parse(&format!("{GROUPS_TOPIC}.{index}")).expect("a valid id");
        let replica = self.lead(&label, placement.id)?;
        let groups = self.confirmed_groups(&replica, &label).await?;
        Ok(groups
            .iter()
            .map(|(id, g)| (id.clone(), g.clone()))
            .collect())
    }

    pub async fn reset(
        &self,
        group: &GroupId,
        offsets: Vec<(TopicPartition, Offset)>,
    ) -> Result<(), GroupError> {
        let replica = self.route(group).await?;
        let reset = GroupCommand::Reset {
            group: group.clone(),
            offsets,
            now_ms: crate::rt::unix_time_ms(),
        };
        done(self.propose(&replica, reset).await?)
    }

    pub async fn delete(&self, group: &GroupId) -> Result<(), GroupError> {
        let replica = self.route(group).await?;
        done(
            self.propose(
                &replica,
                GroupCommand::Delete {
                    group: group.clone(),
                },
            )
            .await?,
        )
    }

    /// A data partition's watermarks, from its leader: this node's replica when it leads
    /// (confirming with a quorum when `offset` is past its watermark), else the leader's
    /// peer listener.
    pub async fn watermark(
        &self,
        partition: PartitionId,
        offset: Offset,
    ) -> Result<RemoteWatermark, GroupError> {
        let unavailable = |why: String| {
            GroupError::Unavailable(format!(
                "cannot learn the high watermark of {partition}: {why}"
            ))
        };
        let leader = match self.registry.get(partition) {
            Some(replica) => match replica.leadership() {
                Leadership::Leader => {
                    let w = replica
                        .watermark_for(offset, self.settings.request_timeout)
                        .await
                        .map_err(|e| unavailable(e.to_string()))?;
                    return Ok(RemoteWatermark {
                        high: w.high,
                        log_start: w.log_start,
                    });
                }
                Leadership::Follower { leader } => leader,
            },
            None => None,
        };
        // Ask the leader this replica knows, then every replica of the placement,
        // following the hints their refusals carry.
        let view = self.metadata.view();
        let replicas = view
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .find(|p| p.id == partition)
            .map(|p| p.replicas.clone())
            .unwrap_or_default();
        let mut queue: VecDeque<NodeId> = leader.into_iter().chain(replicas).collect();
        let mut asked = BTreeSet::new();
        let mut last_error = String::from("no replica to ask");
        while let Some(node) = queue.pop_front() {
            if node == self.node_id || !asked.insert(node) {
                continue;
            }
            match self.ask_watermark(&view, node, partition, offset).await {
                Ok(watermark) => return Ok(watermark),
                Err((why, hint)) => {
                    last_error = why;
                    if let Some(hint) = hint {
                        queue.push_front(hint);
                    }
                }
            }
        }
        Err(unavailable(last_error))
    }

    /// One PartitionWatermark request to `node`; on refusal, why and its leader hint.
    async fn ask_watermark(
        &self,
        view: &MetadataView,
        node: NodeId,
        partition: PartitionId,
        offset: Offset,
    ) -> Result<RemoteWatermark, (String, Option<NodeId>)> {
        let addr = &view
            .nodes
            .get(&node)
            .ok_or_else(|| (format!("node {node} is not in the metadata"), None))?
            .peer_addr;
        let channel = self
            .peers
            .channel(addr)
            .map_err(|e| (format!("no channel to node {node}: {e}"), None))?;
        let mut client =
            evlog_proto::raft::v1::raft_transport_client::RaftTransportClient::new(channel);
        let request = evlog_proto::raft::v1::PartitionWatermarkRequest {
            envelope: Some(self.peers.identity().envelope(node)),
            group_id: partition.0,
            offset: offset.0,
        };
        let ask = client.partition_watermark(request);
        let answer = match crate::rt::timeout(self.settings.request_timeout, ask).await {
            Some(Ok(answer)) => answer.into_inner(),
            Some(Err(status)) => return Err((format!("node {node}: {status}"), None)),
            None => return Err((format!("node {node} did not answer in time"), None)),
        };
        if !answer.refused.is_empty() || !answer.error.is_empty() {
            let why = format!("node {node}: {}{}", answer.refused, answer.error);
            return Err((why, answer.leader_id));
        }
        Ok(RemoteWatermark {
            high: Offset(answer.high_watermark),
            log_start: Offset(answer.log_start_offset),
        })
    }

    /// For the peer transport: this node's watermarks of `partition` when it leads it.
    pub async fn local_watermark(
        &self,
        partition: PartitionId,
        offset: Offset,
    ) -> Result<(Offset, Offset), LeaderRefusal> {
        let refusal = |message: String, leader| LeaderRefusal { message, leader };
        let Some(replica) = self.registry.get(partition) else {
            return Err(refusal(
                format!("node {} hosts no replica of {partition}", self.node_id),
                None,
            ));
        };
        match replica.leadership() {
            Leadership::Leader => {
                let w = replica
                    .watermark_for(offset, self.settings.request_timeout)
                    .await
                    .map_err(|e| refusal(e.to_string(), None))?;
                Ok((w.high, w.log_start))
            }
            Leadership::Follower { leader } => Err(refusal(
                format!("node {} does not lead {partition}", self.node_id),
                leader,
            )),
        }
    }
}

/// The Raft group of a data partition named by topic and index, if it exists.
pub fn data_partition_of(view: &MetadataView, tp: &TopicPartition) -> Option<PartitionId> {
    view.partition(&tp.topic, tp.partition).map(|p| p.id)
}

/// The Raft group of a data partition named by topic and index; INVALID_ARGUMENT when
/// there is none.
pub(super) fn data_partition(
    view: &MetadataView,
    tp: &TopicPartition,
) -> Result<PartitionId, GroupError> {
    match view.partition(&tp.topic, tp.partition) {
        Some(placement) => Ok(placement.id),
        None if view.topics.contains_key(&tp.topic) => Err(GroupError::Invalid(format!(
            "topic {:?} has no partition {}",
            tp.topic, tp.partition
        ))),
        None => Err(GroupError::UnknownTopic(tp.topic.clone())),
    }
}

fn member_answer(answer: GroupResponse) -> Result<MemberAssignment, GroupError> {
    match answer {
        GroupResponse::Member(assignment) => Ok(assignment),
        GroupResponse::Refused(refusal) => Err(refusal.into()),
        GroupResponse::Done => panic!("a join or update answered Done"),
    }
}

fn done(answer: GroupResponse) -> Result<(), GroupError> {
    match answer {
        GroupResponse::Done => Ok(()),
        GroupResponse::Refused(refusal) => Err(refusal.into()),
        GroupResponse::Member(_) => panic!("a group command answered with an assignment"),
    }
}

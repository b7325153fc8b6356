//! Consumer-group administration on [`Admin`]: list, describe (with lag), fetch, reset
//! and delete. Each request goes to the group's coordinator (following NOT_COORDINATOR
//! hints); listing asks the leader of every partition of the internal `__groups` topic.

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::groups_client::GroupsClient;
use tonic::transport::Channel;

use crate::admin::Admin;
use crate::error::{ClientError, ErrorCode};
use crate::metadata::{Route, MAX_DECODING_BYTES};
use crate::retry;

/// The internal topic holding every consumer group's state.
pub const GROUPS_TOPIC: &str = "__groups";

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }

    pub(crate) fn from_wire(tp: pb::TopicPartition) -> Self {
        Self::new(tp.topic, tp.partition)
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A group in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group's id.
    pub group: String,
    /// `empty`, `stable` (every member owns its target) or `reconciling`.
    pub state: String,
    /// How many members it has.
    pub members: u32,
}

/// A group as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's id.
    pub group: String,
    /// `empty`, `stable` or `reconciling`.
    pub state: String,
    /// The group epoch (bumped by every change of membership or subscriptions).
    pub epoch: u64,
    /// Its members.
    pub members: Vec<GroupMember>,
    /// Every partition of its topics and every partition with a committed offset.
    pub partitions: Vec<GroupPartition>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member's id.
    pub member_id: String,
    /// Its instance id (static membership), if it has one.
    pub instance_id: Option<String>,
    /// Its epoch.
    pub member_epoch: u64,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// What it may consume.
    pub assigned: Vec<TopicPartition>,
    /// What it is giving up.
    pub revoking: Vec<TopicPartition>,
}

/// A partition of a group's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartition {
    /// Which partition.
    pub partition: TopicPartition,
    /// The group's committed offset (the next to consume), if any.
    pub committed: Option<u64>,
    /// The partition's high watermark, when its leader could be asked.
    pub high_watermark: Option<u64>,
    /// Events not yet processed: high watermark - committed.
    pub lag: Option<u64>,
    /// The member that owns it, if any.
    pub member_id: Option<String>,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Which partition.
    pub partition: TopicPartition,
    /// The next offset to consume: every event below it was processed.
    pub next_offset: u64,
    /// What the application stored with it.
    pub metadata: String,
    /// When it was committed (milliseconds since the Unix epoch).
    pub committed_ms: i64,
}

impl CommittedOffset {
    fn from_wire(c: pb::CommittedOffset) -> Result<Self, ClientError> {
        let partition = c.partition.map(TopicPartition::from_wire).ok_or_else(|| {
            ClientError::Protocol("a committed offset without its partition".into())
        })?;
        Ok(Self {
            partition,
            next_offset: c.next_offset,
            metadata: c.metadata,
            committed_ms: c.committed_ms,
        })
    }
}

/// Where [`Admin::reset_offsets`] moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// Each partition's log start: everything is consumed again.
    Earliest,
    /// Each partition's high watermark: nothing old is consumed.
    Latest,
    /// This offset in every partition of the topic.
    Offset(u64),
}

pub(crate) fn groups_client(channel: Channel) -> GroupsClient<Channel> {
    GroupsClient::new(channel).max_decoding_message_size(MAX_DECODING_BYTES)
}

pub(crate) fn status(s: tonic::Status, op: &str) -> ClientError {
    ClientError::Transport {
        addr: String::new(),
        code: s.code(),
        message: format!("{op}: {}", s.message()),
    }
}

pub(crate) fn coordinator(group: &str) -> Route {
    Route::Coordinator {
        group: group.to_owned(),
    }
}

fn tps(list: Vec<pb::TopicPartition>) -> Vec<TopicPartition> {
    list.into_iter().map(TopicPartition::from_wire).collect()
}

impl From<pb::GroupDescription> for GroupInfo {
    fn from(g: pb::GroupDescription) -> Self {
        GroupInfo {
            group: g.group,
            state: g.state,
            epoch: g.epoch,
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    member_epoch: m.member_epoch,
                    topics: m.topics,
                    assigned: tps(m.assigned),
                    revoking: tps(m.revoking),
                })
                .collect(),
            partitions: g
                .partitions
                .into_iter()
                .filter_map(|p| {
                    Some(GroupPartition {
                        partition: TopicPartition::from_wire(p.partition?),
                        committed: p.committed,
                        high_watermark: p.high_watermark,
                        lag: p.lag,
                        member_id: p.member_id,
                    })
                })
                .collect(),
        }
    }
}

impl Admin {
    /// Every consumer group of the cluster (none before the first group was used).
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let partitions = match self.describe_topic(GROUPS_TOPIC).await {
            Ok(topic) => topic.partition_count,
            Err(e) if e.code() == Some(ErrorCode::UnknownTopic) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut groups = Vec::new();
        for index in 0..partitions {
            let route = Route::Partition {
                topic: GROUPS_TOPIC.to_owned(),
                partition: index,
            };
            let listed = retry::call(&self.client().shared, &route, |channel, _| async move {
                let request = pb::ListGroupsRequest {
                    groups_partition: index,
                };
                let response = groups_client(channel)
                    .list_groups(request)
                    .await
                    .map_err(|s| status(s, "list groups"))?
                    .into_inner();
                ClientError::check(response.error)?;
                Ok(response.groups)
            })
            .await?;
            groups.extend(listed.into_iter().map(|g| GroupListing {
                group: g.group,
                state: g.state,
                members: g.members,
            }));
        }
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(groups)
    }

    /// `group` with its members, assignments and per-partition lag; `UNKNOWN_GROUP` when it
    /// does not exist.
    pub async fn describe_group(&self, group: &str) -> Result<GroupInfo, ClientError> {
        let route = coordinator(group);
        retry::call(&self.client().shared, &route, |channel, _| async move {
            let request = pb::DescribeGroupRequest {
                group: group.to_owned(),
            };
            let response = groups_client(channel)
                .describe_group(request)
                .await
                .map_err(|s| status(s, "describe group"))?
                .into_inner();
            ClientError::check(response.error)?;
            response
                .group
                .map(GroupInfo::from)
                .ok_or_else(|| ClientError::Protocol("describe group answered no group".into()))
        })
        .await
    }

    /// The offsets `group` committed (empty for a group that never committed).
    pub async fn fetch_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>, ClientError> {
        let route = coordinator(group);
        retry::call(&self.client().shared, &route, |channel, _| async move {
            let request = pb::FetchOffsetsRequest {
                group: group.to_owned(),
                partitions: Vec::new(),
            };
            let response = groups_client(channel)
                .fetch_offsets(request)
                .await
                .map_err(|s| status(s, "fetch offsets"))?
                .into_inner();
            ClientError::check(response.error)?;
            response
                .offsets
                .into_iter()
                .map(CommittedOffset::from_wire)
                .collect()
        })
        .await
    }

    /// Moves `group`'s committed offsets of every partition of `topic` (only while the
    /// group has no members: `GROUP_NOT_EMPTY` otherwise). Returns the offsets set.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        use pb::reset_offsets_request::To;
        let to = match to {
            ResetTo::Earliest => To::Earliest(true),
            ResetTo::Latest => To::Latest(true),
            ResetTo::Offset(offset) => To::Offset(offset),
        };
        let route = coordinator(group);
        retry::call(&self.client().shared, &route, |channel, _| async move {
            let request = pb::ResetOffsetsRequest {
                group: group.to_owned(),
                topic: topic.to_owned(),
                to: Some(to),
            };
            let response = groups_client(channel)
                .reset_offsets(request)
                .await
                .map_err(|s| status(s, "reset offsets"))?
                .into_inner();
            ClientError::check(response.error)?;
            response
                .offsets
                .into_iter()
                .map(CommittedOffset::from_wire)
                .collect()
        })
        .await
    }

    /// Forgets `group` and its offsets (only while it has no members).
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let route = coordinator(group);
        retry::call(
            &self.client().shared,
            &route,
            |channel, attempt| async move {
                let request = pb::DeleteGroupRequest {
                    group: group.to_owned(),
                };
                let response = groups_client(channel)
                    .delete_group(request)
                    .await
                    .map_err(|s| status(s, "delete group"))?
                    .into_inner();
                match ClientError::check(response.error) {
                    // Our lost attempt deleted it.
                    Err(e)
                        if attempt.prior_outcome_unknown
                            && e.code() == Some(ErrorCode::UnknownGroup) =>
                    {
                        Ok(())
                    }
                    other => other,
                }
            },
        )
        .await
    }
}

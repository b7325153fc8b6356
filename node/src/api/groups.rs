//! The `Groups` service: consumer-group membership, commits and admin, on the group's
//! coordinator (`partition::group::coordinator`). This file checks each request's shape
//! (ids, sizes, duplicates) before anything is proposed, converts wire types, and maps
//! the coordinator's errors to stable codes.

use std::collections::BTreeSet;
use std::sync::Arc;

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::groups_server::Groups;
use tonic::{Request, Response, Status};

use super::errors::{error, invalid, not_leader, retry_after, FORMING_RETRY_AFTER_MS};
use super::ApiContext;
use crate::metadata::state::MetadataView;
use crate::partition::group::command::{GroupRefusal, OffsetCommit, TopicPartition};
use crate::partition::group::coordinator::{
    data_partition_of, Beat, GroupError, Heartbeat, COMMIT_METADATA_BYTES_MAX,
    COMMIT_PARTITIONS_MAX, INSTANCE_ID_BYTES_MAX, SUBSCRIPTION_TOPICS_MAX,
};
use crate::partition::group::state::Group;
use crate::partition::group::GROUPS_TOPIC;
use crate::types::{GroupId, MemberEpoch, MemberId, Offset};

/// Most partitions a heartbeat may list as owned.
const OWNED_PARTITIONS_MAX: usize = 100_000;

pub struct GroupsService {
    ctx: ApiContext,
}

impl GroupsService {
    pub fn new(ctx: ApiContext) -> Self {
        Self { ctx }
    }

    fn shutting_down(&self) -> Option<pb::Error> {
        self.ctx
            .shutdown
            .borrow()
            .then(|| error(pb::ErrorCode::ShuttingDown, "node is shutting down"))
    }

    /// Every topic exists (UNKNOWN_TOPIC only once this node has caught up with the
    /// metadata leader, as for produce).
    async fn check_topics<'t>(
        &self,
        topics: impl IntoIterator<Item = &'t String>,
    ) -> Result<(), pb::Error> {
        for topic in topics {
            if topic == GROUPS_TOPIC {
                return Err(invalid(format!(
                    "{GROUPS_TOPIC} is internal: it cannot be consumed"
                )));
            }
            self.ctx.topic_view(topic).await?;
        }
        Ok(())
    }

    fn group_error(&self, e: GroupError) -> pb::Error {
        from_group(e, &self.ctx.metadata.view())
    }
}

/// Maps a coordinator error to its stable code.
pub fn from_group(e: GroupError, view: &MetadataView) -> pb::Error {
    let message = e.to_string();
    match e {
        GroupError::NotCoordinator { coordinator, .. } => pb::Error {
            code: pb::ErrorCode::NotCoordinator as i32,
            ..not_leader(message, coordinator, view)
        },
        GroupError::Unavailable(_) => {
            retry_after(pb::ErrorCode::Unavailable, message, FORMING_RETRY_AFTER_MS)
        }
        GroupError::UnknownTopic(_) => error(pb::ErrorCode::UnknownTopic, message),
        GroupError::Invalid(_) => invalid(message),
        GroupError::Refused(refusal) => {
            let code = match refusal {
                GroupRefusal::UnknownGroup(_) => pb::ErrorCode::UnknownGroup,
                GroupRefusal::FencedMember { .. } => pb::ErrorCode::FencedMember,
                GroupRefusal::StaleEpoch(_) => pb::ErrorCode::StaleEpoch,
                GroupRefusal::NotEmpty { .. } => pb::ErrorCode::GroupNotEmpty,
                GroupRefusal::Invalid(_) => pb::ErrorCode::InvalidArgument,
            };
            error(code, message)
        }
    }
}

fn group_id(name: &str) -> Result<GroupId, pb::Error> {
    GroupId::parse(name).map_err(invalid)
}

fn member_id(id: &str) -> Result<MemberId, pb::Error> {
    MemberId::parse(id).map_err(invalid)
}

fn topic_partition(tp: pb::TopicPartition) -> TopicPartition {
    TopicPartition {
        topic: tp.topic,
        partition: tp.partition,
    }
}

fn to_wire(tp: &TopicPartition) -> pb::TopicPartition {
    pb::TopicPartition {
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
}

fn state_name(group: &Group) -> &'static str {
    if group.members.is_empty() {
        "empty"
    } else if group.is_stable() {
        "stable"
    } else {
        "reconciling"
    }
}

/// Checks a heartbeat's shape and converts it.
fn heartbeat_from_wire(request: pb::HeartbeatRequest) -> Result<Heartbeat, pb::Error> {
    let group = group_id(&request.group)?;
    let member = member_id(&request.member_id)?;
    if let Some(instance) = &request.instance_id {
        if instance.is_empty() || instance.len() > INSTANCE_ID_BYTES_MAX {
            return Err(invalid(format!(
                "instance id must be 1 to {INSTANCE_ID_BYTES_MAX} bytes, got {}",
                instance.len()
            )));
        }
    }
    if request.topics.is_empty() {
        return Err(invalid("a member subscribes to at least one topic"));
    }
    if request.topics.len() > SUBSCRIPTION_TOPICS_MAX {
        return Err(invalid(format!(
            "a member subscribes to at most {SUBSCRIPTION_TOPICS_MAX} topics, got {}",
            request.topics.len()
        )));
    }
    if request.owned.len() > OWNED_PARTITIONS_MAX {
        return Err(invalid(format!(
            "a heartbeat lists at most {OWNED_PARTITIONS_MAX} owned partitions, got {}",
            request.owned.len()
        )));
    }
    Ok(Heartbeat {
        group,
        member,
        epoch: MemberEpoch(request.member_epoch),
        instance_id: request.instance_id,
        topics: request.topics.into_iter().collect(),
        owned: request.owned.into_iter().map(topic_partition).collect(),
        session_timeout_ms: request.session_timeout_ms,
    })
}

/// Checks a commit's offsets and converts them.
fn offsets_from_wire(offsets: Vec<pb::OffsetCommit>) -> Result<Vec<OffsetCommit>, pb::Error> {
    if offsets.is_empty() {
        return Err(invalid("a commit names at least one partition"));
    }
    if offsets.len() > COMMIT_PARTITIONS_MAX {
        return Err(invalid(format!(
            "a commit names at most {COMMIT_PARTITIONS_MAX} partitions, got {}",
            offsets.len()
        )));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(offsets.len());
    for c in offsets {
        let Some(partition) = c.partition.map(topic_partition) else {
            return Err(invalid("an offset commit without its partition"));
        };
        if c.metadata.len() > COMMIT_METADATA_BYTES_MAX {
            return Err(invalid(format!(
                "the metadata of {partition} is {} bytes; at most {COMMIT_METADATA_BYTES_MAX}",
                c.metadata.len()
            )));
        }
        if !seen.insert(partition.clone()) {
            return Err(invalid(format!("{partition} appears twice in one commit")));
        }
        out.push(OffsetCommit {
            partition,
            next_offset: Offset(c.next_offset),
            metadata: c.metadata,
        });
    }
    Ok(out)
}

fn beat_answer(beat: Beat) -> pb::HeartbeatResponse {
    let assignment = beat.assignment;
    pb::HeartbeatResponse {
        error: None,
        member_epoch: assignment.epoch.0,
        heartbeat_interval_ms: beat.heartbeat_interval_ms,
        session_timeout_ms: beat.session_timeout_ms,
        assigned: assignment.assigned.iter().map(to_wire).collect(),
        revoking: assignment.revoking.iter().map(to_wire).collect(),
    }
}

macro_rules! answer_error {
    ($response:ty, $e:expr) => {
        Ok(Response::new(<$response>::from_error($e)))
    };
}

/// Responses that carry an `error` field and nothing else needed on failure.
trait FromError: Default {
    fn with_error(self, e: pb::Error) -> Self;
    fn from_error(e: pb::Error) -> Self {
        Self::default().with_error(e)
    }
}

macro_rules! from_error {
    ($($t:ty),*) => {$(
        impl FromError for $t {
            fn with_error(mut self, e: pb::Error) -> Self {
                self.error = Some(e);
                self
            }
        }
    )*};
}

from_error!(
    pb::HeartbeatResponse,
    pb::LeaveGroupResponse,
    pb::CommitOffsetsResponse,
    pb::FetchOffsetsResponse,
    pb::FindCoordinatorResponse,
    pb::ListGroupsResponse,
    pb::DescribeGroupResponse,
    pb::ResetOffsetsResponse,
    pb::DeleteGroupResponse
);

type Answer<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Answer<T> {
    Ok(Response::new(value))
}

#[tonic::async_trait]
impl Groups for GroupsService {
    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Answer<pb::HeartbeatResponse> {
        if let Some(e) = self.shutting_down() {
            return answer_error!(pb::HeartbeatResponse, e);
        }
        let beat = match heartbeat_from_wire(request.into_inner()) {
            Ok(beat) => beat,
            Err(e) => return answer_error!(pb::HeartbeatResponse, e),
        };
        if let Err(e) = self.check_topics(&beat.topics).await {
            return answer_error!(pb::HeartbeatResponse, e);
        }
        match self.ctx.coordinator.heartbeat(beat).await {
            Ok(beat) => ok(beat_answer(beat)),
            Err(e) => answer_error!(pb::HeartbeatResponse, self.group_error(e)),
        }
    }

    async fn leave_group(
        &self,
        request: Request<pb::LeaveGroupRequest>,
    ) -> Answer<pb::LeaveGroupResponse> {
        let request = request.into_inner();
        let ids = group_id(&request.group).and_then(|g| Ok((g, member_id(&request.member_id)?)));
        let (group, member) = match ids {
            Ok(ids) => ids,
            Err(e) => return answer_error!(pb::LeaveGroupResponse, e),
        };
        match self.ctx.coordinator.leave(&group, &member).await {
            Ok(()) => ok(pb::LeaveGroupResponse::default()),
            Err(e) => answer_error!(pb::LeaveGroupResponse, self.group_error(e)),
        }
    }

    async fn commit_offsets(
        &self,
        request: Request<pb::CommitOffsetsRequest>,
    ) -> Answer<pb::CommitOffsetsResponse> {
        if let Some(e) = self.shutting_down() {
            return answer_error!(pb::CommitOffsetsResponse, e);
        }
        let request = request.into_inner();
        let checked = group_id(&request.group).and_then(|g| {
            Ok((
                g,
                member_id(&request.member_id)?,
                offsets_from_wire(request.offsets)?,
            ))
        });
        let (group, member, offsets) = match checked {
            Ok(checked) => checked,
            Err(e) => return answer_error!(pb::CommitOffsetsResponse, e),
        };
        let topics: BTreeSet<String> = offsets.iter().map(|c| c.partition.topic.clone()).collect();
        if let Err(e) = self.check_topics(&topics).await {
            return answer_error!(pb::CommitOffsetsResponse, e);
        }
        let epoch = MemberEpoch(request.member_epoch);
        match self
            .ctx
            .coordinator
            .commit(&group, &member, epoch, offsets)
            .await
        {
            Ok(()) => ok(pb::CommitOffsetsResponse::default()),
            Err(e) => answer_error!(pb::CommitOffsetsResponse, self.group_error(e)),
        }
    }

    async fn fetch_offsets(
        &self,
        request: Request<pb::FetchOffsetsRequest>,
    ) -> Answer<pb::FetchOffsetsResponse> {
        let request = request.into_inner();
        let group = match group_id(&request.group) {
            Ok(group) => group,
            Err(e) => return answer_error!(pb::FetchOffsetsResponse, e),
        };
        let wanted: BTreeSet<TopicPartition> = request
            .partitions
            .into_iter()
            .map(topic_partition)
            .collect();
        let state = match self.ctx.coordinator.group(&group).await {
            Ok(state) => state,
            // A group that never committed has no offsets: not an error for a reader.
            Err(GroupError::Refused(GroupRefusal::UnknownGroup(_))) => {
                return ok(pb::FetchOffsetsResponse::default())
            }
            Err(e) => return answer_error!(pb::FetchOffsetsResponse, self.group_error(e)),
        };
        let offsets = state
            .offsets
            .iter()
            .filter(|(tp, _)| wanted.is_empty() || wanted.contains(*tp))
            .map(|(tp, c)| pb::CommittedOffset {
                partition: Some(to_wire(tp)),
                next_offset: c.offset.0,
                metadata: c.metadata.clone(),
                committed_ms: c.committed_ms,
            })
            .collect();
        ok(pb::FetchOffsetsResponse {
            error: None,
            offsets,
        })
    }

    async fn find_coordinator(
        &self,
        request: Request<pb::FindCoordinatorRequest>,
    ) -> Answer<pb::FindCoordinatorResponse> {
        let group = match group_id(&request.into_inner().group) {
            Ok(group) => group,
            Err(e) => return answer_error!(pb::FindCoordinatorResponse, e),
        };
        match self.ctx.coordinator.route(&group).await {
            Ok(_) => ok(pb::FindCoordinatorResponse {
                error: None,
                node_id: self.ctx.node_id,
                addr: self
                    .ctx
                    .metadata
                    .view()
                    .client_addr(self.ctx.node_id)
                    .unwrap_or_default()
                    .to_owned(),
            }),
            Err(e) => answer_error!(pb::FindCoordinatorResponse, self.group_error(e)),
        }
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Answer<pb::ListGroupsResponse> {
        let index = request.into_inner().groups_partition;
        match self.ctx.coordinator.list(index).await {
            Ok(groups) => ok(pb::ListGroupsResponse {
                error: None,
                groups: groups
                    .iter()
                    .map(|(id, g)| pb::GroupListing {
                        group: id.to_string(),
                        state: state_name(g).to_owned(),
                        members: g.members.len() as u32,
                    })
                    .collect(),
            }),
            Err(e) => answer_error!(pb::ListGroupsResponse, self.group_error(e)),
        }
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Answer<pb::DescribeGroupResponse> {
        let group = match group_id(&request.into_inner().group) {
            Ok(group) => group,
            Err(e) => return answer_error!(pb::DescribeGroupResponse, e),
        };
        match self.ctx.coordinator.group(&group).await {
            Ok(state) => ok(pb::DescribeGroupResponse {
                error: None,
                group: Some(self.describe(&group, &state).await),
            }),
            Err(e) => answer_error!(pb::DescribeGroupResponse, self.group_error(e)),
        }
    }

    async fn reset_offsets(
        &self,
        request: Request<pb::ResetOffsetsRequest>,
    ) -> Answer<pb::ResetOffsetsResponse> {
        let request = request.into_inner();
        let group = match group_id(&request.group) {
            Ok(group) => group,
            Err(e) => return answer_error!(pb::ResetOffsetsResponse, e),
        };
        if let Err(e) = self.check_topics([&request.topic]).await {
            return answer_error!(pb::ResetOffsetsResponse, e);
        }
        let Some(to) = request.to else {
            return answer_error!(
                pb::ResetOffsetsResponse,
                invalid("reset to what: earliest, latest or an offset")
            );
        };
        let offsets = match self.reset_targets(&request.topic, to).await {
            Ok(offsets) => offsets,
            Err(e) => return answer_error!(pb::ResetOffsetsResponse, e),
        };
        match self.ctx.coordinator.reset(&group, offsets.clone()).await {
            Ok(()) => ok(pb::ResetOffsetsResponse {
                error: None,
                offsets: offsets
                    .iter()
                    .map(|(tp, offset)| pb::CommittedOffset {
                        partition: Some(to_wire(tp)),
                        next_offset: offset.0,
                        ..Default::default()
                    })
                    .collect(),
            }),
            Err(e) => answer_error!(pb::ResetOffsetsResponse, self.group_error(e)),
        }
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Answer<pb::DeleteGroupResponse> {
        let group = match group_id(&request.into_inner().group) {
            Ok(group) => group,
            Err(e) => return answer_error!(pb::DeleteGroupResponse, e),
        };
        match self.ctx.coordinator.delete(&group).await {
            Ok(()) => ok(pb::DeleteGroupResponse::default()),
            Err(e) => answer_error!(pb::DeleteGroupResponse, self.group_error(e)),
        }
    }
}

impl GroupsService {
    /// The group as DescribeGroup shows it: members with their assignment, and per
    /// partition of its topics: committed offset, high watermark (from the partition's
    /// leader), lag and owner.
    async fn describe(&self, id: &GroupId, group: &Arc<Group>) -> pb::GroupDescription {
        let members = group
            .members
            .iter()
            .map(|(member, m)| {
                let told = group.assignment_of(member).expect("a member");
                pb::MemberDescription {
                    member_id: member.to_string(),
                    instance_id: m.instance_id.clone(),
                    member_epoch: m.epoch.0,
                    topics: m.subscription.iter().cloned().collect(),
                    assigned: told.assigned.iter().map(to_wire).collect(),
                    revoking: told.revoking.iter().map(to_wire).collect(),
                }
            })
            .collect();
        let mut partitions: BTreeSet<TopicPartition> = group.offsets.keys().cloned().collect();
        for (topic, count) in &group.partition_counts {
            partitions.extend((0..*count).map(|partition| TopicPartition {
                topic: topic.clone(),
                partition,
            }));
        }
        let view = self.ctx.metadata.view();
        let mut described = Vec::with_capacity(partitions.len());
        for tp in partitions {
            let committed = group.offsets.get(&tp).map(|c| c.offset);
            let high = match data_partition_of(&view, &tp) {
                Some(id) => self
                    .ctx
                    .coordinator
                    .watermark(id, Offset::ZERO)
                    .await
                    .ok()
                    .map(|w| w.high),
                None => None,
            };
            let lag = high.map(|h| h.0.saturating_sub(committed.map_or(0, |c| c.0)));
            described.push(pb::GroupPartition {
                committed: committed.map(|c| c.0),
                high_watermark: high.map(|h| h.0),
                lag,
                member_id: group.owner_of(&tp).map(|m| m.to_string()),
                partition: Some(to_wire(&tp)),
            });
        }
        pb::GroupDescription {
            group: id.to_string(),
            state: state_name(group).to_owned(),
            epoch: group.epoch,
            members,
            partitions: described,
        }
    }

    /// The offsets a reset of `topic` sets, one per partition.
    async fn reset_targets(
        &self,
        topic: &str,
        to: pb::reset_offsets_request::To,
    ) -> Result<Vec<(TopicPartition, Offset)>, pb::Error> {
        use pb::reset_offsets_request::To;
        let view = self.ctx.metadata.view();
        let info = &view.topics[topic];
        let mut offsets = Vec::with_capacity(info.partitions.len());
        for placement in &info.partitions {
            let tp = TopicPartition {
                topic: topic.to_owned(),
                partition: placement.index,
            };
            let watermark = self
                .ctx
                .coordinator
                .watermark(placement.id, Offset::ZERO)
                .await
                .map_err(|e| self.group_error(e))?;
            let offset = match to {
                To::Earliest(_) => watermark.log_start,
                To::Latest(_) => watermark.high,
                To::Offset(offset) => {
                    let offset = Offset(offset);
                    if offset < watermark.log_start || offset > watermark.high {
                        return Err(invalid(format!(
                            "offset {offset} is outside [{}, {}] of {tp}",
                            watermark.log_start, watermark.high
                        )));
                    }
                    offset
                }
            };
            offsets.push((tp, offset));
        }
        Ok(offsets)
    }
}

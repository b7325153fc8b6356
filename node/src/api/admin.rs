//! The `Admin` service: topics and cluster description.
//!
//! Topic changes are metadata writes and go through the metadata group's leader; a node
//! that does not lead it answers NOT_LEADER with the leader's address. Descriptions are
//! answered from this node's applied view, plus what its local replicas know (leader,
//! watermarks).

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::admin_server::Admin;
use tonic::{Request, Response, Status};

use super::errors::{self, invalid};
use super::ApiContext;
use crate::metadata::command::{MetadataCommand, MetadataResponse, TopicInfo, TopicSpec};
use crate::metadata::state::{validate_topic_spec, MetadataView};

/// Names starting with `__` belong to evlog's internal topics (`__groups`): created and
/// deleted by the cluster only.
fn reserved(name: &str) -> Option<pb::Error> {
    name.starts_with("__").then(|| {
        invalid(format!(
            "topic names starting with \"__\" are reserved for evlog's internal topics \
             ({name:?})"
        ))
    })
}

fn saturate_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

pub struct AdminService {
    ctx: ApiContext,
}

impl AdminService {
    pub fn new(ctx: ApiContext) -> Self {
        Self { ctx }
    }

    fn describe(&self, info: &TopicInfo, view: &MetadataView) -> pb::TopicDescription {
        let partitions = info
            .partitions
            .iter()
            .map(|p| {
                let replica = self.ctx.registry.get(p.id);
                let watermark = replica.as_ref().map(|r| *r.watermark().borrow());
                let leader_id = replica.as_ref().and_then(|r| r.current_leader());
                pb::PartitionDescription {
                    partition: p.index,
                    group_id: p.id.0,
                    replicas: p.replicas.clone(),
                    leader_id,
                    high_watermark: watermark.map(|w| w.high.0),
                    log_start_offset: watermark.map(|w| w.log_start.0),
                    leader_addr: leader_id
                        .and_then(|id| view.client_addr(id))
                        .map(str::to_owned),
                }
            })
            .collect();
        pb::TopicDescription {
            name: info.spec.name.clone(),
            config: Some(pb::TopicConfig {
                partitions: info.spec.partitions,
                replication_factor: info.spec.replication_factor,
                max_event_bytes: info.spec.max_event_bytes,
            }),
            partitions,
        }
    }

    async fn propose(&self, command: MetadataCommand) -> Result<MetadataResponse, pb::Error> {
        self.ctx
            .metadata
            .propose(command, self.ctx.limits.request_timeout)
            .await
            .map_err(|e| errors::from_propose(e, &self.ctx.metadata.view()))
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let request = request.into_inner();
        let respond = |e: pb::Error| {
            Ok(Response::new(pb::CreateTopicResponse {
                error: Some(e),
                topic: None,
            }))
        };
        if let Some(e) = reserved(&request.name) {
            return respond(e);
        }
        let Some(config) = request.config else {
            return respond(invalid(
                "create topic needs a config (partitions, replication factor)",
            ));
        };
        let spec = TopicSpec {
            name: request.name,
            partitions: config.partitions,
            replication_factor: config.replication_factor,
            max_event_bytes: if config.max_event_bytes == 0 {
                self.ctx.limits.default_max_event_bytes
            } else {
                config.max_event_bytes
            },
        };
        // An event must fit in one produce request.
        let limit = u32::try_from(self.ctx.limits.request_bytes_max).unwrap_or(u32::MAX);
        if let Err(refusal) = validate_topic_spec(&spec, limit) {
            return respond(errors::from_refusal(refusal));
        }
        // Whether the cluster has enough nodes is decided where placement is, when the
        // metadata leader applies the command: a forming cluster (no leader, no nodes
        // known yet) answers a retryable UNAVAILABLE, not a permanent-looking refusal.
        match self.propose(MetadataCommand::CreateTopic(spec)).await {
            Ok(MetadataResponse::TopicCreated(info)) => {
                Ok(Response::new(pb::CreateTopicResponse {
                    error: None,
                    topic: Some(self.describe(&info, &self.ctx.metadata.view())),
                }))
            }
            Ok(MetadataResponse::Refused(refusal)) => respond(errors::from_refusal(refusal)),
            Ok(other) => panic!("create topic answered with {other:?}"),
            Err(e) => respond(e),
        }
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let name = request.into_inner().name;
        if let Some(e) = reserved(&name) {
            return Ok(Response::new(pb::DeleteTopicResponse { error: Some(e) }));
        }
        let error = match self.propose(MetadataCommand::DeleteTopic { name }).await {
            Ok(MetadataResponse::TopicDeleted { .. }) => None,
            Ok(MetadataResponse::Refused(refusal)) => Some(errors::from_refusal(refusal)),
            Ok(other) => panic!("delete topic answered with {other:?}"),
            Err(e) => Some(e),
        };
        Ok(Response::new(pb::DeleteTopicResponse { error }))
    }

    async fn list_topics(
        &self,
        _request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let view = match self.ctx.metadata_view() {
            Ok(view) => view,
            Err(e) => {
                return Ok(Response::new(pb::ListTopicsResponse {
                    error: Some(e),
                    topics: Vec::new(),
                }))
            }
        };
        Ok(Response::new(pb::ListTopicsResponse {
            error: None,
            topics: view
                .topics
                .values()
                .map(|info| self.describe(info, &view))
                .collect(),
        }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::DescribeTopicResponse>, Status> {
        let name = request.into_inner().name;
        // Descriptions come from a running metadata replica only: a frozen one would hand
        // out stale placements (regression seed 3342).
        let view = match self.ctx.metadata_view() {
            Ok(_) => self.ctx.topic_view(&name).await,
            Err(e) => Err(e),
        };
        let answer = match view {
            Ok(view) => pb::DescribeTopicResponse {
                error: None,
                topic: Some(self.describe(&view.topics[&name], &view)),
            },
            Err(e) => pb::DescribeTopicResponse {
                error: Some(e),
                topic: None,
            },
        };
        Ok(Response::new(answer))
    }

    async fn describe_cluster(
        &self,
        _request: Request<pb::DescribeClusterRequest>,
    ) -> Result<Response<pb::DescribeClusterResponse>, Status> {
        let view = match self.ctx.metadata_view() {
            Ok(view) => view,
            Err(e) => {
                return Ok(Response::new(pb::DescribeClusterResponse {
                    error: Some(e),
                    answered_by: self.ctx.node_id,
                    ..Default::default()
                }))
            }
        };
        Ok(Response::new(pb::DescribeClusterResponse {
            error: None,
            nodes: view
                .nodes
                .iter()
                .map(|(id, record)| pb::NodeDescription {
                    node_id: *id,
                    addr: record.client_addr.clone().unwrap_or_default(),
                    peer_addr: record.peer_addr.clone(),
                })
                .collect(),
            metadata_leader_id: self.ctx.metadata.leader().map(|(id, _)| id),
            answered_by: self.ctx.node_id,
            metadata_term: self.ctx.metadata.term(),
            produce_limits: Some(pb::ProduceLimits {
                request_bytes_max: saturate_u32(self.ctx.limits.request_bytes_max),
                request_events_max: saturate_u32(self.ctx.limits.request_events_max),
                headers_per_event_max: saturate_u32(self.ctx.limits.headers_per_event_max),
            }),
            cluster_id: self.ctx.cluster_id.to_string(),
        }))
    }
}

//! `Admin`: create, delete, list and describe topics; describe the cluster. Topic
//! changes go to the metadata leader (following NOT_LEADER hints); descriptions go to any
//! node and reflect that node's view (possibly slightly stale).

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::client::Client;
use crate::error::{ClientError, ErrorCode};
use crate::metadata::{normalize_addr, Route, MAX_DECODING_BYTES};
use crate::retry;

/// Settings of a new topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Number of partitions (fixed for the topic's life).
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Largest event accepted (key + value + headers), 0 = the node's default.
    pub max_event_bytes: u32,
}

/// A topic as described by a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partition_count: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Largest event accepted, in bytes.
    pub max_event_bytes: u32,
    /// Every partition, by index.
    pub partitions: Vec<PartitionInfo>,
}

/// A partition as described by a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index within the topic.
    pub partition: u32,
    /// Cluster-wide id of its Raft group.
    pub group_id: u64,
    /// Node ids of its replicas.
    pub replicas: Vec<u64>,
    /// Its leader, when the answering node knows it (it hosts a replica).
    pub leader_id: Option<u64>,
    /// Its high watermark, when the answering node hosts a replica.
    pub high_watermark: Option<u64>,
    /// Its log start offset, when the answering node hosts a replica.
    pub log_start_offset: Option<u64>,
}

/// The cluster as described by one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Every registered node.
    pub nodes: Vec<NodeInfo>,
    /// The metadata group's leader as the answering node sees it.
    pub metadata_leader_id: Option<u64>,
    /// The node that answered.
    pub answered_by: u64,
    /// The metadata group's Raft term as the answering node sees it.
    pub metadata_term: u64,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node id.
    pub node_id: u64,
    /// Client address, `host:port`.
    pub addr: String,
}

impl From<pb::TopicDescription> for TopicInfo {
    fn from(t: pb::TopicDescription) -> Self {
        let config = t.config.unwrap_or_default();
        TopicInfo {
            name: t.name,
            partition_count: config.partitions,
            replication_factor: config.replication_factor,
            max_event_bytes: config.max_event_bytes,
            partitions: t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition,
                    group_id: p.group_id,
                    replicas: p.replicas,
                    leader_id: p.leader_id,
                    high_watermark: p.high_watermark,
                    log_start_offset: p.log_start_offset,
                })
                .collect(),
        }
    }
}

impl From<pb::DescribeClusterResponse> for ClusterInfo {
    fn from(c: pb::DescribeClusterResponse) -> Self {
        ClusterInfo {
            nodes: c
                .nodes
                .into_iter()
                .map(|n| NodeInfo {
                    node_id: n.node_id,
                    addr: n.addr,
                })
                .collect(),
            metadata_leader_id: c.metadata_leader_id,
            answered_by: c.answered_by,
            metadata_term: c.metadata_term,
        }
    }
}

fn admin_client(channel: Channel) -> AdminClient<Channel> {
    AdminClient::new(channel).max_decoding_message_size(MAX_DECODING_BYTES)
}

fn missing(what: &str) -> ClientError {
    ClientError::Protocol(format!("the node's answer lacks {what}"))
}

/// Topic and cluster administration. Get one with [`Client::admin`].
///
/// ```no_run
/// # async fn example(client: evlog_client::Client) -> Result<(), evlog_client::ClientError> {
/// let admin = client.admin();
/// let topic = admin.create_topic("orders", 6, 3).await?;
/// assert_eq!(topic.partition_count, 6);
/// for t in admin.list_topics().await? {
///     println!("{}: {} partitions", t.name, t.partition_count);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Creates a topic with the node's default event size limit.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
    ) -> Result<TopicInfo, ClientError> {
        let spec = TopicSpec {
            partitions,
            replication_factor,
            max_event_bytes: 0,
        };
        self.create_topic_with(name, spec).await
    }

    /// Creates a topic. Fails with `TOPIC_EXISTS` if it exists, unless an earlier attempt
    /// of this very call (lost answer) created it with the same partitions and factor.
    pub async fn create_topic_with(
        &self,
        name: &str,
        spec: TopicSpec,
    ) -> Result<TopicInfo, ClientError> {
        let request = pb::CreateTopicRequest {
            name: name.to_string(),
            config: Some(pb::TopicConfig {
                partitions: spec.partitions,
                replication_factor: spec.replication_factor,
                max_event_bytes: spec.max_event_bytes,
            }),
        };
        let shared = &self.client.shared;
        let created = retry::call(shared, &Route::MetadataLeader, |channel, attempt| {
            let request = request.clone();
            async move {
                let response = admin_client(channel)
                    .create_topic(request)
                    .await
                    .map_err(|s| status(s, "create topic"))?
                    .into_inner();
                match ClientError::check(response.error) {
                    Ok(()) => Ok(Some(
                        response.topic.ok_or_else(|| missing("the created topic"))?,
                    )),
                    Err(e)
                        if attempt.prior_outcome_unknown
                            && e.code() == Some(ErrorCode::TopicExists) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            }
        })
        .await?;
        let topic = match created {
            Some(topic) => topic,
            None => self.existing_after_lost_answer(name, spec).await?,
        };
        shared.metadata.with_state(|s| s.upsert_topic(&topic));
        Ok(topic.into())
    }

    /// After TOPIC_EXISTS on a retry: our lost attempt probably created it; accept the
    /// topic if it matches what we asked for.
    async fn existing_after_lost_answer(
        &self,
        name: &str,
        spec: TopicSpec,
    ) -> Result<pb::TopicDescription, ClientError> {
        let topic = self.describe_raw(name).await?;
        let config = topic.config.unwrap_or_default();
        let same = config.partitions == spec.partitions
            && config.replication_factor == spec.replication_factor
            && (spec.max_event_bytes == 0 || config.max_event_bytes == spec.max_event_bytes);
        if !same {
            return Err(ClientError::server(
                ErrorCode::TopicExists,
                format!("topic {name:?} exists with other settings"),
            ));
        }
        Ok(topic)
    }

    /// Deletes a topic and its events.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let request = pb::DeleteTopicRequest {
            name: name.to_string(),
        };
        let shared = &self.client.shared;
        retry::call(shared, &Route::MetadataLeader, |channel, attempt| {
            let request = request.clone();
            async move {
                let response = admin_client(channel)
                    .delete_topic(request)
                    .await
                    .map_err(|s| status(s, "delete topic"))?
                    .into_inner();
                match ClientError::check(response.error) {
                    Err(e)
                        if attempt.prior_outcome_unknown
                            && e.code() == Some(ErrorCode::UnknownTopic) =>
                    {
                        Ok(())
                    }
                    other => other,
                }
            }
        })
        .await?;
        shared.metadata.with_state(|s| s.topics.remove(name));
        Ok(())
    }

    /// Every topic, as one node sees them.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        let topics = retry::call(
            &self.client.shared,
            &Route::AnyNode,
            |channel, _| async move {
                let response = admin_client(channel)
                    .list_topics(pb::ListTopicsRequest {})
                    .await
                    .map_err(|s| status(s, "list topics"))?
                    .into_inner();
                ClientError::check(response.error)?;
                Ok(response.topics)
            },
        )
        .await?;
        Ok(topics.into_iter().map(TopicInfo::from).collect())
    }

    /// One topic, as one node sees it (`UNKNOWN_TOPIC` if that node does not know it).
    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo, ClientError> {
        Ok(self.describe_raw(name).await?.into())
    }

    async fn describe_raw(&self, name: &str) -> Result<pb::TopicDescription, ClientError> {
        let request = pb::DescribeTopicRequest {
            name: name.to_string(),
        };
        let topic = retry::call(&self.client.shared, &Route::AnyNode, |channel, _| {
            describe_topic_once(channel, request.clone())
        })
        .await?;
        self.client
            .shared
            .metadata
            .with_state(|s| s.upsert_topic(&topic));
        Ok(topic)
    }

    /// One topic as the node at `addr` sees it: one attempt, no retries. Nodes hosting
    /// a replica of a partition report its leader and watermarks.
    pub async fn describe_topic_at(
        &self,
        addr: &str,
        name: &str,
    ) -> Result<TopicInfo, ClientError> {
        let addr = normalize_addr(addr);
        let channel = self.client.shared.metadata.channel(&addr)?;
        let request = pb::DescribeTopicRequest {
            name: name.to_string(),
        };
        let topic = self
            .once(&addr, describe_topic_once(channel, request))
            .await?;
        Ok(topic.into())
    }

    /// The cluster as one node sees it.
    pub async fn describe_cluster(&self) -> Result<ClusterInfo, ClientError> {
        let cluster = retry::call(&self.client.shared, &Route::AnyNode, |channel, _| {
            describe_cluster_once(channel)
        })
        .await?;
        Ok(cluster.into())
    }

    /// The cluster as the node at `addr` sees it: one attempt, no retries (use it to
    /// check whether that node answers).
    pub async fn describe_cluster_at(&self, addr: &str) -> Result<ClusterInfo, ClientError> {
        let addr = normalize_addr(addr);
        let channel = self.client.shared.metadata.channel(&addr)?;
        Ok(self
            .once(&addr, describe_cluster_once(channel))
            .await?
            .into())
    }

    /// Bounds a single attempt by the request timeout and names the node in errors.
    async fn once<T>(
        &self,
        addr: &str,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let timeout = self.client.shared.config.request_timeout();
        let result = tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Transport {
                    addr: addr.to_string(),
                    code: tonic::Code::DeadlineExceeded,
                    message: format!("no answer within {} ms", timeout.as_millis()),
                })
            });
        result.map_err(|e| e.with_addr(addr))
    }
}

async fn describe_topic_once(
    channel: Channel,
    request: pb::DescribeTopicRequest,
) -> Result<pb::TopicDescription, ClientError> {
    let response = admin_client(channel)
        .describe_topic(request)
        .await
        .map_err(|s| status(s, "describe topic"))?
        .into_inner();
    ClientError::check(response.error)?;
    response.topic.ok_or_else(|| missing("the topic"))
}

async fn describe_cluster_once(
    channel: Channel,
) -> Result<pb::DescribeClusterResponse, ClientError> {
    let response = admin_client(channel)
        .describe_cluster(pb::DescribeClusterRequest {})
        .await
        .map_err(|s| status(s, "describe cluster"))?
        .into_inner();
    ClientError::check(response.error.clone())?;
    Ok(response)
}

/// A gRPC status from an admin call; the caller fills in the address.
fn status(s: tonic::Status, op: &str) -> ClientError {
    ClientError::Transport {
        addr: String::new(),
        code: s.code(),
        message: format!("{op}: {}", s.message()),
    }
}

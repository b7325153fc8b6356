//! The metadata cache and request routing: which nodes exist, which topics and
//! partitions, who leads each partition (a guess corrected by leader hints), one reused
//! gRPC channel per node address, and on-demand refreshes with a minimum interval.
//!
//! Routing never blocks on a lock held across an RPC: `State` sits behind a std mutex
//! touched only for short, synchronous updates; refreshes are serialized by an async lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::admin_client::AdminClient;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::config::ClientConfig;
use crate::error::{ClientError, ErrorCode};
use crate::retry::Disposition;

/// Largest gRPC message the client decodes (a Read answer is bounded by `max_read_bytes`,
/// but one event may exceed it).
pub(crate) const MAX_DECODING_BYTES: usize = 64 * 1024 * 1024;

/// Upper bound on one metadata fetch from one node.
const REFRESH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a request must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// The leader of one partition (Produce, Read, Subscribe).
    Partition {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
    },
    /// The metadata group's leader (CreateTopic, DeleteTopic).
    MetadataLeader,
    /// Any node (descriptions).
    AnyNode,
    /// A consumer group's coordinator (the leader of the group's `__groups` partition).
    Coordinator {
        /// The group's id.
        group: String,
    },
}

/// What the client knows about a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartitionMeta {
    pub replicas: Vec<u64>,
    pub leader_id: Option<u64>,
    /// Set from a hint that carried an address (may name a node not yet in `nodes`).
    pub leader_addr: Option<String>,
    /// Which replica to try next when the leader is unknown.
    pub next_replica: usize,
}

/// What the client knows about a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TopicMeta {
    pub partitions: Vec<PartitionMeta>,
    pub max_event_bytes: u32,
}

/// The cache itself: plain data, updated synchronously (unit-tested without a network).
#[derive(Debug, Default)]
pub(crate) struct State {
    pub bootstrap: Vec<String>,
    pub nodes: BTreeMap<u64, String>,
    pub topics: HashMap<String, TopicMeta>,
    pub metadata_leader: Option<String>,
    /// Each consumer group's coordinator, as last learned from a hint or an answer.
    pub coordinators: HashMap<String, String>,
    /// Rotates the choice among all known nodes after failures.
    pub rotation: usize,
    /// When the last refresh started, and how it ended.
    pub last_attempt: Option<(Instant, Result<(), ClientError>)>,
}

/// Strips an optional `http://` prefix: the cache keys nodes by `host:port`.
pub(crate) fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim();
    addr.strip_prefix("http://")
        .unwrap_or(addr)
        .trim_end_matches('/')
        .to_string()
}

impl State {
    pub(crate) fn new(bootstrap: &[String]) -> Self {
        Self {
            bootstrap: bootstrap
                .iter()
                .map(|b| normalize_addr(b))
                .filter(|b| !b.is_empty())
                .collect(),
            ..Self::default()
        }
    }

    /// Every address worth trying: known nodes first, then bootstrap ones, no repeats.
    pub(crate) fn all_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self.nodes.values().cloned().collect();
        for b in &self.bootstrap {
            if !addrs.contains(b) {
                addrs.push(b.clone());
            }
        }
        addrs
    }

    fn any_node(&self) -> Option<String> {
        let addrs = self.all_addrs();
        (!addrs.is_empty()).then(|| addrs[self.rotation % addrs.len()].clone())
    }

    /// The address to send a request for `route` to, if the cache can tell.
    /// `None` for a partition of a topic the cache does not know.
    pub(crate) fn pick(&self, route: &Route) -> Option<String> {
        match route {
            Route::AnyNode => self.any_node(),
            Route::MetadataLeader => self.metadata_leader.clone().or_else(|| self.any_node()),
            Route::Coordinator { group } => self
                .coordinators
                .get(group)
                .cloned()
                .or_else(|| self.any_node()),
            Route::Partition { topic, partition } => {
                let p = self
                    .topics
                    .get(topic)?
                    .partitions
                    .get(*partition as usize)?;
                if let Some(addr) = &p.leader_addr {
                    return Some(addr.clone());
                }
                if let Some(addr) = p.leader_id.and_then(|id| self.nodes.get(&id)) {
                    return Some(addr.clone());
                }
                let known: Vec<&String> = p
                    .replicas
                    .iter()
                    .filter_map(|id| self.nodes.get(id))
                    .collect();
                if known.is_empty() {
                    return self.any_node();
                }
                Some(known[p.next_replica % known.len()].clone())
            }
        }
    }

    fn partition_mut(&mut self, route: &Route) -> Option<&mut PartitionMeta> {
        match route {
            Route::Partition { topic, partition } => self
                .topics
                .get_mut(topic)?
                .partitions
                .get_mut(*partition as usize),
            _ => None,
        }
    }

    /// Learns from a NOT_LEADER answer of the node at `from`: follow the hint, or
    /// forget the guess and move on to the replica after `from`. Returns whether there
    /// was a hint to follow.
    pub(crate) fn apply_not_leader(
        &mut self,
        route: &Route,
        from: &str,
        leader_id: Option<u64>,
        leader_addr: Option<&str>,
    ) -> bool {
        let addr = leader_addr
            .map(normalize_addr)
            .or_else(|| leader_id.and_then(|id| self.nodes.get(&id).cloned()));
        if let (Some(id), Some(addr)) = (leader_id, &addr) {
            self.nodes.entry(id).or_insert_with(|| addr.clone());
        }
        match route {
            Route::MetadataLeader => {
                if addr.is_none() {
                    self.rotation += 1;
                }
                self.metadata_leader = addr.clone();
            }
            Route::AnyNode => {}
            Route::Coordinator { group } => match &addr {
                Some(addr) => {
                    self.coordinators.insert(group.clone(), addr.clone());
                }
                None => {
                    self.coordinators.remove(group);
                    self.rotation += 1;
                }
            },
            Route::Partition { .. } => match &addr {
                Some(addr) => {
                    if let Some(p) = self.partition_mut(route) {
                        p.leader_id = leader_id;
                        p.leader_addr = Some(addr.clone());
                    }
                }
                None => self.skip_replica(route, from),
            },
        }
        addr.is_some()
    }

    /// Forgets the partition's leader guess and points the replica rotation past `from`.
    fn skip_replica(&mut self, route: &Route, from: &str) {
        let nodes = &self.nodes;
        let Route::Partition { topic, partition } = route else {
            return;
        };
        let Some(p) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(*partition as usize))
        else {
            return;
        };
        let known: Vec<&String> = p.replicas.iter().filter_map(|id| nodes.get(id)).collect();
        p.next_replica = match known.iter().position(|a| a.as_str() == from) {
            Some(i) => i + 1,
            None => p.next_replica + 1,
        };
        p.leader_id = None;
        p.leader_addr = None;
    }

    /// Learns from a failed call to `addr` (connection refused, timeout, shutting down):
    /// stop routing there for this route and move on.
    pub(crate) fn apply_unreachable(&mut self, route: &Route, addr: &str) {
        self.rotation += 1;
        if self.metadata_leader.as_deref() == Some(addr) {
            self.metadata_leader = None;
        }
        if let Route::Coordinator { group } = route {
            if self.coordinators.get(group).map(String::as_str) == Some(addr) {
                self.coordinators.remove(group);
            }
        }
        let guessed = self
            .partition_mut(route)
            .map(|p| (p.leader_addr.clone(), p.leader_id));
        if let Some((leader_addr, leader_id)) = guessed {
            let guessed =
                leader_addr.or_else(|| leader_id.and_then(|id| self.nodes.get(&id).cloned()));
            if guessed.is_none() || guessed.as_deref() == Some(addr) {
                self.skip_replica(route, addr);
            }
        }
    }

    /// Replaces nodes and topics with a node's answer, keeping leader guesses the answer
    /// does not contradict (an answering node only knows leaders of its own replicas).
    pub(crate) fn merge(
        &mut self,
        cluster: pb::DescribeClusterResponse,
        topics: Vec<pb::TopicDescription>,
    ) {
        // A node that has not registered its client address yet is listed without one:
        // it cannot be reached until it has.
        self.nodes = cluster
            .nodes
            .into_iter()
            .filter(|n| !n.addr.trim().is_empty())
            .map(|n| (n.node_id, normalize_addr(&n.addr)))
            .collect();
        if let Some(addr) = cluster
            .metadata_leader_id
            .and_then(|id| self.nodes.get(&id))
        {
            self.metadata_leader = Some(addr.clone());
        }
        let mut fresh = HashMap::with_capacity(topics.len());
        for t in topics {
            let old = self.topics.remove(&t.name);
            fresh.insert(t.name.clone(), merge_topic(&t, old.as_ref()));
        }
        self.topics = fresh;
    }

    /// Adds or replaces one topic (after CreateTopic / DescribeTopic).
    pub(crate) fn upsert_topic(&mut self, t: &pb::TopicDescription) {
        let old = self.topics.remove(&t.name);
        self.topics
            .insert(t.name.clone(), merge_topic(t, old.as_ref()));
    }
}

fn merge_topic(t: &pb::TopicDescription, old: Option<&TopicMeta>) -> TopicMeta {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let old = old.and_then(|o| o.partitions.get(p.partition as usize));
            let keep = old.filter(|o| o.replicas == p.replicas && p.leader_id.is_none());
            PartitionMeta {
                replicas: p.replicas.clone(),
                leader_id: p.leader_id.or(keep.and_then(|o| o.leader_id)),
                leader_addr: p
                    .leader_addr
                    .as_deref()
                    .map(normalize_addr)
                    .or_else(|| keep.and_then(|o| o.leader_addr.clone())),
                next_replica: old.map_or(0, |o| o.next_replica),
            }
        })
        .collect::<Vec<_>>();
    TopicMeta {
        partitions,
        max_event_bytes: t.config.as_ref().map_or(0, |c| c.max_event_bytes),
    }
}

/// The shared cache plus the channels and the refresh machinery.
pub(crate) struct Metadata {
    config: ClientConfig,
    state: Mutex<State>,
    channels: Mutex<HashMap<String, Channel>>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl Metadata {
    pub(crate) fn new(config: ClientConfig) -> Self {
        Self {
            state: Mutex::new(State::new(&config.bootstrap)),
            config,
            channels: Mutex::new(HashMap::new()),
            refresh_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs `f` on the locked state (never across an await).
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut state)
    }

    /// The reused channel to `addr` (`host:port`), created lazily.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClientError::InvalidArgument(format!("bad node address {addr:?}: {e}")))?
            .connect_timeout(self.config.connect_timeout())
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Partition count and event size limit of a topic, if cached.
    pub(crate) fn topic_shape(&self, topic: &str) -> Option<(u32, u32)> {
        self.with_state(|s| {
            s.topics
                .get(topic)
                .map(|t| (t.partitions.len() as u32, t.max_event_bytes))
        })
    }

    /// Partition count and event size limit of a topic, refreshing once if unknown.
    pub(crate) async fn topic_shape_or_refresh(
        &self,
        topic: &str,
    ) -> Result<(u32, u32), ClientError> {
        if let Some(shape) = self.topic_shape(topic) {
            return Ok(shape);
        }
        self.refresh_until_known(topic).await?;
        self.topic_shape(topic).ok_or_else(|| {
            ClientError::server(
                ErrorCode::UnknownTopic,
                format!("topic {topic:?} does not exist"),
            )
        })
    }

    /// The address for `route`; refreshes once when the topic is unknown.
    pub(crate) async fn pick(&self, route: &Route) -> Result<String, ClientError> {
        if let Some(addr) = self.with_state(|s| s.pick(route)) {
            return Ok(addr);
        }
        if let Route::Partition { topic, partition } = route {
            let (count, _) = self.topic_shape_or_refresh(topic).await?;
            if *partition >= count {
                let message = format!(
                    "topic {topic:?} has {count} partitions; there is no partition {partition}"
                );
                return Err(ClientError::server(ErrorCode::UnknownPartition, message));
            }
        }
        self.with_state(|s| s.pick(route)).ok_or_else(|| {
            ClientError::InvalidArgument("no node address known (empty bootstrap list?)".into())
        })
    }

    /// Learns from a failed attempt at `addr` and decides how to go on.
    pub(crate) async fn observe(
        &self,
        route: &Route,
        addr: &str,
        error: &ClientError,
    ) -> Disposition {
        match error {
            ClientError::NotLeader {
                leader_id,
                leader_addr,
                ..
            }
            | ClientError::NotCoordinator {
                coordinator_id: leader_id,
                coordinator_addr: leader_addr,
                ..
            } => {
                if self.with_state(|s| {
                    s.apply_not_leader(route, addr, *leader_id, leader_addr.as_deref())
                }) {
                    return Disposition::RetryNow;
                }
                let _ = self.refresh().await;
                Disposition::Retry
            }
            ClientError::Server {
                code: ErrorCode::UnknownTopic,
                ..
            } => self.observe_unknown_topic(route).await,
            // The right node, busy: try it again after its hint, not another one.
            ClientError::Server {
                code: ErrorCode::ResourceExhausted,
                ..
            } => Disposition::Retry,
            e if e.is_retryable() => {
                self.with_state(|s| s.apply_unreachable(route, addr));
                if matches!(e, ClientError::Transport { .. }) {
                    let _ = self.refresh().await;
                }
                Disposition::Retry
            }
            _ => Disposition::Fatal,
        }
    }

    /// UNKNOWN_TOPIC from a partition's node: that node may lag behind a new topic.
    /// Retry if the cache knew the topic before or after a refresh; a deleted topic
    /// then fails at the next routing, when a second refresh cannot find it either.
    async fn observe_unknown_topic(&self, route: &Route) -> Disposition {
        let Route::Partition { topic, .. } = route else {
            return Disposition::Fatal;
        };
        let known_before = self.topic_shape(topic).is_some();
        let known_now = self.refresh_until_known(topic).await.unwrap_or(false);
        if known_before || known_now {
            Disposition::Retry
        } else {
            Disposition::Fatal
        }
    }

    /// Fetches nodes and topics from the first node that answers (one try per node).
    /// Concurrent callers share one fetch: a fetch that started after the caller asked
    /// answers for it. Fetches are at least the minimum interval apart.
    pub(crate) async fn refresh(&self) -> Result<(), ClientError> {
        let asked = Instant::now();
        let _serialized = self.refresh_lock.lock().await;
        let last = self.with_state(|s| s.last_attempt.clone());
        if let Some((at, result)) = last {
            if at >= asked {
                return result;
            }
            tokio::time::sleep_until(at + self.config.refresh_min_interval()).await;
        }
        let started = Instant::now();
        let result = self.fetch_any().await;
        self.with_state(|s| s.last_attempt = Some((started, result.clone())));
        result
    }

    /// Refreshes, then asks node after node until one lists `topic`: a node that trails
    /// the metadata leader may not list a topic created a moment ago, and one such node
    /// must not make the client conclude the topic does not exist. Ok(false) = no node
    /// that answered knows it.
    async fn refresh_until_known(&self, topic: &str) -> Result<bool, ClientError> {
        self.refresh().await?;
        if self.topic_shape(topic).is_some() {
            return Ok(true);
        }
        let addrs = self.with_state(|s| s.all_addrs());
        for addr in addrs {
            let Ok((cluster, topics)) = self.fetch_from(&addr).await else {
                continue;
            };
            if topics.iter().any(|t| t.name == topic) {
                self.with_state(|s| s.merge(cluster, topics));
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn fetch_any(&self) -> Result<(), ClientError> {
        let addrs = self.with_state(|s| {
            let mut addrs = s.all_addrs();
            let len = addrs.len().max(1);
            addrs.rotate_left(s.rotation % len);
            addrs
        });
        let mut last_error = ClientError::InvalidArgument("no node address known".into());
        for addr in addrs {
            match self.fetch_from(&addr).await {
                Ok((cluster, topics)) => {
                    self.with_state(|s| s.merge(cluster, topics));
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "metadata refresh failed");
                    last_error = e;
                }
            }
        }
        self.with_state(|s| s.rotation += 1);
        Err(last_error)
    }

    async fn fetch_from(
        &self,
        addr: &str,
    ) -> Result<(pb::DescribeClusterResponse, Vec<pb::TopicDescription>), ClientError> {
        let mut admin =
            AdminClient::new(self.channel(addr)?).max_decoding_message_size(MAX_DECODING_BYTES);
        // Descriptions are local reads on the node: a slow answer means a sick node.
        let timeout = self.config.request_timeout().min(REFRESH_TIMEOUT);
        let status = |s| ClientError::from_status(addr, s);
        let timed_out = |_| ClientError::Transport {
            addr: addr.to_string(),
            code: tonic::Code::DeadlineExceeded,
            message: "metadata refresh timed out".into(),
        };
        let cluster = tokio::time::timeout(
            timeout,
            admin.describe_cluster(pb::DescribeClusterRequest {}),
        )
        .await
        .map_err(timed_out)?
        .map_err(status)?
        .into_inner();
        ClientError::check(cluster.error.clone())?;
        let topics = tokio::time::timeout(timeout, admin.list_topics(pb::ListTopicsRequest {}))
            .await
            .map_err(timed_out)?
            .map_err(status)?
            .into_inner();
        ClientError::check(topics.error)?;
        Ok((cluster, topics.topics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(replicas: &[u64], leader: Option<u64>) -> pb::PartitionDescription {
        pb::PartitionDescription {
            partition: 0,
            group_id: 7,
            replicas: replicas.to_vec(),
            leader_id: leader,
            ..Default::default()
        }
    }

    fn cluster(n: u64) -> pb::DescribeClusterResponse {
        pb::DescribeClusterResponse {
            nodes: (1..=n)
                .map(|id| pb::NodeDescription {
                    node_id: id,
                    addr: format!("n{id}:7101"),
                    ..Default::default()
                })
                .collect(),
            metadata_leader_id: Some(1),
            answered_by: 1,
            ..Default::default()
        }
    }

    fn topic(name: &str, partitions: Vec<pb::PartitionDescription>) -> pb::TopicDescription {
        pb::TopicDescription {
            name: name.into(),
            config: Some(pb::TopicConfig {
                partitions: partitions.len() as u32,
                replication_factor: 3,
                max_event_bytes: 100,
            }),
            partitions,
        }
    }

    fn route() -> Route {
        Route::Partition {
            topic: "t".into(),
            partition: 0,
        }
    }

    fn state_with_topic(leader: Option<u64>) -> State {
        let mut s = State::new(&["http://boot:1".to_string()]);
        s.merge(cluster(3), vec![topic("t", vec![part(&[1, 2, 3], leader)])]);
        s
    }

    #[test]
    fn unregistered_nodes_are_not_routed_to_and_leader_addresses_are_followed() {
        // Goal: a node listed without a client address (not registered yet) is never
        // picked; a partition's leader address from the answer is used as is.
        let mut answer = cluster(3);
        answer.nodes[1].addr.clear();
        let mut p = part(&[1, 2, 3], Some(2));
        let mut s = State::new(&["boot:1".to_string()]);
        s.merge(answer.clone(), vec![topic("t", vec![p.clone()])]);
        assert!(!s.nodes.contains_key(&2));
        assert!(s.all_addrs().iter().all(|a| !a.is_empty()));
        assert_ne!(s.pick(&route()).as_deref(), Some(""));
        p.leader_addr = Some("http://n2:7101".into());
        s.merge(answer, vec![topic("t", vec![p])]);
        assert_eq!(s.pick(&route()).as_deref(), Some("n2:7101"));
    }

    #[test]
    fn bootstrap_addresses_lose_their_scheme() {
        let s = State::new(&[
            "http://a:1/".to_string(),
            "b:2".to_string(),
            " ".to_string(),
        ]);
        assert_eq!(s.bootstrap, vec!["a:1", "b:2"]);
        assert_eq!(s.pick(&Route::AnyNode).as_deref(), Some("a:1"));
    }

    #[test]
    fn partition_routes_to_the_known_leader() {
        let s = state_with_topic(Some(2));
        assert_eq!(s.pick(&route()).as_deref(), Some("n2:7101"));
        assert_eq!(s.pick(&Route::MetadataLeader).as_deref(), Some("n1:7101"));
        assert_eq!(
            s.pick(&Route::Partition {
                topic: "nope".into(),
                partition: 0
            }),
            None
        );
    }

    #[test]
    fn not_leader_hint_moves_the_leader_guess() {
        // Goal: a hint with an address is followed even for a node the cache lacks.
        let mut s = state_with_topic(Some(1));
        assert!(s.apply_not_leader(&route(), "n1:7101", Some(9), Some("http://n9:7101")));
        assert_eq!(s.pick(&route()).as_deref(), Some("n9:7101"));
        assert_eq!(s.nodes.get(&9).map(String::as_str), Some("n9:7101"));
        // A hint with only an id resolves through the node table.
        assert!(s.apply_not_leader(&route(), "n9:7101", Some(3), None));
        assert_eq!(s.pick(&route()).as_deref(), Some("n3:7101"));
    }

    #[test]
    fn not_leader_without_hint_rotates_through_replicas() {
        let mut s = state_with_topic(None);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let at = s.pick(&route()).unwrap();
            assert!(!s.apply_not_leader(&route(), &at, None, None));
            seen.push(at);
        }
        seen.sort();
        assert_eq!(seen, vec!["n1:7101", "n2:7101", "n3:7101"]);
    }

    #[test]
    fn unreachable_leader_is_forgotten() {
        let mut s = state_with_topic(Some(2));
        s.apply_unreachable(&route(), "n2:7101");
        assert_ne!(s.pick(&route()).as_deref(), Some("n2:7101"));
        // A failure at some other node leaves a fresh guess alone.
        s.apply_not_leader(&route(), "n2:7101", Some(3), Some("n3:7101"));
        s.apply_unreachable(&route(), "n1:7101");
        assert_eq!(s.pick(&route()).as_deref(), Some("n3:7101"));
    }

    #[test]
    fn refresh_keeps_a_leader_guess_the_answer_does_not_contradict() {
        let mut s = state_with_topic(None);
        s.apply_not_leader(&route(), "n1:7101", Some(3), Some("n3:7101"));
        s.merge(cluster(3), vec![topic("t", vec![part(&[1, 2, 3], None)])]);
        assert_eq!(s.pick(&route()).as_deref(), Some("n3:7101"));
        // An answer naming a leader wins.
        s.merge(
            cluster(3),
            vec![topic("t", vec![part(&[1, 2, 3], Some(1))])],
        );
        assert_eq!(s.pick(&route()).as_deref(), Some("n1:7101"));
        // A deleted topic disappears.
        s.merge(cluster(3), vec![]);
        assert_eq!(s.pick(&route()), None);
    }

    #[test]
    fn metadata_leader_hint_and_rotation() {
        let mut s = state_with_topic(None);
        assert!(s.apply_not_leader(&Route::MetadataLeader, "n1:7101", Some(2), Some("n2:7101")));
        assert_eq!(s.pick(&Route::MetadataLeader).as_deref(), Some("n2:7101"));
        s.apply_unreachable(&Route::MetadataLeader, "n2:7101");
        assert!(s.metadata_leader.is_none());
        assert!(s.pick(&Route::MetadataLeader).is_some());
    }

    #[test]
    fn a_groups_coordinator_is_learned_from_hints_and_forgotten_when_unreachable() {
        // Goal: group requests go to the node a NOT_COORDINATOR hint named, and back to
        // any node once that one is unreachable or answers without a hint.
        let mut state = State::default();
        state.merge(cluster(3), Vec::new());
        let route = Route::Coordinator {
            group: "billing".into(),
        };
        assert!(state.pick(&route).is_some(), "any node before a hint");
        assert!(state.apply_not_leader(&route, "n1:7101", Some(2), None));
        assert_eq!(state.pick(&route).as_deref(), Some("n2:7101"));
        state.apply_unreachable(&route, "n2:7101");
        assert!(!state.coordinators.contains_key("billing"));
        assert!(state.apply_not_leader(&route, "n1:7101", None, Some("n3:7101")));
        assert_eq!(state.pick(&route).as_deref(), Some("n3:7101"));
        assert!(!state.apply_not_leader(&route, "n3:7101", None, None));
        assert!(!state.coordinators.contains_key("billing"));
    }
}

//! Start-up and shut-down of a node: opens storage, starts the metadata group, the
//! partition reconciler, the registration of its client address and the two gRPC servers (clients,
//! peers); on shutdown stops accepting, lets in-flight writes finish, stops every Raft
//! group and syncs storage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use tokio::sync::watch;

use crate::api::{ApiContext, ApiLimits};
use crate::config::Config;
use crate::keys::{self, Cf};
use crate::metadata::{registration, MetadataGroup};
use crate::partition::budget::MemoryBudget;
use crate::partition::group::coordinator::{Coordinator, GroupsSettings};
use crate::partition::group::expiry;
use crate::partition::produce::BatchLimits;
use crate::partition::{reconciler, Registry, ReplicaContext};
use crate::raft::group::GroupContext;
use crate::raft::network::{PeerChannels, PeerIdentity};
use crate::raft::transport::{LeaderRefusal, PeerServices, TransportService};
use crate::raft::{openraft_config, peer_message_bytes_max, Raft, RaftTiming};
use crate::server::{self, ServerHandle};
#[cfg(feature = "rocksdb")]
use crate::storage::rocks::RocksTuning;
#[cfg(feature = "rocksdb")]
use crate::storage::RocksEngine;
use crate::storage::{GroupCommit, StorageEngine, WriteBatch};
use crate::types::{NodeId, Offset, PartitionId};
use crate::NodeError;

/// A running node.
pub struct Node {
    config: Config,
    engine: Arc<dyn StorageEngine>,
    commit: GroupCommit,
    metadata: Arc<MetadataGroup>,
    registry: Arc<Registry>,
    shutdown_tx: watch::Sender<bool>,
    client_server: ServerHandle,
    peer_server: ServerHandle,
}

/// What the peer listener serves: this node's Raft groups; on the metadata leader, the
/// registration of client addresses, the metadata read index and the creation of
/// `__groups`; on partition leaders, their high watermarks for group coordinators.
struct PeerServed {
    metadata: Arc<MetadataGroup>,
    registry: Arc<Registry>,
    coordinator: Arc<Coordinator>,
    request_timeout: Duration,
}

#[tonic::async_trait]
impl PeerServices for PeerServed {
    fn raft(&self, group: PartitionId) -> Option<Raft> {
        if group == PartitionId::METADATA {
            Some(self.metadata.raft.clone())
        } else {
            self.registry.get(group).map(|r| r.raft().clone())
        }
    }

    async fn register_node(
        &self,
        node_id: NodeId,
        client_addr: String,
    ) -> Result<(), LeaderRefusal> {
        registration::propose(&self.metadata, node_id, client_addr, self.request_timeout).await
    }

    async fn metadata_read_index(&self) -> Result<u64, LeaderRefusal> {
        Ok(self.metadata.read_index_here().await?)
    }

    async fn ensure_groups_topic(&self) -> Result<(), LeaderRefusal> {
        self.coordinator.create_groups_topic_here().await
    }

    async fn partition_watermark(
        &self,
        group: PartitionId,
        offset: Offset,
    ) -> Result<(Offset, Offset), LeaderRefusal> {
        self.coordinator.local_watermark(group, offset).await
    }
}

impl Node {
    /// Opens the node's RocksDB under `data_dir` and starts the node.
    #[cfg(feature = "rocksdb")]
    pub async fn start(config: Config) -> Result<Node, NodeError> {
        config.validate()?;
        let tuning = RocksTuning {
            block_cache_bytes: config.storage.block_cache_bytes as usize,
            write_buffer_bytes: config.storage.write_buffer_bytes as usize,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            NodeError::Storage(crate::storage::StorageError::Open {
                path: config.data_dir.display().to_string(),
                message: e.to_string(),
            })
        })?;
        let engine = RocksEngine::open(&config.data_dir.join("db"), tuning).await?;
        Self::start_with_engine(config, Arc::new(engine)).await
    }

    /// Starts the node on an already opened engine (the simulation wraps the real
    /// engine in its fault layer and hands it in here).
    pub async fn start_with_engine(
        config: Config,
        engine: Arc<dyn StorageEngine>,
    ) -> Result<Node, NodeError> {
        config.validate()?;
        claim_data_dir(engine.as_ref(), &config)?;
        // What the previous process wrote may still be only in the page cache: a process
        // crash keeps it, a power failure would not. Make it durable before any of it is
        // trusted (a vote read back, then granted again, must survive a power failure).
        // A failed fsync is a crash here too (see `rt::crash`).
        if let Err(e) = engine.sync() {
            crate::rt::crash(&format!("fsync failed at start-up: {e}"));
        }
        let client_listener = server::bind(&config.listen)?;
        let peer_listener = server::bind(&config.peer_listen)?;
        let commit = GroupCommit::start(
            engine.clone(),
            config.storage.group_commit_max_waiters as usize,
        );
        let ctx = replica_context(&config, engine.clone(), commit.clone());
        let peers = ctx.group.peers.clone();
        let initial: BTreeMap<NodeId, BasicNode> = config
            .initial_cluster
            .iter()
            .map(|peer| (peer.id, BasicNode::new(&peer.addr)))
            .collect();
        let metadata = Arc::new(MetadataGroup::start(&ctx.group, initial).await?);
        let registry = Arc::new(Registry::new(ctx));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let coordinator = Arc::new(Coordinator::new(
            config.node_id,
            metadata.clone(),
            registry.clone(),
            peers.clone(),
            groups_settings(&config),
        ));
        crate::rt::spawn(expiry::run(coordinator.clone(), shutdown_rx.clone()));
        crate::rt::spawn(reconciler::run(
            config.node_id,
            metadata.subscribe(),
            registry.clone(),
            shutdown_rx.clone(),
        ));
        crate::rt::spawn(registration::run(
            config.node_id,
            config.advertise_addr().to_owned(),
            metadata.clone(),
            peers.clone(),
            shutdown_rx.clone(),
        ));
        let api = ApiContext {
            node_id: config.node_id,
            cluster_id: Arc::from(config.cluster_id.as_str()),
            metadata: metadata.clone(),
            peers: peers.clone(),
            registry: registry.clone(),
            coordinator: coordinator.clone(),
            limits: api_limits(&config),
            subscribe_budget: MemoryBudget::new(
                "memory.subscribe_bytes_max",
                config.memory.subscribe_bytes_max as usize,
            ),
            shutdown: shutdown_rx.clone(),
        };
        let served = Arc::new(PeerServed {
            metadata: metadata.clone(),
            registry: registry.clone(),
            coordinator,
            request_timeout: Duration::from_millis(config.produce.request_timeout_ms),
        });
        let transport = TransportService::new(served, peers.identity().clone());
        let client_server =
            server::serve_clients(client_listener, api, &config.server, shutdown_rx.clone());
        let peer_server = server::serve_peers(
            peer_listener,
            transport,
            peers.message_bytes_max(),
            &config.server,
            shutdown_rx,
        );
        tracing::info!(
            node_id = config.node_id,
            listen = %config.listen,
            peer_listen = %config.peer_listen,
            "node started"
        );
        Ok(Node {
            config,
            engine,
            commit,
            metadata,
            registry,
            shutdown_tx,
            client_server,
            peer_server,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    pub fn metadata(&self) -> &Arc<MetadataGroup> {
        &self.metadata
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Group-commit counters (syncs, waiters), for benchmarks and metrics.
    pub fn group_commit(&self) -> &GroupCommit {
        &self.commit
    }

    /// Stops accepting requests, lets in-flight writes finish (up to the grace period),
    /// stops every Raft group and makes everything written durable.
    pub async fn shutdown(self) {
        tracing::info!(node_id = self.config.node_id, "shutting down");
        let _ = self.shutdown_tx.send(true);
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        // Client requests first (they may still need the peers to commit), then peers.
        server::stop(self.client_server, "client", grace).await;
        server::stop(self.peer_server, "peer", grace).await;
        self.registry.shutdown_all().await;
        if let Err(e) = self.metadata.raft.shutdown().await {
            tracing::warn!("metadata raft shutdown: {e}");
        }
        if let Err(e) = self.commit.sync().await {
            tracing::error!("final sync failed: {e}");
        }
        drop(self.engine);
        tracing::info!(node_id = self.config.node_id, "stopped");
    }
}

fn replica_context(
    config: &Config,
    engine: Arc<dyn StorageEngine>,
    commit: GroupCommit,
) -> ReplicaContext {
    let timing = RaftTiming {
        heartbeat_interval_ms: config.raft.heartbeat_interval_ms,
        election_timeout_min_ms: config.raft.election_timeout_min_ms,
        election_timeout_max_ms: config.raft.election_timeout_max_ms,
        max_payload_entries: config.raft.max_payload_entries,
    };
    let group = GroupContext {
        node_id: config.node_id,
        engine,
        commit,
        peers: Arc::new(PeerChannels::new(
            PeerIdentity {
                cluster_id: config.cluster_id.clone(),
                node_id: config.node_id,
            },
            peer_message_bytes_max(config.raft.append_entries_bytes_max),
        )),
        raft_config: Arc::new(openraft_config("evlog", timing)),
        append_entries_bytes_max: config.raft.append_entries_bytes_max as usize,
    };
    ReplicaContext {
        group,
        limits: BatchLimits {
            batch_bytes_max: config.produce.batch_bytes_max as usize,
            batch_events_max: config.produce.batch_events_max as usize,
            inflight_entries_max: config.produce.inflight_entries_max as usize,
            queue_requests_max: config.produce.queue_requests_max as usize,
            queue_bytes_max: config.produce.queue_bytes_max as usize,
            admission_wait: Duration::from_millis(config.produce.admission_wait_ms),
            queue_delay_target: Duration::from_millis(config.produce.queue_delay_target_ms),
        },
        produce_budget: MemoryBudget::new(
            "memory.produce_bytes_max",
            config.memory.produce_bytes_max as usize,
        ),
    }
}

fn groups_settings(config: &Config) -> GroupsSettings {
    let ms = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
    let groups = &config.groups;
    GroupsSettings {
        partitions: ms(groups.partitions),
        session_timeout_ms: ms(groups.session_timeout_ms),
        session_timeout_ms_min: ms(groups.session_timeout_ms_min),
        session_timeout_ms_max: ms(groups.session_timeout_ms_max),
        heartbeat_interval_ms: ms(groups.heartbeat_interval_ms),
        offsets_retention_ms: groups.offsets_retention_ms,
        request_timeout: Duration::from_millis(config.produce.request_timeout_ms),
        max_event_bytes: ms(config.produce.default_max_event_bytes),
    }
}

fn api_limits(config: &Config) -> ApiLimits {
    ApiLimits {
        request_bytes_max: config.produce.request_bytes_max as usize,
        request_events_max: config.produce.request_events_max as usize,
        headers_per_event_max: config.produce.headers_per_event_max as usize,
        default_max_event_bytes: u32::try_from(config.produce.default_max_event_bytes)
            .unwrap_or(u32::MAX),
        request_timeout: Duration::from_millis(config.produce.request_timeout_ms),
        response_bytes_max: config.read.response_bytes_max as usize,
        subscribe_buffer_bytes_max: config.read.subscribe_buffer_bytes_max as usize,
        subscribe_heartbeat: Duration::from_millis(config.read.subscribe_heartbeat_ms),
        slow_consumer_timeout: Duration::from_millis(config.read.slow_consumer_timeout_ms),
    }
}

/// A data dir belongs to one node of one cluster forever: starting node 2 on node 1's
/// data would silently corrupt both Raft groups' view of who voted for whom, and a node of
/// another cluster would join its groups with a log they never had. The first start
/// records both; every later start checks them.
fn claim_data_dir(engine: &dyn StorageEngine, config: &Config) -> Result<(), NodeError> {
    let data_dir = || config.data_dir.display().to_string();
    let mut claim = WriteBatch::default();
    let fresh = engine.get(Cf::Meta, keys::META_NODE_ID)?.is_none();
    match engine.get(Cf::Meta, keys::META_STORAGE_FORMAT)? {
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| crate::storage::StorageError::Corrupt {
                    cf: Cf::Meta.name(),
                    key: keys::META_STORAGE_FORMAT.to_vec(),
                    reason: format!("storage format record of {} bytes, expected 4", bytes.len()),
                })?;
            if found != keys::STORAGE_FORMAT {
                return Err(NodeError::StorageFormat {
                    data_dir: data_dir(),
                    found,
                    expected: keys::STORAGE_FORMAT,
                });
            }
        }
        // A claimed data dir without the record was written in format 1.
        None if !fresh => {
            return Err(NodeError::StorageFormat {
                data_dir: data_dir(),
                found: 1,
                expected: keys::STORAGE_FORMAT,
            })
        }
        None => claim.put(
            Cf::Meta,
            keys::META_STORAGE_FORMAT.to_vec(),
            keys::STORAGE_FORMAT.to_be_bytes().to_vec(),
        ),
    }
    match engine.get(Cf::Meta, keys::META_NODE_ID)? {
        Some(bytes) => {
            // Stored data, not an in-process invariant: a bad record is an error, not a panic.
            let found = <[u8; 8]>::try_from(bytes.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| crate::storage::StorageError::Corrupt {
                    cf: Cf::Meta.name(),
                    key: keys::META_NODE_ID.to_vec(),
                    reason: format!("node id record of {} bytes, expected 8", bytes.len()),
                })?;
            if found != config.node_id {
                return Err(NodeError::WrongDataDir {
                    data_dir: data_dir(),
                    found,
                    expected: config.node_id,
                });
            }
        }
        None => claim.put(
            Cf::Meta,
            keys::META_NODE_ID.to_vec(),
            config.node_id.to_be_bytes().to_vec(),
        ),
    }
    match engine.get(Cf::Meta, keys::META_CLUSTER_ID)? {
        Some(bytes) if bytes != config.cluster_id.as_bytes() => {
            return Err(NodeError::WrongCluster {
                data_dir: data_dir(),
                found: String::from_utf8_lossy(&bytes).into_owned(),
                expected: config.cluster_id.clone(),
            })
        }
        Some(_) => {}
        None => claim.put(
            Cf::Meta,
            keys::META_CLUSTER_ID.to_vec(),
            config.cluster_id.as_bytes().to_vec(),
        ),
    }
    if !claim.is_empty() {
        engine.write(claim)?;
    }
    Ok(())
}

#[cfg(all(test, feature = "rocksdb"))]
mod tests {
    //! Goal: a data dir is started only by the build whose storage format wrote it; a
    //! fresh one is stamped with this build's format. Method: claim fresh, current,
    //! format-1 (claimed, no record) and future-format data dirs of one RocksDB.
    use super::*;

    fn open_engine() -> (tempfile::TempDir, RocksEngine) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let engine = runtime
            .block_on(RocksEngine::open(dir.path(), RocksTuning::default()))
            .unwrap();
        (dir, engine)
    }

    fn put(engine: &RocksEngine, key: &[u8], value: Vec<u8>) {
        let mut batch = WriteBatch::default();
        batch.put(Cf::Meta, key.to_vec(), value);
        engine.write(batch).unwrap();
    }

    #[test]
    fn a_data_dir_of_another_storage_format_is_refused_and_a_fresh_one_is_stamped() {
        let config = Config::default();
        let (_dir, engine) = open_engine();
        claim_data_dir(&engine, &config).unwrap();
        let stamped = engine.get(Cf::Meta, keys::META_STORAGE_FORMAT).unwrap();
        assert_eq!(stamped, Some(keys::STORAGE_FORMAT.to_be_bytes().to_vec()));
        claim_data_dir(&engine, &config).expect("its own data dir, again");

        put(
            &engine,
            keys::META_STORAGE_FORMAT,
            9u32.to_be_bytes().to_vec(),
        );
        let refused = claim_data_dir(&engine, &config).unwrap_err();
        assert!(
            matches!(refused, NodeError::StorageFormat { found: 9, .. }),
            "{refused}"
        );

        let (_dir, old) = open_engine();
        put(
            &old,
            keys::META_NODE_ID,
            config.node_id.to_be_bytes().to_vec(),
        );
        let refused = claim_data_dir(&old, &config).unwrap_err();
        assert!(
            matches!(refused, NodeError::StorageFormat { found: 1, .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("refusing to start"));
    }
}

//! The cluster harness: starts N simulated nodes from the node binary's `Config`, each on
//! its own simulated disk ([`SimDisk`] over a real RocksDB), plus client nodes; and the
//! levers the nemesis pulls: kill/restart, pause/resume, power failure, network clogs.
//!
//! Node `i` gets IP `10.0.0.i`; client nodes `10.0.1.x`. Data dirs live under `/dev/shm`
//! (or the temp dir), in a directory derived from the seed, wiped at start (a determinism re-run of a seed starts from the
//! same empty disks). A node's disk outlives its process: a restarted node gets the same
//! [`SimDisk`], as a rebooted machine finds its disk.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog_node::config::{Config, Peer};
use evlog_node::metadata::state::MetadataView;
use evlog_node::metadata::MetadataGroup;
use evlog_node::partition::Registry;
use evlog_node::raft::Raft;
use evlog_node::storage::rocks::RocksTuning;
use evlog_node::storage::{RocksEngine, StorageEngine};
use evlog_node::types::PartitionId;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};

use crate::disk::{PowerFailure, SimDisk};

/// The port every simulated node listens on for clients.
pub const PORT: u16 = 7101;
/// The port every simulated node listens on for its peers (Raft).
pub const PEER_PORT: u16 = 7201;

/// What the harness can see of a running node: its Raft groups.
#[derive(Clone)]
pub struct NodeView {
    pub metadata: Arc<MetadataGroup>,
    pub registry: Arc<Registry>,
}

impl NodeView {
    /// This node's running member of `group`, if it has one.
    pub fn raft(&self, group: PartitionId) -> Option<Raft> {
        if group == PartitionId::METADATA {
            let raft = &self.metadata.raft;
            return raft
                .metrics()
                .borrow()
                .running_state
                .is_ok()
                .then(|| raft.clone());
        }
        let replica = self.registry.get(group)?;
        replica.is_running().then(|| replica.raft().clone())
    }
}

pub struct SimCluster {
    pub handle: Handle,
    pub size: u64,
    pub addrs: Vec<String>,
    pub disks: Vec<Arc<SimDisk>>,
    nodes: Vec<NodeHandle>,
    views: Vec<Arc<Mutex<Option<NodeView>>>>,
    /// Start-up failures, by node (a node whose disk is damaged may refuse to start).
    pub start_failures: Arc<Mutex<Vec<(u64, String)>>>,
    data_root: PathBuf,
}

fn node_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
}

/// The config a simulated node runs with: the binary's defaults plus identity.
pub fn node_config(id: u64, peers: &[Peer], data_root: &std::path::Path) -> Config {
    let mut config = Config {
        node_id: id,
        listen: format!("{}:{PORT}", node_ip(id)),
        peer_listen: format!("{}:{PEER_PORT}", node_ip(id)),
        data_dir: data_root.join(format!("node-{id}")),
        initial_cluster: peers.to_vec(),
        ..Config::default()
    };
    config.shutdown_grace_ms = 2_000;
    config
}

impl SimCluster {
    /// Starts `n` nodes; they elect leaders on their own. With `restart_on_panic`, a node
    /// that panics restarts instead of failing the run.
    pub async fn start(n: u64, restart_on_panic: bool) -> SimCluster {
        Self::start_with(n, restart_on_panic, None).await
    }

    /// `start`, with node `late_start.0` starting `late_start.1` after the ones before it
    /// (a slow machine: the others may elect leaders and create topics without it).
    pub async fn start_with(
        n: u64,
        restart_on_panic: bool,
        late_start: Option<(u64, Duration)>,
    ) -> SimCluster {
        let handle = Handle::current();
        static RUNS: AtomicU64 = AtomicU64::new(0);
        // Memory-backed when the machine has it: nothing is fsynced in simulation anyway.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let data_root = base.join(format!(
            "evlog-sim-{}-{}-{}",
            std::process::id(),
            handle.seed(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&data_root);
        std::fs::create_dir_all(&data_root).expect("sim data root");
        let peers: Vec<Peer> = (1..=n)
            .map(|id| Peer {
                id,
                addr: format!("{}:{PEER_PORT}", node_ip(id)),
            })
            .collect();
        let start_failures = Arc::new(Mutex::new(Vec::new()));
        let mut cluster = SimCluster {
            handle,
            size: n,
            addrs: (1..=n)
                .map(|id| format!("{}:{PORT}", node_ip(id)))
                .collect(),
            disks: Vec::new(),
            nodes: Vec::new(),
            views: Vec::new(),
            start_failures,
            data_root,
        };
        for id in 1..=n {
            let config = node_config(id, &peers, &cluster.data_root);
            std::fs::create_dir_all(&config.data_dir).expect("node data dir");
            let tuning = RocksTuning {
                block_cache_bytes: 4 << 20,
                write_buffer_bytes: 4 << 20,
            };
            if let Some((_, delay)) = late_start.filter(|(late, _)| *late == id) {
                madsim::time::sleep(delay).await;
            }
            let engine = RocksEngine::open(&config.data_dir.join("db"), tuning)
                .await
                .expect("open the simulated node's RocksDB");
            let disk = SimDisk::new(engine);
            let view = Arc::new(Mutex::new(None));
            let node =
                cluster.create_node(id, config, disk.clone(), view.clone(), restart_on_panic);
            cluster.disks.push(disk);
            cluster.views.push(view);
            cluster.nodes.push(node);
        }
        cluster
    }

    fn create_node(
        &self,
        id: u64,
        config: Config,
        disk: Arc<SimDisk>,
        view: Arc<Mutex<Option<NodeView>>>,
        restart_on_panic: bool,
    ) -> NodeHandle {
        let failures = self.start_failures.clone();
        // A node that crashes on purpose (a failed fsync) is restarted, as its supervisor
        // would; any other panic fails the run, unless `restart_on_panic`.
        let mut builder = self
            .handle
            .create_node()
            .restart_on_panic_matching(evlog_node::rt::CRASH_MESSAGE);
        if restart_on_panic {
            builder = builder.restart_on_panic();
        }
        builder
            .name(format!("node-{id}"))
            .ip(node_ip(id))
            .init(move || {
                let config = config.clone();
                let disk = disk.clone();
                let engine: Arc<dyn StorageEngine> = disk.clone();
                let view = view.clone();
                let failures = failures.clone();
                async move {
                    // Nothing of the previous incarnation is visible any more.
                    *view.lock().expect("view") = None;
                    if let Some(lost) = disk.boot(&mut madsim::rand::thread_rng()) {
                        tracing::info!("node {id} boots after a failed fsync: {lost:?}");
                    }
                    match evlog_node::Node::start_with_engine(config, engine).await {
                        Ok(node) => {
                            *view.lock().expect("view") = Some(NodeView {
                                metadata: node.metadata().clone(),
                                registry: node.registry().clone(),
                            });
                            std::future::pending::<()>().await;
                            drop(node);
                        }
                        Err(e) => {
                            tracing::warn!("node {id} does not start: {e}");
                            failures.lock().expect("failures").push((id, e.to_string()));
                        }
                    }
                }
            })
            .build()
    }

    /// A node to run clients on, outside the cluster.
    pub fn client_node(&self, name: &str, index: u8) -> NodeHandle {
        self.handle
            .create_node()
            .name(name)
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, index)))
            .build()
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> {
        1..=self.size
    }

    fn sim_id(&self, id: u64) -> madsim::task::NodeId {
        self.nodes[(id - 1) as usize].id()
    }

    pub fn disk(&self, id: u64) -> &Arc<SimDisk> {
        &self.disks[(id - 1) as usize]
    }

    /// The running node `id`, if it is up (not killed, not crashed on a failed fsync and
    /// waiting for its supervisor's restart).
    pub fn view(&self, id: u64) -> Option<NodeView> {
        if self.disk(id).crashed() {
            return None;
        }
        self.views[(id - 1) as usize].lock().expect("view").clone()
    }

    /// Crash: the node's tasks vanish at once; its disk keeps even unsynced writes (the
    /// page cache survives a process crash).
    pub fn kill(&self, id: u64) {
        *self.views[(id - 1) as usize].lock().expect("view") = None;
        self.handle.kill(self.sim_id(id));
    }

    /// Starts a killed node again on its disk.
    pub fn restart(&self, id: u64) {
        self.handle.restart(self.sim_id(id));
    }

    pub async fn kill_and_restart(&self, id: u64, down_for: Duration) {
        self.kill(id);
        madsim::time::sleep(down_for).await;
        self.restart(id);
    }

    /// Power failure: the node dies and its disk loses what was not synced (the first
    /// lost write possibly torn). Restart it with [`SimCluster::restart`].
    pub fn power_fail(&self, id: u64, tear: bool) -> PowerFailure {
        self.kill(id);
        self.disk(id)
            .power_fail(&mut madsim::rand::thread_rng(), tear)
    }

    pub fn pause(&self, id: u64) {
        self.handle.pause(self.sim_id(id));
    }

    pub fn resume(&self, id: u64) {
        self.handle.resume(self.sim_id(id));
    }

    /// Drops every packet from `from` to `to` (one direction).
    pub fn clog_link(&self, from: u64, to: u64) {
        NetSim::current().clog_link(self.sim_id(from), self.sim_id(to));
    }

    /// Cuts `id` off from everyone, clients included.
    pub fn isolate(&self, id: u64) {
        NetSim::current().clog_node(self.sim_id(id));
    }

    /// Splits the nodes into `side` and the rest, both directions.
    pub fn split(&self, side: &[u64]) {
        for a in side {
            for b in self.ids().filter(|b| !side.contains(b)) {
                self.clog_link(*a, b);
                self.clog_link(b, *a);
            }
        }
    }

    pub fn unclog_link(&self, from: u64, to: u64) {
        NetSim::current().unclog_link(self.sim_id(from), self.sim_id(to));
    }

    pub fn unisolate(&self, id: u64) {
        NetSim::current().unclog_node(self.sim_id(id));
    }

    /// Undoes [`SimCluster::split`].
    pub fn unsplit(&self, side: &[u64]) {
        for a in side {
            for b in self.ids().filter(|b| !side.contains(b)) {
                self.unclog_link(*a, b);
                self.unclog_link(b, *a);
            }
        }
    }

    /// The node that leads `group`, as the running nodes report it (the highest term wins
    /// when an old leader has not noticed yet).
    pub fn leader_of(&self, group: PartitionId) -> Option<u64> {
        self.ids()
            .filter_map(|id| {
                let raft = self.view(id)?.raft(group)?;
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                metrics
                    .state
                    .is_leader()
                    .then_some((metrics.current_term, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Every link between nodes open again, every node reachable.
    pub fn heal_network(&self) {
        let net = NetSim::current();
        for a in self.ids() {
            net.unclog_node(self.sim_id(a));
            for b in self.ids() {
                if a != b {
                    net.unclog_link(self.sim_id(a), self.sim_id(b));
                }
            }
        }
    }

    /// The metadata as the first running node sees it.
    pub fn metadata(&self) -> Option<Arc<MetadataView>> {
        self.ids()
            .filter_map(|id| self.view(id))
            .map(|view| view.metadata.view())
            .max_by_key(|view| view.next_partition_id)
    }

    /// Every Raft group (metadata first) and the nodes that host it.
    pub fn groups(&self) -> BTreeMap<PartitionId, Vec<u64>> {
        let mut groups = BTreeMap::new();
        groups.insert(PartitionId::METADATA, self.ids().collect());
        if let Some(view) = self.metadata() {
            for topic in view.topics.values() {
                for placement in &topic.partitions {
                    groups.insert(placement.id, placement.replicas.clone());
                }
            }
        }
        groups
    }
}

impl SimCluster {
    /// Ends the run: closes every disk (RocksDB releases its files) and deletes the data.
    /// Tasks of the simulation that still hold a disk get errors from then on.
    pub fn close(&self) {
        for disk in &self.disks {
            disk.close();
        }
        let _ = std::fs::remove_dir_all(&self.data_root);
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        self.close();
    }
}

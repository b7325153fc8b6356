//! The cluster harness: starts N simulated nodes from the node binary's `Config`, plus a
//! client node, and lets tests kill and restart nodes. Node `i` gets IP `10.0.0.i`; data
//! dirs live under a directory derived from the seed, wiped at start (so a determinism
//! re-run of the same seed starts from the same empty disk).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use evlog_node::config::{Config, Peer};
use madsim::runtime::{Handle, NodeHandle};

/// The port every simulated node listens on.
pub const PORT: u16 = 7101;

pub struct SimCluster {
    pub handle: Handle,
    pub nodes: Vec<NodeHandle>,
    pub addrs: Vec<String>,
    pub data_root: PathBuf,
}

fn node_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
}

/// The config a simulated node runs with: the binary's defaults plus identity.
pub fn node_config(id: u64, peers: &[Peer], data_root: &std::path::Path) -> Config {
    let mut config = Config {
        node_id: id,
        listen: format!("{}:{PORT}", node_ip(id)),
        data_dir: data_root.join(format!("node-{id}")),
        initial_cluster: peers.to_vec(),
        ..Config::default()
    };
    config.shutdown_grace_ms = 2_000;
    config
}

impl SimCluster {
    /// Starts `n` nodes; they elect leaders on their own.
    pub fn start(n: u64) -> SimCluster {
        let handle = Handle::current();
        let data_root = std::env::temp_dir().join(format!(
            "evlog-sim-{}-{}",
            std::process::id(),
            handle.seed()
        ));
        let _ = std::fs::remove_dir_all(&data_root);
        std::fs::create_dir_all(&data_root).expect("sim data root");
        let peers: Vec<Peer> = (1..=n)
            .map(|id| Peer {
                id,
                addr: format!("{}:{PORT}", node_ip(id)),
            })
            .collect();
        let mut nodes = Vec::new();
        for id in 1..=n {
            let config = node_config(id, &peers, &data_root);
            let node = handle
                .create_node()
                .name(format!("node-{id}"))
                .ip(node_ip(id))
                .init(move || {
                    let config = config.clone();
                    async move {
                        let node = evlog_node::Node::start(config)
                            .await
                            .expect("simulated node starts");
                        std::future::pending::<()>().await;
                        drop(node);
                    }
                })
                .build();
            nodes.push(node);
        }
        SimCluster {
            handle,
            nodes,
            addrs: peers.iter().map(|p| p.addr.clone()).collect(),
            data_root,
        }
    }

    /// A node to run clients on, outside the cluster.
    pub fn client_node(&self, name: &str, index: u8) -> NodeHandle {
        self.handle
            .create_node()
            .name(name)
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, index)))
            .build()
    }

    /// Crash: the node's tasks vanish at once (what it had not synced is the fault
    /// layer's business; madsim itself keeps files as they are).
    pub fn kill(&self, id: u64) {
        self.handle.kill(self.nodes[(id - 1) as usize].id());
    }

    /// Restart a killed node on its data dir (it retries until RocksDB's lock is free).
    pub fn restart(&self, id: u64) {
        self.handle.restart(self.nodes[(id - 1) as usize].id());
    }

    pub async fn kill_and_restart(&self, id: u64, down_for: Duration) {
        self.kill(id);
        madsim::time::sleep(down_for).await;
        self.restart(id);
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_root);
    }
}

//! Test harness: real `evlog-node` processes on 127.0.0.1, spawned and killed by tests.
//!
//! Each node gets a free port and its own data dir under one temporary directory; nodes
//! can be SIGKILLed (crash) or SIGTERMed (clean stop) and restarted on the same data.

#![allow(dead_code)]

pub mod cli_member;
pub mod grpc;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestNode {
    pub id: u64,
    /// The client listener's address.
    pub addr: String,
    /// The peer listener's address (Raft between nodes).
    pub peer_addr: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
    log_path: PathBuf,
}

pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    initial_cluster: String,
    /// `EVLOG_*` settings every node starts with (limits a test wants small).
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

/// Ports that were free a moment ago (bound to port 0, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

impl TestCluster {
    /// Starts `n` nodes forming one cluster.
    pub fn start(n: usize) -> TestCluster {
        Self::start_with_env(n, &[])
    }

    /// Starts `n` nodes forming one cluster, each with these `EVLOG_*` settings.
    pub fn start_with_env(n: usize, env: &[(&str, &str)]) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = free_ports(2 * n);
        let (client_ports, peer_ports) = ports.split_at(n);
        let initial_cluster = peer_ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}=127.0.0.1:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = client_ports
            .iter()
            .zip(peer_ports)
            .enumerate()
            .map(|(i, (port, peer_port))| TestNode {
                id: i as u64 + 1,
                addr: format!("127.0.0.1:{port}"),
                peer_addr: format!("127.0.0.1:{peer_port}"),
                data_dir: dir.path().join(format!("node-{}", i + 1)),
                child: None,
                log_path: dir.path().join(format!("node-{}.log", i + 1)),
            })
            .collect();
        let mut cluster = TestCluster {
            nodes,
            initial_cluster,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _dir: dir,
        };
        for id in 1..=n as u64 {
            cluster.start_node(id);
        }
        cluster
    }

    pub fn bootstrap(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    pub fn node(&self, id: u64) -> &TestNode {
        &self.nodes[(id - 1) as usize]
    }

    pub fn start_node(&mut self, id: u64) {
        let initial_cluster = self.initial_cluster.clone();
        let node = &mut self.nodes[(id - 1) as usize];
        assert!(node.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .expect("node log file");
        let child = Command::new(env!("CARGO_BIN_EXE_evlog-node"))
            .args(["--node-id", &id.to_string(), "--listen", &node.addr])
            .args(["--peer-listen", &node.peer_addr])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--initial-cluster", &initial_cluster])
            // The node's default log filter, unless a test sets EVLOG_LOG itself.
            .env_remove("EVLOG_LOG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn evlog-node");
        node.child = Some(child);
    }

    /// SIGKILL: the process dies at once, losing whatever it had not synced.
    pub fn kill_node(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        if let Some(mut child) = node.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop_node(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        if let Some(mut child) = node.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -TERM failed");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    assert!(
                        status.success(),
                        "node {id} exited with {status} after SIGTERM; log: {}",
                        tail(&node.log_path)
                    );
                    return;
                }
                if Instant::now() > deadline {
                    child.kill().ok();
                    panic!(
                        "node {id} did not stop within 20 s of SIGTERM; log: {}",
                        tail(&node.log_path)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn stop_all(&mut self) {
        for id in 1..=self.nodes.len() as u64 {
            self.stop_node(id);
        }
    }

    pub fn log_tail(&self, id: u64) -> String {
        tail(&self.node(id).log_path)
    }

    /// Everything node `id` has logged so far.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log_path).unwrap_or_default()
    }

    /// The OS process id of node `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.node(id).child.as_ref().map(Child::id)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A `/proc/<pid>/status` field in bytes (or a count, for fields without a unit).
pub fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or("0")
        .trim();
    match value.strip_suffix("kB") {
        Some(kb) => kb.trim().parse::<u64>().map_or(0, |kb| kb * 1024),
        None => value.parse().unwrap_or(0),
    }
}

/// A process's resident memory in bytes (0 once it is gone).
pub fn rss_bytes(pid: u32) -> u64 {
    status_field(pid, "VmRSS")
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

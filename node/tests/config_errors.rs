//! Goal: a node given a wrong config refuses to start with a clear message and loses
//! nothing. Method: run the real `evlog-node` binary with several broken configurations
//! and check the exit code and that every problem is named; then start a node on another
//! node's data dir and check it refuses, leaving the data intact for its owner.

use std::net::TcpListener;
use std::process::{Command, Output};

fn node(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evlog-node"))
        .args(args)
        .env("EVLOG_LOG", "warn")
        .output()
        .expect("run evlog-node")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn every_config_problem_is_reported_at_once_with_exit_code_2() {
    let out = node(&["--listen", "not-an-address", "--initial-cluster", "1=a:1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in ["node_id", "not-an-address"] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in: {stderr}"
        );
    }
    assert!(
        stderr.lines().count() >= 3,
        "one line per problem: {stderr}"
    );

    let out = node(&["--node-id", "1", "--initial-cluster", "1=a:1,1=b:2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listed twice"));

    let out = node(&["--config", "/nonexistent/evlog.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/evlog.toml"));
}

/// Node `id` of cluster `cluster_id`, alone in its initial cluster, on `data`.
fn node_args(id: &str, cluster_id: &str, data: &str, addr: &str, peer_addr: &str) -> Vec<String> {
    [
        "--node-id",
        id,
        "--cluster-id",
        cluster_id,
        "--listen",
        addr,
        "--peer-listen",
        peer_addr,
        "--data-dir",
        data,
    ]
    .iter()
    .map(|a| a.to_string())
    .chain(["--initial-cluster".to_string(), format!("{id}={peer_addr}")])
    .collect()
}

/// Runs node 1 of cluster "evlog" on `data` for a second, then stops it with SIGTERM;
/// true if it ran and stopped cleanly.
fn run_node_1_briefly(data: &str, addr: &str, peer_addr: &str) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evlog-node"))
        .args(node_args("1", "evlog", data, addr, peer_addr))
        .env("EVLOG_LOG", "warn")
        .spawn()
        .expect("spawn node 1");
    std::thread::sleep(std::time::Duration::from_secs(1));
    if child.try_wait().expect("try_wait").is_some() {
        return false;
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    status.success() && child.wait().expect("wait").success()
}

#[test]
fn a_node_refuses_the_data_dir_of_another_node_or_another_cluster() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf8 path");
    let addr = format!("127.0.0.1:{}", free_port());
    let peer_addr = format!("127.0.0.1:{}", free_port());
    assert!(
        run_node_1_briefly(data, &addr, &peer_addr),
        "node 1 creates its data dir and stops cleanly"
    );
    let refusals = [
        (
            node_args("2", "evlog", data, &addr, &peer_addr),
            "belongs to node 1",
        ),
        (
            node_args("1", "other", data, &addr, &peer_addr),
            "belongs to cluster \"evlog\"",
        ),
    ];
    for (args, expected) in refusals {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = node(&args);
        assert!(!out.status.success());
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(printed.contains(expected), "{printed}");
    }
    assert!(
        run_node_1_briefly(data, &addr, &peer_addr),
        "node 1 still starts on its data dir"
    );
}

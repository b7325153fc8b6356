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

/// Runs node 1 on `data` for a second, then stops it with SIGTERM; true if it ran and
/// stopped cleanly.
fn run_node_1_briefly(data: &str, addr: &str) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evlog-node"))
        .args(["--node-id", "1", "--listen", addr, "--data-dir", data])
        .args(["--initial-cluster", &format!("1={addr}")])
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
fn a_node_refuses_the_data_dir_of_another_node() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf8 path");
    let addr = format!("127.0.0.1:{}", free_port());
    assert!(
        run_node_1_briefly(data, &addr),
        "node 1 creates its data dir and stops cleanly"
    );

    let out = node(&[
        "--node-id",
        "2",
        "--listen",
        &addr,
        "--data-dir",
        data,
        "--initial-cluster",
        &format!("2={addr}"),
    ]);
    assert!(!out.status.success());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("belongs to node 1"), "{printed}");
    assert!(
        run_node_1_briefly(data, &addr),
        "node 1 still starts on its data dir"
    );
}

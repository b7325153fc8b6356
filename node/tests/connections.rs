//! Goal: idle, silent and half-open connections never stop a node from serving others, and
//! they do not pile up (finding 2: 500 connections that sent no byte stayed open forever,
//! and with 200 idle gRPC channels a busy node stopped answering). Method: a real node
//! with small limits; 500 TCP connections from 127.0.0.2 that send nothing, then 60 idle
//! HTTP/2 channels from 127.0.0.3; meanwhile a client on 127.0.0.1 must be served at once;
//! the node's open file descriptors must stay under the per-address limit and fall back
//! once the handshake and idle timeouts have passed.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::grpc::{self, code_of};
use common::TestCluster;
use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::admin_client::AdminClient;

const PER_IP_MAX: usize = 100;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// Waits up to `within` for the node's descriptors to fall to `at_most`.
async fn fds_fall_to(pid: u32, at_most: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let fds = open_fds(pid);
        if fds <= at_most || Instant::now() > deadline {
            return fds;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn served_at_once(addr: &str) {
    let started = Instant::now();
    let mut log = grpc::event_log(grpc::channel(addr).await);
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        log.produce(grpc::produce_request("t", 0, grpc::events(1, 8))),
    )
    .await
    .expect("the node answers other clients")
    .expect("produce rpc")
    .into_inner();
    assert_eq!(
        code_of(&response.error),
        pb::ErrorCode::Ok,
        "{:?}",
        response.error
    );
    println!(
        "a client on 127.0.0.1 was served in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_capped_and_closed_and_others_are_served() {
    let per_ip = PER_IP_MAX.to_string();
    let cluster = TestCluster::start_with_env(
        1,
        &[
            ("EVLOG_SERVER__CONNECTIONS_PER_IP_MAX", &per_ip),
            ("EVLOG_SERVER__CONNECTION_HANDSHAKE_TIMEOUT_MS", "1000"),
            ("EVLOG_SERVER__CONNECTION_IDLE_TIMEOUT_MS", "2000"),
        ],
    );
    let addr = cluster.node(1).addr.clone();
    grpc::one_partition_topic(&cluster.bootstrap(), "t", 1).await;
    let pid = cluster.pid(1).expect("node 1 runs");
    let baseline = open_fds(pid);

    // 500 connections that never send a byte, from one address.
    let target: SocketAddr = addr.parse().expect("socket addr");
    let silent_ip: IpAddr = "127.0.0.2".parse().unwrap();
    let mut silent = Vec::new();
    for _ in 0..500 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(silent_ip, 0))
            .expect("bind 127.0.0.2");
        if let Ok(stream) = socket.connect(target).await {
            silent.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = open_fds(pid);
    println!("node fds: {baseline} before, {during} with 500 silent connections open");
    assert!(
        during <= baseline + PER_IP_MAX + 10,
        "{during} fds: connections past server.connections_per_ip_max were kept"
    );
    served_at_once(&addr).await;
    let quiet = fds_fall_to(pid, baseline + 10, Duration::from_secs(5)).await;
    println!("node fds after the handshake timeout: {quiet}");
    assert!(
        quiet <= baseline + 10,
        "silent connections still open: {quiet} fds"
    );

    // 60 HTTP/2 channels that connect, make one call, then sit idle.
    let idle_ip: IpAddr = "127.0.0.3".parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..60 {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .local_address(Some(idle_ip))
            .connect()
            .await
            .expect("connect from 127.0.0.3");
        AdminClient::new(channel.clone())
            .describe_cluster(pb::DescribeClusterRequest {})
            .await
            .expect("describe");
        idle.push(channel);
    }
    let during = open_fds(pid);
    println!("node fds with 60 idle HTTP/2 channels: {during}");
    assert!(during >= quiet + 55, "the channels are open: {during} fds");
    served_at_once(&addr).await;
    let after = fds_fall_to(pid, baseline + 10, Duration::from_secs(8)).await;
    println!("node fds after the idle timeout: {after}");
    assert!(
        after <= baseline + 10,
        "idle channels still open: {after} fds"
    );
    drop((silent, idle));
}

//! Goal: logs a person can read (finding 7). Normal operation (start, topic creation,
//! first elections, writes, a follower stopping for a few seconds and catching up) prints
//! nothing at WARN or ERROR with the node's default log filter; a real fault (a peer down
//! for longer than 10 s) prints one line on each node that talks to it, and one when it
//! is back.
//!
//! Method: real `evlog-node` processes with the default `EVLOG_LOG`; their logs are read
//! from the files the harness writes and searched for WARN and ERROR lines.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use evlog_client::{Client, Event, ProducerConfig};

const TOPIC: &str = "quiet";
const PARTITIONS: u32 = 4;

/// The WARN and ERROR lines of a node's log (tracing's format puts the level after the
/// timestamp, padded: `... WARN target: message`).
fn loud_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect()
}

async fn produce_to_every_partition(client: &Client, events_per_partition: usize) {
    let producer = client
        .producer(ProducerConfig::default())
        .expect("producer");
    for partition in 0..PARTITIONS {
        for i in 0..events_per_partition {
            producer
                .send_to(TOPIC, partition, Event::new(format!("event {i}")))
                .await
                .expect("produce");
        }
    }
    producer.close().await;
}

/// Waits until node `id` reports, for every partition, the high watermark node 1 reports.
async fn wait_caught_up(client: &Client, cluster: &TestCluster, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let watermarks = |addr: String| async move {
            let topic = client.admin().describe_topic_at(&addr, TOPIC).await.ok()?;
            let marks: Option<Vec<u64>> =
                topic.partitions.iter().map(|p| p.high_watermark).collect();
            marks
        };
        let reference = watermarks(cluster.node(1).addr.clone()).await;
        let caught_up = watermarks(cluster.node(id).addr.clone()).await;
        if reference.is_some() && reference == caught_up {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} did not catch up: {caught_up:?} vs node 1's {reference:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three nodes and the topic, created right after they start (the client retries while
/// the cluster forms), with `events_per_partition` events in each partition.
async fn cluster_with_topic(events_per_partition: usize) -> (TestCluster, Client) {
    let cluster = TestCluster::start(3);
    let client = Client::connect(cluster.bootstrap()).await.expect("connect");
    client
        .admin()
        .create_topic(TOPIC, PARTITIONS, 3)
        .await
        .expect("create topic");
    produce_to_every_partition(&client, events_per_partition).await;
    (cluster, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_operation_logs_nothing_at_warn_or_error() {
    let (mut cluster, client) = cluster_with_topic(50).await;

    // A follower stops for a few seconds (a restart, an upgrade) and catches up.
    cluster.stop_node(3);
    produce_to_every_partition(&client, 50).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_node(3);
    wait_caught_up(&client, &cluster, 3).await;
    produce_to_every_partition(&client, 10).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    for id in 1..=3 {
        let log = cluster.log(id);
        let loud = loud_lines(&log);
        assert!(
            loud.is_empty(),
            "node {id} logged {} WARN/ERROR lines in normal operation:\n{}",
            loud.len(),
            loud.join("\n")
        );
        assert!(log.contains("node started"), "node {id} logged: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_down_for_long_is_one_line_and_one_when_it_is_back() {
    let (mut cluster, client) = cluster_with_topic(10).await;

    cluster.kill_node(3);
    // Writes go on with two of three replicas while node 3 is down for 15 s.
    let down_until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < down_until {
        produce_to_every_partition(&client, 5).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.start_node(3);
    wait_caught_up(&client, &cluster, 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Only a node that leads some group sends node 3 anything (followers do not talk to
    // each other), so at least one of nodes 1 and 2 noticed; each that did says so once.
    let peer = &cluster.node(3).peer_addr;
    let mut noticed = 0;
    for id in 1..=2 {
        let log = cluster.log(id);
        let loud = loud_lines(&log);
        let down = loud
            .iter()
            .filter(|line| line.contains(&format!("node 3 at {peer} has been unreachable")))
            .count();
        assert!(
            down <= 1 && loud.len() == down,
            "node {id} should log node 3's outage at most once and nothing else loud:\n{}",
            loud.join("\n")
        );
        if down == 1 {
            noticed += 1;
            assert!(
                log.contains(&format!("node 3 at {peer} is reachable again")),
                "node {id} did not log node 3's return: {}",
                cluster.log_tail(id)
            );
        }
    }
    assert!(
        noticed >= 1,
        "neither node 1 nor node 2 logged node 3's outage"
    );
}

//! Goal: no acknowledged event is lost, duplicated or reordered when a partition leader
//! is SIGKILLed mid-stream and restarted, and all replicas end with identical logs.
//!
//! Method: three real `evlog-node` processes on 127.0.0.1; a topic with 3 partitions,
//! RF 3; 50 keys, each published by its own task (200 events, in order), all concurrently
//! through one idempotent `Producer`. After 3,000 acknowledgements the leader of
//! partition 0 is SIGKILLed, and restarted a second later. Then: every acknowledged event
//! is read back exactly once at its acknowledged offset, offsets are dense from 0, each
//! key's events are in publish order, and after a clean stop the three replicas' stored
//! committed logs (read straight from each node's RocksDB) are identical.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestCluster;
use evlog_client::{Client, Event, ProducerConfig};
use evlog_node::partition::read::{read_events, ReadLimits};
use evlog_node::partition::state::PartitionState;
use evlog_node::raft::state_machine::load_applied;
use evlog_node::storage::rocks::RocksTuning;
use evlog_node::storage::{RocksEngine, StorageEngine};
use evlog_node::types::Offset;
use evlog_node::types::PartitionId;

const TOPIC: &str = "orders";
const KEYS: usize = 50;
const EVENTS_PER_KEY: usize = 200;
const KILL_AFTER_ACKS: usize = 3_000;

type Acked = (String, usize, u32, u64);

async fn create_topic(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.admin().create_topic(TOPIC, 3, 3).await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("create topic: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot create the topic: {e}"),
        }
    }
}

async fn leader_of(client: &Client, cluster: &TestCluster, partition: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        for node in &cluster.nodes {
            if let Ok(info) = client.admin().describe_topic_at(&node.addr, TOPIC).await {
                if let Some(leader) = info.partitions[partition as usize].leader_id {
                    return leader;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader known for partition {partition}");
}

fn publish_all(client: &Client, acks: Arc<AtomicUsize>) -> tokio::task::JoinHandle<Vec<Acked>> {
    let producer = Arc::new(
        client
            .producer(ProducerConfig::default())
            .expect("producer"),
    );
    tokio::spawn(async move {
        let mut tasks = Vec::new();
        for k in 0..KEYS {
            let (producer, acks) = (producer.clone(), acks.clone());
            tasks.push(tokio::spawn(async move {
                let key = format!("key-{k}");
                let mut acked = Vec::with_capacity(EVENTS_PER_KEY);
                for seq in 0..EVENTS_PER_KEY {
                    let event = Event::new(format!("{key}:{seq}")).with_key(key.clone());
                    let ack = producer
                        .send(TOPIC, event)
                        .await
                        .unwrap_or_else(|e| panic!("{key}:{seq} not acknowledged: {e}"));
                    acks.fetch_add(1, Ordering::Relaxed);
                    acked.push((key.clone(), seq, ack.partition, ack.offset));
                }
                acked
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("publisher task"));
        }
        all
    })
}

/// Reads a whole partition through the client, checking offsets are dense from 0.
async fn read_partition(client: &Client, partition: u32) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    loop {
        let result = client
            .read(TOPIC, partition, out.len() as u64, 10_000)
            .await
            .expect("read");
        for event in &result.events {
            assert_eq!(
                event.offset,
                out.len() as u64,
                "offsets must be dense in partition {partition}"
            );
            out.push((
                event.offset,
                String::from_utf8(event.value.to_vec()).expect("utf8 value"),
            ));
        }
        if out.len() as u64 >= result.high_watermark {
            return out;
        }
        assert!(
            !result.events.is_empty(),
            "read below the high watermark returned nothing"
        );
    }
}

async fn wait_replicas_converged(client: &Client, cluster: &TestCluster) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut hws: Vec<Vec<Option<u64>>> = Vec::new();
        for node in &cluster.nodes {
            let info = client
                .admin()
                .describe_topic_at(&node.addr, TOPIC)
                .await
                .expect("describe");
            hws.push(info.partitions.iter().map(|p| p.high_watermark).collect());
        }
        if hws
            .iter()
            .all(|h| h == &hws[0] && h.iter().all(Option::is_some))
        {
            return hws[0].iter().map(|h| h.expect("some")).collect();
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge: {hws:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A replica's committed events, read from its RocksDB after the node stopped.
async fn stored_log(
    data_dir: &std::path::Path,
    partition: PartitionId,
) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    let engine = RocksEngine::open(&data_dir.join("db"), RocksTuning::default())
        .await
        .expect("open replica db");
    let applied = load_applied(&engine, partition)
        .expect("applied record")
        .expect("replica has state");
    let state = PartitionState::restore(partition, &engine as &dyn StorageEngine, &applied.summary)
        .expect("restore");
    let watermark = *state.watermark().borrow();
    let limits = ReadLimits {
        max_bytes: usize::MAX,
        max_events: usize::MAX,
    };
    read_events(&engine, partition, Offset::ZERO, watermark, limits)
        .expect("read replica")
        .into_iter()
        .map(|e| {
            (
                e.offset.0,
                e.event.key.unwrap_or_default().to_vec(),
                e.event.value.to_vec(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_leader_kill_exactly_once_and_in_order() {
    let mut cluster = TestCluster::start(3);
    let client = Client::connect(cluster.bootstrap()).await.expect("connect");
    create_topic(&client).await;
    let acks = Arc::new(AtomicUsize::new(0));
    let publisher = publish_all(&client, acks.clone());
    while acks.load(Ordering::Relaxed) < KILL_AFTER_ACKS {
        assert!(!publisher.is_finished(), "publisher ended early");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let victim = leader_of(&client, &cluster, 0).await;
    eprintln!(
        "SIGKILL node {victim} (leader of partition 0) after {} acks",
        acks.load(Ordering::Relaxed)
    );
    cluster.kill_node(victim);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.start_node(victim);
    let acked = tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .expect("publishing finished in time")
        .expect("publisher");
    assert_eq!(acked.len(), KEYS * EVENTS_PER_KEY);

    // Every acknowledged event is readable exactly once, at its acknowledged offset.
    let mut logs = BTreeMap::new();
    for partition in 0..3 {
        logs.insert(partition, read_partition(&client, partition).await);
    }
    let total: usize = logs.values().map(Vec::len).sum();
    assert_eq!(
        total,
        acked.len(),
        "the logs hold exactly the acknowledged events, no duplicates"
    );
    for (key, seq, partition, offset) in &acked {
        let (_, value) = &logs[partition][*offset as usize];
        assert_eq!(
            value,
            &format!("{key}:{seq}"),
            "partition {partition} offset {offset}"
        );
    }
    // Per-key order: a key's events appear in the order they were published.
    let mut last_seq: HashMap<String, usize> = HashMap::new();
    for log in logs.values() {
        for (_, value) in log {
            let (key, seq) = value.split_once(':').expect("key:seq");
            let seq: usize = seq.parse().expect("seq");
            if let Some(prev) = last_seq.insert(key.to_string(), seq) {
                assert!(seq > prev, "{key}: {seq} after {prev}");
            }
        }
    }

    // All replicas converge, then hold identical committed logs on disk.
    let high_watermarks = wait_replicas_converged(&client, &cluster).await;
    let groups: Vec<u64> = client
        .admin()
        .describe_topic(TOPIC)
        .await
        .expect("describe")
        .partitions
        .iter()
        .map(|p| p.group_id)
        .collect();
    drop(client);
    cluster.stop_all();
    for (index, group) in groups.iter().enumerate() {
        let mut replicas = Vec::new();
        for node in &cluster.nodes {
            replicas.push(stored_log(&node.data_dir, PartitionId(*group)).await);
        }
        assert_eq!(replicas[0].len() as u64, high_watermarks[index]);
        assert!(
            replicas.iter().all(|r| r == &replicas[0]),
            "replicas of partition {index} differ"
        );
    }
}

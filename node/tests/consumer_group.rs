//! Goal: the client's `Consumer` shares a topic among a group's members, processes every
//! event at least once in offset order per partition, moves partitions cooperatively when
//! a member joins, commits what was processed, and a later member resumes where the group
//! left off. Method: 3 real nodes, a topic of 4 partitions; keyed events; one consumer,
//! then a second joins; both close; more events; a new member must get only those.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestCluster;
use evlog_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, Event, ProducerConfig, TopicPartition,
};
use futures::StreamExt;

const TOPIC: &str = "orders";
const GROUP: &str = "billing";

async fn produce(client: &Client, from: usize, to: usize) {
    let producer = client
        .producer(ProducerConfig::default())
        .expect("producer");
    let sends: Vec<_> = (from..to)
        .map(|i| {
            producer.send(
                TOPIC,
                Event::new(format!("event-{i}")).with_key(format!("key-{}", i % 40)),
            )
        })
        .collect();
    for send in sends {
        send.await.expect("acknowledged");
    }
    producer.close().await;
}

/// What one consumer saw: (partition, offset) -> value, in the order it saw them.
type Seen = Arc<Mutex<Vec<(u32, u64, String)>>>;

/// Drains `consumer` into `seen` until `stop` returns true (checked after every event
/// and every 100 ms of silence).
async fn drain(consumer: &mut Consumer, seen: &Seen, stop: impl Fn() -> bool) {
    loop {
        if stop() {
            return;
        }
        match tokio::time::timeout(Duration::from_millis(100), consumer.next()).await {
            Ok(Some(Ok(event))) => {
                let value = String::from_utf8_lossy(&event.value).into_owned();
                seen.lock()
                    .unwrap()
                    .push((event.partition, event.offset, value));
            }
            Ok(Some(Err(e))) => panic!("consumer error: {e}"),
            Ok(None) => panic!("consumer stream ended"),
            Err(_) => {}
        }
    }
}

fn values(seen: &[&Seen]) -> BTreeSet<String> {
    seen.iter()
        .flat_map(|s| {
            s.lock()
                .unwrap()
                .iter()
                .map(|(_, _, v)| v.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn assert_offset_order(seen: &Seen) {
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for (partition, offset, _) in seen.lock().unwrap().iter() {
        if let Some(previous) = last.insert(*partition, *offset) {
            assert!(
                *offset > previous,
                "partition {partition}: {offset} after {previous}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_partitions_commits_what_it_processed_and_resumes() {
    let mut cluster =
        TestCluster::start_with_env(3, &[("EVLOG_GROUPS__HEARTBEAT_INTERVAL_MS", "300")]);
    let client = Client::with_config(ClientConfig::new(cluster.bootstrap()))
        .await
        .expect("connect");
    client
        .admin()
        .create_topic(TOPIC, 4, 3)
        .await
        .expect("create topic");
    produce(&client, 0, 400).await;

    let assigned = Arc::new(Mutex::new(BTreeSet::<TopicPartition>::new()));
    let revoked = Arc::new(Mutex::new(Vec::<TopicPartition>::new()));
    let config = {
        let (assigned, revoked) = (assigned.clone(), revoked.clone());
        ConsumerConfig::new(GROUP)
            .subscribe([TOPIC])
            .with_auto_commit_interval_ms(500)
            .on_assigned(move |tps| assigned.lock().unwrap().extend(tps.iter().cloned()))
            .on_revoked(move |tps| revoked.lock().unwrap().extend(tps.iter().cloned()))
    };
    let mut first = client.consumer(config).expect("consumer");
    let first_seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    drain(&mut first, &first_seen, || {
        assert!(
            Instant::now() < deadline,
            "the first member did not get everything"
        );
        values(&[&first_seen]).len() == 400
    })
    .await;
    assert_eq!(
        assigned.lock().unwrap().len(),
        4,
        "alone, it owns all 4 partitions"
    );

    // A second member joins: two partitions move to it, after the first revoked them.
    let mut second = client
        .consumer(ConsumerConfig::new(GROUP).subscribe([TOPIC]))
        .expect("consumer");
    let second_seen = Seen::default();
    produce(&client, 400, 800).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let both = async {
        loop {
            let all = values(&[&first_seen, &second_seen]).len();
            if all == 800 && second.assignment().len() == 2 && first.assignment().len() == 2 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rebalance or delivery stalled: {all} events"
            );
            drain_once(&mut first, &first_seen).await;
            drain_once(&mut second, &second_seen).await;
        }
    };
    both.await;
    assert_eq!(
        revoked.lock().unwrap().len(),
        2,
        "the first member gave up two partitions"
    );
    let first_parts: BTreeSet<TopicPartition> = first.assignment().into_iter().collect();
    let second_parts: BTreeSet<TopicPartition> = second.assignment().into_iter().collect();
    assert!(
        first_parts.is_disjoint(&second_parts),
        "{first_parts:?} / {second_parts:?}"
    );
    assert_offset_order(&first_seen);
    assert_offset_order(&second_seen);
    first.close().await;
    second.close().await;

    let group = client
        .admin()
        .describe_group(GROUP)
        .await
        .expect("describe");
    assert!(group.members.is_empty());
    assert!(
        group.partitions.iter().all(|p| p.lag == Some(0)),
        "{:?}",
        group.partitions
    );

    // A new member resumes after the committed offsets: only the new events.
    produce(&client, 800, 850).await;
    let mut third = client
        .consumer(ConsumerConfig::new(GROUP).subscribe([TOPIC]))
        .expect("consumer");
    let third_seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    drain(&mut third, &third_seen, || {
        assert!(
            Instant::now() < deadline,
            "the third member did not get the new events"
        );
        third_seen.lock().unwrap().len() >= 50
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drain_once(&mut third, &third_seen).await;
    let expected: BTreeSet<String> = (800..850).map(|i| format!("event-{i}")).collect();
    assert_eq!(
        values(&[&third_seen]),
        expected,
        "exactly the events after the commits"
    );
    third.close().await;

    // The CLI as a member: prints what the group has not processed, commits it, exits.
    produce(&client, 850, 870).await;
    let printed = evlog_consume(&cluster);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 20, "{printed}");
    assert!(lines.iter().all(|l| l.contains("\"event-8")), "{printed}");
    assert_eq!(
        evlog_consume(&cluster),
        "",
        "everything printed was committed"
    );
    cluster.stop_all();
}

/// `evlog consume orders --group billing --format json --idle-ms 1500`: its stdout.
fn evlog_consume(cluster: &TestCluster) -> String {
    let started = Instant::now();
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_evlog-node")).with_file_name("evlog");
    let out = std::process::Command::new(binary)
        .args([
            "consume",
            TOPIC,
            "--group",
            GROUP,
            "--format",
            "json",
            "--idle-ms",
            "1500",
        ])
        .env("EVLOG_BOOTSTRAP", cluster.bootstrap().join(","))
        .output()
        .expect("run evlog (cargo build --release --bins first)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "evlog consume failed: {stderr}");
    eprintln!("evlog consume took {:?}: {stderr}", started.elapsed());
    assert!(stderr.contains("assigned: orders/"), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Takes what `consumer` has ready within 20 ms.
async fn drain_once(consumer: &mut Consumer, seen: &Seen) {
    while let Ok(Some(item)) =
        tokio::time::timeout(Duration::from_millis(20), consumer.next()).await
    {
        let event = item.expect("consumer event");
        let value = String::from_utf8_lossy(&event.value).into_owned();
        seen.lock()
            .unwrap()
            .push((event.partition, event.offset, value));
    }
}

/// Goal: `process_keyed` runs different keys in parallel, one key's events one after
/// another in order, and commits only what finished. Method: 30 keys x 20 events over 2
/// partitions; handlers sleep so that they overlap; record per key the order of values
/// and the most handlers running at once; then close and check lag 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_processing_keeps_each_keys_order_and_runs_keys_in_parallel() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut cluster = TestCluster::start(3);
    let client = Client::with_config(ClientConfig::new(cluster.bootstrap()))
        .await
        .expect("connect");
    client
        .admin()
        .create_topic("keyed", 2, 3)
        .await
        .expect("create topic");
    let producer = client
        .producer(ProducerConfig::default())
        .expect("producer");
    let sends: Vec<_> = (0..600u32)
        .map(|i| {
            let (key, seq) = (i % 30, i / 30);
            producer.send(
                "keyed",
                Event::new(format!("{seq}")).with_key(format!("key-{key}")),
            )
        })
        .collect();
    for send in sends {
        send.await.expect("acknowledged");
    }
    producer.close().await;

    let per_key: Arc<Mutex<BTreeMap<String, Vec<u32>>>> = Arc::default();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut consumer = client
        .consumer(ConsumerConfig::new("keyed-group").subscribe(["keyed"]))
        .expect("consumer");
    let handler = {
        let (per_key, running, most) = (per_key.clone(), running.clone(), most.clone());
        move |event: evlog_client::ReceivedEvent| {
            let (per_key, running, most) = (per_key.clone(), running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1 + event.offset % 5)).await;
                let key =
                    String::from_utf8_lossy(event.key.as_deref().unwrap_or_default()).into_owned();
                let seq: u32 = String::from_utf8_lossy(&event.value)
                    .parse()
                    .expect("a number");
                per_key.lock().unwrap().entry(key).or_default().push(seq);
                running.fetch_sub(1, Ordering::SeqCst);
            }
        }
    };
    let done = || {
        per_key
            .lock()
            .unwrap()
            .values()
            .map(Vec::len)
            .sum::<usize>()
            == 600
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    tokio::select! {
        result = consumer.process_keyed(8, handler) => panic!("process_keyed ended: {result:?}"),
        _ = async {
            while !done() {
                assert!(Instant::now() < deadline, "not everything was processed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } => {}
    }
    consumer.close().await;
    let per_key = per_key.lock().unwrap().clone();
    assert_eq!(per_key.len(), 30);
    for (key, seqs) in &per_key {
        assert_eq!(
            *seqs,
            (0..20).collect::<Vec<u32>>(),
            "{key} out of order or repeated"
        );
    }
    assert!(
        most.load(Ordering::SeqCst) > 1,
        "keys never ran in parallel"
    );
    assert!(
        most.load(Ordering::SeqCst) <= 8,
        "more than the concurrency at once"
    );
    let group = client
        .admin()
        .describe_group("keyed-group")
        .await
        .expect("describe");
    assert!(
        group.partitions.iter().all(|p| p.lag == Some(0)),
        "{:?}",
        group.partitions
    );
    cluster.stop_all();
}

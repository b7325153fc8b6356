//! Goal: a consumer group survives the deaths the issue names: a member SIGKILLed while
//! processing, a new member joining, and the node leading the group's coordinator
//! partition SIGKILLed and restarted. Afterwards every event was processed at least once,
//! the only duplicates are events the killed member processed after its last commit, each
//! member saw every key's events in order, every partition is owned by exactly one live
//! member, lag is 0, and no committed offset ever went backward.
//! Method: 3 real nodes; a topic of 6 partitions, RF 3; 30,000 keyed events produced over
//! ~12 s; the members are `evlog consume --group --follow --format json` processes
//! (processed = printed); a poller records every committed offset it sees. Prints the
//! duplicates and the time from the member's death to its partitions being consumed again.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cli_member::{wait_until, CliMember};
use common::TestCluster;
use evlog_client::{Client, ClientConfig, Event, ProducerConfig};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const EVENTS: u32 = 30_000;
const KEYS: u32 = 300;

fn printed(members: &[&CliMember]) -> usize {
    members.iter().map(|m| m.printed()).sum()
}

fn start_member(cluster: &TestCluster) -> CliMember {
    CliMember::start(cluster, TOPIC, GROUP, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_survives_a_killed_member_a_new_member_and_a_killed_coordinator() {
    let mut cluster = TestCluster::start_with_env(
        3,
        &[
            ("EVLOG_GROUPS__SESSION_TIMEOUT_MS", "3000"),
            ("EVLOG_GROUPS__HEARTBEAT_INTERVAL_MS", "500"),
        ],
    );
    let client = Client::with_config(ClientConfig::new(cluster.bootstrap()))
        .await
        .expect("connect");
    client
        .admin()
        .create_topic(TOPIC, 6, 3)
        .await
        .expect("create topic");

    // Committed offsets, as a poller sees them over the whole run.
    let committed: Arc<Mutex<BTreeMap<u32, Vec<u64>>>> = Arc::default();
    let poller = {
        let (client, committed) = (client.clone(), committed.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(offsets) = client.admin().fetch_offsets(GROUP).await {
                    let mut seen = committed.lock().unwrap();
                    for o in offsets {
                        seen.entry(o.partition.partition)
                            .or_default()
                            .push(o.next_offset);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let producer = {
        let client = client.clone();
        tokio::spawn(async move {
            let producer = client
                .producer(ProducerConfig::default())
                .expect("producer");
            for batch in 0..60u32 {
                let sends: Vec<_> = (batch * 500..(batch + 1) * 500)
                    .map(|i| {
                        producer.send(
                            TOPIC,
                            Event::new(format!("{}-{}", i % KEYS, i / KEYS))
                                .with_key(format!("k{}", i % KEYS)),
                        )
                    })
                    .collect();
                for send in sends {
                    send.await.expect("acknowledged");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            producer.close().await;
        })
    };

    let mut members: Vec<CliMember> = (0..3).map(|_| start_member(&cluster)).collect();
    wait_until("a third of the events", Duration::from_secs(60), || {
        printed(&members.iter().collect::<Vec<_>>()) >= 10_000
    })
    .await;

    // SIGKILL member 1 while it processes; its partitions are those it printed last.
    let killed_at = Instant::now();
    members[1].kill();
    let killed_lines = members[1].lines.lock().unwrap().clone();
    let recent = killed_at - Duration::from_millis(1500);
    let killed_partitions: BTreeSet<u32> = killed_lines
        .iter()
        .filter(|l| l.0 >= recent)
        .map(|l| l.1)
        .collect();
    assert!(
        !killed_partitions.is_empty(),
        "the killed member was consuming"
    );
    members.push(start_member(&cluster));

    // The first event of a killed partition printed by someone else after the kill.
    let others = |members: &[CliMember]| -> Option<Instant> {
        [0usize, 2, 3]
            .iter()
            .flat_map(|i| members[*i].lines.lock().unwrap().clone())
            .filter(|l| l.0 > killed_at && killed_partitions.contains(&l.1))
            .map(|l| l.0)
            .min()
    };
    wait_until(
        "the killed member's partitions to move",
        Duration::from_secs(60),
        || others(&members).is_some(),
    )
    .await;
    let rebalance = others(&members).expect("moved") - killed_at;

    // SIGKILL the node leading the group's coordinator partition, then restart it.
    let coordinator_addr = common::grpc::coordinator(&cluster.bootstrap(), GROUP).await;
    let coordinator_node = (1..=3)
        .find(|id| cluster.node(*id).addr == coordinator_addr)
        .expect("a node");
    cluster.kill_node(coordinator_node);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_node(coordinator_node);

    producer.await.expect("producer task");
    let all_values = |members: &[CliMember]| -> BTreeSet<String> {
        members
            .iter()
            .flat_map(|m| {
                m.lines
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|l| l.4.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    wait_until("every event processed", Duration::from_secs(120), || {
        all_values(&members).len() == EVENTS as usize
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let final_group = loop {
        let group = client
            .admin()
            .describe_group(GROUP)
            .await
            .expect("describe");
        let settled = group.members.len() == 3
            && group.partitions.len() == 6
            && group
                .partitions
                .iter()
                .all(|p| p.lag == Some(0) && p.member_id.is_some());
        if settled {
            break group;
        }
        assert!(
            Instant::now() < deadline,
            "the group did not settle: {group:?}; members' stderr:
{}",
            members
                .iter()
                .map(CliMember::stderr_text)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    poller.abort();

    // Every partition has exactly one owner, a live member.
    let owners: BTreeSet<&str> = final_group
        .partitions
        .iter()
        .filter_map(|p| p.member_id.as_deref())
        .collect();
    let member_ids: BTreeSet<&str> = final_group
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert!(owners.is_subset(&member_ids), "{owners:?} / {member_ids:?}");
    let mut assigned: Vec<(String, u32)> = final_group
        .members
        .iter()
        .flat_map(|m| m.assigned.iter().map(|tp| (tp.topic.clone(), tp.partition)))
        .collect();
    assigned.sort();
    let before = assigned.len();
    assigned.dedup();
    assert_eq!(
        (before, assigned.len()),
        (6, 6),
        "each partition assigned once"
    );

    // Duplicates only among what the killed member printed after its last commit.
    let mut times_seen: HashMap<String, usize> = HashMap::new();
    for m in &members {
        for l in m.lines.lock().unwrap().iter() {
            *times_seen.entry(l.4.clone()).or_default() += 1;
        }
    }
    let killed_values: BTreeSet<String> = killed_lines.iter().map(|l| l.4.clone()).collect();
    let duplicates: Vec<&String> = times_seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(v, _)| v)
        .collect();
    for v in &duplicates {
        assert!(
            killed_values.contains(*v),
            "{v} processed twice but not by the killed member"
        );
    }
    // Per-key order held in every member.
    for (i, m) in members.iter().enumerate() {
        let mut last: HashMap<String, u32> = HashMap::new();
        for l in m.lines.lock().unwrap().iter() {
            let seq: u32 =
                l.4.split('-')
                    .nth(1)
                    .expect("key-seq")
                    .parse()
                    .expect("seq");
            if let Some(previous) = last.insert(l.3.clone(), seq) {
                assert!(
                    seq > previous,
                    "member {i}: key {} saw {seq} after {previous}",
                    l.3
                );
            }
        }
    }
    // No committed offset went backward.
    for (partition, seen) in committed.lock().unwrap().iter() {
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "partition {partition}: {seen:?}"
        );
    }
    println!(
        "consumer group kill test: {EVENTS} events, {} processed twice (all by the killed member, after its last commit), \
         the killed member's partitions {killed_partitions:?} consumed again {} ms after its SIGKILL (session timeout 3000 ms)",
        duplicates.len(),
        rebalance.as_millis()
    );
    for m in &mut members {
        m.kill();
    }
    cluster.stop_all();
}

//! Goal: the membership rules a long-running service depends on, on real processes:
//! a static member (`--instance-id`) SIGKILLed and restarted within its session timeout
//! takes back its partitions without moving anyone else's, and keeps them until its
//! session times out when it does not come back; a member SIGSTOPped past its session
//! loses its partitions to the others and, resumed, prints none of what they now own; the
//! committed offsets of a group that stays empty expire after `offsets_retention_ms`,
//! those of a group with a member do not.
//! Method: 3 nodes, RF 3; members are `evlog consume --group --follow --format json`
//! processes (processed = printed) or the client library's `Consumer`; the group's state
//! is read with `describe_group`.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cli_member::{wait_until, CliMember};
use common::TestCluster;
use evlog_client::{
    Client, ClientConfig, ConsumerConfig, ErrorCode, Event, GroupInfo, TopicPartition,
};
use futures::StreamExt;

const TOPIC: &str = "orders";

async fn connect(cluster: &TestCluster) -> Client {
    Client::with_config(ClientConfig::new(cluster.bootstrap()))
        .await
        .expect("connect")
}

async fn describe(client: &Client, group: &str) -> GroupInfo {
    client
        .admin()
        .describe_group(group)
        .await
        .expect("describe")
}

/// What the member with `instance` owns, per `group`.
fn owned_by_instance(group: &GroupInfo, instance: &str) -> BTreeSet<TopicPartition> {
    group
        .members
        .iter()
        .filter(|m| m.instance_id.as_deref() == Some(instance))
        .flat_map(|m| m.assigned.iter().cloned())
        .collect()
}

/// Waits until `group` has `members` members owning two partitions each and none revoking.
async fn wait_balanced(client: &Client, group: &str, members: usize) -> GroupInfo {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = match client.admin().describe_group(group).await {
            Ok(info) => info,
            // The members' first heartbeats have not created it yet.
            Err(e) if e.code() == Some(ErrorCode::UnknownGroup) => GroupInfo {
                group: group.into(),
                state: "unknown".into(),
                epoch: 0,
                members: Vec::new(),
                partitions: Vec::new(),
            },
            Err(e) => panic!("describe {group}: {e}"),
        };
        let balanced = info.members.len() == members
            && info
                .members
                .iter()
                .all(|m| m.assigned.len() == 2 && m.revoking.is_empty());
        if balanced {
            return info;
        }
        assert!(Instant::now() < deadline, "never balanced: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces `count` unkeyed events `prefix-i` spread over the partitions.
async fn produce(client: &Client, prefix: &str, count: usize) {
    let producer = client
        .producer(evlog_client::ProducerConfig::default())
        .expect("producer");
    let sends: Vec<_> = (0..count)
        .map(|i| producer.send(TOPIC, Event::new(format!("{prefix}-{i}"))))
        .collect();
    for send in sends {
        send.await.expect("acknowledged");
    }
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarted_within_its_session_keeps_its_partitions_without_a_rebalance() {
    const GROUP: &str = "static";
    const SESSION_MS: u64 = 10_000;
    let mut cluster =
        TestCluster::start_with_env(3, &[("EVLOG_GROUPS__HEARTBEAT_INTERVAL_MS", "300")]);
    let client = connect(&cluster).await;
    client
        .admin()
        .create_topic(TOPIC, 4, 3)
        .await
        .expect("create topic");
    let session = SESSION_MS.to_string();
    let static_member = |instance: &str| {
        CliMember::start(
            &cluster,
            TOPIC,
            GROUP,
            &["--instance-id", instance, "--session-timeout-ms", &session],
        )
    };
    let mut a = static_member("a");
    let b = static_member("b");
    let before = wait_balanced(&client, GROUP, 2).await;
    let a_parts = owned_by_instance(&before, "a");
    let b_parts = owned_by_instance(&before, "b");
    // The coordinator's view leads the members' own: wait until B got its partitions.
    wait_until("B to be assigned", Duration::from_secs(30), || {
        !b.said("assigned:").is_empty()
    })
    .await;
    let b_heard = b.stderr.lock().unwrap().len();
    let b_assignments = b.said("assigned:").len();

    // A crashes and comes back at once under the same instance id.
    a.kill();
    let killed_at = Instant::now();
    let a2 = static_member("a");
    let member_of = |info: &GroupInfo, instance: &str| -> Option<String> {
        info.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance))
            .map(|m| m.member_id.clone())
    };
    let old_a = member_of(&before, "a").expect("a member");
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let info = wait_balanced(&client, GROUP, 2).await;
        if member_of(&info, "a").is_some_and(|id| id != old_a) {
            break info;
        }
        assert!(
            Instant::now() < deadline,
            "the restart never joined: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took_back = killed_at.elapsed();
    assert_eq!(owned_by_instance(&after, "a"), a_parts, "{after:?}");
    assert_eq!(owned_by_instance(&after, "b"), b_parts, "{after:?}");
    assert!(
        took_back < Duration::from_millis(SESSION_MS),
        "took its partitions back after {took_back:?}, not within the session"
    );
    // Each consumes its own partitions; B was never rebalanced.
    produce(&client, "e", 200).await;
    wait_until("every event printed", Duration::from_secs(30), || {
        a2.printed() + b.printed() >= 200
    })
    .await;
    let printed_parts =
        |m: &CliMember| -> BTreeSet<u32> { m.lines.lock().unwrap().iter().map(|l| l.1).collect() };
    let indexes = |parts: &BTreeSet<TopicPartition>| -> BTreeSet<u32> {
        parts.iter().map(|tp| tp.partition).collect()
    };
    assert_eq!(printed_parts(&a2), indexes(&a_parts));
    assert_eq!(printed_parts(&b), indexes(&b_parts));
    let b_lines: Vec<String> = b.stderr.lock().unwrap()[b_heard..]
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    assert!(
        b_lines
            .iter()
            .all(|l| !l.starts_with("assigned:") && !l.starts_with("revoked:")),
        "B was rebalanced: {b_lines:?}"
    );

    // A dies for good: its partitions stay reserved for it until its session times out.
    let mut a2 = a2;
    a2.kill();
    let killed_at = Instant::now();
    let moved = |b: &CliMember| b.said("assigned:").len() > b_assignments;
    wait_until(
        "A's partitions to move to B",
        Duration::from_secs(40),
        || moved(&b),
    )
    .await;
    let moved_after = b.said("assigned:")[b_assignments].0 - killed_at;
    // Its last heartbeat was at most one interval (300 ms) before the kill.
    assert!(
        moved_after >= Duration::from_millis(SESSION_MS - 1_000),
        "moved after {moved_after:?}, before the session timeout"
    );
    println!(
        "static member: took its partitions back {} ms after its SIGKILL; when it did not \
         return they moved {} ms after (session timeout {SESSION_MS} ms)",
        took_back.as_millis(),
        moved_after.as_millis()
    );
    let mut b = b;
    b.kill();
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_paused_past_its_session_prints_nothing_of_what_it_lost() {
    const GROUP: &str = "paused";
    let mut cluster =
        TestCluster::start_with_env(3, &[("EVLOG_GROUPS__HEARTBEAT_INTERVAL_MS", "300")]);
    let client = connect(&cluster).await;
    client
        .admin()
        .create_topic(TOPIC, 4, 3)
        .await
        .expect("create topic");
    let member = || CliMember::start(&cluster, TOPIC, GROUP, &["--session-timeout-ms", "3000"]);
    let mut a = member();
    wait_until("A to own every partition", Duration::from_secs(30), || {
        !a.said("assigned:").is_empty()
    })
    .await;
    let mut b = member();
    wait_balanced(&client, GROUP, 2).await;

    // Events keep coming, so A's fetchers hold some when it stops.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (client, producing) = (client.clone(), producing.clone());
        tokio::spawn(async move {
            let mut batch = 0;
            while producing.load(Ordering::SeqCst) {
                produce(&client, &format!("b{batch}"), 20).await;
                batch += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            batch
        })
    };
    wait_until("both printing", Duration::from_secs(30), || {
        a.printed() > 50 && b.printed() > 50
    })
    .await;
    a.signal("STOP");
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = describe(&client, GROUP).await;
    assert_eq!(during.members.len(), 1, "A was expelled: {during:?}");
    assert_eq!(during.members[0].assigned.len(), 4, "{during:?}");
    a.signal("CONT");
    let resumed_at = Instant::now();
    wait_until(
        "A to say it lost its partitions",
        Duration::from_secs(20),
        || !a.said("lost:").is_empty(),
    )
    .await;
    wait_balanced(&client, GROUP, 2).await;
    producing.store(false, Ordering::SeqCst);
    let batches = producer.await.expect("producer");
    let values = |m: &CliMember| -> HashSet<String> {
        m.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.4.clone())
            .collect()
    };
    wait_until("every event printed", Duration::from_secs(30), || {
        values(&a).union(&values(&b)).count() >= batches * 20
    })
    .await;

    // A regained partitions only from B, after B revoked and committed them: nothing A
    // printed after it resumed was printed by B too.
    let b_values = values(&b);
    let a_after: Vec<String> = a
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.0 >= resumed_at)
        .map(|l| l.4.clone())
        .collect();
    let twice: Vec<&String> = a_after.iter().filter(|v| b_values.contains(*v)).collect();
    assert!(
        twice.is_empty(),
        "A printed {} events after resuming that B printed too (first {:?}); A's stderr:\n{}",
        twice.len(),
        twice.first(),
        a.stderr_text()
    );
    // What it lost is what it owned: two partitions, none of which B printed before.
    let lost: BTreeSet<u32> = a.said("lost:")[0]
        .1
        .trim_start_matches("lost:")
        .split(',')
        .map(|tp| {
            tp.trim()
                .rsplit('/')
                .next()
                .unwrap()
                .parse()
                .expect("index")
        })
        .collect();
    let b_before: BTreeSet<u32> = b
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.0 < stopped_at)
        .map(|l| l.1)
        .collect();
    assert_eq!(lost.len(), 2, "{lost:?}");
    assert!(lost.is_disjoint(&b_before), "{lost:?} / {b_before:?}");
    println!(
        "paused member: {} events printed after it resumed, none printed by the member that \
         took its partitions over",
        a_after.len()
    );
    a.kill();
    b.kill();
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_groups_offsets_expire_after_the_retention_and_a_live_groups_do_not() {
    const RETENTION_MS: u64 = 3_000;
    let retention = RETENTION_MS.to_string();
    let mut cluster =
        TestCluster::start_with_env(3, &[("EVLOG_GROUPS__OFFSETS_RETENTION_MS", &retention)]);
    let client = connect(&cluster).await;
    client
        .admin()
        .create_topic(TOPIC, 1, 3)
        .await
        .expect("create topic");
    produce(&client, "e", 10).await;
    // Consumes the 10 events as a member of `group`, commits them; the consumer.
    let consume_all = |group: &'static str| {
        let client = client.clone();
        async move {
            let mut consumer = client
                .consumer(ConsumerConfig::new(group).subscribe([TOPIC]))
                .expect("consumer");
            let mut values = Vec::new();
            while values.len() < 10 {
                let next = tokio::time::timeout(Duration::from_secs(30), consumer.next());
                let event = next.await.expect("an event in time").expect("open");
                let event = event.expect("event");
                values.push(String::from_utf8_lossy(&event.value).into_owned());
            }
            consumer.commit_sync().await.expect("commit");
            (consumer, values)
        }
    };
    let (empty, _) = consume_all("empty").await;
    let (live, _) = consume_all("live").await;
    empty.close().await;
    let emptied_at = Instant::now();

    let deadline = Instant::now() + Duration::from_secs(30);
    let expired_after = loop {
        match client.admin().describe_group("empty").await {
            Err(e) if e.code() == Some(ErrorCode::UnknownGroup) => break emptied_at.elapsed(),
            Err(e) => panic!("describe: {e}"),
            Ok(info) => assert_eq!(info.partitions[0].committed, Some(10), "{info:?}"),
        }
        assert!(Instant::now() < deadline, "the empty group never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        expired_after >= Duration::from_millis(RETENTION_MS - 500),
        "expired after {expired_after:?}, before the retention"
    );
    // The group with a member kept its offsets for longer than the retention.
    let kept = describe(&client, "live").await;
    assert_eq!(kept.members.len(), 1, "{kept:?}");
    assert_eq!(kept.partitions[0].committed, Some(10), "{kept:?}");
    let listed: Vec<String> = client
        .admin()
        .list_groups()
        .await
        .expect("list")
        .into_iter()
        .map(|g| g.group)
        .collect();
    assert_eq!(listed, vec!["live".to_string()]);
    live.close().await;

    // A new member of the expired group starts over (auto_offset_reset earliest).
    let (again, values) = consume_all("empty").await;
    assert_eq!(values.len(), 10, "{values:?}");
    again.close().await;
    println!(
        "offsets retention: an empty group expired {} ms after its last member left \
         (retention {RETENTION_MS} ms)",
        expired_after.as_millis()
    );
    cluster.stop_all();
}

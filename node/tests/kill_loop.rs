//! Goal: on real processes, under continuous load, no acknowledged event is lost,
//! duplicated or reordered however often nodes are SIGKILLed, and the cluster heals.
//!
//! Method: three real `evlog-node` processes; two topics (3 partitions and 1, RF 3);
//! three producers (several sends in flight, unique payloads) and, per partition, a
//! subscriber and a Read poller: the simulation's workload, on tokio. For
//! `EVLOG_KILL_CYCLES` cycles (default 50) a random node, the leader of a random
//! partition on even cycles, is SIGKILLed and restarted after a random pause. Then load
//! stops, the final logs are read, the nodes are stopped cleanly and each replica's
//! committed Raft log is read from its RocksDB, and the simulation's checkers judge the
//! history (vote observations exist only in simulation, so checker 4 sees none here).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestCluster;
use evlog_client::{Client, ClientConfig, Event, ProducerConfig};
use evlog_node::keys::{self, Cf};
use evlog_node::raft::state_machine::load_applied;
use evlog_node::storage::rocks::RocksTuning;
use evlog_node::storage::{RocksEngine, StorageEngine};
use evlog_node::types::PartitionId;
use evlog_sim_tests::checkers;
use evlog_sim_tests::history::{
    Consumed, History, LivenessProbe, Outcome, PartitionRef, Publish, ReplicaLog,
};
use evlog_sim_tests::workload::{self, TopicPlan, WorkloadPlan};
use rand::Rng;

/// Bound on each liveness step after the last restart.
const LIVENESS_BOUND: Duration = Duration::from_secs(30);

fn cycles() -> usize {
    std::env::var("EVLOG_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn plan() -> WorkloadPlan {
    WorkloadPlan {
        topics: vec![
            TopicPlan {
                name: "orders".into(),
                partitions: 3,
                replication_factor: 3,
            },
            TopicPlan {
                name: "audit".into(),
                partitions: 1,
                replication_factor: 3,
            },
        ],
        producers: 3,
        in_flight: 4,
        pause_ms_max: 20,
        deadline_ms: 20_000,
    }
}

fn client_config(cluster: &TestCluster, deadline_ms: u64) -> ClientConfig {
    ClientConfig::new(cluster.bootstrap())
        .with_operation_deadline_ms(deadline_ms)
        .with_request_timeout_ms(5_000)
}

fn partitions(plan: &WorkloadPlan) -> Vec<PartitionRef> {
    plan.topics
        .iter()
        .flat_map(|t| {
            (0..t.partitions).map(|index| PartitionRef {
                topic: t.name.clone(),
                index,
            })
        })
        .collect()
}

/// The node leading `partition`, as any live node reports it.
async fn leader_of(
    client: &Client,
    cluster: &TestCluster,
    partition: &PartitionRef,
) -> Option<u64> {
    for node in &cluster.nodes {
        if let Ok(info) = client
            .admin()
            .describe_topic_at(&node.addr, &partition.topic)
            .await
        {
            if let Some(leader) = info.partitions[partition.index as usize].leader_id {
                return Some(leader);
            }
        }
    }
    None
}

/// Polls `check` every 100 ms until it holds or `bound` passes; how long it took.
async fn within<F, Fut>(bound: Duration, mut check: F) -> Option<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed().as_millis() as u64);
        }
        if start.elapsed() > bound {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads a partition whole from its leader.
async fn read_whole(client: &Client, partition: &PartitionRef) -> Vec<Vec<u8>> {
    let mut log: Vec<Vec<u8>> = Vec::new();
    loop {
        let read = client
            .read(&partition.topic, partition.index, log.len() as u64, 1_000)
            .await
            .unwrap_or_else(|e| panic!("final read of {partition}: {e}"));
        let done = read.events.is_empty() && log.len() as u64 >= read.high_watermark;
        log.extend(read.events.into_iter().map(|e| e.value.to_vec()));
        if done {
            return log;
        }
    }
}

/// A stopped replica's committed Raft log of `group`, straight from its RocksDB.
async fn stored_raft_log(node: u64, data_dir: &std::path::Path, group: u64) -> ReplicaLog {
    let engine = RocksEngine::open(&data_dir.join("db"), RocksTuning::default())
        .await
        .expect("open replica db");
    let group = PartitionId(group);
    let applied = load_applied(&engine, group)
        .expect("applied record")
        .and_then(|a| a.last_applied)
        .map_or(0, |id| id.index);
    let entries = engine
        .scan(
            Cf::RaftLog,
            &keys::raft_log(group, 0),
            &keys::raft_log(group, applied + 1),
            usize::MAX,
        )
        .expect("scan raft log")
        .into_iter()
        .map(|(key, value)| (keys::second_u64(&key), value))
        .collect();
    ReplicaLog {
        node,
        committed_index: applied,
        entries,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_repeated_kill_9_of_any_node() {
    let mut cluster = TestCluster::start(3);
    let plan = plan();
    let admin = Client::new_lazy(client_config(&cluster, 60_000)).expect("client");
    for topic in &plan.topics {
        workload::create_topic(&admin, topic).await;
    }

    // Load: producers and consumers, recording the history.
    let publishes = Arc::new(Mutex::new(Vec::<Publish>::new()));
    let producing = Arc::new(AtomicBool::new(true));
    let consuming = Arc::new(AtomicBool::new(true));
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for producer in 0..plan.producers {
        tasks.push(tokio::spawn(workload::produce(
            format!("p{producer}"),
            client_config(&cluster, plan.deadline_ms),
            plan.clone(),
            publishes.clone(),
            producing.clone(),
            in_flight.clone(),
        )));
    }
    let mut consumed = Vec::new();
    for partition in partitions(&plan) {
        for subscribe in [true, false] {
            let record = Arc::new(Mutex::new(Consumed {
                consumer: format!(
                    "{}-{partition}",
                    if subscribe { "subscriber" } else { "reader" }
                ),
                partition: partition.clone(),
                events: Vec::new(),
            }));
            consumed.push(record.clone());
            let config = client_config(&cluster, 30_000);
            tasks.push(if subscribe {
                tokio::spawn(workload::follow(config, record, consuming.clone()))
            } else {
                tokio::spawn(workload::poll(config, record, consuming.clone()))
            });
        }
    }

    // The kill loop.
    let mut rng = rand::thread_rng();
    let all = partitions(&plan);
    for cycle in 0..cycles() {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1_200))).await;
        let victim = if cycle % 2 == 0 {
            let partition = &all[rng.gen_range(0..all.len())];
            leader_of(&admin, &cluster, partition).await
        } else {
            None
        }
        .unwrap_or_else(|| rng.gen_range(1..=3));
        cluster.kill_node(victim);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1_000))).await;
        cluster.start_node(victim);
        eprintln!("cycle {cycle}: SIGKILLed and restarted node {victim}");
    }
    let healed = Instant::now();

    // Liveness: every partition takes a new event; sends resolve; consumers catch up.
    let mut history = History::default();
    let probe = admin.producer(ProducerConfig::default()).expect("producer");
    let mut probes = Vec::new();
    for partition in &all {
        let payload = format!("probe-{partition}").into_bytes();
        let outcome = match probe
            .send_to(
                &partition.topic,
                partition.index,
                Event::new(payload.clone()),
            )
            .await
        {
            Ok(ack) => Outcome::Acked {
                partition: ack.partition,
                offset: ack.offset,
            },
            Err(e) => Outcome::Unknown(e.to_string()),
        };
        probes.push(Publish {
            producer: "probe".into(),
            topic: partition.topic.clone(),
            payload,
            outcome,
        });
    }
    let acked = probes
        .iter()
        .filter(|p| matches!(p.outcome, Outcome::Acked { .. }))
        .count();
    history.liveness.push(LivenessProbe {
        what: format!(
            "a new event acknowledged on each of {} partitions",
            all.len()
        ),
        took_ms: (acked == all.len()).then(|| healed.elapsed().as_millis() as u64),
        bound_ms: LIVENESS_BOUND.as_millis() as u64,
    });
    producing.store(false, Ordering::SeqCst);
    let bound = Duration::from_millis(plan.deadline_ms) + Duration::from_secs(5);
    let took = within(bound, || {
        let done = in_flight.load(Ordering::SeqCst) == 0;
        async move { done }
    })
    .await;
    history.liveness.push(LivenessProbe {
        what: "every send in flight resolved".into(),
        took_ms: took,
        bound_ms: bound.as_millis() as u64,
    });
    for partition in &all {
        history
            .final_logs
            .insert(partition.clone(), read_whole(&admin, partition).await);
    }
    let took = within(LIVENESS_BOUND, || {
        let caught_up = consumed.iter().all(|c| {
            let c = c.lock().expect("consumed");
            let end = history.final_logs[&c.partition].len() as u64;
            c.events.last().map_or(0, |(offset, _)| offset + 1) >= end
        });
        async move { caught_up }
    })
    .await;
    history.liveness.push(LivenessProbe {
        what: "every consumer caught up with the final logs".into(),
        took_ms: took,
        bound_ms: LIVENESS_BOUND.as_millis() as u64,
    });
    consuming.store(false, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("workload task");
    }

    // Replicas: level, then identical on disk after a clean stop.
    let mut groups = BTreeMap::new();
    for topic in &plan.topics {
        let info = admin
            .admin()
            .describe_topic(&topic.name)
            .await
            .expect("describe");
        for p in info.partitions {
            groups.insert(p.group_id, p.replicas);
        }
    }
    drop((admin, probe));
    cluster.stop_all();
    for (group, replicas) in &groups {
        let mut logs = Vec::new();
        for node in replicas {
            logs.push(stored_raft_log(*node, &cluster.node(*node).data_dir, *group).await);
        }
        history.replica_logs.insert(*group, logs);
    }
    history.publishes = std::mem::take(&mut *publishes.lock().expect("publishes"));
    history.publishes.extend(probes);
    history.consumed = consumed
        .iter()
        .map(|c| c.lock().expect("consumed").clone())
        .collect();

    let verdicts = checkers::check_all(&history);
    let unknown = history
        .publishes
        .iter()
        .filter(|p| matches!(p.outcome, Outcome::Unknown(_)))
        .count();
    eprintln!(
        "{} cycles; publishes {} (unknown {unknown}); events checked {}\n{}",
        cycles(),
        history.publishes.len(),
        history.final_event_count(),
        checkers::report(&verdicts)
    );
    assert!(
        verdicts.iter().all(|v| v.passed()),
        "checkers failed:\n{}",
        checkers::report(&verdicts)
    );
}

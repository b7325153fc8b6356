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
use evlog_client::{Client, ClientConfig};
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
        // Pipelined: retries of older requests land after newer ones across the kills.
        requests_in_flight: 3,
    }
}

fn client_config(cluster: &TestCluster, deadline_ms: u64) -> ClientConfig {
    ClientConfig::new(cluster.bootstrap())
        .with_operation_deadline_ms(deadline_ms)
        .with_request_timeout_ms(5_000)
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

/// The running workload: producers and consumers recording the history.
struct Load {
    publishes: Arc<Mutex<Vec<Publish>>>,
    consumed: Vec<Arc<Mutex<Consumed>>>,
    producing: Arc<AtomicBool>,
    consuming: Arc<AtomicBool>,
    in_flight: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cluster: &TestCluster, plan: &WorkloadPlan) -> Load {
        let mut load = Load {
            publishes: Arc::new(Mutex::new(Vec::new())),
            consumed: Vec::new(),
            producing: Arc::new(AtomicBool::new(true)),
            consuming: Arc::new(AtomicBool::new(true)),
            in_flight: Arc::new(AtomicU64::new(0)),
            tasks: Vec::new(),
        };
        for producer in 0..plan.producers {
            load.tasks.push(tokio::spawn(workload::produce(
                format!("p{producer}"),
                client_config(cluster, plan.deadline_ms),
                plan.clone(),
                load.publishes.clone(),
                load.producing.clone(),
                load.in_flight.clone(),
            )));
        }
        for partition in plan.partitions() {
            for kind in ["subscriber", "reader"] {
                let record = Arc::new(Mutex::new(Consumed {
                    consumer: format!("{kind}-{partition}"),
                    partition: partition.clone(),
                    events: Vec::new(),
                }));
                load.consumed.push(record.clone());
                let (config, running) = (client_config(cluster, 30_000), load.consuming.clone());
                load.tasks.push(if kind == "subscriber" {
                    tokio::spawn(workload::follow(config, record, running))
                } else {
                    tokio::spawn(workload::poll(config, record, running))
                });
            }
        }
        load
    }

    fn caught_up(&self, final_logs: &BTreeMap<PartitionRef, Vec<Vec<u8>>>) -> bool {
        self.consumed.iter().all(|c| {
            let c = c.lock().expect("consumed");
            let end = final_logs[&c.partition].len() as u64;
            c.events.last().map_or(0, |(offset, _)| offset + 1) >= end
        })
    }

    /// Stops the consumers and hands over what was recorded.
    async fn finish(self, history: &mut History) {
        self.consuming.store(false, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("workload task");
        }
        history.publishes = std::mem::take(&mut *self.publishes.lock().expect("publishes"));
        history.consumed = self
            .consumed
            .iter()
            .map(|c| c.lock().expect("consumed").clone())
            .collect();
    }
}

/// SIGKILLs a node (the leader of a random partition every other cycle) and restarts it
/// after a random pause, `cycles()` times.
async fn kill_cycles(cluster: &mut TestCluster, admin: &Client, partitions: &[PartitionRef]) {
    let mut rng = rand::thread_rng();
    for cycle in 0..cycles() {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1_200))).await;
        let victim = if cycle % 2 == 0 {
            let partition = &partitions[rng.gen_range(0..partitions.len())];
            leader_of(admin, cluster, partition).await
        } else {
            None
        }
        .unwrap_or_else(|| rng.gen_range(1..=3));
        cluster.kill_node(victim);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1_000))).await;
        cluster.start_node(victim);
        eprintln!("cycle {cycle}: SIGKILLed and restarted node {victim}");
    }
}

/// After the last restart: every partition takes a new event, sends in flight resolve,
/// the final logs are read and every consumer catches up with them.
async fn liveness(admin: &Client, plan: &WorkloadPlan, load: &Load, history: &mut History) {
    let healed = Instant::now();
    let partitions = plan.partitions();
    let probes = workload::probe_partitions(admin, &partitions).await;
    let acked = probes
        .iter()
        .filter(|p| matches!(p.outcome, Outcome::Acked { .. }))
        .count();
    history.liveness.push(LivenessProbe {
        what: format!(
            "a new event acknowledged on each of {} partitions",
            partitions.len()
        ),
        took_ms: (acked == partitions.len()).then(|| healed.elapsed().as_millis() as u64),
        bound_ms: LIVENESS_BOUND.as_millis() as u64,
    });
    load.producing.store(false, Ordering::SeqCst);
    let bound = Duration::from_millis(plan.deadline_ms) + Duration::from_secs(5);
    let in_flight = load.in_flight.clone();
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
    for partition in &partitions {
        let log = read_whole(admin, partition).await;
        history.final_logs.insert(partition.clone(), log);
    }
    let final_logs = history.final_logs.clone();
    let took = within(LIVENESS_BOUND, || {
        let caught_up = load.caught_up(&final_logs);
        async move { caught_up }
    })
    .await;
    history.liveness.push(LivenessProbe {
        what: "every consumer caught up with the final logs".into(),
        took_ms: took,
        bound_ms: LIVENESS_BOUND.as_millis() as u64,
    });
    history.publishes.extend(probes);
}

/// Stops every node cleanly and reads each replica's committed Raft log from disk.
async fn replica_logs(
    cluster: &mut TestCluster,
    admin: &Client,
    plan: &WorkloadPlan,
) -> BTreeMap<u64, Vec<ReplicaLog>> {
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
    cluster.stop_all();
    let mut logs = BTreeMap::new();
    for (group, replicas) in groups {
        let mut replica_logs = Vec::new();
        for node in replicas {
            replica_logs.push(stored_raft_log(node, &cluster.node(node).data_dir, group).await);
        }
        logs.insert(group, replica_logs);
    }
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_repeated_kill_9_of_any_node() {
    let mut cluster = TestCluster::start(3);
    let plan = plan();
    let admin = Client::new_lazy(client_config(&cluster, 60_000)).expect("client");
    for topic in &plan.topics {
        workload::create_topic(&admin, topic).await;
    }
    let load = Load::start(&cluster, &plan);
    kill_cycles(&mut cluster, &admin, &plan.partitions()).await;
    let mut history = History::default();
    liveness(&admin, &plan, &load, &mut history).await;
    let probes = std::mem::take(&mut history.publishes);
    load.finish(&mut history).await;
    history.publishes.extend(probes);
    history.replica_logs = replica_logs(&mut cluster, &admin, &plan).await;

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

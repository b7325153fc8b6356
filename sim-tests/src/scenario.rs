//! The durability scenario, one seed: start a cluster, run the workload under the
//! nemesis (safety phase), heal everything and demand that the cluster converges and
//! serves within its bounds (liveness phase), then collect the history and run every
//! checker on it.
//!
//! Liveness bounds, from the moment every fault is healed: a leader for every group and
//! a new event acknowledged on every partition within [`SERVE_BOUND`]; every consumer
//! caught up and every healthy replica level with its leader within
//! [`CONVERGE_BOUND`] more.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use evlog_client::{Client, ClientConfig};
use evlog_node::keys::{self, Cf};
use evlog_node::sim_hooks::{self, PlantedBug};
use evlog_node::types::PartitionId;
use madsim::rand::Rng;
use madsim::time::Instant;

use crate::checkers::{self, Verdict};
use crate::cluster::SimCluster;
use crate::group_workload::GroupWorkload;
use crate::history::{
    History, LivenessProbe, Outcome, PartitionRef, Publish, ReplicaLog, VoteSeen,
};
use crate::nemesis::{Fault, FaultMix, Nemesis};
use crate::workload::{probe_partitions, Workload, WorkloadPlan};

/// Leaders elected and a new event acknowledged everywhere, after the heal.
pub const SERVE_BOUND: Duration = Duration::from_secs(30);
/// Consumers caught up and replicas level, after serving again.
pub const CONVERGE_BOUND: Duration = Duration::from_secs(30);

/// What one seed runs.
#[derive(Debug, Clone)]
pub struct ScenarioConfig {
    pub cluster_size: u64,
    /// The faults; `None` draws a swarm mix from the seed.
    pub faults: Option<Vec<Fault>>,
    pub planted: Option<PlantedBug>,
    pub safety_phase: Duration,
    /// A simulated fsync takes a seed-drawn time in this range, in microseconds.
    pub fsync_latency_us: (u64, u64),
    /// A node that panics restarts instead of failing the run (for planted bugs, whose
    /// broken invariants may trip the node's own assertions before the checkers run).
    pub restart_on_panic: bool,
    /// This node starts this much later than the ones before it (`SimCluster::start_with`).
    pub late_start: Option<(u64, Duration)>,
    /// Produce requests in flight per partition and producer; `None` draws 1 to 5.
    pub requests_in_flight: Option<usize>,
    /// Run the consumer-group workload (members joining, leaving, crashing, cut off, paused);
    /// `None` draws it for half the seeds.
    pub groups: Option<bool>,
}

impl ScenarioConfig {
    /// The CI mix: 3 or 5 nodes (by seed parity), swarm faults, no planted bug.
    pub fn for_seed(seed: u64) -> ScenarioConfig {
        ScenarioConfig {
            cluster_size: if seed.is_multiple_of(2) { 5 } else { 3 },
            faults: None,
            planted: None,
            safety_phase: Duration::from_secs(20),
            fsync_latency_us: (100, 20_000),
            restart_on_panic: false,
            late_start: None,
            requests_in_flight: None,
            groups: None,
        }
    }

    /// The durability scenario with `bug` planted, under exactly `faults`.
    pub fn planted(bug: PlantedBug, cluster_size: u64, faults: &[Fault]) -> ScenarioConfig {
        ScenarioConfig {
            cluster_size,
            faults: Some(faults.to_vec()),
            planted: Some(bug),
            restart_on_panic: true,
            ..ScenarioConfig::for_seed(0)
        }
    }
}

/// The outcome of one seed.
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    pub seed: u64,
    pub cluster_size: u64,
    pub faults: BTreeMap<Fault, u64>,
    pub publishes: usize,
    pub acked: usize,
    pub unknown: usize,
    pub failed: usize,
    /// Extra copies in the final logs of events whose outcome was unknown.
    pub unknown_duplicates: usize,
    pub events_checked: usize,
    pub consumed: usize,
    /// Consumer-group churn steps by kind (empty without the group workload).
    pub member_churn: BTreeMap<&'static str, u64>,
    /// Events handed to group members' applications.
    pub group_deliveries: usize,
    pub verdicts: Vec<Verdict>,
    /// What happened, in order: part of the determinism fingerprint.
    pub trace: Vec<String>,
}

impl SeedReport {
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(Verdict::passed)
    }

    /// The checkers that failed.
    pub fn failed_checkers(&self) -> Vec<&'static str> {
        self.verdicts
            .iter()
            .filter(|v| !v.passed())
            .map(|v| v.checker)
            .collect()
    }

    pub fn summary(&self) -> String {
        format!(
            "seed {} ({} nodes): faults {:?}; publishes {} (acked {}, unknown {}, failed {}); duplicates of unknown {}; events checked {}, consumed {}\n{}",
            self.seed,
            self.cluster_size,
            self.faults,
            self.publishes,
            self.acked,
            self.unknown,
            self.failed,
            self.unknown_duplicates,
            self.events_checked,
            self.consumed,
            checkers::report(&self.verdicts)
        )
    }

    pub fn fingerprint(&self) -> String {
        format!("{}\n{}", self.summary(), self.trace.join("\n"))
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Polls `done` every 100 ms until it holds or `bound` passes; how long it took.
async fn within(bound: Duration, mut done: impl FnMut() -> bool) -> Option<u64> {
    let start = Instant::now();
    loop {
        if done() {
            return Some(elapsed_ms(start));
        }
        if start.elapsed() > bound {
            return None;
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(config: ScenarioConfig) -> SeedReport {
    let seed = madsim::runtime::Handle::current().seed();
    sim_hooks::plant(config.planted);
    let mut rng = madsim::rand::thread_rng();
    let (low, high) = config.fsync_latency_us;
    sim_hooks::set_fsync_latency(Duration::from_micros(rng.gen_range(low..=high)));
    let mix = match &config.faults {
        None => FaultMix::draw(&mut rng, config.cluster_size),
        Some(faults) => FaultMix::with(&mut rng, faults.clone(), config.cluster_size),
    };
    let mut plan = WorkloadPlan::draw(&mut rng, config.cluster_size);
    if let Some(requests) = config.requests_in_flight {
        plan.requests_in_flight = requests;
    }
    let groups = config.groups.unwrap_or_else(|| rng.gen_bool(0.5));
    let members = rng.gen_range(2..=3usize);
    let mut trace = vec![
        format!("mix {mix:?}"),
        format!("plan {plan:?}"),
        format!("groups {groups} members {members}"),
    ];

    let cluster = Arc::new(
        SimCluster::start_with(
            config.cluster_size,
            config.restart_on_panic,
            config.late_start,
        )
        .await,
    );
    let workload = Workload::start(&cluster, plan).await;
    trace.push(format!(
        "{:?} topics created",
        madsim::time::TimeHandle::current().elapsed()
    ));
    let group = groups.then(|| {
        let topics = workload
            .plan
            .topics
            .iter()
            .map(|t| t.name.clone())
            .collect();
        GroupWorkload::start(&cluster, topics, workload.plan.partitions(), members)
    });
    let churning = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let churn = group.clone().map(|group| {
        let (cluster, churning) = (cluster.clone(), churning.clone());
        madsim::task::spawn(async move {
            while churning.load(std::sync::atomic::Ordering::SeqCst) {
                let pause = madsim::rand::thread_rng().gen_range(1_000..=4_000);
                madsim::time::sleep(Duration::from_millis(pause)).await;
                group.churn_once(&cluster).await;
            }
        })
    });
    let nemesis = Nemesis::new(cluster.clone(), mix);
    nemesis.run(config.safety_phase).await;
    churning.store(false, std::sync::atomic::Ordering::SeqCst);
    if let Some(churn) = churn {
        let _ = churn.await;
    }
    nemesis.heal_all();
    if let Some(group) = &group {
        group.heal(&cluster);
    }
    trace.push(format!(
        "{:?} healed",
        madsim::time::TimeHandle::current().elapsed()
    ));

    let mut history = History::default();
    let mut member_churn = BTreeMap::new();
    let probe_publishes = liveness_phase(&cluster, &workload, &mut history).await;
    if let Some(group) = &group {
        group_liveness(group, &mut history).await;
        member_churn = group.churned();
        let (members, commits) = group.finish().await;
        history.group_members = members;
        history.group_commits = commits;
    }
    history.votes = sim_hooks::take_vote_observations()
        .into_iter()
        .map(|seen| VoteSeen {
            group: seen.group.0,
            node: seen.node,
            term: seen.term,
            voted_for: seen.voted_for,
            committed: seen.committed,
            at_start: seen.at_start,
        })
        .collect();
    let (mut publishes, consumed) = workload.finish().await;
    publishes.extend(probe_publishes);
    history.publishes = publishes;
    history.consumed = consumed;
    let verdicts = checkers::check_all(&history);
    for failure in cluster.start_failures.lock().expect("failures").iter() {
        trace.push(format!("node {} did not start: {}", failure.0, failure.1));
    }
    // Tasks of the run may outlive it (madsim does not drop them): close the disks now.
    cluster.close();
    let count =
        |f: fn(&Outcome) -> bool| history.publishes.iter().filter(|p| f(&p.outcome)).count();
    SeedReport {
        seed,
        cluster_size: config.cluster_size,
        faults: nemesis.injected(),
        publishes: history.publishes.len(),
        acked: count(|o| matches!(o, Outcome::Acked { .. })),
        unknown: count(|o| matches!(o, Outcome::Unknown(_))),
        failed: count(|o| matches!(o, Outcome::Failed(_))),
        unknown_duplicates: verdicts.iter().map(|v| v.tolerated).sum(),
        events_checked: history.final_event_count(),
        consumed: history.consumed.iter().map(|c| c.events.len()).sum(),
        member_churn,
        group_deliveries: history
            .group_members
            .iter()
            .flat_map(|m| &m.entries)
            .filter(|e| matches!(e, crate::history::MemberEntry::Consumed { .. }))
            .count(),
        verdicts,
        trace,
    }
}

/// After the heal the group's members consume everything and commit it.
async fn group_liveness(group: &GroupWorkload, history: &mut History) {
    let ends: Vec<(PartitionRef, u64)> = history
        .final_logs
        .iter()
        .map(|(p, log)| (p.clone(), log.len() as u64))
        .collect();
    let took = within(CONVERGE_BOUND, || {
        ends.iter().all(|(p, end)| group.committed(p) == Some(*end))
    })
    .await;
    history.liveness.push(LivenessProbe {
        what: "the consumer group committed every event of the final logs".into(),
        took_ms: took,
        bound_ms: CONVERGE_BOUND.as_millis() as u64,
    });
}

/// The liveness phase: every probe lands in `history.liveness`; the final logs and the
/// replicas' committed logs are collected. Returns the probe publishes.
async fn liveness_phase(
    cluster: &Arc<SimCluster>,
    workload: &Workload,
    history: &mut History,
) -> Vec<Publish> {
    let healed = Instant::now();
    let groups = cluster.groups();
    let took = within(SERVE_BOUND, || {
        groups
            .keys()
            .all(|group| cluster.leader_of(*group).is_some())
    })
    .await;
    history.liveness.push(LivenessProbe {
        what: format!("a leader for each of {} groups", groups.len()),
        took_ms: took,
        bound_ms: SERVE_BOUND.as_millis() as u64,
    });

    // A new event on every partition, from a fresh client.
    let partitions = workload.plan.partitions();
    let probe_node = cluster.client_node("probe", 200);
    let config = ClientConfig::new(cluster.addrs.clone())
        .with_operation_deadline_ms(SERVE_BOUND.as_millis() as u64);
    let to_probe = partitions.clone();
    let (probes, final_logs) = probe_node
        .spawn(async move {
            let client = Client::new_lazy(config).expect("client config");
            (probe_partitions(&client, &to_probe).await, client)
        })
        .await
        .map(|(probes, client)| (probes, Some(client)))
        .unwrap_or_else(|_| (Vec::new(), None));
    let acked = probes
        .iter()
        .filter(|p| matches!(p.outcome, Outcome::Acked { .. }))
        .count();
    history.liveness.push(LivenessProbe {
        what: format!(
            "a new event acknowledged on each of {} partitions",
            partitions.len()
        ),
        took_ms: (acked == partitions.len()).then(|| elapsed_ms(healed)),
        bound_ms: SERVE_BOUND.as_millis() as u64 * 2,
    });

    // Producers stop; what they have in flight resolves (ack or deadline).
    workload.stop_producing();
    let bound = Duration::from_millis(workload.plan.deadline_ms) + Duration::from_secs(5);
    let took = within(bound, || workload.sends_in_flight() == 0).await;
    history.liveness.push(LivenessProbe {
        what: "every send in flight resolved".into(),
        took_ms: took,
        bound_ms: bound.as_millis() as u64,
    });

    if let Some(client) = final_logs {
        history.final_logs = read_final_logs(&probe_node, client, partitions.clone()).await;
    }
    let converged = Instant::now();
    let took = within(CONVERGE_BOUND, || {
        partitions.iter().all(|p| {
            let end = history.final_logs.get(p).map_or(0, Vec::len) as u64;
            workload.consumed_up_to(p) >= end
        })
    })
    .await;
    history.liveness.push(LivenessProbe {
        what: "every consumer caught up with the final logs".into(),
        took_ms: took,
        bound_ms: CONVERGE_BOUND.as_millis() as u64,
    });
    let mut lagging = String::new();
    let took = within(CONVERGE_BOUND.saturating_sub(converged.elapsed()), || {
        let level = groups
            .iter()
            .try_for_each(|(group, hosts)| replicas_level(cluster, *group, hosts));
        lagging = level.clone().err().unwrap_or_default();
        level.is_ok()
    })
    .await;
    history.liveness.push(LivenessProbe {
        what: format!("every healthy replica level with its leader (last: {lagging})"),
        took_ms: took.map(|_| elapsed_ms(converged)),
        bound_ms: CONVERGE_BOUND.as_millis() as u64,
    });
    history.replica_logs = replica_logs(cluster, &groups);
    probes
}

/// Reads every partition whole from its leader.
async fn read_final_logs(
    node: &madsim::runtime::NodeHandle,
    client: Client,
    partitions: Vec<PartitionRef>,
) -> BTreeMap<PartitionRef, Vec<Vec<u8>>> {
    node.spawn(async move {
        let mut logs = BTreeMap::new();
        for partition in partitions {
            let mut log: Vec<Vec<u8>> = Vec::new();
            loop {
                match client
                    .read(&partition.topic, partition.index, log.len() as u64, 1_000)
                    .await
                {
                    Ok(read) => {
                        let done =
                            read.events.is_empty() && log.len() as u64 >= read.high_watermark;
                        for event in read.events {
                            assert_eq!(event.offset, log.len() as u64, "reads are dense");
                            log.push(event.value.to_vec());
                        }
                        if done {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("final read of {partition}: {e}");
                        break;
                    }
                }
            }
            logs.insert(partition, log);
        }
        logs
    })
    .await
    .expect("final read task")
}

/// Whether every replica of `group` that should be healthy runs and has applied all its
/// leader has; if not, why. A replica on a node whose disk was damaged may have stopped
/// for good.
fn replicas_level(cluster: &SimCluster, group: PartitionId, hosts: &[u64]) -> Result<(), String> {
    let leader = cluster
        .leader_of(group)
        .ok_or_else(|| format!("{group}: no leader"))?;
    let raft = cluster
        .view(leader)
        .and_then(|v| v.raft(group))
        .ok_or_else(|| format!("{group}: leader {leader} stopped"))?;
    let target = raft.metrics().borrow().last_log_index;
    for id in hosts {
        match cluster.view(*id).and_then(|v| v.raft(group)) {
            Some(raft) => {
                let applied = raft.metrics().borrow().last_applied.map(|l| l.index);
                if applied != target {
                    return Err(format!(
                        "{group}: node {id} applied {applied:?}, leader {leader} has {target:?}"
                    ));
                }
            }
            None if cluster.disk(*id).damaged_count() > 0 => {}
            None => return Err(format!("{group}: node {id} runs no replica")),
        }
    }
    Ok(())
}

/// The committed log of every running replica of every group, from its disk, without the
/// entries the nemesis damaged on purpose.
fn replica_logs(
    cluster: &SimCluster,
    groups: &BTreeMap<PartitionId, Vec<u64>>,
) -> BTreeMap<u64, Vec<ReplicaLog>> {
    let mut logs = BTreeMap::new();
    for (group, hosts) in groups {
        let mut replicas = Vec::new();
        for id in hosts {
            let Some(raft) = cluster.view(*id).and_then(|v| v.raft(*group)) else {
                continue;
            };
            let Some(applied) = raft.metrics().borrow().last_applied else {
                continue;
            };
            let disk = cluster.disk(*id);
            let entries = disk
                .scan_all(
                    Cf::RaftLog,
                    &keys::raft_log(*group, 0),
                    &keys::raft_log(*group, applied.index + 1),
                )
                .into_iter()
                .filter(|(key, _)| !disk.is_damaged(Cf::RaftLog, key))
                .map(|(key, value)| (keys::second_u64(&key), value))
                .collect();
            replicas.push(ReplicaLog {
                node: *id,
                committed_index: applied.index,
                entries,
            });
        }
        logs.insert(group.0, replicas);
    }
    logs
}

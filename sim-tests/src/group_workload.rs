//! The consumer-group workload: members of one group consume every topic of the plan with
//! the real `Consumer`, each on its own client node, while a churn task makes members
//! join, leave cleanly, crash (their node dies), get cut off from the cluster (their
//! node's links clogged) and pause (their node is not scheduled) on top of the nemesis' faults to the servers. Every member keeps
//! its own log (assigned, released, consumed: `MemberLog`); an observer records the
//! group's committed offsets as it fetches them. The group checkers judge both.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog_client::{Client, ClientConfig, ConsumerConfig, TopicPartition};
use futures::StreamExt;
use madsim::rand::Rng;
use madsim::runtime::{Handle, NodeHandle};

use crate::cluster::SimCluster;
use crate::history::{CommitSeen, MemberEntry, MemberLog, PartitionRef};

/// The group every member belongs to.
pub const GROUP: &str = "sim-group";

/// Milliseconds since the run started (simulated time).
fn now_ms() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_millis() as u64
}

fn partition_ref(tp: &TopicPartition) -> PartitionRef {
    PartitionRef {
        topic: tp.topic.clone(),
        index: tp.partition,
    }
}

/// One member and the node it runs on.
struct Member {
    node: NodeHandle,
    log: Arc<Mutex<MemberLog>>,
    /// Set to ask the member to close (commit, leave).
    closing: Arc<AtomicBool>,
    alive: bool,
}

/// The running group workload.
pub struct GroupWorkload {
    cluster_addrs: Vec<String>,
    topics: Vec<String>,
    members: Mutex<Vec<Member>>,
    next_index: Mutex<u8>,
    commits: Arc<Mutex<Vec<CommitSeen>>>,
    observing: Arc<AtomicBool>,
    /// Churn steps taken, by kind (join, leave, crash, cut, pause).
    churned: Mutex<BTreeMap<&'static str, u64>>,
    _observer: NodeHandle,
}

impl GroupWorkload {
    /// Starts `members` members, the commit observer and a zombie that commits offset 0
    /// of every partition in `partitions` as a member that is not in the group (every
    /// commit must be refused: FENCED_MEMBER).
    pub fn start(
        cluster: &SimCluster,
        topics: Vec<String>,
        partitions: Vec<PartitionRef>,
        members: usize,
    ) -> Arc<GroupWorkload> {
        let observer = cluster.client_node("group-observer", 150);
        let commits: Arc<Mutex<Vec<CommitSeen>>> = Arc::default();
        let observing = Arc::new(AtomicBool::new(true));
        let config = ClientConfig::new(cluster.addrs.clone()).with_operation_deadline_ms(2_000);
        observer.spawn(observe(config, commits.clone(), observing.clone()));
        observer.spawn(zombie(cluster.addrs.clone(), partitions, observing.clone()));
        let workload = Arc::new(GroupWorkload {
            cluster_addrs: cluster.addrs.clone(),
            topics,
            members: Mutex::new(Vec::new()),
            next_index: Mutex::new(160),
            commits,
            observing,
            churned: Mutex::default(),
            _observer: observer,
        });
        for _ in 0..members {
            workload.join(cluster);
        }
        workload
    }

    /// A new member on a new client node.
    fn join(&self, cluster: &SimCluster) {
        let index = {
            let mut next = self.next_index.lock().expect("index");
            *next = next.checked_add(1).expect("fewer than 95 members per run");
            *next
        };
        let name = format!("member-{index}");
        let node = cluster.client_node(&name, index);
        let log = Arc::new(Mutex::new(MemberLog {
            member: name,
            entries: Vec::new(),
        }));
        let closing = Arc::new(AtomicBool::new(false));
        let mut rng = madsim::rand::thread_rng();
        let consumer = ConsumerConfig::new(GROUP)
            .subscribe(self.topics.clone())
            .with_auto_commit_interval_ms(rng.gen_range(200..=2_000))
            .with_session_timeout_ms(rng.gen_range(2_000..=5_000));
        let config =
            ClientConfig::new(self.cluster_addrs.clone()).with_operation_deadline_ms(10_000);
        node.spawn(consume(config, consumer, log.clone(), closing.clone()));
        self.members.lock().expect("members").push(Member {
            node,
            log,
            closing,
            alive: true,
        });
    }

    /// One churn step: a member joins, leaves, crashes, is cut off or paused for a while.
    pub async fn churn_once(&self, cluster: &SimCluster) {
        let (action, pick, fault_ms) = {
            let mut rng = madsim::rand::thread_rng();
            (
                rng.gen_range(0..5u8),
                rng.gen_range(0..usize::MAX),
                rng.gen_range(1_000..=8_000),
            )
        };
        let alive: Vec<usize> = {
            let members = self.members.lock().expect("members");
            members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.alive)
                .map(|(i, _)| i)
                .collect()
        };
        let action = if alive.len() <= 1 { 0 } else { action };
        let kind = ["join", "leave", "crash", "cut", "pause"][usize::from(action)];
        *self
            .churned
            .lock()
            .expect("churned")
            .entry(kind)
            .or_default() += 1;
        if action == 0 {
            return self.join(cluster);
        }
        let victim = alive[pick % alive.len()];
        match action {
            1 => self.members.lock().expect("members")[victim]
                .closing
                .store(true, Ordering::SeqCst),
            2 => self.crash(victim),
            3 => {
                let node = self.members.lock().expect("members")[victim].node.id();
                madsim::net::NetSim::current().clog_node(node);
                madsim::time::sleep(Duration::from_millis(fault_ms)).await;
                madsim::net::NetSim::current().unclog_node(node);
            }
            _ => {
                // A stop-the-world pause (GC, a stalled VM): shorter or longer than the
                // member's session (2-5 s).
                let node = self.members.lock().expect("members")[victim].node.id();
                Handle::current().pause(node);
                madsim::time::sleep(Duration::from_millis(fault_ms)).await;
                Handle::current().resume(node);
            }
        }
    }

    /// Kills a member's node: its holdings end now (a dead process delivers nothing).
    fn crash(&self, index: usize) {
        let mut members = self.members.lock().expect("members");
        let member = &mut members[index];
        Handle::current().kill(member.node.id());
        member.alive = false;
        let mut log = member.log.lock().expect("member log");
        let held = held(&log);
        let at_ms = now_ms();
        for partition in held {
            log.entries.push(MemberEntry::Released { at_ms, partition });
        }
    }

    /// Unclogs every member and makes sure at least one is alive (after the heal).
    pub fn heal(&self, cluster: &SimCluster) {
        let any_alive = {
            let members = self.members.lock().expect("members");
            for m in members.iter().filter(|m| m.alive) {
                madsim::net::NetSim::current().unclog_node(m.node.id());
                Handle::current().resume(m.node.id());
            }
            members
                .iter()
                .any(|m| m.alive && !m.closing.load(Ordering::SeqCst))
        };
        if !any_alive {
            self.join(cluster);
        }
    }

    /// Churn steps taken so far, by kind.
    pub fn churned(&self) -> BTreeMap<&'static str, u64> {
        self.churned.lock().expect("churned").clone()
    }

    /// The last committed offset the observer saw for `partition`.
    pub fn committed(&self, partition: &PartitionRef) -> Option<u64> {
        self.commits
            .lock()
            .expect("commits")
            .iter()
            .rev()
            .find(|c| &c.partition == partition)
            .map(|c| c.offset)
    }

    /// Closes every live member, stops the observer; the members' logs and the commits.
    pub async fn finish(&self) -> (Vec<MemberLog>, Vec<CommitSeen>) {
        let members: Vec<(Arc<AtomicBool>, bool)> = self
            .members
            .lock()
            .expect("members")
            .iter()
            .map(|m| (m.closing.clone(), m.alive))
            .collect();
        for (closing, _) in &members {
            closing.store(true, Ordering::SeqCst);
        }
        // Closing commits and leaves: give it a few seconds.
        madsim::time::sleep(Duration::from_secs(3)).await;
        self.observing.store(false, Ordering::SeqCst);
        madsim::time::sleep(Duration::from_millis(500)).await;
        let logs = self
            .members
            .lock()
            .expect("members")
            .iter()
            .map(|m| m.log.lock().expect("member log").clone())
            .collect();
        let commits = std::mem::take(&mut *self.commits.lock().expect("commits"));
        (logs, commits)
    }
}

/// The partitions `log` shows as held now.
fn held(log: &MemberLog) -> Vec<PartitionRef> {
    let mut held = std::collections::BTreeSet::new();
    for entry in &log.entries {
        match entry {
            MemberEntry::Assigned { partition, .. } => {
                held.insert(partition.clone());
            }
            MemberEntry::Released { partition, .. } => {
                held.remove(partition);
            }
            MemberEntry::Consumed { .. } => {}
        }
    }
    held.into_iter().collect()
}

/// One member: consumes until asked to close, logging what it holds and consumes.
async fn consume(
    config: ClientConfig,
    consumer: ConsumerConfig,
    log: Arc<Mutex<MemberLog>>,
    closing: Arc<AtomicBool>,
) {
    let client = Client::new_lazy(config).expect("client config");
    let (on_assigned, on_revoked, on_lost) = (log.clone(), log.clone(), log.clone());
    let consumer = consumer
        .on_assigned(move |tps| {
            let mut log = on_assigned.lock().expect("member log");
            let at_ms = now_ms();
            for tp in tps {
                log.entries.push(MemberEntry::Assigned {
                    at_ms,
                    partition: partition_ref(tp),
                });
            }
        })
        .on_revoked(move |tps| {
            let mut log = on_revoked.lock().expect("member log");
            let at_ms = now_ms();
            for tp in tps {
                log.entries.push(MemberEntry::Released {
                    at_ms,
                    partition: partition_ref(tp),
                });
            }
        })
        .on_lost(move |lost| {
            // A member paused past its session learns of the loss only when it runs again;
            // it handed nothing out after `held_until`, and that is when its holding ended.
            let mut log = on_lost.lock().expect("member log");
            let since = tokio::time::Instant::now().saturating_duration_since(lost.held_until);
            let at_ms = now_ms().saturating_sub(since.as_millis() as u64);
            for tp in &lost.partitions {
                log.entries.push(MemberEntry::Released {
                    at_ms,
                    partition: partition_ref(tp),
                });
            }
        });
    let Ok(mut consumer) = client.consumer(consumer) else {
        return;
    };
    {
        let mut log = log.lock().expect("member log");
        log.member = format!("{} ({})", log.member, consumer.member_id());
    }
    while !closing.load(Ordering::SeqCst) {
        let next = tokio::time::timeout(Duration::from_millis(200), consumer.next()).await;
        match next {
            Ok(Some(Ok(event))) => {
                log.lock()
                    .expect("member log")
                    .entries
                    .push(MemberEntry::Consumed {
                        at_ms: now_ms(),
                        partition: PartitionRef {
                            topic: event.topic.clone(),
                            index: event.partition,
                        },
                        offset: event.offset,
                    })
            }
            Ok(Some(Err(e))) => tracing::debug!("member: {e}"),
            Ok(None) => return,
            Err(_) => {}
        }
    }
    consumer.close().await;
}

/// Fetches the group's committed offsets every 250 ms.
async fn observe(
    config: ClientConfig,
    commits: Arc<Mutex<Vec<CommitSeen>>>,
    observing: Arc<AtomicBool>,
) {
    let client = Client::new_lazy(config).expect("client config");
    while observing.load(Ordering::SeqCst) {
        if let Ok(offsets) = client.admin().fetch_offsets(GROUP).await {
            let at_ms = now_ms();
            let mut seen = commits.lock().expect("commits");
            for o in offsets {
                seen.push(CommitSeen {
                    at_ms,
                    partition: partition_ref(&o.partition),
                    offset: o.next_offset,
                });
            }
        }
        madsim::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A zombie: a member the group does not know (as one expelled long ago) committing offset
/// 0 of every partition to every node, every 1-3 s. A correct coordinator refuses each
/// commit; one that accepted them would move committed offsets back.
async fn zombie(addrs: Vec<String>, partitions: Vec<PartitionRef>, running: Arc<AtomicBool>) {
    use evlog_proto::evlog::v1 as pb;
    use evlog_proto::evlog::v1::groups_client::GroupsClient;
    let request = pb::CommitOffsetsRequest {
        group: GROUP.into(),
        member_id: "zombie".into(),
        member_epoch: 1,
        offsets: partitions
            .iter()
            .map(|p| pb::OffsetCommit {
                partition: Some(pb::TopicPartition {
                    topic: p.topic.clone(),
                    partition: p.index,
                }),
                next_offset: 0,
                metadata: String::new(),
            })
            .collect(),
    };
    while running.load(Ordering::SeqCst) {
        let pause = madsim::rand::thread_rng().gen_range(1_000..=3_000);
        madsim::time::sleep(Duration::from_millis(pause)).await;
        for addr in &addrs {
            let attempt = async {
                let mut client = GroupsClient::connect(format!("http://{addr}")).await.ok()?;
                client.commit_offsets(request.clone()).await.ok()
            };
            let _ = tokio::time::timeout(Duration::from_millis(500), attempt).await;
        }
    }
}

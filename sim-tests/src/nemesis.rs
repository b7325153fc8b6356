//! The nemesis: seeded, randomised fault injection, swarm style. Each seed draws its own
//! mix (which kinds of fault, how often, how long) so that across seeds every fault meets
//! every other at many rates, instead of every seed running the same blend.
//!
//! Every fault heals itself after its duration (a restart, a resume, an unclog), and
//! [`Nemesis::heal_all`] repairs everything at once for the liveness phase. Disk damage
//! (bit flips, torn writes) only ever hits the seed's *corruptible* nodes, at most a
//! minority: losing a majority's disks is outside the durability contract.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog_node::types::PartitionId;
use madsim::net::NetSim;
use madsim::rand::seq::SliceRandom;
use madsim::rand::Rng;

use crate::cluster::SimCluster;

/// The smallest replication factor the workload uses (see `workload::WorkloadPlan`).
pub const SMALLEST_REPLICATION_FACTOR: u64 = 3;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// A node's process dies (SIGKILL) and restarts later; its page cache survives.
    Crash,
    /// A node stops being scheduled (a GC pause, a stalled VM) and resumes later.
    Pause,
    /// The nodes split into a minority and a majority, both directions.
    Partition,
    /// The leader of a random group is cut off from everyone, clients included.
    IsolateLeader,
    /// One direction of one link drops everything.
    AsymmetricLink,
    /// Every link drops a share of its packets.
    PacketLoss,
    /// Every link gets slow.
    LatencySpike,
    /// One node loses power: unsynced writes are lost.
    PowerFailOne,
    /// A minority of nodes lose power at once.
    PowerFailMinority,
    /// Every node loses power at once.
    PowerFailAll,
    /// One bit of one stored log entry flips on a corruptible node.
    BitFlip,
    /// A corruptible node loses power in the middle of a write: the write is torn.
    TornWrite,
    /// The leader of a random group is killed and comes back quickly, again and again.
    LeaderChurn,
    /// A node's next fsync fails (EIO): it must crash, and comes back without what it
    /// had not synced.
    FsyncFailure,
}

impl Fault {
    pub const ALL: [Fault; 14] = [
        Fault::Crash,
        Fault::Pause,
        Fault::Partition,
        Fault::IsolateLeader,
        Fault::AsymmetricLink,
        Fault::PacketLoss,
        Fault::LatencySpike,
        Fault::PowerFailOne,
        Fault::PowerFailMinority,
        Fault::PowerFailAll,
        Fault::BitFlip,
        Fault::TornWrite,
        Fault::LeaderChurn,
        Fault::FsyncFailure,
    ];

    fn damages_disk(self) -> bool {
        matches!(self, Fault::BitFlip | Fault::TornWrite)
    }
}

/// A seed's fault mix.
#[derive(Debug, Clone)]
pub struct FaultMix {
    pub faults: Vec<Fault>,
    /// Time between two faults, uniform in this range.
    pub interval_ms: (u64, u64),
    /// How long a fault lasts before it heals itself, uniform in this range.
    pub duration_ms: (u64, u64),
    /// The nodes whose disks may be damaged (at most a minority).
    pub corruptible: Vec<u64>,
}

impl FaultMix {
    /// Swarm: each kind of fault is in with probability 1/2 (at least one is), with
    /// seed-drawn rates and durations.
    pub fn draw(rng: &mut impl Rng, cluster_size: u64) -> FaultMix {
        let mut faults: Vec<Fault> = Fault::ALL
            .into_iter()
            .filter(|_| rng.gen_bool(0.5))
            .collect();
        if faults.is_empty() {
            faults.push(*Fault::ALL.choose(rng).expect("faults"));
        }
        let interval_min = rng.gen_range(200..=2_000);
        let duration_min = rng.gen_range(100..=2_000);
        FaultMix::with(rng, faults, cluster_size).rates(
            (interval_min, interval_min * 3),
            (duration_min, duration_min * 4),
        )
    }

    /// Exactly these faults, default rates.
    pub fn with(rng: &mut impl Rng, faults: Vec<Fault>, cluster_size: u64) -> FaultMix {
        // Damage must stay a minority of every group's replicas: with partitions of
        // replication factor 3, one node, even in a five-node cluster (two damaged nodes
        // could hold two replicas of one partition: a majority of its disks lost).
        let minority = (cluster_size.min(SMALLEST_REPLICATION_FACTOR) - 1) / 2;
        let mut nodes: Vec<u64> = (1..=cluster_size).collect();
        nodes.shuffle(rng);
        let corruptible = if faults.iter().any(|f| f.damages_disk()) {
            nodes[..rng.gen_range(1..=minority as usize)].to_vec()
        } else {
            Vec::new()
        };
        FaultMix {
            faults,
            interval_ms: (300, 1_500),
            duration_ms: (200, 3_000),
            corruptible,
        }
    }

    pub fn rates(mut self, interval_ms: (u64, u64), duration_ms: (u64, u64)) -> FaultMix {
        self.interval_ms = interval_ms;
        self.duration_ms = duration_ms;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Up,
    Down,
    Paused,
}

/// The fault injector of one run.
pub struct Nemesis {
    cluster: Arc<SimCluster>,
    mix: FaultMix,
    nodes: Mutex<Vec<NodeState>>,
    injected: Mutex<BTreeMap<Fault, u64>>,
}

fn rng() -> madsim::rand::GlobalRng {
    madsim::rand::thread_rng()
}

impl Nemesis {
    pub fn new(cluster: Arc<SimCluster>, mix: FaultMix) -> Arc<Nemesis> {
        let nodes = vec![NodeState::Up; cluster.size as usize];
        Arc::new(Nemesis {
            cluster,
            mix,
            nodes: Mutex::new(nodes),
            injected: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn mix(&self) -> &FaultMix {
        &self.mix
    }

    /// Faults injected so far, by kind.
    pub fn injected(&self) -> BTreeMap<Fault, u64> {
        self.injected.lock().expect("injected").clone()
    }

    /// Injects faults for `duration`, one every drawn interval.
    pub async fn run(self: &Arc<Self>, duration: Duration) {
        let end = madsim::time::Instant::now() + duration;
        loop {
            let pause = rng().gen_range(self.mix.interval_ms.0..=self.mix.interval_ms.1);
            madsim::time::sleep(Duration::from_millis(pause)).await;
            if madsim::time::Instant::now() >= end {
                return;
            }
            let fault = *self.mix.faults.choose(&mut rng()).expect("a fault");
            if self.inject(fault) {
                *self
                    .injected
                    .lock()
                    .expect("injected")
                    .entry(fault)
                    .or_default() += 1;
            }
        }
    }

    fn state(&self, id: u64) -> NodeState {
        self.nodes.lock().expect("nodes")[(id - 1) as usize]
    }

    fn set_state(&self, id: u64, state: NodeState) {
        self.nodes.lock().expect("nodes")[(id - 1) as usize] = state;
    }

    /// Nodes up: neither taken down by the nemesis nor crashed on their own. A node that
    /// crashed on a failed fsync belongs to its supervisor (madsim restarts it) until it
    /// boots: the nemesis must not kill or restart it meanwhile, as two restarts of one
    /// node without a kill between them leave madsim routing to a dead incarnation.
    fn up_nodes(&self) -> Vec<u64> {
        self.cluster.ids().filter(|id| self.is_up(*id)).collect()
    }

    fn is_up(&self, id: u64) -> bool {
        self.state(id) == NodeState::Up && !self.cluster.disk(id).crashed()
    }

    fn duration(&self) -> Duration {
        Duration::from_millis(rng().gen_range(self.mix.duration_ms.0..=self.mix.duration_ms.1))
    }

    /// Runs `heal` after `after`, unless everything was healed meanwhile (it then finds
    /// nothing to do: every heal is idempotent).
    fn later(self: &Arc<Self>, after: Duration, heal: impl FnOnce(&Nemesis) + Send + 'static) {
        let nemesis = self.clone();
        madsim::task::spawn(async move {
            madsim::time::sleep(after).await;
            heal(&nemesis);
        });
    }

    /// Restarts `id` after `after` if it is still down.
    fn restart_later(self: &Arc<Self>, id: u64, after: Duration) {
        self.later(after, move |nemesis| nemesis.restart(id));
    }

    fn restart(&self, id: u64) {
        if self.state(id) == NodeState::Down {
            self.cluster.restart(id);
            self.set_state(id, NodeState::Up);
        }
    }

    /// The node leading a random group, as the running nodes see it.
    fn some_leader(&self) -> Option<u64> {
        let groups: Vec<PartitionId> = self.cluster.groups().into_keys().collect();
        let group = *groups.choose(&mut rng())?;
        self.cluster.leader_of(group)
    }

    /// Injects one fault; false if it found nothing to hit (e.g. every node down).
    fn inject(self: &Arc<Self>, fault: Fault) -> bool {
        tracing::info!("nemesis: {fault:?}");
        match fault {
            Fault::Crash | Fault::LeaderChurn | Fault::Pause => self.inject_process(fault),
            Fault::Partition
            | Fault::IsolateLeader
            | Fault::AsymmetricLink
            | Fault::PacketLoss
            | Fault::LatencySpike => self.inject_network(fault),
            Fault::PowerFailOne
            | Fault::PowerFailMinority
            | Fault::PowerFailAll
            | Fault::FsyncFailure
            | Fault::BitFlip
            | Fault::TornWrite => self.inject_disk(fault),
        }
    }

    /// Crashes, leader churn, pauses.
    fn inject_process(self: &Arc<Self>, fault: Fault) -> bool {
        let cluster = &self.cluster;
        match fault {
            Fault::Crash => {
                let Some(&id) = self.up_nodes().choose(&mut rng()) else {
                    return false;
                };
                cluster.kill(id);
                self.set_state(id, NodeState::Down);
                self.restart_later(id, self.duration());
            }
            Fault::LeaderChurn => {
                let Some(id) = self.some_leader() else {
                    return false;
                };
                if !self.is_up(id) {
                    return false;
                }
                cluster.kill(id);
                self.set_state(id, NodeState::Down);
                self.restart_later(id, Duration::from_millis(rng().gen_range(100..=1_000)));
            }
            Fault::Pause => {
                let Some(&id) = self.up_nodes().choose(&mut rng()) else {
                    return false;
                };
                cluster.pause(id);
                self.set_state(id, NodeState::Paused);
                self.later(self.duration(), move |nemesis| {
                    if nemesis.state(id) == NodeState::Paused {
                        nemesis.cluster.resume(id);
                        nemesis.set_state(id, NodeState::Up);
                    }
                });
            }
            _ => unreachable!("{fault:?} is not a process fault"),
        }
        true
    }

    /// Splits, isolation, one-way links, packet loss, latency.
    fn inject_network(self: &Arc<Self>, fault: Fault) -> bool {
        let cluster = &self.cluster;
        let minority = ((cluster.size - 1) / 2) as usize;
        match fault {
            Fault::Partition => {
                let mut ids: Vec<u64> = cluster.ids().collect();
                ids.shuffle(&mut rng());
                let side = ids[..rng().gen_range(1..=minority.max(1))].to_vec();
                cluster.split(&side);
                self.later(self.duration(), move |nemesis| {
                    nemesis.cluster.unsplit(&side)
                });
            }
            Fault::IsolateLeader => {
                let Some(id) = self.some_leader() else {
                    return false;
                };
                cluster.isolate(id);
                self.later(self.duration(), move |nemesis| {
                    nemesis.cluster.unisolate(id)
                });
            }
            Fault::AsymmetricLink => {
                let mut ids: Vec<u64> = cluster.ids().collect();
                ids.shuffle(&mut rng());
                let (from, to) = (ids[0], ids[1]);
                cluster.clog_link(from, to);
                self.later(self.duration(), move |nemesis| {
                    nemesis.cluster.unclog_link(from, to)
                });
            }
            Fault::PacketLoss => {
                let rate = rng().gen_range(0.01..0.2);
                NetSim::current().update_config(|config| config.packet_loss_rate = rate);
                self.later(self.duration(), |_| {
                    NetSim::current().update_config(|config| config.packet_loss_rate = 0.0)
                });
            }
            Fault::LatencySpike => {
                let high = rng().gen_range(50..=500);
                NetSim::current().update_config(|config| {
                    config.send_latency = Duration::from_millis(1)..Duration::from_millis(high)
                });
                self.later(self.duration(), |_| reset_latency());
            }
            _ => unreachable!("{fault:?} is not a network fault"),
        }
        true
    }

    /// Power failures, fsync failures, bit flips, torn writes.
    fn inject_disk(self: &Arc<Self>, fault: Fault) -> bool {
        let cluster = &self.cluster;
        let minority = ((cluster.size - 1) / 2) as usize;
        match fault {
            Fault::PowerFailOne | Fault::PowerFailMinority | Fault::PowerFailAll => {
                let mut victims: Vec<u64> = cluster
                    .ids()
                    .filter(|id| {
                        self.state(*id) != NodeState::Paused && !cluster.disk(*id).crashed()
                    })
                    .collect();
                victims.shuffle(&mut rng());
                let count = match fault {
                    Fault::PowerFailOne => 1,
                    Fault::PowerFailMinority => rng().gen_range(1..=minority.max(1)),
                    _ => victims.len(),
                };
                victims.truncate(count);
                if victims.is_empty() {
                    return false;
                }
                let back_after = self.duration();
                for id in victims {
                    let failure = cluster.power_fail(id, false);
                    tracing::info!("power failure of node {id}: {failure:?}");
                    self.set_state(id, NodeState::Down);
                    self.restart_later(id, back_after);
                }
            }
            Fault::FsyncFailure => {
                let Some(&id) = self.up_nodes().choose(&mut rng()) else {
                    return false;
                };
                cluster.disk(id).fail_next_sync();
            }
            Fault::BitFlip => {
                let Some(&id) = self.mix.corruptible.choose(&mut rng()) else {
                    return false;
                };
                let flipped = cluster.disk(id).flip_bit(&mut rng());
                tracing::info!("bit flip on node {id}: {flipped:02x?}");
                return flipped.is_some();
            }
            Fault::TornWrite => {
                let candidates: Vec<u64> = self
                    .mix
                    .corruptible
                    .iter()
                    .copied()
                    .filter(|id| self.is_up(*id))
                    .collect();
                let Some(&id) = candidates.choose(&mut rng()) else {
                    return false;
                };
                let failure = cluster.power_fail(id, true);
                tracing::info!("torn write on node {id}: {failure:?}");
                self.set_state(id, NodeState::Down);
                self.restart_later(id, self.duration());
            }
            _ => unreachable!("{fault:?} is not a disk fault"),
        }
        true
    }

    /// Repairs everything: every node up and scheduled, every link open, the network
    /// fast and lossless again.
    pub fn heal_all(&self) {
        for id in self.cluster.ids() {
            match self.state(id) {
                NodeState::Up => {}
                NodeState::Down => self.restart(id),
                NodeState::Paused => {
                    self.cluster.resume(id);
                    self.set_state(id, NodeState::Up);
                }
            }
        }
        self.cluster.heal_network();
        NetSim::current().update_config(|config| config.packet_loss_rate = 0.0);
        reset_latency();
    }
}

fn reset_latency() {
    NetSim::current().update_config(|config| {
        config.send_latency = Duration::from_millis(1)..Duration::from_millis(10)
    });
}

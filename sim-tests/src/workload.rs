//! The workload: producers publishing unique payloads (retrying across leader changes
//! inside the client, several sends in flight) and consumers following every partition,
//! some by Subscribe, some by polling Read. Everything they do lands in the [`History`].
//!
//! The producer and consumer loops ([`produce`], [`follow`], [`poll`]) run on either
//! runtime (madsim-tokio is the simulator under `--cfg madsim` and tokio otherwise), so
//! the real-process kill loop drives the same workload; [`Workload`] places them on
//! simulated client nodes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog_client::{
    Client, ClientConfig, ClientError, ErrorCode, Event, ProducerConfig, StartFrom,
};
use futures::StreamExt;
#[cfg(madsim)]
use madsim::runtime::NodeHandle;
use rand::Rng;

#[cfg(madsim)]
use crate::cluster::SimCluster;
use crate::history::{Consumed, Outcome, PartitionRef, Publish};

/// The random source: the simulator's (seeded, deterministic) under madsim.
fn rng() -> impl Rng {
    #[cfg(madsim)]
    return madsim::rand::thread_rng();
    #[cfg(not(madsim))]
    return rand::thread_rng();
}

/// A topic of the workload.
#[derive(Debug, Clone)]
pub struct TopicPlan {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
}

/// How hard the workload pushes, drawn per seed.
#[derive(Debug, Clone)]
pub struct WorkloadPlan {
    pub topics: Vec<TopicPlan>,
    pub producers: u32,
    /// Sends in flight per producer.
    pub in_flight: u32,
    /// Produce requests in flight per partition of one producer (1 to 5): above 1, a
    /// retried request may land after later ones, which the node's idempotence window
    /// must recognise.
    pub requests_in_flight: usize,
    /// Pause between two sends of one producer, upper bound (uniform from 0).
    pub pause_ms_max: u64,
    /// The client's whole-operation deadline: past it a publish's outcome is unknown.
    pub deadline_ms: u64,
}

impl WorkloadPlan {
    /// Every partition of every topic.
    pub fn partitions(&self) -> Vec<PartitionRef> {
        self.topics
            .iter()
            .flat_map(|t| {
                (0..t.partitions).map(|index| PartitionRef {
                    topic: t.name.clone(),
                    index,
                })
            })
            .collect()
    }

    pub fn draw(rng: &mut impl Rng, cluster_size: u64) -> WorkloadPlan {
        let rf = 3.min(cluster_size as u32);
        WorkloadPlan {
            topics: vec![
                TopicPlan {
                    name: "orders".into(),
                    partitions: rng.gen_range(1..=3),
                    replication_factor: rf,
                },
                TopicPlan {
                    name: "audit".into(),
                    partitions: 1,
                    replication_factor: if cluster_size >= 5 && rng.gen_bool(0.5) {
                        5
                    } else {
                        rf
                    },
                },
            ],
            producers: rng.gen_range(1..=3),
            in_flight: rng.gen_range(1..=8),
            pause_ms_max: rng.gen_range(5..=100),
            deadline_ms: rng.gen_range(5_000..=20_000),
            requests_in_flight: rng.gen_range(1..=5),
        }
    }
}

/// The running workload and what it recorded so far.
#[cfg(madsim)]
pub struct Workload {
    pub plan: WorkloadPlan,
    publishes: Arc<Mutex<Vec<Publish>>>,
    consumed: Arc<Mutex<Vec<Arc<Mutex<Consumed>>>>>,
    producing: Arc<AtomicBool>,
    consuming: Arc<AtomicBool>,
    in_flight: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _client_nodes: Vec<NodeHandle>,
}

#[cfg(madsim)]
fn client_config(cluster: &SimCluster, deadline_ms: u64) -> ClientConfig {
    ClientConfig::new(cluster.addrs.clone())
        .with_operation_deadline_ms(deadline_ms)
        .with_request_timeout_ms(deadline_ms.min(5_000))
}

/// Bytes of every workload payload: its id repeated. Most of a stored entry is then
/// payload, so a damaged bit (a planted checksum bug) most likely lands in bytes the
/// checkers compare, not in framing or timestamps they cannot judge.
pub const PAYLOAD_BYTES: usize = 64;

/// The payload of the event with `id` (`<producer>-<n>`): the id, then spaces and the id
/// again up to [`PAYLOAD_BYTES`].
pub fn payload(id: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PAYLOAD_BYTES.max(id.len()));
    bytes.extend_from_slice(id.as_bytes());
    while bytes.len() < PAYLOAD_BYTES {
        bytes.push(b' ');
        bytes.extend_from_slice(id.as_bytes());
    }
    bytes.truncate(PAYLOAD_BYTES.max(id.len()));
    bytes
}

/// A publish that failed: refused for sure, in the log without its offsets, or of
/// unknown outcome.
pub fn outcome_of(error: &ClientError) -> Outcome {
    if matches!(error, ClientError::DeadlineExceeded { .. }) {
        return Outcome::Unknown(error.to_string());
    }
    if error.code() == Some(ErrorCode::DuplicateSequence) {
        return Outcome::OffsetsForgotten(error.to_string());
    }
    // OUT_OF_ORDER_SEQUENCE: nothing of the request was written, by this attempt or any
    // earlier one (an earlier one that landed would make this a duplicate).
    let refused = matches!(
        error.code(),
        Some(
            ErrorCode::InvalidArgument
                | ErrorCode::EventTooLarge
                | ErrorCode::UnknownTopic
                | ErrorCode::OutOfOrderSequence
        )
    );
    if refused {
        Outcome::Failed(error.to_string())
    } else {
        Outcome::Unknown(error.to_string())
    }
}

#[cfg(madsim)]
impl Workload {
    /// Creates the topics (retrying until the metadata group answers) and starts
    /// producers and consumers, each kind on its own client node.
    pub async fn start(cluster: &SimCluster, plan: WorkloadPlan) -> Workload {
        let admin_node = cluster.client_node("admin", 1);
        let config = client_config(cluster, 60_000);
        let topics = plan.topics.clone();
        admin_node
            .spawn(async move {
                let client = Client::new_lazy(config).expect("client config");
                for topic in &topics {
                    create_topic(&client, topic).await;
                }
            })
            .await
            .expect("admin task");
        let mut workload = Workload {
            publishes: Arc::new(Mutex::new(Vec::new())),
            consumed: Arc::new(Mutex::new(Vec::new())),
            producing: Arc::new(AtomicBool::new(true)),
            consuming: Arc::new(AtomicBool::new(true)),
            in_flight: Arc::new(AtomicU64::new(0)),
            tasks: Vec::new(),
            _client_nodes: vec![admin_node],
            plan,
        };
        for producer in 0..workload.plan.producers {
            let node = cluster.client_node(&format!("producer-{producer}"), 10 + producer as u8);
            let config = client_config(cluster, workload.plan.deadline_ms);
            let task = node.spawn(produce(
                format!("p{producer}"),
                config,
                workload.plan.clone(),
                workload.publishes.clone(),
                workload.producing.clone(),
                workload.in_flight.clone(),
            ));
            workload.tasks.push(task);
            workload._client_nodes.push(node);
        }
        let consumer_node = cluster.client_node("consumers", 100);
        for topic in workload.plan.topics.clone() {
            for index in 0..topic.partitions {
                let partition = PartitionRef {
                    topic: topic.name.clone(),
                    index,
                };
                for (kind, subscribe) in [("subscriber", true), ("reader", false)] {
                    let consumed = Arc::new(Mutex::new(Consumed {
                        consumer: format!("{kind}-{partition}"),
                        partition: partition.clone(),
                        events: Vec::new(),
                    }));
                    workload
                        .consumed
                        .lock()
                        .expect("consumed")
                        .push(consumed.clone());
                    let config = client_config(cluster, 30_000);
                    let running = workload.consuming.clone();
                    let task = if subscribe {
                        consumer_node.spawn(follow(config, consumed, running))
                    } else {
                        consumer_node.spawn(poll(config, consumed, running))
                    };
                    workload.tasks.push(task);
                }
            }
        }
        workload._client_nodes.push(consumer_node);
        workload
    }

    /// Producers send nothing new; sends in flight still finish (ack or deadline).
    pub fn stop_producing(&self) {
        self.producing.store(false, Ordering::SeqCst);
    }

    /// Sends still waiting for their outcome.
    pub fn sends_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// How far each consumer got: next offset by partition, the smallest over consumers.
    pub fn consumed_up_to(&self, partition: &PartitionRef) -> u64 {
        self.consumed
            .lock()
            .expect("consumed")
            .iter()
            .map(|c| c.lock().expect("consumed"))
            .filter(|c| &c.partition == partition)
            .map(|c| c.events.last().map_or(0, |(offset, _)| offset + 1))
            .min()
            .unwrap_or(0)
    }

    /// Stops the consumers and returns the recorded history parts.
    pub async fn finish(mut self) -> (Vec<Publish>, Vec<Consumed>) {
        self.stop_producing();
        self.consuming.store(false, Ordering::SeqCst);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        let publishes = std::mem::take(&mut *self.publishes.lock().expect("publishes"));
        let consumed = self
            .consumed
            .lock()
            .expect("consumed")
            .iter()
            .map(|c| c.lock().expect("consumed").clone())
            .collect();
        (publishes, consumed)
    }
}

/// Publishes one `probe-<partition>` event to each partition: the liveness probe after
/// the faults. Outcomes are recorded like any publish.
pub async fn probe_partitions(client: &Client, partitions: &[PartitionRef]) -> Vec<Publish> {
    let producer = client
        .producer(ProducerConfig::default())
        .expect("producer config");
    let mut probes = Vec::new();
    for partition in partitions {
        let payload = format!("probe-{partition}").into_bytes();
        let event = Event::new(payload.clone());
        let outcome = match producer
            .send_to(&partition.topic, partition.index, event)
            .await
        {
            Ok(ack) => Outcome::Acked {
                partition: ack.partition,
                offset: ack.offset,
            },
            Err(e) => outcome_of(&e),
        };
        probes.push(Publish {
            producer: "probe".into(),
            topic: partition.topic.clone(),
            payload,
            outcome,
        });
    }
    probes
}

/// Creates `topic`, retrying until the metadata group answers (a minute at most).
pub async fn create_topic(client: &Client, topic: &TopicPlan) {
    for _ in 0..600 {
        match client
            .admin()
            .create_topic(&topic.name, topic.partitions, topic.replication_factor)
            .await
        {
            Ok(_) => return,
            Err(e) if e.code() == Some(ErrorCode::TopicExists) => return,
            Err(e) => {
                tracing::debug!("create topic {}: {e}", topic.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("topic {} never created", topic.name);
}

/// One producer: unique payloads `<producer>-<n>` with random keys over random topics,
/// `in_flight` sends outstanding, each outcome recorded when it is known.
pub async fn produce(
    name: String,
    config: ClientConfig,
    plan: WorkloadPlan,
    publishes: Arc<Mutex<Vec<Publish>>>,
    producing: Arc<AtomicBool>,
    in_flight: Arc<AtomicU64>,
) {
    let client = Client::new_lazy(config).expect("client config");
    let producer = client
        .producer(
            ProducerConfig::default().with_max_in_flight_per_partition(plan.requests_in_flight),
        )
        .expect("producer config");
    let slots = Arc::new(tokio::sync::Semaphore::new(plan.in_flight as usize));
    let mut pending = Vec::new();
    let mut n = 0u64;
    while producing.load(Ordering::SeqCst) {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        if !producing.load(Ordering::SeqCst) {
            break;
        }
        let (topic, key) = {
            let mut rng = rng();
            let topic = plan.topics[rng.gen_range(0..plan.topics.len())]
                .name
                .clone();
            (topic, rng.gen_range(0..16u32))
        };
        let payload = payload(&format!("{name}-{n}"));
        n += 1;
        in_flight.fetch_add(1, Ordering::SeqCst);
        let send = producer.send(
            &topic,
            Event::new(payload.clone()).with_key(format!("k{key}")),
        );
        let publishes = publishes.clone();
        let in_flight = in_flight.clone();
        let producer_name = name.clone();
        pending.push(tokio::spawn(async move {
            let outcome = match send.await {
                Ok(ack) => Outcome::Acked {
                    partition: ack.partition,
                    offset: ack.offset,
                },
                Err(e) => outcome_of(&e),
            };
            publishes.lock().expect("publishes").push(Publish {
                producer: producer_name,
                topic,
                payload,
                outcome,
            });
            in_flight.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        }));
        let pause = rng().gen_range(0..=plan.pause_ms_max);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    for task in pending {
        let _ = task.await;
    }
}

/// A subscriber: follows one partition from the start; if the subscription gives up
/// (its deadline passed during a long fault) it subscribes again at its next offset.
pub async fn follow(
    config: ClientConfig,
    consumed: Arc<Mutex<Consumed>>,
    running: Arc<AtomicBool>,
) {
    let client = Client::new_lazy(config).expect("client config");
    let partition = consumed.lock().expect("consumed").partition.clone();
    while running.load(Ordering::SeqCst) {
        let next = consumed
            .lock()
            .expect("consumed")
            .events
            .last()
            .map_or(0, |(offset, _)| offset + 1);
        let mut stream =
            client.subscribe(&partition.topic, partition.index, StartFrom::Offset(next));
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if running.load(Ordering::SeqCst) { continue } else { return }
                }
            };
            match item {
                Some(Ok(event)) => consumed
                    .lock()
                    .expect("consumed")
                    .events
                    .push((event.offset, event.value.to_vec())),
                Some(Err(e)) => {
                    tracing::debug!("subscriber on {partition}: {e}");
                    break;
                }
                None => break,
            }
        }
    }
}

/// A reader: polls one partition with Read from its next offset.
pub async fn poll(config: ClientConfig, consumed: Arc<Mutex<Consumed>>, running: Arc<AtomicBool>) {
    let client = Client::new_lazy(config).expect("client config");
    let partition = consumed.lock().expect("consumed").partition.clone();
    while running.load(Ordering::SeqCst) {
        let next = consumed
            .lock()
            .expect("consumed")
            .events
            .last()
            .map_or(0, |(offset, _)| offset + 1);
        match client
            .read(&partition.topic, partition.index, next, 100)
            .await
        {
            Ok(read) => {
                let empty = read.events.is_empty();
                consumed.lock().expect("consumed").events.extend(
                    read.events
                        .into_iter()
                        .map(|e| (e.offset, e.value.to_vec())),
                );
                if empty {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Err(e) => {
                tracing::debug!("reader on {partition}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

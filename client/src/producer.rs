//! The idempotent, batching `Producer` and its dispatcher.
//!
//! The path of one event: `send` hands it at once (synchronously, so events keep the
//! order of the `send` calls) to the producer's *dispatcher* task, which picks the
//! partition (key hash or round-robin), waits for buffer space for its bytes
//! (back-pressure, in order), and queues it on that partition's *lane* (`lane.rs`): the
//! task that batches it and sends it to the partition leader, one request in flight at a
//! time. The caller's [`SendFuture`] resolves with the event's offset once the leader has
//! acknowledged the batch (durably on a majority of replicas).
//!
//! Memory: the lanes hold at most `max_buffered_bytes` (the dispatcher waits for space);
//! the dispatcher's queue, what `send` handed over and the dispatcher has not placed yet,
//! holds at most as much again: beyond it `send` fails at once with
//! [`ClientError::BufferFull`]. So a producer never holds more than twice its buffer,
//! however fast `send` is called.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::client::Client;
use crate::config::ProducerConfig;
use crate::error::{ClientError, ErrorCode};
use crate::event::{Ack, Event};
use crate::lane::{new_producer_id, Command, Lane, Pending, Waiter};
use crate::partitioner::{partition_for_key, RoundRobin};

/// Publishes events with batching, back-pressure and exactly-once appends across retries.
///
/// Cheap to clone: clones share the buffer, the partition lanes and the producer id.
///
/// ```no_run
/// use evlog_client::{Client, Event, ProducerConfig};
///
/// # async fn example(client: Client) -> Result<(), evlog_client::ClientError> {
/// let producer = client.producer(ProducerConfig::default().with_linger_ms(5))?;
/// let ack = producer.send("orders", Event::new("paid").with_key("order-17")).await?;
/// println!("partition {} offset {}", ack.partition, ack.offset);
///
/// // Many sends in flight from one task keep their order within each partition.
/// let pending: Vec<_> = (0..100).map(|i| producer.send("orders", Event::new(format!("e{i}")))).collect();
/// for ack in futures::future::join_all(pending).await {
///     ack?;
/// }
/// producer.close().await;
/// # Ok(()) }
/// ```
///
/// Dropping the last handle lets the lanes send what is buffered in the background;
/// [`Producer::close`] waits for it.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProducerConfig,
    producer_id: u64,
    dispatcher: mpsc::UnboundedSender<Request>,
    /// Event bytes in the dispatcher's queue (bounded by `max_buffered_bytes`).
    waiting_bytes: Arc<AtomicUsize>,
    closed: AtomicBool,
}

/// What the dispatcher is asked to do, in `send` order.
enum Request {
    Send {
        topic: String,
        /// `None`: choose by key or round-robin.
        partition: Option<u32>,
        event: Event,
        /// Its accounted bytes, counted in `waiting_bytes` until it is placed.
        size_bytes: usize,
        ack: oneshot::Sender<Result<Ack, ClientError>>,
    },
    /// Answered with one flush receiver per lane, once every earlier event is queued.
    Flush(oneshot::Sender<Vec<oneshot::Receiver<()>>>),
    /// Stop the lanes once they have sent everything.
    Shutdown,
}

/// The acknowledgement of one [`Producer::send`]: resolves to the event's partition and
/// offset, or to the error that made its batch fail.
///
/// The event is queued when `send` is called; dropping this future does not withdraw it.
#[derive(Debug)]
pub struct SendFuture {
    state: SendState,
}

#[derive(Debug)]
enum SendState {
    Waiting(oneshot::Receiver<Result<Ack, ClientError>>),
    Failed(Option<ClientError>),
}

impl Future for SendFuture {
    type Output = Result<Ack, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            SendState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|answer| answer.unwrap_or(Err(ClientError::Closed))),
            SendState::Failed(error) => {
                Poll::Ready(Err(error.take().unwrap_or(ClientError::Closed)))
            }
        }
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("producer_id", &self.inner.producer_id)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Producer {
    /// Starts the dispatcher task (so it must run inside a Tokio runtime).
    pub(crate) fn new(client: Client, config: ProducerConfig) -> Result<Self, ClientError> {
        config.validate()?;
        let producer_id = new_producer_id();
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting_bytes = Arc::new(AtomicUsize::new(0));
        let dispatcher = Dispatcher::new(client, config.clone(), producer_id);
        tokio::spawn(dispatcher.run(rx, waiting_bytes.clone()));
        let inner = Inner {
            config,
            producer_id,
            dispatcher: tx,
            waiting_bytes,
            closed: AtomicBool::new(false),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The random id this producer starts with on every partition.
    pub fn producer_id(&self) -> u64 {
        self.inner.producer_id
    }

    /// Publishes `event` to `topic`; the returned future resolves once the event is
    /// durably acknowledged (on disk on a majority of the partition's replicas).
    ///
    /// The event is queued right away: events keep the order of the `send` calls within
    /// each partition, even when their futures are awaited concurrently. The partition
    /// is [`partition_for_key`] of the key, or round-robin for events without a key.
    /// While `max_buffered_bytes` are buffered, later events wait before being batched;
    /// once as many bytes again are waiting, `send` fails at once with
    /// [`ClientError::BufferFull`] (the event is not queued).
    ///
    /// Fails with `UNKNOWN_TOPIC`, `EVENT_TOO_LARGE` and other fatal server errors, or
    /// with [`ClientError::DeadlineExceeded`] (outcome unknown: the event may or may not
    /// be in the log) when the partition stays unreachable.
    pub fn send(&self, topic: &str, event: Event) -> SendFuture {
        self.submit(topic, None, event)
    }

    /// Publishes `event` to one given partition of `topic` (its key does not matter).
    /// Same ordering and acknowledgement as [`Producer::send`].
    pub fn send_to(&self, topic: &str, partition: u32, event: Event) -> SendFuture {
        self.submit(topic, Some(partition), event)
    }

    fn submit(&self, topic: &str, partition: Option<u32>, event: Event) -> SendFuture {
        if self.inner.closed.load(Ordering::Acquire) {
            return SendFuture {
                state: SendState::Failed(Some(ClientError::Closed)),
            };
        }
        let size_bytes = event.accounted_bytes();
        let max_buffered_bytes = self.inner.config.max_buffered_bytes;
        let waiting = self
            .inner
            .waiting_bytes
            .fetch_add(size_bytes, Ordering::AcqRel);
        // An empty queue takes any event, so one larger than the buffer is not refused.
        if waiting > 0 && waiting + size_bytes > max_buffered_bytes {
            self.inner
                .waiting_bytes
                .fetch_sub(size_bytes, Ordering::AcqRel);
            let full = ClientError::BufferFull {
                waiting_bytes: waiting,
                max_buffered_bytes,
            };
            return SendFuture {
                state: SendState::Failed(Some(full)),
            };
        }
        let (ack, rx) = oneshot::channel();
        let request = Request::Send {
            topic: topic.to_string(),
            partition,
            event,
            size_bytes,
            ack,
        };
        let state = match self.inner.dispatcher.send(request) {
            Ok(()) => SendState::Waiting(rx),
            Err(_) => SendState::Failed(Some(ClientError::Closed)),
        };
        SendFuture { state }
    }

    /// Waits until every event sent before this call is acknowledged or failed.
    pub async fn flush(&self) {
        let (reply, lanes) = oneshot::channel();
        if self.inner.dispatcher.send(Request::Flush(reply)).is_err() {
            return;
        }
        if let Ok(lanes) = lanes.await {
            futures::future::join_all(lanes).await;
        }
    }

    /// Refuses new events (on every clone), waits for the buffered ones, then stops the
    /// lanes.
    pub async fn close(self) {
        self.inner.closed.store(true, Ordering::Release);
        self.flush().await;
        let _ = self.inner.dispatcher.send(Request::Shutdown);
    }
}

/// The producer's router: partitions events, applies back-pressure, feeds the lanes.
struct Dispatcher {
    client: Client,
    config: ProducerConfig,
    producer_id: u64,
    buffer: Arc<Semaphore>,
    /// topic -> partition -> the lane's queue.
    lanes: HashMap<String, HashMap<u32, mpsc::UnboundedSender<Command>>>,
    round_robin: HashMap<String, RoundRobin>,
}

impl Dispatcher {
    fn new(client: Client, config: ProducerConfig, producer_id: u64) -> Self {
        Self {
            client,
            buffer: Arc::new(Semaphore::new(config.max_buffered_bytes)),
            config,
            producer_id,
            lanes: HashMap::new(),
            round_robin: HashMap::new(),
        }
    }

    /// Serves requests in order until shut down or every producer handle is gone; then
    /// dropping the lanes' queues lets them send what they hold and stop.
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>, waiting: Arc<AtomicUsize>) {
        while let Some(request) = rx.recv().await {
            match request {
                Request::Send {
                    topic,
                    partition,
                    event,
                    size_bytes,
                    ack,
                } => {
                    self.dispatch(topic, partition, event, ack).await;
                    // Placed in a lane (holding buffer space) or answered: no longer waiting.
                    waiting.fetch_sub(size_bytes, Ordering::AcqRel);
                }
                Request::Flush(reply) => {
                    let _ = reply.send(self.flush_lanes());
                }
                Request::Shutdown => return,
            }
        }
    }

    fn flush_lanes(&self) -> Vec<oneshot::Receiver<()>> {
        let lanes = self
            .lanes
            .values()
            .flat_map(|partitions| partitions.values());
        lanes
            .filter_map(|lane| {
                let (done, wait) = oneshot::channel();
                lane.send(Command::Flush(done)).ok().map(|()| wait)
            })
            .collect()
    }

    /// Routes one event to its lane, or answers its sender with the reason it cannot.
    async fn dispatch(
        &mut self,
        topic: String,
        partition: Option<u32>,
        event: Event,
        ack: oneshot::Sender<Result<Ack, ClientError>>,
    ) {
        let partition = match self.choose_partition(&topic, partition, &event).await {
            Ok(partition) => partition,
            Err(e) => {
                let _ = ack.send(Err(e));
                return;
            }
        };
        let size_bytes = event.accounted_bytes();
        // An event larger than the whole buffer takes all of it rather than waiting forever.
        let permits = size_bytes.clamp(1, self.config.max_buffered_bytes) as u32;
        let Ok(permit) = self.buffer.clone().acquire_many_owned(permits).await else {
            let _ = ack.send(Err(ClientError::Closed));
            return;
        };
        let pending = Pending {
            event: event.into_wire(),
            size_bytes,
            queued_at: Instant::now(),
            waiter: Waiter {
                ack,
                _permit: permit,
            },
        };
        let command = match self.lane(&topic, partition).send(Command::Send(pending)) {
            Ok(()) => return,
            Err(mpsc::error::SendError(command)) => command,
        };
        // The lane is gone (it panicked): start a new one and try once more.
        self.lanes.get_mut(&topic).map(|p| p.remove(&partition));
        if let Err(mpsc::error::SendError(Command::Send(p))) =
            self.lane(&topic, partition).send(command)
        {
            let _ = p.waiter.ack.send(Err(ClientError::Closed));
        }
    }

    /// The partition for `event`, checking the topic, the partition and the size limit.
    async fn choose_partition(
        &mut self,
        topic: &str,
        partition: Option<u32>,
        event: &Event,
    ) -> Result<u32, ClientError> {
        let (partitions, max_event_bytes) = self.client.topic_shape(topic).await?;
        let size_bytes = event.size_bytes();
        if max_event_bytes > 0 && size_bytes > max_event_bytes as usize {
            let message = format!(
                "event is {size_bytes} bytes; topic {topic:?} accepts at most {max_event_bytes}"
            );
            return Err(ClientError::server(ErrorCode::EventTooLarge, message));
        }
        match (partition, &event.key) {
            (Some(p), _) if p >= partitions => {
                let message = format!(
                    "topic {topic:?} has {partitions} partitions; there is no partition {p}"
                );
                Err(ClientError::server(ErrorCode::UnknownPartition, message))
            }
            (Some(p), _) => Ok(p),
            (None, Some(key)) => Ok(partition_for_key(key, partitions)),
            (None, None) => Ok(self.next_round_robin(topic, partitions)),
        }
    }

    fn next_round_robin(&mut self, topic: &str, partitions: u32) -> u32 {
        if let Some(rr) = self.round_robin.get_mut(topic) {
            return rr.next(partitions);
        }
        let mut rr = RoundRobin::new(crate::rng::random_u64());
        let p = rr.next(partitions);
        self.round_robin.insert(topic.to_string(), rr);
        p
    }

    /// The queue of `topic`/`partition`'s lane, starting the lane if needed.
    fn lane(&mut self, topic: &str, partition: u32) -> &mpsc::UnboundedSender<Command> {
        let partitions = self.lanes.entry(topic.to_string()).or_default();
        partitions.entry(partition).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let lane = Lane::new(
                self.client.clone(),
                topic,
                partition,
                self.config.clone(),
                self.producer_id,
            );
            tokio::spawn(lane.run(rx));
            tx
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use evlog_proto::evlog::v1 as pb;

    /// A dispatcher whose client knows topic `t` (3 partitions, 100-byte events) and
    /// whose lanes are plain channels the test reads.
    fn dispatcher() -> (Dispatcher, Vec<mpsc::UnboundedReceiver<Command>>) {
        let client = Client::new_lazy(ClientConfig::default()).unwrap();
        knows_topic_t(&client);
        let mut d = Dispatcher::new(client, ProducerConfig::default(), 7);
        let mut receivers = Vec::new();
        for p in 0..3 {
            let (tx, rx) = mpsc::unbounded_channel();
            d.lanes.entry("t".into()).or_default().insert(p, tx);
            receivers.push(rx);
        }
        (d, receivers)
    }

    /// Puts topic `t` (3 partitions, 100-byte events) in `client`'s metadata cache.
    fn knows_topic_t(client: &Client) {
        let topic = pb::TopicDescription {
            name: "t".into(),
            config: Some(pb::TopicConfig {
                partitions: 3,
                replication_factor: 1,
                max_event_bytes: 100,
            }),
            partitions: (0..3)
                .map(|p| pb::PartitionDescription {
                    partition: p,
                    ..Default::default()
                })
                .collect(),
        };
        client
            .shared
            .metadata
            .with_state(|s| s.upsert_topic(&topic));
    }

    fn values(rx: &mut mpsc::UnboundedReceiver<Command>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Command::Send(p)) = rx.try_recv() {
            out.push(String::from_utf8_lossy(&p.event.value).into_owned());
        }
        out
    }

    async fn dispatch(
        d: &mut Dispatcher,
        partition: Option<u32>,
        event: Event,
    ) -> oneshot::Receiver<Result<Ack, ClientError>> {
        let (ack, rx) = oneshot::channel();
        d.dispatch("t".into(), partition, event, ack).await;
        rx
    }

    #[tokio::test]
    async fn events_reach_their_lane_in_send_order() {
        // Goal: a partition's lane sees events in the order they were sent.
        let (mut d, mut lanes) = dispatcher();
        for i in 0..50 {
            dispatch(&mut d, Some(1), Event::new(format!("{i}"))).await;
        }
        let expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        assert_eq!(values(&mut lanes[1]), expected);
    }

    #[tokio::test]
    async fn keys_pick_stable_partitions_and_keyless_events_round_robin() {
        let (mut d, mut lanes) = dispatcher();
        let key_partition = partition_for_key(b"user-1", 3) as usize;
        for _ in 0..4 {
            dispatch(&mut d, None, Event::new("k").with_key("user-1")).await;
        }
        assert_eq!(values(&mut lanes[key_partition]).len(), 4);
        for _ in 0..6 {
            dispatch(&mut d, None, Event::new("rr")).await;
        }
        let counts: Vec<usize> = lanes.iter_mut().map(|rx| values(rx).len()).collect();
        assert_eq!(counts, vec![2, 2, 2]);
    }

    #[tokio::test]
    async fn bad_partitions_and_oversized_events_fail_without_reaching_a_lane() {
        let (mut d, mut lanes) = dispatcher();
        let e = dispatch(&mut d, Some(3), Event::new("x"))
            .await
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownPartition));
        let e = dispatch(&mut d, None, Event::new(vec![0u8; 101]))
            .await
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::EventTooLarge));
        assert!(lanes.iter_mut().all(|rx| values(rx).is_empty()));
    }

    #[tokio::test]
    async fn flush_reaches_every_lane_after_earlier_events() {
        let (mut d, mut lanes) = dispatcher();
        dispatch(&mut d, Some(0), Event::new("a")).await;
        let waits = d.flush_lanes();
        assert_eq!(waits.len(), 3);
        assert!(matches!(lanes[0].try_recv(), Ok(Command::Send(_))));
        assert!(matches!(lanes[0].try_recv(), Ok(Command::Flush(_))));
    }

    #[tokio::test]
    async fn send_refuses_events_beyond_twice_the_buffer_instead_of_queueing_them() {
        // Goal: `send` never queues more than `max_buffered_bytes` ahead of the lanes,
        // which hold at most as much. Method: a producer whose lanes cannot reach any node
        // (so they keep their buffer space) and a buffer of 1,000 bytes; events of 100
        // accounted bytes (68 value bytes + 32 per event). Without the bound every send
        // would be queued.
        let client = Client::new_lazy(ClientConfig::new(["127.0.0.1:1"])).unwrap();
        knows_topic_t(&client);
        let producer = client
            .producer(ProducerConfig::default().with_max_buffered_bytes(1000))
            .unwrap();
        let event = || Event::new(vec![7u8; 68]);
        assert_eq!(event().accounted_bytes(), 100);
        let refusal = |f: SendFuture| match f.state {
            SendState::Failed(Some(e @ ClientError::BufferFull { .. })) => e,
            other => panic!("expected BufferFull, got {other:?}"),
        };
        let full = ClientError::BufferFull {
            waiting_bytes: 1000,
            max_buffered_bytes: 1000,
        };
        // The dispatcher has not run yet: ten events fill its queue, the eleventh is refused.
        let mut queued: Vec<SendFuture> = (0..10).map(|_| producer.send("t", event())).collect();
        assert_eq!(
            refusal(producer.send("t", event())).to_string(),
            full.to_string()
        );
        // The dispatcher moves them into the lanes' buffer, which is then full; ten more
        // wait in its queue, and the next is refused again.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        queued.extend((0..10).map(|_| producer.send("t", event())));
        let e = refusal(producer.send("t", event()));
        assert_eq!(e.to_string(), full.to_string());
        assert!(
            e.is_retryable() && e.to_string().contains("max_buffered_bytes is 1000"),
            "{e}"
        );
        // An event larger than the whole buffer still goes when nothing waits before it.
        let producer = client
            .producer(ProducerConfig::default().with_max_buffered_bytes(50))
            .unwrap();
        assert!(matches!(
            producer.send("t", event()).state,
            SendState::Waiting(_)
        ));
    }

    #[tokio::test]
    async fn a_closed_producer_refuses_events() {
        let client = Client::new_lazy(ClientConfig::default()).unwrap();
        let producer = client.producer(ProducerConfig::default()).unwrap();
        let other = producer.clone();
        producer.close().await;
        let e = other.send("t", Event::new("late")).await.unwrap_err();
        assert!(matches!(e, ClientError::Closed));
    }
}

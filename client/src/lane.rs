//! One partition's sending lane: the queue, the batching and the produce requests in
//! flight of one (topic, partition) of a producer.
//!
//! A lane owns the partition's producer id and sequence counter. It keeps up to
//! `max_in_flight_per_partition` produce requests in flight (at most the node's
//! idempotence window of 5), each retried with the very same producer id, sequence and
//! events until answered, so a retry can never append twice: the node remembers the last
//! five requests of every producer and answers a retry of any of them with its original
//! offsets. While requests are in flight, new events queue up and become the next batch,
//! sent when full, when `linger_ms` has passed since its oldest event, or on flush/close.
//! When a request is answered, each event of its batch learns its offset
//! (`base_offset + i`) and releases its buffer permits.
//!
//! The node accepts a producer's requests only in sequence order. A request that arrives
//! before an earlier one still in flight (whose attempt was lost and is being retried) is
//! refused as out of order; it is retried until the earlier one lands.
//!
//! When a request fails for good, the lane cannot know whether the node consumed its
//! sequence numbers: the later requests in flight fail with it (they could only land
//! after it), and once nothing is in flight the lane switches to a fresh random producer
//! id starting at sequence 0. Events keep their order: no new batch starts before then.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::event_log_client::EventLogClient;
use futures::stream::{AbortHandle, Abortable, FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::client::Client;
use crate::config::ProducerConfig;
use crate::error::{ClientError, ErrorCode};
use crate::event::Ack;
use crate::metadata::Route;
use crate::retry;

/// What a lane is asked to do.
pub(crate) enum Command {
    Send(Pending),
    /// Answer once every event queued before this command is acknowledged or failed.
    Flush(oneshot::Sender<()>),
}

/// A queued event and the caller waiting for its acknowledgement.
pub(crate) struct Pending {
    pub event: pb::Event,
    /// Accounted bytes (`evlog_proto::limits`): what the node's request limits count.
    pub size_bytes: usize,
    pub queued_at: Instant,
    pub waiter: Waiter,
}

pub(crate) struct Waiter {
    pub ack: oneshot::Sender<Result<Ack, ClientError>>,
    /// Buffer space, released when the event is acknowledged or failed.
    pub _permit: OwnedSemaphorePermit,
}

/// A random non-zero producer id (0 means "not idempotent" on the wire).
pub(crate) fn new_producer_id() -> u64 {
    loop {
        let id = crate::rng::random_u64();
        if id != 0 {
            return id;
        }
    }
}

/// A request on its way: its first sequence and the node's answer (base offset), or
/// `None` when the lane aborted it.
type InFlight = Pin<Box<dyn Future<Output = (u64, Option<Result<u64, ClientError>>)> + Send>>;

/// A request in flight, as the lane tracks it.
struct Sent {
    /// How many requests the lane had started before this one.
    number: u64,
    waiters: Vec<Waiter>,
    abort: AbortHandle,
}

/// One partition's sender: queue, batching, the requests in flight, sequences.
pub(crate) struct Lane {
    client: Client,
    topic: String,
    partition: u32,
    config: ProducerConfig,
    producer_id: u64,
    next_sequence: u64,
    queue: VecDeque<Pending>,
    queue_bytes: usize,
    /// Requests in flight under `producer_id`, by first sequence.
    sent: BTreeMap<u64, Sent>,
    /// Requests started so far (numbers them).
    requests_started: u64,
    /// A request failed for good: switch producer ids once nothing is in flight.
    must_rotate: bool,
    /// Events taken from the channel, and events acknowledged or failed.
    received: u64,
    completed: u64,
    /// Flush requests: answered once `completed` reaches the `received` they recorded.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
}

impl Lane {
    pub(crate) fn new(
        client: Client,
        topic: &str,
        partition: u32,
        config: ProducerConfig,
        producer_id: u64,
    ) -> Self {
        Self {
            client,
            topic: topic.to_string(),
            partition,
            config,
            producer_id,
            next_sequence: 0,
            queue: VecDeque::new(),
            queue_bytes: 0,
            sent: BTreeMap::new(),
            requests_started: 0,
            must_rotate: false,
            received: 0,
            completed: 0,
            flushes: Vec::new(),
        }
    }

    /// Runs until the producer is gone and everything queued is answered.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut in_flight: FuturesUnordered<InFlight> = FuturesUnordered::new();
        let mut open = true;
        loop {
            if self.must_rotate && self.sent.is_empty() {
                self.rotate_producer_id();
            }
            while self.can_send() && self.batch_ready(open) {
                in_flight.push(self.start_batch());
            }
            if !open && self.sent.is_empty() && self.queue.is_empty() {
                return;
            }
            let linger_until = if self.can_send() {
                self.linger_deadline()
            } else {
                None
            };
            tokio::select! {
                // Fixed order (completions, then new events, then the linger timer) keeps
                // simulated runs deterministic; tokio's random order is seeded per process.
                biased;
                Some((first_sequence, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    if let Some(result) = result {
                        self.finish(first_sequence, result);
                    }
                }
                command = rx.recv(), if open => match command {
                    Some(command) => self.accept_burst(command, &mut rx),
                    None => open = false,
                },
                () = sleep_until(linger_until), if linger_until.is_some() => {}
            }
        }
    }

    /// Whether a new request may start now: at most `max_in_flight_per_partition`
    /// requests from the oldest one still unanswered to the new one, answered or not.
    /// Counting the answered ones in between matters: they were appended after the
    /// unanswered one, and the node remembers only a producer's last 5 requests, so a
    /// retry of the oldest must still be among them.
    fn can_send(&self) -> bool {
        let oldest = self.sent.values().map(|sent| sent.number).min();
        let span = oldest.map_or(0, |oldest| self.requests_started - oldest);
        !self.must_rotate && span < self.config.max_in_flight_per_partition as u64
    }

    /// Takes `first` and whatever else is already waiting, up to one batch's worth.
    fn accept_burst(&mut self, first: Command, rx: &mut mpsc::UnboundedReceiver<Command>) {
        self.accept(first);
        for _ in 1..self.config.batch_events_max {
            match rx.try_recv() {
                Ok(command) => self.accept(command),
                Err(_) => break,
            }
        }
    }

    fn accept(&mut self, command: Command) {
        match command {
            Command::Send(pending) => {
                self.received += 1;
                self.queue_bytes += pending.size_bytes;
                self.queue.push_back(pending);
            }
            Command::Flush(done) if self.received == self.completed => {
                let _ = done.send(());
            }
            Command::Flush(done) => self.flushes.push((self.received, done)),
        }
    }

    fn linger(&self) -> Duration {
        Duration::from_millis(self.config.linger_ms)
    }

    fn linger_deadline(&self) -> Option<Instant> {
        self.queue.front().map(|p| p.queued_at + self.linger())
    }

    fn batch_ready(&self, open: bool) -> bool {
        let Some(oldest) = self.queue.front() else {
            return false;
        };
        !open
            || !self.flushes.is_empty()
            || self.queue_bytes >= self.config.batch_bytes_max
            || self.queue.len() >= self.config.batch_events_max
            || oldest.queued_at.elapsed() >= self.linger()
    }

    /// Takes the next batch off the queue, assigns its sequences and sends it.
    fn start_batch(&mut self) -> InFlight {
        let mut events = Vec::new();
        let mut waiters = Vec::new();
        let mut bytes = 0usize;
        while let Some(front) = self.queue.front() {
            let full = events.len() >= self.config.batch_events_max
                || bytes + front.size_bytes > self.config.batch_bytes_max;
            if !events.is_empty() && full {
                break;
            }
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            bytes += p.size_bytes;
            events.push(p.event);
            waiters.push(p.waiter);
        }
        self.queue_bytes -= bytes;
        let first_sequence = self.next_sequence;
        let request = pb::ProduceRequest {
            topic: self.topic.clone(),
            partition: self.partition,
            producer_id: self.producer_id,
            first_sequence,
            events,
        };
        self.next_sequence += waiters.len() as u64;
        let behind_another = !self.sent.is_empty();
        let (abort, registration) = AbortHandle::new_pair();
        let number = self.requests_started;
        self.requests_started += 1;
        self.sent.insert(
            first_sequence,
            Sent {
                number,
                waiters,
                abort,
            },
        );
        let client = self.client.clone();
        let send = Abortable::new(
            async move { produce(&client, request, behind_another).await },
            registration,
        );
        Box::pin(async move { (first_sequence, send.await.ok()) })
    }

    /// Answers the senders of the request that started at `first_sequence`, and any
    /// flush it completes. A failure fails the later requests in flight too.
    fn finish(&mut self, first_sequence: u64, result: Result<u64, ClientError>) {
        let Some(sent) = self.sent.remove(&first_sequence) else {
            return;
        };
        match result {
            Ok(base_offset) => {
                self.completed += sent.waiters.len() as u64;
                for (i, w) in sent.waiters.into_iter().enumerate() {
                    let ack = Ack {
                        partition: self.partition,
                        offset: base_offset + i as u64,
                    };
                    let _ = w.ack.send(Ok(ack));
                }
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.partition, events = sent.waiters.len(), error = %e, "produce failed");
                self.fail(sent.waiters, &e);
                // The events of a DUPLICATE_SEQUENCE answer are in the log: later requests
                // still follow them. Any other failure leaves the sequence in doubt.
                if e.code() != Some(ErrorCode::DuplicateSequence) {
                    let later: Vec<u64> =
                        self.sent.range(first_sequence..).map(|(s, _)| *s).collect();
                    for sequence in later {
                        let sent = self.sent.remove(&sequence).expect("just listed");
                        sent.abort.abort();
                        self.fail(sent.waiters, &e);
                    }
                    self.must_rotate = true;
                }
            }
        }
        self.answer_flushes();
    }

    fn fail(&mut self, waiters: Vec<Waiter>, error: &ClientError) {
        self.completed += waiters.len() as u64;
        for w in waiters {
            let _ = w.ack.send(Err(error.clone()));
        }
    }

    fn answer_flushes(&mut self) {
        let completed = self.completed;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(target, _)| *target <= completed);
        self.flushes = waiting;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    /// The node may or may not have consumed the failed requests' sequences: start afresh.
    fn rotate_producer_id(&mut self) {
        assert!(self.sent.is_empty(), "rotating with requests in flight");
        self.producer_id = new_producer_id();
        self.next_sequence = 0;
        self.must_rotate = false;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Sends one produce request to the partition's leader, retrying the identical request
/// until it is answered, fails fatally or the deadline passes. Returns the base offset.
///
/// `behind_another`: an earlier request of this producer was in flight when this one
/// started. Then an out-of-order answer that expects an earlier sequence means that
/// request has not landed yet (its attempt was lost): retry, it is on its way.
async fn produce(
    client: &Client,
    request: pb::ProduceRequest,
    behind_another: bool,
) -> Result<u64, ClientError> {
    let route = Route::Partition {
        topic: request.topic.clone(),
        partition: request.partition,
    };
    retry::call(&client.shared, &route, |channel, _| {
        let request = request.clone();
        async move {
            let first_sequence = request.first_sequence;
            let producer_id = request.producer_id;
            let response = EventLogClient::new(channel)
                .produce(request)
                .await
                .map_err(|s| ClientError::from_status("", s))?
                .into_inner();
            if let Some(error) = &response.error {
                let waiting = error.code == ErrorCode::OutOfOrderSequence as i32
                    && error.expected_sequence.is_some_and(|e| e < first_sequence);
                if waiting && behind_another {
                    return Err(ClientError::server(
                        ErrorCode::Unavailable,
                        format!(
                            "producer {producer_id}: waiting for its request from sequence {} \
                             to land before sequence {first_sequence}",
                            error.expected_sequence.unwrap_or_default()
                        ),
                    ));
                }
            }
            ClientError::check(response.error)?;
            Ok(response.base_offset)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use crate::error::ErrorCode;
    use crate::event::Event;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn lane(config: ProducerConfig) -> Lane {
        let client = Client::new_lazy(ClientConfig::default()).unwrap();
        Lane::new(client, "t", 0, config, 42)
    }

    fn pending(
        size: usize,
        semaphore: &Arc<Semaphore>,
    ) -> (Pending, oneshot::Receiver<Result<Ack, ClientError>>) {
        let (ack, rx) = oneshot::channel();
        let permit = semaphore.clone().try_acquire_many_owned(1).unwrap();
        let event = Event::new(vec![0u8; size]).into_wire();
        let p = Pending {
            event,
            size_bytes: size,
            queued_at: Instant::now(),
            waiter: Waiter {
                ack,
                _permit: permit,
            },
        };
        (p, rx)
    }

    #[tokio::test]
    async fn batches_respect_event_and_byte_limits_and_number_sequences() {
        // Goal: batches are cut at the limits and carry consecutive sequence numbers.
        // Method: queue 5 events of 10 bytes with a 2-event / 25-byte limit; cut batches.
        let sem = Arc::new(Semaphore::new(100));
        let mut l = lane(
            ProducerConfig::default()
                .with_batch_events_max(2)
                .with_batch_bytes_max(25),
        );
        let mut acks = Vec::new();
        for _ in 0..5 {
            let (p, rx) = pending(10, &sem);
            l.accept(Command::Send(p));
            acks.push(rx);
        }
        assert!(
            l.batch_ready(true),
            "a full batch is ready without lingering"
        );
        let mut sizes = Vec::new();
        while !l.queue.is_empty() {
            let before = l.queue.len();
            let seq = l.next_sequence;
            drop(l.start_batch());
            sizes.push(before - l.queue.len());
            assert_eq!(l.next_sequence, seq + (before - l.queue.len()) as u64);
        }
        assert_eq!(sizes, vec![2, 2, 1]);
        assert_eq!(l.queue_bytes, 0);
    }

    #[tokio::test]
    async fn a_big_event_goes_alone() {
        let sem = Arc::new(Semaphore::new(100));
        let mut l = lane(ProducerConfig::default().with_batch_bytes_max(5));
        let (p, _rx) = pending(50, &sem);
        l.accept(Command::Send(p));
        drop(l.start_batch());
        assert!(l.queue.is_empty());
        assert_eq!(l.next_sequence, 1);
    }

    #[tokio::test]
    async fn finish_acks_offsets_and_answers_flushes() {
        // Goal: a batch's events get base+i, and a flush waits for the events before it.
        let sem = Arc::new(Semaphore::new(100));
        let mut l = lane(ProducerConfig::default());
        let (p0, a0) = pending(1, &sem);
        let (p1, a1) = pending(1, &sem);
        l.accept(Command::Send(p0));
        l.accept(Command::Send(p1));
        let (flush, mut flushed) = oneshot::channel();
        l.accept(Command::Flush(flush));
        assert!(l.batch_ready(true), "a pending flush skips the linger");
        drop(l.start_batch());
        assert!(flushed.try_recv().is_err());
        l.finish(0, Ok(100));
        assert_eq!(
            a0.await.unwrap().unwrap(),
            Ack {
                partition: 0,
                offset: 100
            }
        );
        assert_eq!(
            a1.await.unwrap().unwrap(),
            Ack {
                partition: 0,
                offset: 101
            }
        );
        assert!(flushed.try_recv().is_ok());
        assert_eq!(
            sem.available_permits(),
            100,
            "permits come back with the acks"
        );
    }

    #[tokio::test]
    async fn failed_batch_fails_its_events_and_resets_the_sequence() {
        let sem = Arc::new(Semaphore::new(100));
        let mut l = lane(ProducerConfig::default());
        let (p, ack) = pending(1, &sem);
        l.accept(Command::Send(p));
        drop(l.start_batch());
        assert_eq!(l.next_sequence, 1);
        l.finish(0, Err(ClientError::server(ErrorCode::EventTooLarge, "big")));
        assert!(ack.await.unwrap().is_err());
        assert!(
            l.must_rotate && !l.can_send(),
            "no new batch before rotating"
        );
        l.rotate_producer_id();
        assert_eq!(l.next_sequence, 0);
        assert_ne!(l.producer_id, 42);
    }

    #[tokio::test]
    async fn up_to_the_in_flight_limit_requests_go_out_each_with_its_own_sequences() {
        // Goal: several requests in flight per partition, numbered back to back.
        let sem = Arc::new(Semaphore::new(100));
        let mut l = lane(
            ProducerConfig::default()
                .with_batch_events_max(2)
                .with_max_in_flight_per_partition(3),
        );
        for _ in 0..10 {
            let (p, _ack) = pending(1, &sem);
            l.accept(Command::Send(p));
        }
        let mut started = Vec::new();
        while l.can_send() && l.batch_ready(true) {
            started.push(l.start_batch());
        }
        assert_eq!(started.len(), 3);
        assert_eq!(l.sent.keys().copied().collect::<Vec<_>>(), vec![0, 2, 4]);
        assert_eq!(l.next_sequence, 6);
        // An answer of a later request frees no slot: the oldest is still unanswered,
        // and a retry of it must stay within the node's window of remembered requests.
        l.finish(2, Ok(50));
        assert!(!l.can_send());
        l.finish(0, Ok(48));
        assert!(l.can_send(), "the oldest answered: room for one more");
    }

    #[tokio::test]
    async fn a_failed_request_fails_the_later_ones_in_flight_but_not_the_earlier() {
        // Goal: a request that can only land after a failed one is failed with it, the
        // earlier ones keep going, and the producer id changes once none is in flight.
        let sem = Arc::new(Semaphore::new(100));
        let mut l = lane(
            ProducerConfig::default()
                .with_batch_events_max(1)
                .with_max_in_flight_per_partition(3),
        );
        let mut acks = Vec::new();
        for _ in 0..3 {
            let (p, ack) = pending(1, &sem);
            l.accept(Command::Send(p));
            acks.push(ack);
        }
        let _started: Vec<_> = (0..3).map(|_| l.start_batch()).collect();
        let lost = ClientError::Transport {
            addr: "a:1".into(),
            code: tonic::Code::DeadlineExceeded,
            message: "no answer".into(),
        };
        l.finish(1, Err(lost));
        assert_eq!(l.sent.keys().copied().collect::<Vec<_>>(), vec![0]);
        assert!(!l.can_send(), "no new batch until the producer id changes");
        let mut acks = acks.into_iter();
        let first = acks.next().unwrap();
        assert!(acks.all(|mut a| matches!(a.try_recv(), Ok(Err(_)))));
        l.finish(0, Ok(7));
        assert_eq!(first.await.unwrap().unwrap().offset, 7);
        assert!(l.sent.is_empty());
        l.rotate_producer_id();
        assert!(l.can_send());
    }

    #[tokio::test]
    async fn a_duplicate_sequence_answer_does_not_fail_the_later_requests() {
        let sem = Arc::new(Semaphore::new(100));
        let mut l = lane(
            ProducerConfig::default()
                .with_batch_events_max(1)
                .with_max_in_flight_per_partition(2),
        );
        for _ in 0..2 {
            let (p, _ack) = pending(1, &sem);
            l.accept(Command::Send(p));
        }
        let _started: Vec<_> = (0..2).map(|_| l.start_batch()).collect();
        l.finish(
            0,
            Err(ClientError::server(ErrorCode::DuplicateSequence, "old")),
        );
        assert_eq!(l.sent.len(), 1);
        assert!(l.can_send());
    }

    #[tokio::test]
    async fn flush_on_an_idle_lane_answers_at_once() {
        let mut l = lane(ProducerConfig::default());
        let (flush, mut flushed) = oneshot::channel();
        l.accept(Command::Flush(flush));
        assert!(flushed.try_recv().is_ok());
    }

    #[tokio::test]
    async fn nothing_is_sent_before_the_linger_unless_closing() {
        let sem = Arc::new(Semaphore::new(100));
        let mut l = lane(ProducerConfig::default().with_linger_ms(60_000));
        assert!(!l.batch_ready(true));
        let (p, _ack) = pending(1, &sem);
        l.accept(Command::Send(p));
        assert!(!l.batch_ready(true));
        assert!(l.batch_ready(false), "closing sends at once");
        assert!(l.linger_deadline().is_some());
    }
}

//! One partition's sending lane: the queue, the batching and the single in-flight
//! produce request of one (topic, partition) of a producer.
//!
//! A lane owns the partition's producer id and sequence counter and keeps **at most one
//! produce request in flight**, because the node requires each (producer, partition)'s
//! sequences in order. While that request is in flight (and retried with the very same
//! producer id, sequence and events, so a retry can never append twice), new events queue
//! up and become the next batch, sent when full, when `linger_ms` has passed since its
//! oldest event, or on flush/close. When the answer comes, each event of the batch learns
//! its offset (`base_offset + i`) and releases its buffer permits.
//!
//! After a failed batch the lane cannot know whether the node consumed its sequence
//! numbers, so it switches to a fresh random producer id starting at sequence 0.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::event_log_client::EventLogClient;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::client::Client;
use crate::config::ProducerConfig;
use crate::error::ClientError;
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

/// A batch on its way: its waiters and the node's answer (base offset).
type InFlight = Pin<Box<dyn Future<Output = (Vec<Waiter>, Result<u64, ClientError>)> + Send>>;

/// One partition's sender: queue, batching, the single in-flight request, sequences.
pub(crate) struct Lane {
    client: Client,
    topic: String,
    partition: u32,
    config: ProducerConfig,
    producer_id: u64,
    next_sequence: u64,
    queue: VecDeque<Pending>,
    queue_bytes: usize,
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
            received: 0,
            completed: 0,
            flushes: Vec::new(),
        }
    }

    /// Runs until the producer is gone and everything queued is answered.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut in_flight: Option<InFlight> = None;
        let mut open = true;
        loop {
            if in_flight.is_none() && self.batch_ready(open) {
                in_flight = Some(self.start_batch());
            }
            if !open && in_flight.is_none() && self.queue.is_empty() {
                return;
            }
            let linger_until = if in_flight.is_none() {
                self.linger_deadline()
            } else {
                None
            };
            tokio::select! {
                // Fixed order (completions, then new events, then the linger timer) keeps
                // simulated runs deterministic; tokio's random order is seeded per process.
                biased;
                (waiters, result) = wait_in_flight(&mut in_flight), if in_flight.is_some() => {
                    in_flight = None;
                    self.finish(waiters, result);
                }
                command = rx.recv(), if open => match command {
                    Some(command) => self.accept_burst(command, &mut rx),
                    None => open = false,
                },
                () = sleep_until(linger_until), if linger_until.is_some() => {}
            }
        }
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
        let request = pb::ProduceRequest {
            topic: self.topic.clone(),
            partition: self.partition,
            producer_id: self.producer_id,
            first_sequence: self.next_sequence,
            events,
        };
        self.next_sequence += waiters.len() as u64;
        let client = self.client.clone();
        Box::pin(async move {
            let result = produce(&client, request).await;
            (waiters, result)
        })
    }

    /// Answers the batch's senders and any flush it completes.
    fn finish(&mut self, waiters: Vec<Waiter>, result: Result<u64, ClientError>) {
        self.completed += waiters.len() as u64;
        match result {
            Ok(base_offset) => {
                for (i, w) in waiters.into_iter().enumerate() {
                    let ack = Ack {
                        partition: self.partition,
                        offset: base_offset + i as u64,
                    };
                    let _ = w.ack.send(Ok(ack));
                }
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.partition, events = waiters.len(), error = %e, "produce failed");
                for w in waiters {
                    let _ = w.ack.send(Err(e.clone()));
                }
                // The node may or may not have consumed these sequences: start afresh.
                self.producer_id = new_producer_id();
                self.next_sequence = 0;
            }
        }
        let completed = self.completed;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(target, _)| *target <= completed);
        self.flushes = waiting;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }
}

async fn wait_in_flight(
    in_flight: &mut Option<InFlight>,
) -> (Vec<Waiter>, Result<u64, ClientError>) {
    match in_flight {
        Some(request) => request.await,
        None => std::future::pending().await,
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
async fn produce(client: &Client, request: pb::ProduceRequest) -> Result<u64, ClientError> {
    let route = Route::Partition {
        topic: request.topic.clone(),
        partition: request.partition,
    };
    retry::call(&client.shared, &route, |channel, _| {
        let request = request.clone();
        async move {
            let response = EventLogClient::new(channel)
                .produce(request)
                .await
                .map_err(|s| ClientError::from_status("", s))?
                .into_inner();
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
        let waiters: Vec<Waiter> = l.queue.drain(..).map(|p| p.waiter).collect();
        assert!(flushed.try_recv().is_err());
        l.finish(waiters, Ok(100));
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
        let (_, waiter_rx) = oneshot::channel::<()>();
        drop(waiter_rx);
        let (p2, _) = pending(1, &sem);
        l.finish(
            vec![p2.waiter],
            Err(ClientError::server(ErrorCode::EventTooLarge, "big")),
        );
        assert_eq!(l.next_sequence, 0);
        assert_ne!(l.producer_id, 42);
        drop(ack);
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

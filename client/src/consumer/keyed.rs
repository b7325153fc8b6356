//! Per-key ordered parallel processing (`Consumer::process_keyed`): events of the same key
//! run one after another in offset order, events of different keys in parallel, up to a
//! concurrency limit. Events without a key have no order to keep: each runs on its own.
//! Handlers run as spawned tasks (in parallel on a multi-threaded runtime), aborted when
//! `process_keyed` is dropped.
//!
//! Commits stay safe with out-of-order completion: the book commits a partition only up
//! to its lowest event still running or waiting (`Book::done`), so a crash replays what
//! was not finished and never skips an event.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::task::JoinHandle;

use super::member::Delivery;
use super::Consumer;
use crate::error::ClientError;
use crate::event::ReceivedEvent;
use crate::group_admin::TopicPartition;

/// Events one key may have waiting behind its running one, times the concurrency: a bound
/// on what the consumer holds (a hot key stops the intake until it catches up).
const WAITING_PER_SLOT: usize = 16;

/// What orders events: the same key in the same partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lane {
    Key(TopicPartition, Bytes),
    /// Keyless: unordered, one lane per event.
    Single(TopicPartition, u64),
}

/// What a finished handler task reports: its lane, partition, ownership and offset.
type Finished = (Lane, TopicPartition, u64, u64);

/// A spawned handler that is aborted when dropped, so dropping `process_keyed` stops its
/// handlers (their events are not done, so not committed).
struct Running(JoinHandle<Finished>);

impl Future for Running {
    type Output = Result<Finished, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An event and the ownership it was fetched under.
struct Job {
    partition: TopicPartition,
    generation: u64,
    event: ReceivedEvent,
}

impl Consumer {
    /// Runs `handler` on every event, `concurrency` at a time: events of one key one after
    /// another, in offset order; different keys in parallel. An event is processed (and
    /// may be committed) once its handler's future completed; commits per partition go
    /// only up to the lowest offset whose every predecessor is done. Returns when the
    /// stream ends or fails; to stop, drop the future (e.g. in a `tokio::select!` with a
    /// shutdown signal): unfinished events are not committed and run again elsewhere.
    /// Then [`Consumer::close`] commits what finished.
    ///
    /// ```no_run
    /// use evlog_client::{Client, ConsumerConfig, ReceivedEvent};
    ///
    /// # async fn example(client: Client) -> Result<(), evlog_client::ClientError> {
    /// let mut consumer = client.consumer(ConsumerConfig::new("billing").subscribe(["orders"]))?;
    /// consumer
    ///     .process_keyed(8, |event: ReceivedEvent| async move {
    ///         // Events of one order (key) arrive here one at a time, in order.
    ///         println!("{:?} at {}", event.key, event.offset);
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn process_keyed<F, Fut>(
        &mut self,
        concurrency: usize,
        handler: F,
    ) -> Result<(), ClientError>
    where
        F: Fn(ReceivedEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let concurrency = concurrency.max(1);
        let handler = Arc::new(handler);
        let mut running: FuturesUnordered<Running> = FuturesUnordered::new();
        let mut waiting: HashMap<Lane, VecDeque<Job>> = HashMap::new();
        let mut waiting_count = 0usize;
        let mut ended = false;
        loop {
            let room =
                running.len() < concurrency && waiting_count < concurrency * WAITING_PER_SLOT;
            tokio::select! {
                biased;
                finished = running.next(), if !running.is_empty() => {
                    let (lane, partition, generation, offset) = match finished.expect("not empty") {
                        Ok(done) => done,
                        Err(e) if e.is_panic() => panic!("a process_keyed handler panicked: {e}"),
                        Err(e) => return Err(ClientError::Protocol(format!("handler task: {e}"))),
                    };
                    self.book.lock().expect("consumer book poisoned").done(&partition, generation, offset);
                    self.wake.notify_one();
                    // The lane's next event, unless its partition was lost meanwhile.
                    let next = loop {
                        let Some(next) = waiting.get_mut(&lane).and_then(VecDeque::pop_front) else {
                            break None;
                        };
                        waiting_count -= 1;
                        let book = self.book.lock().expect("consumer book poisoned");
                        if book.still_owned(&next.partition, next.generation) {
                            break Some(next);
                        }
                    };
                    match next {
                        Some(next) => self.run_job(&mut running, &handler, lane, next),
                        None => {
                            waiting.remove(&lane);
                        }
                    }
                }
                delivery = self.next_delivery(), if room && !ended => {
                    let Some(delivery) = delivery else {
                        ended = true;
                        continue;
                    };
                    let event = delivery.event?;
                    let job = Job {
                        partition: delivery.partition,
                        generation: delivery.generation,
                        event,
                    };
                    self.book
                        .lock()
                        .expect("consumer book poisoned")
                        .start(&job.partition, job.generation, job.event.offset);
                    let lane = match &job.event.key {
                        Some(key) => Lane::Key(job.partition.clone(), key.clone()),
                        None => Lane::Single(job.partition.clone(), job.event.offset),
                    };
                    match waiting.get_mut(&lane) {
                        Some(queue) => {
                            queue.push_back(job);
                            waiting_count += 1;
                        }
                        None => {
                            waiting.insert(lane.clone(), VecDeque::new());
                            self.run_job(&mut running, &handler, lane, job);
                        }
                    }
                }
                else => return Ok(()),
            }
        }
    }

    fn run_job<F, Fut>(
        &self,
        running: &mut FuturesUnordered<Running>,
        handler: &Arc<F>,
        lane: Lane,
        job: Job,
    ) where
        F: Fn(ReceivedEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = handler.clone();
        running.push(Running(tokio::spawn(async move {
            let offset = job.event.offset;
            handler(job.event).await;
            (lane, job.partition, job.generation, offset)
        })));
    }

    /// The next event this member may hand out (of a partition it owns under the
    /// ownership it was fetched for, not being revoked); None when the stream ended.
    async fn next_delivery(&mut self) -> Option<Delivery> {
        loop {
            let delivery = self.rx.recv().await?;
            let mut book = self.book.lock().expect("consumer book poisoned");
            if book.deliverable(&delivery.partition, delivery.generation) {
                return Some(delivery);
            }
            if book.lapsed {
                self.wake.notify_one(); // The member task drops everything.
            }
        }
    }
}

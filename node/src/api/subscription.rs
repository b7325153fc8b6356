//! One Subscribe stream: reads from the start position, then follows new commits.
//!
//! Memory is bounded twice. Every message waiting for its client holds its events'
//! accounted bytes from the stream's own buffer (`read.subscribe_buffer_bytes_max`) and
//! from the node's subscription budget (`memory.subscribe_bytes_max`); a read reserves
//! its most (`max_bytes`) first and gives back what it did not use, and the rest comes
//! back when the transport takes the message. A stream whose buffer is full waits (its reads pause: backpressure).
//! A client that takes nothing for `read.slow_consumer_timeout_ms` while messages wait
//! for it is a slow consumer: the stream ends with SLOW_CONSUMER and frees its buffer
//! (the client resubscribes from its next offset; nothing is lost).
//!
//! An idle stream sends a heartbeat (no events, the high watermark) every heartbeat
//! interval, so a client can tell a quiet partition from a frozen or cut-off leader. The
//! stream ends with an error the client can act on when this replica stops leading
//! (NOT_LEADER with a hint), when the node shuts down, or when the partition goes away.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evlog_proto::evlog::v1 as pb;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::errors::{self, error, not_leader};
use super::event_log::stored_to_wire;
use super::{ApiContext, Target};
use crate::partition::budget::BudgetPermit;
use crate::partition::read::ReadLimits;
use crate::partition::Leadership;
use crate::types::Offset;

/// How often a waiting stream re-checks leadership, shutdown and its client's pace.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Messages a stream's channel holds besides those its byte buffer admits: room for the
/// final error and heartbeats, which hold no budget.
const CHANNEL_MESSAGES: usize = 64;

/// The stream tonic serves: messages, each giving its buffer bytes back when taken.
pub type SubscribeStream =
    Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

/// A message and the bytes it holds until the transport takes it.
struct Queued {
    message: pb::SubscribeResponse,
    _held: Option<(OwnedSemaphorePermit, BudgetPermit)>,
}

type Sink = mpsc::Sender<Queued>;

/// When the client last took a message, in milliseconds since the stream opened.
type LastTakenMs = Arc<AtomicU64>;

/// Opens the stream for `request`: its first message is an error when this node cannot
/// serve it (unknown topic, not the leader, ...).
pub async fn open(
    ctx: &ApiContext,
    request: pb::SubscribeRequest,
    limits: ReadLimits,
) -> SubscribeStream {
    let (tx, rx) = mpsc::channel::<Queued>(CHANNEL_MESSAGES);
    let opened = crate::rt::now();
    let last_taken_ms = LastTakenMs::default();
    match ctx.leader_target(&request.topic, request.partition).await {
        Err(e) => {
            let _ = tx.try_send(unbudgeted(failure(e)));
        }
        Ok(target) => {
            let follower = Follower {
                ctx: ctx.clone(),
                buffer: Arc::new(Semaphore::new(ctx.limits.subscribe_buffer_bytes_max)),
                target,
                limits,
                heartbeat: heartbeat_interval(ctx, &request),
                topic: request.topic.clone(),
                last_taken_ms: last_taken_ms.clone(),
                opened,
                tx,
            };
            crate::rt::spawn(follower.run(request));
        }
    }
    Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(move |queued| {
            let taken_ms = opened.elapsed().as_millis() as u64;
            last_taken_ms.store(taken_ms, Ordering::Relaxed);
            Ok(queued.message)
        }),
    )
}

fn heartbeat_interval(ctx: &ApiContext, request: &pb::SubscribeRequest) -> Duration {
    let ms = match request.heartbeat_interval_ms {
        0 => ctx.limits.subscribe_heartbeat,
        asked => Duration::from_millis(u64::from(asked)).max(MIN_HEARTBEAT),
    };
    ms.min(MAX_HEARTBEAT)
}

/// Bounds on the heartbeat interval a client may ask for.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
const MAX_HEARTBEAT: Duration = Duration::from_secs(60);

fn failure(e: pb::Error) -> pb::SubscribeResponse {
    pb::SubscribeResponse {
        error: Some(e),
        ..Default::default()
    }
}

fn unbudgeted(message: pb::SubscribeResponse) -> Queued {
    Queued {
        message,
        _held: None,
    }
}

/// Why the follower stopped waiting for buffer room.
enum Wait {
    /// Bytes from the stream's buffer and the node's budget, and a place in the channel.
    Room(
        OwnedSemaphorePermit,
        BudgetPermit,
        mpsc::OwnedPermit<Queued>,
    ),
    End(pb::Error),
    Gone,
}

struct Follower {
    ctx: ApiContext,
    target: Target,
    limits: ReadLimits,
    /// This stream's own buffer, in bytes.
    buffer: Arc<Semaphore>,
    heartbeat: Duration,
    topic: String,
    last_taken_ms: LastTakenMs,
    opened: crate::rt::Instant,
    tx: Sink,
}

impl Follower {
    async fn run(self, request: pb::SubscribeRequest) {
        let position = request.start.and_then(|s| s.position);
        let requested = match &position {
            Some(pb::start_position::Position::Offset(offset)) => Offset(*offset),
            _ => Offset::ZERO,
        };
        let timeout = self.ctx.limits.request_timeout;
        let current = match self.target.replica.watermark_for(requested, timeout).await {
            Ok(current) => current,
            Err(e) => return self.end_with(errors::from_read(e)).await,
        };
        let next = match position {
            None | Some(pb::start_position::Position::Earliest(_)) => current.log_start,
            Some(pb::start_position::Position::Latest(_)) => current.high,
            Some(pb::start_position::Position::Offset(offset)) => Offset(offset),
        };
        if next < current.log_start || next > current.high {
            let message = format!(
                "offset {next} is out of range: the partition holds [{}, {})",
                current.log_start, current.high
            );
            return self
                .end_with(error(pb::ErrorCode::OffsetOutOfRange, message))
                .await;
        }
        // Tell the client where the stream starts before any event: a `latest` resolved now
        // must not be resolved again (later) if the stream breaks before its first event.
        let first = pb::SubscribeResponse {
            high_watermark: current.high.0,
            start_offset: Some(next.0),
            ..Default::default()
        };
        if self.tx.send(unbudgeted(first)).await.is_err() {
            return;
        }
        self.follow(next).await;
    }

    /// Streams committed events from `next` on, forever or until something ends it.
    async fn follow(&self, mut next: Offset) {
        let mut watermark = self.target.replica.watermark();
        let mut last_sent = crate::rt::now();
        loop {
            if let Some(e) = self.reason_to_end() {
                return self.end_with(e).await;
            }
            let current = *watermark.borrow_and_update();
            if next < current.high {
                let (mut own, mut budget, slot) = match self.wait_for_room().await {
                    Wait::Room(own, budget, slot) => (own, budget, slot),
                    Wait::End(e) => return self.end_with(e).await,
                    Wait::Gone => return,
                };
                let events = match self.target.replica.read(next, current, self.limits).await {
                    Ok(events) => events,
                    Err(e) => return self.end_with(errors::from_read(e)).await,
                };
                let Some(last) = events.last() else {
                    panic!(
                        "{}: read below the high watermark returned nothing",
                        self.target.partition
                    );
                };
                next = last.offset.plus(1);
                let bytes: usize = events.iter().map(|e| e.event.accounted_bytes()).sum();
                drop(own.split(own.num_permits().saturating_sub(bytes.max(1))));
                budget.shrink_to(bytes);
                let message = pb::SubscribeResponse {
                    events: events.into_iter().map(stored_to_wire).collect(),
                    high_watermark: current.high.0,
                    ..Default::default()
                };
                slot.send(Queued {
                    message,
                    _held: Some((own, budget)),
                });
                last_sent = crate::rt::now();
                continue;
            }
            if last_sent.elapsed() >= self.heartbeat {
                let beat = pb::SubscribeResponse {
                    high_watermark: current.high.0,
                    heartbeat: true,
                    ..Default::default()
                };
                // A full channel means the client has messages to read already.
                let _ = self.tx.try_send(unbudgeted(beat));
                last_sent = crate::rt::now();
            }
            let wake = self
                .heartbeat
                .saturating_sub(last_sent.elapsed())
                .min(CHECK_INTERVAL);
            tokio::select! {
                // biased: a deterministic branch order (tokio's random one is seeded per
                // process, which breaks the simulation's determinism check).
                biased;
                changed = watermark.changed() => if changed.is_err() {
                    return self.end_with(error(pb::ErrorCode::Unavailable, "the replica stopped")).await;
                },
                _ = crate::rt::sleep(wake) => {},
                _ = self.tx.closed() => return,
            }
        }
    }

    /// An error that ends the stream now: shutdown, or this replica no longer leads.
    fn reason_to_end(&self) -> Option<pb::Error> {
        if *self.ctx.shutdown.borrow() {
            return Some(error(pb::ErrorCode::ShuttingDown, "node is shutting down"));
        }
        if let Leadership::Follower { leader } = self.target.replica.leadership() {
            let message = format!("node {} no longer leads {}", self.ctx.node_id, self.topic);
            return Some(not_leader(message, leader, &self.ctx.metadata.view()));
        }
        None
    }

    /// Room for one more message: `limits.max_bytes` from this stream's buffer and from
    /// the node's budget, and a place in the channel (the room is taken before the read,
    /// so a waiting stream holds no events). While waiting: the stream still ends on
    /// shutdown or a lost leadership, and ends as a slow consumer when its client takes
    /// nothing for too long.
    async fn wait_for_room(&self) -> Wait {
        let bytes = self
            .limits
            .max_bytes
            .clamp(1, self.ctx.limits.subscribe_buffer_bytes_max);
        let permits = u32::try_from(bytes).unwrap_or(u32::MAX);
        let own = self.buffer.clone().acquire_many_owned(permits);
        let budget = self.ctx.subscribe_budget.acquire_waiting(bytes);
        let slot = self.tx.clone().reserve_owned();
        let room = async {
            let own = own
                .await
                .expect("a stream's buffer semaphore is never closed");
            let budget = budget.await;
            (own, budget, slot.await)
        };
        tokio::pin!(room);
        loop {
            tokio::select! {
                biased;
                (own, budget, slot) = &mut room => return match slot {
                    Ok(slot) => Wait::Room(own, budget, slot),
                    Err(_) => Wait::Gone,
                },
                _ = crate::rt::sleep(CHECK_INTERVAL) => {},
            }
            if self.tx.is_closed() {
                return Wait::Gone;
            }
            if let Some(e) = self.reason_to_end() {
                return Wait::End(e);
            }
            if let Some(e) = self.slow_consumer() {
                return Wait::End(e);
            }
        }
    }

    /// SLOW_CONSUMER when messages wait for the client and it took none for too long.
    fn slow_consumer(&self) -> Option<pb::Error> {
        let buffered = self.ctx.limits.subscribe_buffer_bytes_max - self.buffer.available_permits();
        if buffered == 0 {
            return None; // Nothing of ours waits: the node's budget is what is full.
        }
        let limit = self.ctx.limits.slow_consumer_timeout;
        let taken_ms = self.last_taken_ms.load(Ordering::Relaxed);
        let stalled = self
            .opened
            .elapsed()
            .saturating_sub(Duration::from_millis(taken_ms));
        if stalled < limit {
            return None;
        }
        Some(error(
            pb::ErrorCode::SlowConsumer,
            format!(
                "the client took no message for {stalled:?} while {buffered} bytes waited for it \
                 (read.slow_consumer_timeout_ms {}, read.subscribe_buffer_bytes_max {}): \
                 subscribe again from the next offset",
                limit.as_millis(),
                self.ctx.limits.subscribe_buffer_bytes_max
            ),
        ))
    }

    /// Sends the stream's last message. It holds no budget and the channel keeps room
    /// for it beyond the byte buffer; if even that is full, the stream just closes.
    async fn end_with(&self, e: pb::Error) {
        let _ = self.tx.try_send(unbudgeted(failure(e)));
    }
}

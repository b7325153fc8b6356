//! The produce path of one leader replica: admission, then batching, then Raft.
//!
//! 1. **Admission** ([`Batcher::produce`]): a request takes its bytes from the node's
//!    produce budget, then room in this partition's queue (bytes and a request slot).
//!    Each waits, fairly, at most `admission_wait` in all; a request still waiting then
//!    is refused with [`ProduceError::Overloaded`]: nothing of it was written, and the
//!    client may retry. So no request, however many arrive, waits unboundedly here.
//!    Before waiting at all, a request is refused at once while this partition is
//!    falling behind: the last proposed request waited longer than `queue_delay_target`
//!    from its arrival to its proposal and requests are still queued (after CoDel:
//!    a standing queue, not a burst; a queue that empties forgets the delay, so the
//!    first burst after an overload is not refused on it). So under sustained overload
//!    the queue stays short and what is admitted is committed soon, instead of every
//!    request waiting out a full queue.
//! 2. **Batching** (`run`): queued requests are coalesced into one Raft entry, up to
//!    `batch_bytes_max` / `batch_events_max` (a request is never split, so a request
//!    larger than a batch goes alone); entries are pipelined into openraft, at most
//!    `inflight_entries_max` uncommitted at a time. A request leaves the queue (its
//!    queue room is freed) when its entry is proposed.
//! 3. **Answer**: each request gets its segment's outcome once the entry is committed and
//!    applied; only then does it give its bytes back to the node's budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::ClientWriteError;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::budget::{BudgetPermit, MemoryBudget};
use crate::raft::{Command, CommandResponse, Raft};

use super::command::{
    AppendBatch, PartitionCommand, PartitionResponse, ProduceSegment, SegmentOutcome,
};
use crate::rt::Instant;
use crate::types::{NodeId, PartitionId};

/// Limits of the batcher (from `config::ProduceConfig`).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub batch_bytes_max: usize,
    pub batch_events_max: usize,
    pub inflight_entries_max: usize,
    /// Requests waiting for a batch; beyond it producers wait, then are refused.
    pub queue_requests_max: usize,
    /// Bytes of the requests waiting for a batch; same rule.
    pub queue_bytes_max: usize,
    /// How long a request may wait for room in the budget and the queue, in all.
    pub admission_wait: Duration,
    /// Arrival to proposal: beyond it, while requests are queued, new ones are refused.
    pub queue_delay_target: Duration,
}

/// How long a refused producer should wait before it retries.
pub const OVERLOAD_RETRY_AFTER_MS: u32 = 100;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProduceError {
    #[error("not the leader of {partition}")]
    NotLeader {
        partition: PartitionId,
        leader: Option<NodeId>,
    },
    #[error("replica of {0} is shutting down")]
    ShuttingDown(PartitionId),
    #[error("raft failure on {partition}: {message}")]
    Raft {
        partition: PartitionId,
        message: String,
    },
    /// A queue or budget stayed full for the whole admission wait; nothing was written.
    #[error("{partition}: {reason}; retry in {retry_after_ms} ms")]
    Overloaded {
        partition: PartitionId,
        /// What is full, with its limit's config name and its numbers.
        reason: String,
        retry_after_ms: u32,
    },
}

pub type ProduceResult = Result<SegmentOutcome, ProduceError>;

struct Pending {
    segment: ProduceSegment,
    bytes: usize,
    /// When the request reached admission.
    arrived: Instant,
    reply: oneshot::Sender<ProduceResult>,
    /// Room in this partition's queue: given back when the request is proposed.
    queued: OwnedSemaphorePermit,
    /// Bytes of the node's produce budget: given back when the request is answered.
    budget: BudgetPermit,
}

/// Handle to a replica's batcher task.
#[derive(Clone)]
pub struct Batcher {
    partition: PartitionId,
    limits: BatchLimits,
    tx: mpsc::Sender<Pending>,
    queue_bytes: Arc<Semaphore>,
    budget: MemoryBudget,
    /// Arrival to proposal of the oldest request of the last proposed entry, in µs.
    queue_delay_us: Arc<AtomicU64>,
}

impl Batcher {
    /// Starts the batcher task of `partition`'s leader replica.
    pub fn start(
        partition: PartitionId,
        raft: Raft,
        limits: BatchLimits,
        budget: MemoryBudget,
    ) -> Self {
        let (batcher, rx) = Self::new(partition, limits, budget);
        let queue_delay_us = batcher.queue_delay_us.clone();
        crate::rt::spawn(run(partition, raft, limits, rx, queue_delay_us));
        batcher
    }

    /// The handle and the queue its task drains.
    fn new(
        partition: PartitionId,
        limits: BatchLimits,
        budget: MemoryBudget,
    ) -> (Self, mpsc::Receiver<Pending>) {
        assert!(
            limits.batch_bytes_max > 0
                && limits.batch_events_max > 0
                && limits.inflight_entries_max > 0
                && limits.queue_requests_max > 0
                && limits.queue_bytes_max > 0
        );
        let (tx, rx) = mpsc::channel(limits.queue_requests_max);
        let batcher = Self {
            partition,
            limits,
            tx,
            queue_bytes: Arc::new(Semaphore::new(limits.queue_bytes_max.min(usize::MAX >> 3))),
            budget,
            queue_delay_us: Arc::new(AtomicU64::new(0)),
        };
        (batcher, rx)
    }

    /// Admits the segment (`bytes`: its accounted size, at most the request limit, which
    /// validation keeps below every budget) and appends it; resolves once it is committed
    /// and applied, or refused.
    pub async fn produce(&self, segment: ProduceSegment, bytes: usize) -> ProduceResult {
        let started = crate::rt::now();
        if let Some(behind) = self.falling_behind() {
            return Err(self.overloaded(behind));
        }
        let budget = self
            .budget
            .acquire(bytes, self.limits.admission_wait)
            .await
            .map_err(|full| self.overloaded(full.to_string()))?;
        let left = self.limits.admission_wait.saturating_sub(started.elapsed());
        let queued = self.admit_to_queue(bytes, left).await?;
        let left = self.limits.admission_wait.saturating_sub(started.elapsed());
        let Some(slot) = crate::rt::timeout(left, self.tx.reserve()).await else {
            return Err(self.overloaded(format!(
                "{} requests are queued (produce.queue_requests_max)",
                self.limits.queue_requests_max
            )));
        };
        let Ok(slot) = slot else {
            return Err(ProduceError::ShuttingDown(self.partition));
        };
        let (reply, rx) = oneshot::channel();
        slot.send(Pending {
            segment,
            bytes,
            arrived: started,
            reply,
            queued,
            budget,
        });
        rx.await
            .unwrap_or(Err(ProduceError::ShuttingDown(self.partition)))
    }

    async fn admit_to_queue(
        &self,
        bytes: usize,
        wait: Duration,
    ) -> Result<OwnedSemaphorePermit, ProduceError> {
        let permits =
            u32::try_from(bytes.clamp(1, self.limits.queue_bytes_max)).unwrap_or(u32::MAX);
        let acquire = self.queue_bytes.clone().acquire_many_owned(permits);
        match crate::rt::timeout(wait, acquire).await {
            Some(Ok(permit)) => {
                // Alone in the queue: everything queued before has been proposed, so the
                // last proposal's delay describes a queue that has drained (CoDel leaves
                // its dropping state when the queue empties). Without this, the first
                // burst after an overload would be refused on a stale delay.
                let held = permits as usize;
                if self.queue_bytes.available_permits() + held == self.limits.queue_bytes_max {
                    self.queue_delay_us.store(0, Ordering::Relaxed);
                }
                Ok(permit)
            }
            Some(Err(_closed)) => unreachable!("the queue's byte semaphore is never closed"),
            None => {
                let queued = self.limits.queue_bytes_max - self.queue_bytes.available_permits();
                Err(self.overloaded(format!(
                    "{queued} of {} bytes are queued (produce.queue_bytes_max), {bytes} more wanted",
                    self.limits.queue_bytes_max
                )))
            }
        }
    }

    /// Why a new request is refused at once, if it is: the last proposed request waited
    /// past the target, and requests are still queued (so the delay is not a past burst
    /// that has since drained).
    fn falling_behind(&self) -> Option<String> {
        let delay = Duration::from_micros(self.queue_delay_us.load(Ordering::Relaxed));
        let queued = self.queue_bytes.available_permits() < self.limits.queue_bytes_max;
        (queued && delay > self.limits.queue_delay_target).then(|| {
            format!(
                "requests wait {} ms to be proposed, more than produce.queue_delay_target_ms \
                 ({})",
                delay.as_millis(),
                self.limits.queue_delay_target.as_millis()
            )
        })
    }

    fn overloaded(&self, reason: String) -> ProduceError {
        ProduceError::Overloaded {
            partition: self.partition,
            reason,
            retry_after_ms: OVERLOAD_RETRY_AFTER_MS,
        }
    }
}

/// Takes requests off the queue into entries. `carry` is a request that did not fit in
/// the previous entry: it starts the next one, so an entry never exceeds the batch limits
/// (unless one request alone does).
async fn run(
    partition: PartitionId,
    raft: Raft,
    limits: BatchLimits,
    mut rx: mpsc::Receiver<Pending>,
    queue_delay_us: Arc<AtomicU64>,
) {
    let inflight = Arc::new(Semaphore::new(limits.inflight_entries_max));
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(first) => first,
            None => match rx.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = vec![first];
        let (mut bytes, mut events) = (batch[0].bytes, batch[0].segment.events.len());
        while bytes < limits.batch_bytes_max && events < limits.batch_events_max {
            let Ok(next) = rx.try_recv() else { break };
            let fits = bytes + next.bytes <= limits.batch_bytes_max
                && events + next.segment.events.len() <= limits.batch_events_max;
            if !fits {
                carry = Some(next);
                break;
            }
            bytes += next.bytes;
            events += next.segment.events.len();
            batch.push(next);
        }
        let permit = inflight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        // A request whose caller stopped waiting (its RPC timed out) is not proposed: its
        // producer has been told it failed, and appending it now could land it after that
        // producer's later requests.
        batch.retain(|pending| !pending.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        // The batch is in arrival order: its first request waited longest.
        let delay = batch[0].arrived.elapsed().as_micros();
        queue_delay_us.store(u64::try_from(delay).unwrap_or(u64::MAX), Ordering::Relaxed);
        let mut segments = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for pending in batch {
            segments.push(pending.segment);
            drop(pending.queued);
            waiting.push((pending.reply, pending.budget));
        }
        let command = Command::Partition(PartitionCommand::Append(AppendBatch { segments }));
        match raft.client_write_ff(command).await {
            Err(fatal) => {
                let error = ProduceError::Raft {
                    partition,
                    message: fatal.to_string(),
                };
                for (reply, _budget) in waiting {
                    let _ = reply.send(Err(error.clone()));
                }
            }
            Ok(committed) => {
                crate::rt::spawn(async move {
                    let result = committed.await;
                    answer(partition, result, waiting);
                    drop(permit);
                });
            }
        }
    }
}

type WriteResult = Result<
    Result<
        openraft::raft::ClientWriteResponse<crate::raft::TypeConfig>,
        ClientWriteError<NodeId, openraft::BasicNode>,
    >,
    tokio::sync::oneshot::error::RecvError,
>;

/// Answers every request of an entry; their budget permits go with the answers.
fn answer(
    partition: PartitionId,
    result: WriteResult,
    replies: Vec<(oneshot::Sender<ProduceResult>, BudgetPermit)>,
) {
    let outcomes = match result {
        Ok(Ok(response)) => match response.data {
            CommandResponse::Partition(PartitionResponse::Append(outcomes)) => Ok(outcomes),
            other => panic!("{partition}: append answered with {other:?}"),
        },
        Ok(Err(ClientWriteError::ForwardToLeader(forward))) => Err(ProduceError::NotLeader {
            partition,
            leader: forward.leader_id,
        }),
        Ok(Err(other)) => Err(ProduceError::Raft {
            partition,
            message: other.to_string(),
        }),
        Err(_) => Err(ProduceError::ShuttingDown(partition)),
    };
    match outcomes {
        Ok(outcomes) => {
            assert_eq!(
                outcomes.len(),
                replies.len(),
                "{partition}: one outcome per segment"
            );
            for ((reply, _budget), outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            for (reply, _budget) in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Goal: admission never lets a request wait past `admission_wait`, and refuses with
    //! the limit that is full. Method: a batcher whose queue nobody drains, filled to each
    //! limit in turn; the next request must be refused as overloaded, naming the limit.
    use super::*;
    use crate::types::Event;

    fn limits() -> BatchLimits {
        BatchLimits {
            batch_bytes_max: 1000,
            batch_events_max: 100,
            inflight_entries_max: 4,
            queue_requests_max: 2,
            queue_bytes_max: 300,
            admission_wait: Duration::from_millis(20),
            queue_delay_target: Duration::from_millis(5),
        }
    }

    fn segment() -> ProduceSegment {
        ProduceSegment {
            producer_id: crate::types::ProducerId::NONE,
            first_sequence: 0,
            events: vec![Event {
                key: None,
                value: bytes::Bytes::from_static(b"v"),
                headers: Vec::new(),
                timestamp_ms: 1,
            }],
        }
    }

    /// Sends `bytes` through admission in the background; returns its answer's receiver.
    fn send(batcher: &Batcher, bytes: usize) -> tokio::task::JoinHandle<ProduceResult> {
        let batcher = batcher.clone();
        tokio::spawn(async move { batcher.produce(segment(), bytes).await })
    }

    fn assert_overloaded(result: ProduceResult, limit: &str) {
        match result {
            Err(ProduceError::Overloaded { reason, .. }) => {
                assert!(reason.contains(limit), "{reason}")
            }
            other => panic!("expected an overload naming {limit}, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_full_request_queue_refuses_after_the_admission_wait() {
        let budget = MemoryBudget::new("memory.produce_bytes_max", 10_000);
        let (batcher, mut rx) = Batcher::new(PartitionId(1), limits(), budget);
        let _a = send(&batcher, 10);
        let _b = send(&batcher, 10);
        let refused = send(&batcher, 10).await.unwrap();
        assert_overloaded(refused, "produce.queue_requests_max");
        // Draining one request makes room again.
        let taken = rx.recv().await.unwrap();
        drop(taken);
        let _c = send(&batcher, 10);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(rx.try_recv().is_ok(), "admitted once there was room");
    }

    #[tokio::test]
    async fn full_queue_bytes_and_a_full_node_budget_refuse_by_name() {
        let budget = MemoryBudget::new("memory.produce_bytes_max", 10_000);
        let (batcher, _rx) = Batcher::new(PartitionId(1), limits(), budget);
        let _a = send(&batcher, 250);
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_overloaded(
            send(&batcher, 100).await.unwrap(),
            "produce.queue_bytes_max",
        );

        let budget = MemoryBudget::new("memory.produce_bytes_max", 100);
        let (batcher, _rx) = Batcher::new(PartitionId(1), limits(), budget.clone());
        let _held = budget.acquire(90, Duration::ZERO).await.unwrap();
        assert_overloaded(
            send(&batcher, 20).await.unwrap(),
            "memory.produce_bytes_max",
        );
    }

    #[tokio::test]
    async fn budget_bytes_stay_held_until_the_answer() {
        // Goal: the node budget covers a request until it is answered, not just queued.
        let budget = MemoryBudget::new("memory.produce_bytes_max", 1000);
        let (batcher, mut rx) = Batcher::new(PartitionId(1), limits(), budget.clone());
        let answer = send(&batcher, 70);
        let pending = rx.recv().await.unwrap();
        assert_eq!(budget.in_use(), 70);
        drop(pending.queued);
        assert_eq!(
            budget.in_use(),
            70,
            "proposing frees queue room, not budget"
        );
        let _ = pending.reply.send(Ok(SegmentOutcome::Appended {
            base_offset: crate::types::Offset::ZERO,
        }));
        drop(pending.budget);
        assert!(answer.await.unwrap().is_ok());
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_standing_queue_refuses_new_requests_at_once_until_it_drains() {
        // Goal: while the last proposal waited past the target and requests are still
        // queued, a new request is refused at once (not after the admission wait), and
        // admitted again once the queue is empty; a queue that drained starts afresh.
        let budget = MemoryBudget::new("memory.produce_bytes_max", 10_000);
        let (batcher, mut rx) = Batcher::new(PartitionId(1), limits(), budget);
        let _queued = send(&batcher, 10);
        let queued = rx.recv().await.unwrap();
        batcher.queue_delay_us.store(6_000, Ordering::Relaxed);
        let started = Instant::now();
        assert_overloaded(
            send(&batcher, 10).await.unwrap(),
            "produce.queue_delay_target_ms (5)",
        );
        assert!(
            started.elapsed() < limits().admission_wait,
            "refused without waiting"
        );
        // A delay under the target admits, as does an empty queue whatever the delay.
        batcher.queue_delay_us.store(4_000, Ordering::Relaxed);
        let _admitted = send(&batcher, 10);
        assert!(rx.recv().await.is_some());
        batcher.queue_delay_us.store(6_000, Ordering::Relaxed);
        drop(queued);
        let first = send(&batcher, 10);
        let first_queued = rx.recv().await.expect("an empty queue admits");
        // The queue had drained, so the old delay no longer counts: a second request
        // arriving while the first is still queued is admitted too.
        let second = send(&batcher, 10);
        let outcome = tokio::select! {
            queued = rx.recv() => format!("queued: {}", queued.is_some()),
            answered = second => format!("answered: {:?}", answered.unwrap()),
        };
        assert_eq!(outcome, "queued: true", "a drained queue forgets its delay");
        drop((first, first_queued));
    }
}

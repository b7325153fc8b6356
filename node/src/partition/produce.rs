//! The produce path of one leader replica: concurrent produce requests are coalesced into
//! one Raft entry (bounded by bytes and events), entries are pipelined into openraft
//! (bounded by `inflight_entries_max`) and each request is answered from its segment's
//! outcome once the entry is committed and applied.

use std::sync::Arc;

use openraft::error::ClientWriteError;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::raft::{AppendBatch, Command, CommandResponse, ProduceSegment, Raft, SegmentOutcome};
use crate::types::{NodeId, PartitionId};

/// Limits of the batcher (from `config::ProduceConfig`).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub batch_bytes_max: usize,
    pub batch_events_max: usize,
    pub inflight_entries_max: usize,
    /// Requests waiting for a batch; producers beyond it wait (back-pressure).
    pub queue_requests_max: usize,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProduceError {
    #[error("not the leader of {partition}")]
    NotLeader {
        partition: PartitionId,
        leader: Option<(NodeId, String)>,
    },
    #[error("replica of {0} is shutting down")]
    ShuttingDown(PartitionId),
    #[error("raft failure on {partition}: {message}")]
    Raft {
        partition: PartitionId,
        message: String,
    },
}

pub type ProduceResult = Result<SegmentOutcome, ProduceError>;

struct Pending {
    segment: ProduceSegment,
    bytes: usize,
    reply: oneshot::Sender<ProduceResult>,
}

/// Handle to a replica's batcher task.
#[derive(Clone)]
pub struct Batcher {
    partition: PartitionId,
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    pub fn start(partition: PartitionId, raft: Raft, limits: BatchLimits) -> Self {
        assert!(
            limits.batch_bytes_max > 0
                && limits.batch_events_max > 0
                && limits.inflight_entries_max > 0
        );
        let (tx, rx) = mpsc::channel(limits.queue_requests_max.max(1));
        crate::rt::spawn(run(partition, raft, limits, rx));
        Self { partition, tx }
    }

    /// Appends the segment; resolves once it is committed and applied (or refused).
    pub async fn produce(&self, segment: ProduceSegment, bytes: usize) -> ProduceResult {
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            segment,
            bytes,
            reply,
        };
        if self.tx.send(pending).await.is_err() {
            return Err(ProduceError::ShuttingDown(self.partition));
        }
        rx.await
            .unwrap_or(Err(ProduceError::ShuttingDown(self.partition)))
    }
}

async fn run(
    partition: PartitionId,
    raft: Raft,
    limits: BatchLimits,
    mut rx: mpsc::Receiver<Pending>,
) {
    let inflight = Arc::new(Semaphore::new(limits.inflight_entries_max));
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let (mut bytes, mut events) = (batch[0].bytes, batch[0].segment.events.len());
        while bytes < limits.batch_bytes_max && events < limits.batch_events_max {
            match rx.try_recv() {
                Ok(next) => {
                    bytes += next.bytes;
                    events += next.segment.events.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
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
        let (segments, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.segment, p.reply)).unzip();
        let command = Command::Append(AppendBatch { segments });
        match raft.client_write_ff(command).await {
            Err(fatal) => {
                let error = ProduceError::Raft {
                    partition,
                    message: fatal.to_string(),
                };
                replies
                    .into_iter()
                    .for_each(|r| drop(r.send(Err(error.clone()))));
            }
            Ok(committed) => {
                crate::rt::spawn(async move {
                    let result = committed.await;
                    answer(partition, result, replies);
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

fn answer(
    partition: PartitionId,
    result: WriteResult,
    replies: Vec<oneshot::Sender<ProduceResult>>,
) {
    let outcomes = match result {
        Ok(Ok(response)) => match response.data {
            CommandResponse::Append(outcomes) => Ok(outcomes),
            other => panic!("{partition}: append answered with {other:?}"),
        },
        Ok(Err(ClientWriteError::ForwardToLeader(forward))) => Err(ProduceError::NotLeader {
            partition,
            leader: forward.leader_id.zip(forward.leader_node.map(|n| n.addr)),
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
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => replies
            .into_iter()
            .for_each(|r| drop(r.send(Err(error.clone())))),
    }
}

//! One Subscribe stream: reads from the start position, then follows new commits.
//!
//! The stream's channel is bounded, so a slow client slows the reads down instead of
//! letting the node buffer without limit. The stream ends with an error the client can
//! act on when this replica stops leading (NOT_LEADER with a hint), when the node shuts
//! down, or when the partition goes away; the client resumes at its next offset.

use std::time::Duration;

use evlog_proto::evlog::v1 as pb;
use tokio::sync::mpsc;
use tonic::Status;

use super::errors::{error, not_leader};
use super::event_log::{read_for_subscription, stored_to_wire};
use super::{ApiContext, Target};
use crate::partition::read::ReadLimits;
use crate::partition::Leadership;

/// How often an idle stream re-checks that this replica still leads.
const LEADERSHIP_CHECK: Duration = Duration::from_millis(500);

type Sink = mpsc::Sender<Result<pb::SubscribeResponse, Status>>;

async fn end_with(tx: &Sink, e: pb::Error) {
    let _ = tx
        .send(Ok(pb::SubscribeResponse {
            error: Some(e),
            ..Default::default()
        }))
        .await;
}

pub async fn follow(
    ctx: ApiContext,
    target: Target,
    request: pb::SubscribeRequest,
    limits: ReadLimits,
    tx: Sink,
) {
    let mut watermark = target.replica.watermark();
    let position = request.start.and_then(|s| s.position);
    let requested = match &position {
        Some(pb::start_position::Position::Offset(offset)) => *offset,
        _ => 0,
    };
    let current = target
        .watermark_for(requested, ctx.limits.request_timeout)
        .await;
    let current = match current {
        Ok(current) => current,
        Err(e) => return end_with(&tx, e).await,
    };
    let mut next = match position {
        None | Some(pb::start_position::Position::Earliest(_)) => current.log_start,
        Some(pb::start_position::Position::Latest(_)) => current.high,
        Some(pb::start_position::Position::Offset(offset)) => offset,
    };
    if next < current.log_start || next > current.high {
        let message = format!(
            "offset {next} is out of range: the partition holds [{}, {})",
            current.log_start, current.high
        );
        return end_with(&tx, error(pb::ErrorCode::OffsetOutOfRange, message)).await;
    }
    // Tell the client where the stream starts before any event: a `latest` resolved now
    // must not be resolved again (later) if the stream breaks before its first event.
    let first = pb::SubscribeResponse {
        error: None,
        events: Vec::new(),
        high_watermark: current.high,
        start_offset: Some(next),
        heartbeat: false,
    };
    if tx.send(Ok(first)).await.is_err() {
        return;
    }
    loop {
        if *ctx.shutdown.borrow() {
            return end_with(
                &tx,
                error(pb::ErrorCode::ShuttingDown, "node is shutting down"),
            )
            .await;
        }
        if let Leadership::Follower { leader } = target.replica.leadership() {
            let message = format!("node {} no longer leads {}", ctx.node_id, request.topic);
            return end_with(&tx, not_leader(message, leader, &ctx.metadata.view())).await;
        }
        let current = *watermark.borrow_and_update();
        if next < current.high {
            let events = match read_for_subscription(&target, next, current, limits).await {
                Ok(events) => events,
                Err(e) => return end_with(&tx, e).await,
            };
            let Some(last) = events.last() else {
                panic!(
                    "{}: read below the high watermark returned nothing",
                    target.partition
                );
            };
            next = last.offset + 1;
            let response = pb::SubscribeResponse {
                error: None,
                events: events.into_iter().map(stored_to_wire).collect(),
                high_watermark: current.high,
                start_offset: None,
                heartbeat: false,
            };
            if tx.send(Ok(response)).await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            // biased: a deterministic branch order (tokio's random one is seeded per process,
            // which breaks the simulation's determinism check).
            biased;
            changed = watermark.changed() => if changed.is_err() {
                return end_with(&tx, error(pb::ErrorCode::Unavailable, "the replica stopped")).await;
            },
            _ = crate::rt::sleep(LEADERSHIP_CHECK) => {},
            _ = tx.closed() => return,
        }
    }
}

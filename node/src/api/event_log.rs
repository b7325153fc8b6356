//! The `EventLog` service: produce, read and subscribe, on the partition's leader.
//!
//! Produce validates everything it can before touching Raft (sizes, emptiness), so a bad
//! request is refused whole and nothing of it is written.

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::event_log_server::EventLog;
use tonic::{Request, Response, Status};

use super::errors::{self, error, invalid};
use super::{ApiContext, ApiLimits};
use crate::partition::command::{ProduceSegment, SegmentOutcome};
use crate::partition::read::{ReadLimits, StoredEvent};
use crate::types::{Event, Offset, ProducerId};

pub struct EventLogService {
    ctx: ApiContext,
}

impl EventLogService {
    pub fn new(ctx: ApiContext) -> Self {
        Self { ctx }
    }
}

fn produce_error(e: pb::Error) -> Result<Response<pb::ProduceResponse>, Status> {
    Ok(Response::new(pb::ProduceResponse {
        error: Some(e),
        ..Default::default()
    }))
}

/// The checks that need no topic: how many events, how many headers each. They come
/// before anything the handler waits for (finding the leader may wait for the metadata
/// group), since a small message of many empty events or headers decodes into large
/// structures that should be dropped at once, not held while the request waits.
fn check_request_shape(events: &[pb::Event], limits: &ApiLimits) -> Result<(), pb::Error> {
    if events.is_empty() {
        return Err(invalid("a produce request needs at least one event"));
    }
    if events.len() > limits.request_events_max {
        return Err(invalid(format!(
            "request carries {} events; at most {} per request (produce.request_events_max)",
            events.len(),
            limits.request_events_max
        )));
    }
    match events
        .iter()
        .position(|e| e.headers.len() > limits.headers_per_event_max)
    {
        Some(i) => Err(invalid(format!(
            "event {i} has {} headers; at most {} per event (produce.headers_per_event_max)",
            events[i].headers.len(),
            limits.headers_per_event_max
        ))),
        None => Ok(()),
    }
}

/// Converts and checks the request's events (their shape already checked); refuses the
/// whole request on any problem, naming the limit and the value. Returns the events and
/// their accounted bytes.
fn events_from_request(
    events: Vec<pb::Event>,
    max_event_bytes: u32,
    limits: &ApiLimits,
) -> Result<(Vec<Event>, usize), pb::Error> {
    let mut total = 0usize;
    for (i, e) in events.iter().enumerate() {
        let size = e.payload_bytes();
        if size > max_event_bytes as usize {
            return Err(error(
                pb::ErrorCode::EventTooLarge,
                format!("event {i} is {size} bytes; the topic accepts at most {max_event_bytes}"),
            ));
        }
        total = total.saturating_add(e.accounted_bytes());
    }
    if total > limits.request_bytes_max {
        return Err(invalid(format!(
            "request carries {total} bytes of events (with 32 bytes of overhead per event); \
             at most {} per request (produce.request_bytes_max)",
            limits.request_bytes_max
        )));
    }
    let now = crate::rt::unix_time_ms();
    let out = events
        .into_iter()
        .map(|e| Event {
            key: e.key,
            value: e.value,
            headers: e.headers.into_iter().map(|h| (h.key, h.value)).collect(),
            timestamp_ms: if e.timestamp_ms == 0 {
                now
            } else {
                e.timestamp_ms
            },
        })
        .collect();
    Ok((out, total))
}

pub(super) fn stored_to_wire(stored: StoredEvent) -> pb::StoredEvent {
    pb::StoredEvent {
        offset: stored.offset.0,
        key: stored.event.key,
        value: stored.event.value,
        headers: stored
            .event
            .headers
            .into_iter()
            .map(|(key, value)| pb::Header { key, value })
            .collect(),
        timestamp_ms: stored.event.timestamp_ms,
    }
}

#[tonic::async_trait]
impl EventLog for EventLogService {
    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        let request = request.into_inner();
        if let Err(e) = check_request_shape(&request.events, &self.ctx.limits) {
            return produce_error(e);
        }
        let target = match self
            .ctx
            .leader_target(&request.topic, request.partition)
            .await
        {
            Ok(target) => target,
            Err(e) => return produce_error(e),
        };
        let limits = self.ctx.limits;
        let (events, bytes) =
            match events_from_request(request.events, target.max_event_bytes, &limits) {
                Ok(checked) => checked,
                Err(e) => return produce_error(e),
            };
        let count = events.len() as u64;
        if request.producer_id != 0 && request.first_sequence.checked_add(count).is_none() {
            return produce_error(invalid("sequence numbers overflow u64"));
        }
        let segment = ProduceSegment {
            producer_id: ProducerId(request.producer_id),
            first_sequence: request.first_sequence,
            events,
        };
        let produced = tokio::time::timeout(
            limits.request_timeout,
            target.replica.batcher.produce(segment, bytes),
        )
        .await;
        let (base_offset, duplicate) = match produced {
            Err(_) => {
                return produce_error(error(
                    pb::ErrorCode::Timeout,
                    "not committed in time; retry with the same sequence",
                ))
            }
            Ok(Err(e)) => return produce_error(errors::from_produce(e, &self.ctx.metadata.view())),
            Ok(Ok(SegmentOutcome::Appended { base_offset })) => (base_offset, false),
            Ok(Ok(SegmentOutcome::Duplicate { base_offset })) => (base_offset, true),
            Ok(Ok(SegmentOutcome::DuplicateSequence {
                oldest_remembered_sequence,
            })) => {
                return produce_error(error(
                    pb::ErrorCode::DuplicateSequence,
                    format!(
                        "producer {} sent sequence {}: appended before, but older than the \
                         last 5 requests remembered (from sequence {oldest_remembered_sequence}); \
                         its offsets are no longer known. Do not resend it.",
                        request.producer_id, request.first_sequence
                    ),
                ))
            }
            Ok(Ok(SegmentOutcome::OutOfOrder { expected_sequence })) => {
                return produce_error(pb::Error {
                    expected_sequence: Some(expected_sequence),
                    ..error(
                        pb::ErrorCode::OutOfOrderSequence,
                        format!(
                            "producer {} sent sequence {}, expected {expected_sequence}",
                            request.producer_id, request.first_sequence
                        ),
                    )
                })
            }
        };
        Ok(Response::new(pb::ProduceResponse {
            error: None,
            partition: request.partition,
            base_offset: base_offset.0,
            duplicate,
        }))
    }

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        let request = request.into_inner();
        let respond = |e: pb::Error| {
            Ok(Response::new(pb::ReadResponse {
                error: Some(e),
                ..Default::default()
            }))
        };
        let target = match self
            .ctx
            .leader_target(&request.topic, request.partition)
            .await
        {
            Ok(target) => target,
            Err(e) => return respond(e),
        };
        let replica = &target.replica;
        let timeout = self.ctx.limits.request_timeout;
        let offset = Offset(request.offset);
        let watermark = match replica.watermark_for(offset, timeout).await {
            Ok(watermark) => watermark,
            Err(e) => return respond(errors::from_read(e)),
        };
        let limits = self.read_limits(request.max_bytes, request.max_events);
        match replica.read(offset, watermark, limits).await {
            Ok(events) => Ok(Response::new(pb::ReadResponse {
                error: None,
                events: events.into_iter().map(stored_to_wire).collect(),
                high_watermark: watermark.high.0,
                log_start_offset: watermark.log_start.0,
            })),
            Err(e) => respond(errors::from_read(e)),
        }
    }

    type SubscribeStream = super::subscription::SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let limits = self.read_limits(request.max_bytes, u32::MAX);
        Ok(Response::new(
            super::subscription::open(&self.ctx, request, limits).await,
        ))
    }
}

impl EventLogService {
    fn read_limits(&self, max_bytes: u32, max_events: u32) -> ReadLimits {
        let cap = self.ctx.limits.response_bytes_max;
        ReadLimits {
            max_bytes: if max_bytes == 0 {
                cap
            } else {
                (max_bytes as usize).min(cap)
            },
            max_events: if max_events == 0 {
                usize::MAX
            } else {
                max_events as usize
            },
        }
    }
}

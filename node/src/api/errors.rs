//! Builders for the wire `Error`, so every service words its errors the same way.

use evlog_proto::evlog::v1 as pb;

use crate::metadata::command::MetadataRefusal;
use crate::metadata::state::MetadataView;
use crate::metadata::ProposeError;
use crate::partition::produce::ProduceError;
use crate::partition::read::ReadError;
use crate::types::NodeId;

pub fn error(code: pb::ErrorCode, message: impl Into<String>) -> pb::Error {
    pb::Error {
        code: code as i32,
        message: message.into(),
        ..Default::default()
    }
}

/// A retryable refusal that tells the client how long to wait first.
pub fn retry_after(
    code: pb::ErrorCode,
    message: impl Into<String>,
    retry_after_ms: u32,
) -> pb::Error {
    pb::Error {
        retry_after_ms: Some(retry_after_ms),
        ..error(code, message)
    }
}

/// NOT_LEADER, naming the leader by id and by client address when they are known.
pub fn not_leader(
    message: impl Into<String>,
    leader: Option<NodeId>,
    view: &MetadataView,
) -> pb::Error {
    let leader_id = leader;
    let leader_addr = leader
        .and_then(|id| view.client_addr(id))
        .map(str::to_owned);
    pb::Error {
        code: pb::ErrorCode::NotLeader as i32,
        message: message.into(),
        leader_id,
        leader_addr,
        ..Default::default()
    }
}

pub fn invalid(message: impl Into<String>) -> pb::Error {
    error(pb::ErrorCode::InvalidArgument, message)
}

pub fn from_produce(e: ProduceError, view: &MetadataView) -> pb::Error {
    match e {
        ProduceError::NotLeader { leader, .. } => not_leader(e.to_string(), leader, view),
        ProduceError::ShuttingDown(_) => error(pb::ErrorCode::ShuttingDown, e.to_string()),
        ProduceError::Raft { .. } => error(pb::ErrorCode::Unavailable, e.to_string()),
        ProduceError::Overloaded { retry_after_ms, .. } => retry_after(
            pb::ErrorCode::ResourceExhausted,
            e.to_string(),
            retry_after_ms,
        ),
    }
}

pub fn from_read(e: ReadError) -> pb::Error {
    match e {
        ReadError::OutOfRange { .. } => error(pb::ErrorCode::OffsetOutOfRange, e.to_string()),
        ReadError::Storage(_) | ReadError::TaskFailed(_) => {
            error(pb::ErrorCode::Internal, e.to_string())
        }
        ReadError::ReplicaStopped(_) | ReadError::Unconfirmed { .. } => {
            error(pb::ErrorCode::Unavailable, e.to_string())
        }
    }
}

/// How long a client should wait before retrying while the cluster forms or elects.
pub const FORMING_RETRY_AFTER_MS: u32 = 200;

pub fn from_propose(e: ProposeError, view: &MetadataView) -> pb::Error {
    match e {
        ProposeError::NotLeader { leader: None } => retry_after(
            pb::ErrorCode::Unavailable,
            "the metadata group has no leader yet (the cluster is forming or electing one); \
             retry",
            FORMING_RETRY_AFTER_MS,
        ),
        ProposeError::NotLeader { leader } => {
            not_leader("this node does not lead the metadata group", leader, view)
        }
        ProposeError::Unavailable(_) => retry_after(
            pb::ErrorCode::Unavailable,
            e.to_string(),
            FORMING_RETRY_AFTER_MS,
        ),
    }
}

pub fn from_refusal(refusal: MetadataRefusal) -> pb::Error {
    let code = match refusal {
        MetadataRefusal::TopicExists(_) => pb::ErrorCode::TopicExists,
        MetadataRefusal::UnknownTopic(_) => pb::ErrorCode::UnknownTopic,
        MetadataRefusal::NotEnoughNodes { .. }
        | MetadataRefusal::Invalid(_)
        | MetadataRefusal::UnknownNode(_) => pb::ErrorCode::InvalidArgument,
    };
    error(code, refusal.to_string())
}

//! `ClientError`: what can go wrong, mapped from the wire `Error` and from gRPC statuses,
//! and which errors are worth retrying.

use evlog_proto::evlog::v1 as pb;
pub use evlog_proto::evlog::v1::ErrorCode;

/// Every error the client library returns.
///
/// Server errors keep the node's stable [`ErrorCode`] and message. Use
/// [`ClientError::code`] to branch on the code and [`ClientError::is_retryable`] to know
/// whether trying again later can help (the library already retried those until the
/// operation deadline).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A node refused the request with a stable error code (never `NOT_LEADER` or
    /// `NOT_COORDINATOR`).
    #[error("{}: {message}", code_name(*code))]
    Server {
        /// The node's error code.
        code: ErrorCode,
        /// The node's explanation.
        message: String,
        /// For retryable codes: how long the node asked the client to wait first.
        retry_after_ms: Option<u32>,
    },
    /// The node does not lead the partition (or the metadata group); it may say who does.
    #[error("NOT_LEADER: {message} (leader hint: id {leader_id:?} at {leader_addr:?})")]
    NotLeader {
        /// The node's explanation.
        message: String,
        /// The leader's node id, when the node knows it.
        leader_id: Option<u64>,
        /// The leader's `host:port`, when the node knows it.
        leader_addr: Option<String>,
    },
    /// The node is not the consumer group's coordinator; it may say which node is.
    #[error(
        "NOT_COORDINATOR: {message} (coordinator hint: id {coordinator_id:?} at {coordinator_addr:?})"
    )]
    NotCoordinator {
        /// The node's explanation.
        message: String,
        /// The coordinator's node id, when the node knows it.
        coordinator_id: Option<u64>,
        /// The coordinator's `host:port`, when the node knows it.
        coordinator_addr: Option<String>,
    },
    /// The RPC did not complete: connection refused or reset, per-attempt timeout, or a
    /// gRPC status other than a node's answer.
    #[error("transport error talking to {addr}: {code:?}: {message}")]
    Transport {
        /// The node address the request went to.
        addr: String,
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// Retries did not succeed before the operation deadline. For a produce, the outcome
    /// of the last attempt is unknown: the events may or may not be in the log.
    #[error("gave up after {elapsed_ms} ms and {attempts} attempts; last error: {last_error}")]
    DeadlineExceeded {
        /// Time spent on the operation.
        elapsed_ms: u64,
        /// Attempts made.
        attempts: u32,
        /// The error of the last attempt.
        last_error: Box<ClientError>,
    },
    /// The caller passed something unusable (bad config, bad address, bad partition).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A node answered with something the client cannot interpret.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The producer or subscription was closed.
    #[error("closed")]
    Closed,
    /// `send` was called while as many event bytes as the buffer holds were already
    /// waiting for buffer space: the event was not queued. Await earlier sends first.
    #[error(
        "producer buffer full: {waiting_bytes} event bytes are already waiting for buffer \
         space (max_buffered_bytes is {max_buffered_bytes}); await earlier sends before \
         sending more"
    )]
    BufferFull {
        /// Event bytes waiting for buffer space when the event was refused.
        waiting_bytes: usize,
        /// The producer's `max_buffered_bytes`.
        max_buffered_bytes: usize,
    },
}

/// The short name of an error code, e.g. `NOT_LEADER` for `ErrorCode::NotLeader`.
pub fn code_name(code: ErrorCode) -> &'static str {
    let name = code.as_str_name();
    name.strip_prefix("ERROR_CODE_").unwrap_or(name)
}

/// Whether a server error code describes a transient condition.
pub(crate) fn code_is_retryable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotLeader
            | ErrorCode::Unavailable
            | ErrorCode::Timeout
            | ErrorCode::ShuttingDown
            | ErrorCode::ResourceExhausted
            | ErrorCode::SlowConsumer
    )
}

/// Whether a gRPC status code (not a node's answer) describes a transient condition.
pub(crate) fn status_is_retryable(code: tonic::Code) -> bool {
    use tonic::Code;
    // `Unknown` covers broken HTTP/2 connections and the simulator's "not ready" channel.
    matches!(
        code,
        Code::Unavailable
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Unknown
            | Code::ResourceExhausted
    )
}

impl ClientError {
    /// Converts a wire `Error`; `None` for a missing error or `ERROR_CODE_OK`.
    pub(crate) fn from_wire(error: Option<pb::Error>) -> Option<Self> {
        let error = error?;
        let Ok(code) = ErrorCode::try_from(error.code) else {
            return Some(ClientError::Server {
                code: ErrorCode::Internal,
                message: format!("unknown error code {}: {}", error.code, error.message),
                retry_after_ms: None,
            });
        };
        match code {
            ErrorCode::Ok => None,
            ErrorCode::NotLeader => Some(ClientError::NotLeader {
                message: error.message,
                leader_id: error.leader_id,
                leader_addr: error.leader_addr,
            }),
            ErrorCode::NotCoordinator => Some(ClientError::NotCoordinator {
                message: error.message,
                coordinator_id: error.leader_id,
                coordinator_addr: error.leader_addr,
            }),
            code => Some(ClientError::Server {
                code,
                message: error.message,
                retry_after_ms: error.retry_after_ms,
            }),
        }
    }

    /// `Err` with the converted wire error if the response carried one.
    pub(crate) fn check(error: Option<pb::Error>) -> Result<(), Self> {
        match Self::from_wire(error) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Converts a gRPC status from a call to `addr`.
    pub(crate) fn from_status(addr: &str, status: tonic::Status) -> Self {
        ClientError::Transport {
            addr: addr.to_string(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    /// Names `addr` in a transport error raised where the address was not known.
    pub(crate) fn with_addr(self, addr: &str) -> Self {
        match self {
            ClientError::Transport {
                addr: a,
                code,
                message,
            } if a.is_empty() => ClientError::Transport {
                addr: addr.to_string(),
                code,
                message,
            },
            other => other,
        }
    }

    /// The server's error code, if this error came from a node's answer.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            ClientError::NotLeader { .. } => Some(ErrorCode::NotLeader),
            ClientError::NotCoordinator { .. } => Some(ErrorCode::NotCoordinator),
            ClientError::DeadlineExceeded { last_error, .. } => last_error.code(),
            _ => None,
        }
    }

    /// Whether the same request might succeed later (leader change, node restart,
    /// lost connection). Final errors such as `DeadlineExceeded` are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Server { code, .. } => code_is_retryable(*code),
            ClientError::NotLeader { .. }
            | ClientError::NotCoordinator { .. }
            | ClientError::BufferFull { .. } => true,
            ClientError::Transport { code, .. } => status_is_retryable(*code),
            ClientError::DeadlineExceeded { .. }
            | ClientError::InvalidArgument(_)
            | ClientError::Protocol(_)
            | ClientError::Closed => false,
        }
    }

    /// Whether the request may have taken effect although it failed (timeouts, lost
    /// connections): a retry of a non-idempotent request may then find it done.
    pub(crate) fn outcome_unknown(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Server { code, .. } => *code == ErrorCode::Timeout,
            _ => false,
        }
    }

    /// Shorthand for a server-style error raised by the client itself.
    pub(crate) fn server(code: ErrorCode, message: impl Into<String>) -> Self {
        ClientError::Server {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// How long the node asked to wait before a retry (zero when it did not say).
    pub(crate) fn retry_after(&self) -> std::time::Duration {
        match self {
            ClientError::Server {
                retry_after_ms: Some(ms),
                ..
            } => std::time::Duration::from_millis(u64::from(*ms)),
            ClientError::DeadlineExceeded { last_error, .. } => last_error.retry_after(),
            _ => std::time::Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(code: ErrorCode) -> pb::Error {
        pb::Error {
            code: code as i32,
            message: "m".into(),
            ..Default::default()
        }
    }

    #[test]
    fn server_codes_map_to_retryable_or_fatal() {
        // Goal: the retry loop retries exactly the transient codes. Method: map every code.
        let retryable = [
            ErrorCode::NotLeader,
            ErrorCode::Unavailable,
            ErrorCode::Timeout,
            ErrorCode::ShuttingDown,
            ErrorCode::ResourceExhausted,
            ErrorCode::SlowConsumer,
        ];
        let fatal = [
            ErrorCode::UnknownTopic,
            ErrorCode::UnknownPartition,
            ErrorCode::TopicExists,
            ErrorCode::InvalidArgument,
            ErrorCode::EventTooLarge,
            ErrorCode::OffsetOutOfRange,
            ErrorCode::OutOfOrderSequence,
            ErrorCode::Internal,
            ErrorCode::DuplicateSequence,
        ];
        for code in retryable {
            let e = ClientError::from_wire(Some(wire(code))).unwrap();
            assert!(e.is_retryable(), "{code:?}");
            assert_eq!(e.code(), Some(code));
        }
        for code in fatal {
            let e = ClientError::from_wire(Some(wire(code))).unwrap();
            assert!(!e.is_retryable(), "{code:?}");
            assert_eq!(e.code(), Some(code));
        }
    }

    #[test]
    fn a_retry_hint_is_kept_and_read_through_a_deadline() {
        let mut e = wire(ErrorCode::ResourceExhausted);
        e.retry_after_ms = Some(250);
        let e = ClientError::from_wire(Some(e)).unwrap();
        assert_eq!(e.retry_after(), std::time::Duration::from_millis(250));
        let gave_up = ClientError::DeadlineExceeded {
            elapsed_ms: 1,
            attempts: 1,
            last_error: Box::new(e),
        };
        assert_eq!(gave_up.retry_after(), std::time::Duration::from_millis(250));
    }

    #[test]
    fn ok_or_missing_wire_error_is_no_error() {
        assert!(ClientError::from_wire(None).is_none());
        assert!(ClientError::check(Some(wire(ErrorCode::Ok))).is_ok());
    }

    #[test]
    fn not_leader_keeps_its_hint() {
        let mut e = wire(ErrorCode::NotLeader);
        e.leader_id = Some(3);
        e.leader_addr = Some("n3:7101".into());
        match ClientError::from_wire(Some(e)).unwrap() {
            ClientError::NotLeader {
                leader_id,
                leader_addr,
                ..
            } => assert_eq!(
                (leader_id, leader_addr.as_deref()),
                (Some(3), Some("n3:7101"))
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_wire_code_is_fatal_internal() {
        let mut e = wire(ErrorCode::Internal);
        e.code = 999;
        let e = ClientError::from_wire(Some(e)).unwrap();
        assert_eq!(e.code(), Some(ErrorCode::Internal));
        assert!(!e.is_retryable());
    }

    #[test]
    fn transport_statuses_are_retryable_only_when_transient() {
        let refused =
            ClientError::from_status("a:1", tonic::Status::unavailable("connection refused"));
        assert!(refused.is_retryable());
        assert!(refused.outcome_unknown());
        let bad = ClientError::from_status("a:1", tonic::Status::unimplemented("no such method"));
        assert!(!bad.is_retryable());
        let final_error = ClientError::DeadlineExceeded {
            elapsed_ms: 1,
            attempts: 2,
            last_error: Box::new(refused),
        };
        assert!(!final_error.is_retryable());
    }

    #[test]
    fn display_names_the_code() {
        let e = ClientError::server(ErrorCode::UnknownTopic, "topic t does not exist");
        assert_eq!(e.to_string(), "UNKNOWN_TOPIC: topic t does not exist");
    }
}

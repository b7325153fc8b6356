//! Client and producer configuration: every knob with its unit in its name, a default,
//! a few builder-style setters and `validate()`.

use std::time::Duration;

use crate::error::ClientError;

/// Requests the node remembers per producer and partition: a retry of any of them is
/// answered with its original offsets (the proto's `ProduceRequest` documents it).
pub const IDEMPOTENCE_WINDOW: usize = 5;

/// Heartbeat intervals of silence after which a subscription gives its stream up.
const SILENT_HEARTBEATS: u64 = 4;

/// Default address of a local development node.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:7101";

/// How a [`Client`](crate::Client) finds the cluster and how long it waits.
///
/// ```
/// use evlog_client::ClientConfig;
///
/// let config = ClientConfig::new(["10.0.0.1:7101", "10.0.0.2:7101"])
///     .with_operation_deadline_ms(10_000)
///     .with_request_timeout_ms(2_000);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Nodes to ask for cluster metadata first, as `host:port` (an `http://` prefix is
    /// accepted). Any one reachable node is enough: it tells the client about the others.
    pub bootstrap: Vec<String>,
    /// Upper bound on one RPC attempt (one node, one try).
    pub request_timeout_ms: u64,
    /// Upper bound on a whole operation, retries included; after it the operation fails
    /// with [`ClientError::DeadlineExceeded`].
    pub operation_deadline_ms: u64,
    /// Upper bound on establishing a TCP/HTTP2 connection to a node.
    pub connect_timeout_ms: u64,
    /// Metadata is refreshed at most once per this interval (refreshes are on demand).
    pub metadata_refresh_min_interval_ms: u64,
    /// Upper bound on the event bytes of one Read response or Subscribe message.
    pub max_read_bytes: u32,
    /// How often a subscription asks its node for a heartbeat while the partition is
    /// idle. A subscription that hears nothing for four intervals gives the stream up
    /// as dead (a frozen or cut-off leader) and subscribes again, elsewhere if need be.
    pub subscribe_heartbeat_ms: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            bootstrap: vec![DEFAULT_BOOTSTRAP.to_string()],
            // Above the node's own produce timeout (10 s), so the node answers TIMEOUT first.
            request_timeout_ms: 15_000,
            operation_deadline_ms: 30_000,
            connect_timeout_ms: 3_000,
            metadata_refresh_min_interval_ms: 100,
            max_read_bytes: 1024 * 1024,
            subscribe_heartbeat_ms: 2_000,
        }
    }
}

impl ClientConfig {
    /// Defaults with the given bootstrap nodes.
    pub fn new(bootstrap: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            bootstrap: bootstrap.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Sets [`ClientConfig::request_timeout_ms`].
    pub fn with_request_timeout_ms(mut self, ms: u64) -> Self {
        self.request_timeout_ms = ms;
        self
    }

    /// Sets [`ClientConfig::operation_deadline_ms`].
    pub fn with_operation_deadline_ms(mut self, ms: u64) -> Self {
        self.operation_deadline_ms = ms;
        self
    }

    /// Sets [`ClientConfig::connect_timeout_ms`].
    pub fn with_connect_timeout_ms(mut self, ms: u64) -> Self {
        self.connect_timeout_ms = ms;
        self
    }

    /// Sets [`ClientConfig::max_read_bytes`].
    pub fn with_max_read_bytes(mut self, bytes: u32) -> Self {
        self.max_read_bytes = bytes;
        self
    }

    /// Checks that there is at least one bootstrap node and that every bound is positive.
    pub fn validate(&self) -> Result<(), ClientError> {
        let bad = |what: &str| {
            Err(ClientError::InvalidArgument(format!(
                "client config: {what}"
            )))
        };
        if self.bootstrap.iter().all(|b| b.trim().is_empty()) {
            return bad("at least one bootstrap address is needed");
        }
        if self.request_timeout_ms == 0
            || self.operation_deadline_ms == 0
            || self.connect_timeout_ms == 0
        {
            return bad(
                "request_timeout_ms, operation_deadline_ms and connect_timeout_ms must be positive",
            );
        }
        if self.max_read_bytes == 0 {
            return bad("max_read_bytes must be positive");
        }
        if !(100..=60_000).contains(&self.subscribe_heartbeat_ms) {
            return bad("subscribe_heartbeat_ms must be 100 to 60000 (the node's bounds)");
        }
        Ok(())
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn operation_deadline(&self) -> Duration {
        Duration::from_millis(self.operation_deadline_ms)
    }

    /// How long a subscription waits for any message before it resubscribes.
    pub(crate) fn subscribe_silence(&self) -> Duration {
        Duration::from_millis(u64::from(self.subscribe_heartbeat_ms) * SILENT_HEARTBEATS)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn refresh_min_interval(&self) -> Duration {
        Duration::from_millis(self.metadata_refresh_min_interval_ms)
    }
}

/// How a [`Producer`](crate::Producer) batches events.
///
/// A partition's batch is sent when it holds `batch_bytes_max` bytes or
/// `batch_events_max` events, or `linger_ms` after its first event, whichever comes
/// first; while `max_in_flight_per_partition` batches are in flight the next one fills up.
/// Sizes count accounted bytes: key + value + headers plus 32 bytes per event (and 8 per
/// header), as the node counts them (`evlog_proto::limits`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// How long a batch waits for more events after its first one (0 = send at once).
    /// Batching needs no linger under load: while a partition's request is in flight, its
    /// next batch fills up. A linger only trades idle latency for fewer, larger requests.
    pub linger_ms: u64,
    /// Upper bound on the event bytes of one produce request (a larger event goes alone).
    pub batch_bytes_max: usize,
    /// Upper bound on the events of one produce request.
    pub batch_events_max: usize,
    /// Produce requests in flight per partition, 1 to 5 (default 1): the node remembers
    /// each producer's last 5 requests, so a retry of any of them cannot append twice.
    ///
    /// Keep 1 for throughput today: HTTP/2 may hand concurrent requests to the node out
    /// of order, the node refuses a request that overtakes an earlier one of the same
    /// producer (OUT_OF_ORDER_SEQUENCE), and the lane retries it after a backoff. Measured
    /// with `evlog bench produce` (3 partitions, RF 3, 1 KiB events): 34-36k events/s with
    /// 1, under 1k events/s with 5. With 1 the next batch fills while a request is in
    /// flight, which gives the same batching without the reordering.
    pub max_in_flight_per_partition: usize,
    /// Back-pressure: `send` waits while this many event bytes are buffered or in flight.
    pub max_buffered_bytes: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger_ms: 0,
            batch_bytes_max: 1024 * 1024,
            batch_events_max: 10_000,
            max_in_flight_per_partition: 1,
            max_buffered_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ProducerConfig {
    /// Sets [`ProducerConfig::linger_ms`].
    pub fn with_linger_ms(mut self, ms: u64) -> Self {
        self.linger_ms = ms;
        self
    }

    /// Sets [`ProducerConfig::batch_bytes_max`].
    pub fn with_batch_bytes_max(mut self, bytes: usize) -> Self {
        self.batch_bytes_max = bytes;
        self
    }

    /// Sets [`ProducerConfig::batch_events_max`].
    pub fn with_batch_events_max(mut self, events: usize) -> Self {
        self.batch_events_max = events;
        self
    }

    /// Sets [`ProducerConfig::max_in_flight_per_partition`].
    pub fn with_max_in_flight_per_partition(mut self, requests: usize) -> Self {
        self.max_in_flight_per_partition = requests;
        self
    }

    /// Sets [`ProducerConfig::max_buffered_bytes`].
    pub fn with_max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_bytes = bytes;
        self
    }

    /// Checks that every bound is positive and that the buffer fits a semaphore.
    pub fn validate(&self) -> Result<(), ClientError> {
        let bad = |what: &str| {
            Err(ClientError::InvalidArgument(format!(
                "producer config: {what}"
            )))
        };
        if self.batch_bytes_max == 0 || self.batch_events_max == 0 {
            return bad("batch_bytes_max and batch_events_max must be positive");
        }
        if !(1..=IDEMPOTENCE_WINDOW).contains(&self.max_in_flight_per_partition) {
            return bad(&format!(
                "max_in_flight_per_partition is {}; it must be 1 to {IDEMPOTENCE_WINDOW} (the \
                 node remembers that many requests per producer for retries)",
                self.max_in_flight_per_partition
            ));
        }
        if self.max_buffered_bytes == 0 || self.max_buffered_bytes > u32::MAX as usize {
            return bad("max_buffered_bytes must be between 1 and 4 GiB");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_without_bootstrap_is_refused() {
        // Goal: an empty bootstrap list is a usage error, caught before any connection.
        assert!(ClientConfig::new(Vec::<String>::new()).validate().is_err());
        assert!(ClientConfig::new([" "]).validate().is_err());
        assert!(ClientConfig::default().validate().is_ok());
    }

    #[test]
    fn producer_config_zero_bounds_are_refused() {
        assert!(ProducerConfig::default().validate().is_ok());
        assert!(ProducerConfig::default()
            .with_batch_events_max(0)
            .validate()
            .is_err());
        assert!(ProducerConfig::default()
            .with_max_buffered_bytes(0)
            .validate()
            .is_err());
        for bad in [0, IDEMPOTENCE_WINDOW + 1] {
            assert!(ProducerConfig::default()
                .with_max_in_flight_per_partition(bad)
                .validate()
                .is_err());
        }
    }
}

//! The event types apps see: `Event` (what they publish), `ReceivedEvent` (what they
//! read back, with its place in the log), `Ack` (where a published event landed) and
//! `ReadResult`; plus their conversions to and from the wire.

use bytes::Bytes;
use evlog_proto::evlog::v1 as pb;

/// An event to publish: an optional key, a value, headers and an optional timestamp.
///
/// ```
/// use evlog_client::Event;
///
/// let event = Event::new("hello")
///     .with_key("user-42")
///     .with_header("trace-id", "abc123")
///     .with_timestamp_ms(1_700_000_000_000);
/// assert_eq!(event.value, "hello");
/// assert_eq!(event.size_bytes(), 5 + 7 + 8 + 6);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// Partitioning key: events with the same key go to the same partition.
    pub key: Option<Bytes>,
    /// The payload.
    pub value: Bytes,
    /// Application headers, in order.
    pub headers: Vec<(String, Bytes)>,
    /// Milliseconds since the Unix epoch; 0 lets the node stamp the event.
    pub timestamp_ms: i64,
}

impl Event {
    /// An event with this value, no key, no headers, stamped by the node.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self {
            value: value.into(),
            ..Self::default()
        }
    }

    /// Sets the key (which also picks the partition, see [`crate::partition_for_key`]).
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn with_timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// The event's size as the node counts it against the topic's event size limit:
    /// key + value + every header's name and value.
    pub fn size_bytes(&self) -> usize {
        evlog_proto::limits::payload_bytes(
            self.key.as_deref(),
            &self.value,
            self.headers.iter().map(|(k, v)| (k.as_str(), &v[..])),
        )
    }

    /// What the event counts for in the producer's and the node's byte limits (batches,
    /// requests, buffers): [`Event::size_bytes`] plus 32 bytes, and 8 per header.
    ///
    /// ```
    /// use evlog_client::Event;
    ///
    /// assert_eq!(Event::new("").accounted_bytes(), 32);
    /// ```
    pub fn accounted_bytes(&self) -> usize {
        evlog_proto::limits::accounted_bytes(self.size_bytes(), self.headers.len())
    }

    pub(crate) fn into_wire(self) -> pb::Event {
        pb::Event {
            key: self.key,
            value: self.value,
            headers: self
                .headers
                .into_iter()
                .map(|(key, value)| pb::Header { key, value })
                .collect(),
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// An event read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEvent {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// Its key, if it had one.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Bytes,
    /// Its headers, in order.
    pub headers: Vec<(String, Bytes)>,
    /// Milliseconds since the Unix epoch (set by the producer or stamped by the node).
    pub timestamp_ms: i64,
}

impl ReceivedEvent {
    pub(crate) fn from_wire(topic: &str, partition: u32, e: pb::StoredEvent) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
            offset: e.offset,
            key: e.key,
            value: e.value,
            headers: e.headers.into_iter().map(|h| (h.key, h.value)).collect(),
            timestamp_ms: e.timestamp_ms,
        }
    }
}

/// Where a published event was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The partition it went to.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
}

/// One Read answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Committed events from the requested offset, in order (possibly none).
    pub events: Vec<ReceivedEvent>,
    /// The offset the next committed event will get.
    pub high_watermark: u64,
    /// The first offset still retained.
    pub log_start_offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trips_through_the_wire_types() {
        let event = Event::new("v")
            .with_key("k")
            .with_header("h", "x")
            .with_timestamp_ms(5);
        let wire = event.into_wire();
        let stored = pb::StoredEvent {
            offset: 9,
            key: wire.key,
            value: wire.value,
            headers: wire.headers,
            timestamp_ms: wire.timestamp_ms,
        };
        let got = ReceivedEvent::from_wire("t", 2, stored);
        assert_eq!((got.topic.as_str(), got.partition, got.offset), ("t", 2, 9));
        assert_eq!(got.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(got.headers, vec![("h".to_string(), Bytes::from("x"))]);
        assert_eq!(got.timestamp_ms, 5);
    }
}

//! How the client and the node count an event's size: one rule, in one place.
//!
//! Two sizes matter:
//! - the **payload**: key + value + every header's name and value. A topic's
//!   `max_event_bytes` limits it, and it is what applications think of as "the event".
//! - the **accounted** size: the payload plus a fixed cost per event and per header. Every
//!   byte limit on the path (a produce request, a batch, a read response, a memory budget)
//!   counts this one, so that a million empty events weigh 32 MB, not 0: without the
//!   overhead a tiny request could carry an unbounded number of events.

use crate::evlog::v1 as pb;

/// What one event costs besides its payload: its offset, timestamps and framing, in the
/// log, in memory and on the wire.
pub const EVENT_OVERHEAD_BYTES: usize = 32;

/// What one header costs besides its name and value bytes.
pub const HEADER_OVERHEAD_BYTES: usize = 8;

/// Payload bytes of an event given its parts: key + value + header names and values.
pub fn payload_bytes<'a>(
    key: Option<&[u8]>,
    value: &[u8],
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> usize {
    let headers: usize = headers.into_iter().map(|(k, v)| k.len() + v.len()).sum();
    key.map_or(0, <[u8]>::len) + value.len() + headers
}

/// Accounted bytes of an event with `payload_bytes` of payload and `headers` headers.
pub fn accounted_bytes(payload_bytes: usize, headers: usize) -> usize {
    payload_bytes
        .saturating_add(EVENT_OVERHEAD_BYTES)
        .saturating_add(headers.saturating_mul(HEADER_OVERHEAD_BYTES))
}

impl pb::Event {
    /// Key + value + header names and values: what `max_event_bytes` limits.
    pub fn payload_bytes(&self) -> usize {
        payload_bytes(
            self.key.as_deref(),
            &self.value,
            self.headers.iter().map(|h| (h.key.as_str(), &h.value[..])),
        )
    }

    /// What the event counts for in every byte limit of the path (see the module doc).
    pub fn accounted_bytes(&self) -> usize {
        accounted_bytes(self.payload_bytes(), self.headers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_event_still_costs_its_overhead() {
        // Goal: no event is free, so byte limits also bound the number of events.
        let empty = pb::Event::default();
        assert_eq!(empty.payload_bytes(), 0);
        assert_eq!(empty.accounted_bytes(), EVENT_OVERHEAD_BYTES);
    }

    #[test]
    fn headers_count_their_bytes_and_their_overhead() {
        let event = pb::Event {
            key: Some(b"key".to_vec().into()),
            value: b"value".to_vec().into(),
            headers: vec![pb::Header {
                key: "h".into(),
                value: b"vv".to_vec().into(),
            }],
            timestamp_ms: 0,
        };
        assert_eq!(event.payload_bytes(), 3 + 5 + 1 + 2);
        assert_eq!(
            event.accounted_bytes(),
            11 + EVENT_OVERHEAD_BYTES + HEADER_OVERHEAD_BYTES
        );
    }
}

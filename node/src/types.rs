//! Identifiers and the event model shared by every module (newtypes, so a partition id
//! can never be passed where a log index or an offset is expected).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A node of the cluster (`--node-id`). Ids are >= 1.
pub type NodeId = u64;

/// Cluster-wide id of one Raft group: a partition, or [`PartitionId::METADATA`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u64);

impl PartitionId {
    /// The metadata group's reserved id. Partition ids start at 1.
    pub const METADATA: PartitionId = PartitionId(0);
}

impl std::fmt::Display for PartitionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::METADATA {
            write!(f, "metadata")
        } else {
            write!(f, "p{}", self.0)
        }
    }
}

/// Position of an event inside its partition, dense from 0. Not a Raft log index.
/// Encoded as its number (serde transparent): stored records keep their format.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Offset(pub u64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The offset `events` events after this one.
    pub fn plus(self, events: u64) -> Offset {
        Offset(
            self.0
                .checked_add(events)
                .expect("offsets never reach u64::MAX"),
        )
    }

    /// How many offsets lie in `[earlier, self)`; `self` must not be before `earlier`.
    pub fn since(self, earlier: Offset) -> u64 {
        assert!(earlier <= self, "offset {earlier} is after {self}");
        self.0 - earlier.0
    }
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Position of an entry in a partition's Raft log (openraft's `LogId::index`). Not an
/// offset: one entry holds many events, and blank or membership entries none.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LogIndex(pub u64);

impl std::fmt::Display for LogIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An idempotent producer (chosen by the client; 0 means "not idempotent", see
/// [`ProducerId::NONE`]).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ProducerId(pub u64);

impl ProducerId {
    /// A producer that is never deduplicated.
    pub const NONE: ProducerId = ProducerId(0);

    pub fn is_idempotent(self) -> bool {
        self != Self::NONE
    }
}

impl std::fmt::Display for ProducerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An event as stored inside a Raft entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
    pub timestamp_ms: i64,
}

impl Event {
    /// What this event counts for in every byte limit of the path: its payload (key +
    /// value + headers) plus its fixed overhead, by the rule `evlog_proto::limits` owns.
    pub fn accounted_bytes(&self) -> usize {
        let payload = evlog_proto::limits::payload_bytes(
            self.key.as_deref(),
            &self.value,
            self.headers.iter().map(|(k, v)| (k.as_str(), &v[..])),
        );
        evlog_proto::limits::accounted_bytes(payload, self.headers.len())
    }
}

/// A consumer group's name, as the client gave it (1 to [`GroupId::BYTES_MAX`] bytes of
/// `[A-Za-z0-9._-]`, checked where requests enter: `GroupId::parse`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(String);

impl GroupId {
    pub const BYTES_MAX: usize = 249;

    /// The group id `name`, or why it is not one.
    pub fn parse(name: &str) -> Result<GroupId, String> {
        check_name("group id", name, Self::BYTES_MAX)?;
        Ok(GroupId(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One member of a consumer group: an id the client chose at random for this instance's
/// lifetime (a restarted instance is a new member unless it has an instance id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(String);

impl MemberId {
    pub const BYTES_MAX: usize = 64;

    pub fn parse(id: &str) -> Result<MemberId, String> {
        check_name("member id", id, Self::BYTES_MAX)?;
        Ok(MemberId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The epoch of a member's assignment: it grows every time the coordinator changes what
/// the member owns. 0 is "joining".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MemberEpoch(pub u64);

impl MemberEpoch {
    /// What a member sends when it (re)joins.
    pub const JOINING: MemberEpoch = MemberEpoch(0);
}

impl std::fmt::Display for MemberEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Checks a client-chosen name: 1 to `bytes_max` bytes of `[A-Za-z0-9._-]`.
fn check_name(what: &str, name: &str, bytes_max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if name.len() > bytes_max {
        return Err(format!(
            "{what} is {} bytes; at most {bytes_max}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{what} {name:?} contains {c:?}; only letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

//! Storage: the node's one storage engine behind a narrow trait, and the group committer.
//!
//! The trait is deliberately small (`write`, `sync`, `get`, `scan`, `last_in_range`) so that
//! the simulation can wrap the real engine in a fault layer that models the disk: a write
//! is visible at once but durable only after a `sync`; a power failure drops what was
//! not synced. Every durability decision in the node goes through [`StorageEngine::sync`],
//! reached via [`GroupCommit`] so that appends of many partitions share one fsync.

mod group_commit;
#[cfg(feature = "rocksdb")]
pub mod rocks;

pub use group_commit::{GroupCommit, GroupCommitStats};
#[cfg(feature = "rocksdb")]
pub use rocks::RocksEngine;

use crate::keys::Cf;

/// One key-value operation of a [`WriteBatch`].
#[derive(Debug, Clone)]
pub enum WriteOp {
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: Cf,
        key: Vec<u8>,
    },
    /// Deletes every key in `[from, to)`.
    DeleteRange {
        cf: Cf,
        from: Vec<u8>,
        to: Vec<u8>,
    },
}

/// Operations applied atomically: all or none, even across a crash.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put {
            cf,
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete {
            cf,
            key: key.into(),
        });
    }

    pub fn delete_range(&mut self, cf: Cf, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::DeleteRange {
            cf,
            from: from.into(),
            to: to.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key and its value, as returned by scans.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Failures of the storage engine. Any of them is fatal for the Raft group that hit it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("storage engine error: {0}")]
    Engine(String),
    #[error("cannot open storage at {path}: {message}")]
    Open { path: String, message: String },
    #[error("corrupt record in {cf} at key {key:02x?}: {reason}")]
    Corrupt {
        cf: &'static str,
        key: Vec<u8>,
        reason: String,
    },
}

impl StorageError {
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self.to_string())
    }
}

/// The storage engine of a node. Implementations must be safe to call from many tasks.
///
/// Contract (the simulation's fault layer relies on it):
/// - `write` applies the batch atomically and makes it visible to every later read, but it
///   is durable only once a later `sync` returns Ok.
/// - `sync` makes every write that returned before it durable (one WAL fsync).
/// - Durable writes survive in order: after a crash the engine holds a prefix of the
///   writes, never a later write without an earlier one.
pub trait StorageEngine: Send + Sync + 'static {
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;
    fn sync(&self) -> Result<(), StorageError>;
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Up to `limit` pairs with `from <= key < to`, ascending.
    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError>;
    /// The pair with the greatest key in `[from, to)`, if any.
    fn last_in_range(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
    ) -> Result<Option<KeyValue>, StorageError>;
}

/// Frames a record with its CRC32C so every read can prove it is what was written.
pub fn checksummed(payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(payload.len() + 4);
    framed.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    framed.extend_from_slice(payload);
    framed
}

/// Verifies and strips the CRC32C frame written by [`checksummed`].
pub fn verify_checksum<'a>(cf: Cf, key: &[u8], framed: &'a [u8]) -> Result<&'a [u8], StorageError> {
    let corrupt = |reason: String| StorageError::Corrupt {
        cf: cf.name(),
        key: key.to_vec(),
        reason,
    };
    if framed.len() < 4 {
        return Err(corrupt(format!(
            "record of {} bytes has no checksum",
            framed.len()
        )));
    }
    let (crc, payload) = framed.split_at(4);
    if crate::sim_hooks::is_planted(crate::sim_hooks::PlantedBug::SkipChecksum) {
        return Ok(payload);
    }
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    let actual = crc32c::crc32c(payload);
    if stored != actual {
        return Err(corrupt(format!(
            "checksum mismatch: stored {stored:08x}, computed {actual:08x}"
        )));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_round_trips_and_detects_a_flipped_bit() {
        let framed = checksummed(b"hello evlog");
        assert_eq!(
            verify_checksum(Cf::RaftLog, b"k", &framed).unwrap(),
            b"hello evlog"
        );
        for bit in 0..framed.len() * 8 {
            let mut flipped = framed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                verify_checksum(Cf::RaftLog, b"k", &flipped).is_err(),
                "bit {bit}"
            );
        }
        assert!(verify_checksum(Cf::RaftLog, b"k", &framed[..3]).is_err());
    }
}

//! evlog-node: one process of an evlog cluster.
//!
//! Module map, in the order an event travels through them:
//! - [`api`]: gRPC services for clients (EventLog: produce, read, subscribe; Admin).
//! - [`partition`]: a partition's commands and state machine, the registry of local
//!   replicas and the reconciler that makes them follow placement, the produce batcher
//!   (many requests -> one Raft entry) and the read path the replica serves itself
//!   (offset index -> log entries -> events).
//! - [`raft`]: openraft wiring: type config and the wrapper of each layer's commands,
//!   starting a group, the log store and state machines on top of [`storage`], the
//!   node-to-node network and its gRPC transport service.
//! - [`storage`]: the storage engine (one RocksDB per node) behind a narrow trait, and
//!   the group committer that makes many appends share one WAL fsync.
//! - [`metadata`]: the metadata Raft group (nodes, topics, placement), its commands and
//!   the registration of this node's client address.
//! - [`keys`]: the only owner of column families and key encodings.
//! - [`config`], [`node`]: configuration and start-up/shut-down wiring; [`rt`]: the one
//!   place that touches clocks and task spawning; [`sim_hooks`]: what the deterministic
//!   simulation can switch on (planted bugs) and observe (leaders) inside a node.
//!
//! The data path in ten lines:
//! 1. `api::event_log` receives `Produce(topic, partition, producer, seq, events)`.
//! 2. It resolves the topic to a `PartitionId` with the local metadata view.
//! 3. `partition::Registry` finds the local replica; not the leader -> `NOT_LEADER` + hint.
//! 4. `partition::produce` coalesces concurrent requests into one `AppendBatch` entry
//!    (`partition::command`, wrapped by `raft` as `Command::Partition`).
//! 5. `raft.client_write_ff(entry)` hands it to openraft, which calls `LogStore::append`.
//! 6. `LogStore::append` writes the entry (checksummed) and asks `storage::GroupCommit`
//!    for an fsync shared with every other partition's appends; only then is it flushed.
//! 7. openraft replicates to followers (same path on their side) and commits on a majority.
//! 8. `raft::state_machine` applies: assigns dense offsets, indexes `base_offset -> index`,
//!    updates the idempotency table, advances the high watermark.
//! 9. The produce answer carries the base offset; readers wake up on the watermark.
//! 10. `Replica::read` (`partition::read`) serves committed events only: never past the
//!     high watermark.

// Visibility says what may be touched from outside: the binary, the simulation
// (sim-tests), the integration tests under node/tests and the fuzz targets use the `pub`
// modules; the client-facing services, the servers and log throttling are the node's own.
pub(crate) mod api;
pub mod config;
#[cfg(not(madsim))]
pub mod dev;
pub mod error;
pub mod fuzzing;
pub mod keys;
pub mod metadata;
pub mod node;
pub mod partition;
pub mod raft;
pub mod rt;
pub(crate) mod server;
pub mod sim_hooks;
pub mod storage;
pub(crate) mod throttle;
pub mod types;

pub use error::NodeError;
pub use node::Node;

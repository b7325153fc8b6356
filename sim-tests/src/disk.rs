//! The storage fault layer: a simulated disk around the node's real RocksDB engine.
//!
//! It models what a disk promises and no more:
//! - a write is visible at once but **durable only once a later `sync` returns**;
//! - a **power failure** keeps a prefix of the unsynced writes (the page cache may have
//!   written some back, in order, as RocksDB's WAL would) and drops the rest; the first
//!   dropped write may survive **torn** (one value cut short);
//! - a **bit flip** rots one stored log entry, durable from then on;
//! - an **fsync failure** (EIO) leaves the unsynced writes in doubt: the node crashes on
//!   it (as it must), and at its next boot the disk has lost them as in a power failure.
//!
//! How: every write goes to RocksDB at once (so reads see it) and leaves an undo record
//! (the keys' values before it); `sync` forgets the undo records; a power failure replays
//! them backwards over the lost writes. The disk outlives the node that uses it: a killed
//! and restarted node is handed the same `SimDisk`, which is what a reboot onto the same
//! disk looks like. A process crash (`kill`) loses nothing here, as on a real machine
//! where the page cache survives the process; only `power_fail` does.
//!
//! A real fsync is pointless in the simulation (the process never loses power for real),
//! so `sync` costs nothing but bookkeeping; `sim_hooks::set_fsync_latency` makes the node
//! wait simulated time for it instead.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};

use evlog_node::keys::Cf;
use evlog_node::storage::{
    KeyValue, RocksEngine, StorageEngine, StorageError, WriteBatch, WriteOp,
};
use rand::Rng;

/// The value a key had before a write, to put back if the write is lost.
struct Undo {
    cf: Cf,
    key: Vec<u8>,
    before: Option<Vec<u8>>,
    after: Option<Vec<u8>>,
}

/// What a power failure did to one disk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PowerFailure {
    /// Unsynced writes that survived (a prefix).
    pub kept: usize,
    /// Unsynced writes that were lost.
    pub lost: usize,
    /// Whether the first lost write left a torn value behind.
    pub torn: bool,
}

#[derive(Default)]
struct DiskState {
    /// Unsynced writes, oldest first, each with its undo records in write order.
    unsynced: Vec<Vec<Undo>>,
    /// Keys whose stored value the simulation damaged on purpose (bit flips, torn writes).
    damaged: BTreeSet<(&'static str, Vec<u8>)>,
    syncs: u64,
    /// The next `sync` fails.
    fail_next_sync: bool,
    /// A sync failed: the unsynced writes are lost at the next boot.
    lose_unsynced_at_boot: bool,
}

/// One node's simulated disk.
pub struct SimDisk {
    /// The real engine; `None` once the disk is closed at the end of a run (tasks of a
    /// dropped simulation may still hold the disk: they get errors, RocksDB is closed).
    engine: RwLock<Option<Arc<RocksEngine>>>,
    state: Mutex<DiskState>,
}

impl SimDisk {
    pub fn new(engine: RocksEngine) -> Arc<SimDisk> {
        Arc::new(SimDisk {
            engine: RwLock::new(Some(Arc::new(engine))),
            state: Mutex::new(DiskState::default()),
        })
    }

    /// Closes the real engine (and releases RocksDB's lock on its directory).
    pub fn close(&self) {
        self.engine.write().expect("disk engine").take();
    }

    fn inner(&self) -> Result<Arc<RocksEngine>, StorageError> {
        self.engine
            .read()
            .expect("disk engine")
            .clone()
            .ok_or_else(|| StorageError::Engine("the simulated disk is closed".into()))
    }

    fn inner_or_panic(&self) -> Arc<RocksEngine> {
        self.inner().expect("the simulated disk is open")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.state.lock().expect("disk state poisoned")
    }

    /// The undo records of `op`: every key it changes, with its value before and after.
    fn undo_records(&self, op: &WriteOp) -> Result<Vec<Undo>, StorageError> {
        let inner = self.inner()?;
        Ok(match op {
            WriteOp::Put { cf, key, value } => vec![Undo {
                cf: *cf,
                key: key.clone(),
                before: inner.get(*cf, key)?,
                after: Some(value.clone()),
            }],
            WriteOp::Delete { cf, key } => vec![Undo {
                cf: *cf,
                key: key.clone(),
                before: inner.get(*cf, key)?,
                after: None,
            }],
            WriteOp::DeleteRange { cf, from, to } => inner
                .scan(*cf, from, to, usize::MAX)?
                .into_iter()
                .map(|(key, value)| Undo {
                    cf: *cf,
                    key,
                    before: Some(value),
                    after: None,
                })
                .collect(),
        })
    }

    /// Power failure: unsynced writes after a random prefix are lost, the first of them
    /// possibly torn. Call it only while the node using this disk is down.
    pub fn power_fail(&self, rng: &mut impl Rng, tear: bool) -> PowerFailure {
        let mut state = self.lock();
        state.lose_unsynced_at_boot = false;
        let unsynced = std::mem::take(&mut state.unsynced);
        let kept = rng.gen_range(0..=unsynced.len());
        let lost = unsynced.len() - kept;
        let mut undo_ops = WriteBatch::default();
        for undo in unsynced[kept..]
            .iter()
            .rev()
            .flat_map(|write| write.iter().rev())
        {
            state.damaged.remove(&(undo.cf.name(), undo.key.clone()));
            match &undo.before {
                Some(value) => undo_ops.put(undo.cf, undo.key.clone(), value.clone()),
                None => undo_ops.delete(undo.cf, undo.key.clone()),
            }
        }
        let mut torn = false;
        if tear && lost > 0 {
            // The first lost write reached the disk in part: one of its values is cut.
            if let Some(undo) = unsynced[kept].iter().find(|u| u.after.is_some()) {
                let value = undo.after.as_ref().expect("a put");
                let cut = rng.gen_range(0..value.len().max(1));
                undo_ops.put(undo.cf, undo.key.clone(), value[..cut].to_vec());
                state.damaged.insert((undo.cf.name(), undo.key.clone()));
                torn = true;
            }
        }
        self.inner_or_panic()
            .write(undo_ops)
            .expect("the simulated disk rewrites what a power failure lost");
        PowerFailure { kept, lost, torn }
    }

    /// Makes the next `sync` fail with an I/O error.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// Whether the node using this disk crashed on a failed fsync and has not booted since.
    pub fn crashed(&self) -> bool {
        self.lock().lose_unsynced_at_boot
    }

    /// Called as the node boots on this disk: applies what a failed fsync lost.
    pub fn boot(&self, rng: &mut impl Rng) -> Option<PowerFailure> {
        let lose = std::mem::take(&mut self.lock().lose_unsynced_at_boot);
        lose.then(|| self.power_fail(rng, false))
    }

    /// Flips one random bit of one random stored Raft log entry. Returns the damaged key,
    /// or `None` if the log is empty.
    pub fn flip_bit(&self, rng: &mut impl Rng) -> Option<Vec<u8>> {
        let entries = self
            .inner_or_panic()
            .scan(Cf::RaftLog, &[], &[0xff; 17], usize::MAX)
            .expect("scan the simulated disk");
        if entries.is_empty() {
            return None;
        }
        let (key, mut value) = entries[rng.gen_range(0..entries.len())].clone();
        let bit = rng.gen_range(0..value.len() * 8);
        value[bit / 8] ^= 1 << (bit % 8);
        let mut batch = WriteBatch::default();
        batch.put(Cf::RaftLog, key.clone(), value);
        self.inner_or_panic()
            .write(batch)
            .expect("the simulated disk writes a flipped bit");
        self.lock()
            .damaged
            .insert((Cf::RaftLog.name(), key.clone()));
        Some(key)
    }

    /// Whether the simulation damaged the value under `key` on purpose.
    pub fn is_damaged(&self, cf: Cf, key: &[u8]) -> bool {
        self.lock().damaged.contains(&(cf.name(), key.to_vec()))
    }

    /// How many damaged keys this disk holds.
    pub fn damaged_count(&self) -> usize {
        self.lock().damaged.len()
    }

    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Everything stored in `cf` between `from` and `to`, bypassing nothing: what the
    /// checkers compare across replicas.
    pub fn scan_all(&self, cf: Cf, from: &[u8], to: &[u8]) -> Vec<KeyValue> {
        self.inner_or_panic()
            .scan(cf, from, to, usize::MAX)
            .expect("scan the simulated disk")
    }
}

impl StorageEngine for SimDisk {
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut undo = Vec::new();
        for op in &batch.ops {
            undo.extend(self.undo_records(op)?);
        }
        self.inner()?.write(batch)?;
        let mut state = self.lock();
        for record in &undo {
            // A new value replaces a damaged one.
            state
                .damaged
                .remove(&(record.cf.name(), record.key.clone()));
        }
        state.unsynced.push(undo);
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        let mut state = self.lock();
        if std::mem::take(&mut state.fail_next_sync) {
            state.lose_unsynced_at_boot = true;
            return Err(StorageError::Engine("injected fsync failure (EIO)".into()));
        }
        state.unsynced.clear();
        state.syncs += 1;
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner()?.get(cf, key)
    }

    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        self.inner()?.scan(cf, from, to, limit)
    }

    fn last_in_range(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
    ) -> Result<Option<KeyValue>, StorageError> {
        self.inner()?.last_in_range(cf, from, to)
    }
}

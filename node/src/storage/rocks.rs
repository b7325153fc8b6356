//! The RocksDB engine: one database per node, one column family per [`Cf`].
//!
//! Writes go to the WAL without sync (visible at once); [`RocksEngine::sync`] fsyncs the
//! WAL, which makes every earlier write durable. RocksDB recovers the WAL to a consistent
//! point in time, so durable writes form a prefix, as the trait requires.

use std::path::Path;
use std::time::Duration;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options, DB,
};

use super::{KeyValue, StorageEngine, StorageError, WriteBatch, WriteOp};
use crate::keys::Cf;

/// How long a restarting node waits for a previous process to release the DB lock.
const OPEN_RETRY_TOTAL: Duration = Duration::from_secs(30);

/// How many times (1 ms apart, in real time) an open is retried while RocksDB's timer
/// thread is busy.
const TIMER_BUSY_RETRIES_MAX: u32 = 1000;

/// Sizes for the engine; see `config::StorageConfig`.
#[derive(Debug, Clone, Copy)]
pub struct RocksTuning {
    pub block_cache_bytes: usize,
    pub write_buffer_bytes: usize,
}

impl Default for RocksTuning {
    fn default() -> Self {
        Self {
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
        }
    }
}

pub struct RocksEngine {
    db: DB,
}

impl RocksEngine {
    /// Opens (or creates) the database at `path`. Retries while another process (a node
    /// that was just killed, or a simulated node being restarted) still holds the lock,
    /// and, for a moment, while RocksDB's timer thread is busy (`is_timer_busy`).
    pub async fn open(path: &Path, tuning: RocksTuning) -> Result<Self, StorageError> {
        let started = crate::rt::now();
        let mut timer_busy_retries = 0;
        loop {
            match Self::open_once(path, tuning) {
                Ok(engine) => return Ok(engine),
                Err(e)
                    if is_timer_busy(e.as_ref()) && timer_busy_retries < TIMER_BUSY_RETRIES_MAX =>
                {
                    // Clears within microseconds; wait in real time, not on the runtime's
                    // clock: in the simulation, a simulated sleep here would let RocksDB's
                    // real timer thread steer the simulated schedule.
                    timer_busy_retries += 1;
                    tracing::debug!(path = %path.display(), "RocksDB's timer is busy, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) if is_locked(e.as_ref()) && started.elapsed() < OPEN_RETRY_TOTAL => {
                    tracing::warn!(path = %path.display(), "storage cannot be opened yet, retrying: {e}");
                    crate::rt::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(StorageError::Open {
                        path: path.display().to_string(),
                        message: e.into_string(),
                    })
                }
            }
        }
    }

    fn open_once(path: &Path, tuning: RocksTuning) -> Result<Self, rocksdb::Error> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        db_opts.set_max_background_jobs(2);
        db_opts.set_max_total_wal_size(256 << 20);
        let cache = Cache::new_lru_cache(tuning.block_cache_bytes);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut opts = Options::default();
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            opts.set_block_based_table_factory(&table);
            // Every family gets the configured memtable size: RocksDB preallocates each
            // WAL file at 1.1x the largest one, so a default-sized family would pin 70 MB.
            opts.set_write_buffer_size(tuning.write_buffer_bytes);
            if *cf == Cf::RaftLog {
                opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            }
            ColumnFamilyDescriptor::new(cf.name(), opts)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        Ok(Self { db })
    }

    fn handle(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .unwrap_or_else(|| panic!("column family {} was created at open", cf.name()))
    }
}

/// Another process (or a simulated node's previous incarnation) still holds the DB lock:
/// it goes away once that one has closed.
fn is_locked(message: &str) -> bool {
    message.contains("/LOCK")
}

/// RocksDB's process-wide timer thread refused the new DB's periodic tasks: it does while
/// it is running a task that is due later than the new one. In the simulation that is
/// any task (the DB reads simulated time, the timer thread real time), so it happens now
/// and then when a node opens its DB; harmless to retry in production too.
fn is_timer_busy(message: &str) -> bool {
    message.contains("Failed to register periodic task")
}

fn engine_error(e: rocksdb::Error) -> StorageError {
    StorageError::Engine(e.into_string())
}

impl StorageEngine for RocksEngine {
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                WriteOp::Put { cf, key, value } => rocks_batch.put_cf(self.handle(*cf), key, value),
                WriteOp::Delete { cf, key } => rocks_batch.delete_cf(self.handle(*cf), key),
                WriteOp::DeleteRange { cf, from, to } => {
                    rocks_batch.delete_range_cf(self.handle(*cf), from, to)
                }
            }
        }
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(false);
        self.db.write_opt(rocks_batch, &opts).map_err(engine_error)
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(engine_error)
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.handle(cf), key).map_err(engine_error)
    }

    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(to.to_vec());
        let iter = self.db.iterator_cf_opt(
            self.handle(cf),
            opts,
            IteratorMode::From(from, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (key, value) = item.map_err(engine_error)?;
            out.push((key.into_vec(), value.into_vec()));
        }
        Ok(out)
    }

    fn last_in_range(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
    ) -> Result<Option<KeyValue>, StorageError> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_lower_bound(from.to_vec());
        opts.set_iterate_upper_bound(to.to_vec());
        let mut iter = self
            .db
            .iterator_cf_opt(self.handle(cf), opts, IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(engine_error)?;
                Ok(Some((key.into_vec(), value.into_vec())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn open_errors_worth_retrying_are_told_apart() {
        // The texts RocksDB gives (rocksdb::Error has no public constructor).
        let locked = "IO error: While lock file: /data/db/LOCK: Resource temporarily unavailable";
        let timer_busy = "Operation aborted: Failed to register periodic task";
        let corrupt = "Corruption: truncated record body";
        assert!(is_locked(locked) && !is_timer_busy(locked));
        assert!(is_timer_busy(timer_busy) && !is_locked(timer_busy));
        assert!(!is_locked(corrupt) && !is_timer_busy(corrupt));
    }

    #[test]
    fn a_held_db_refuses_a_second_open_with_the_lock_in_its_message() {
        // What `open` retries on while a killed node's process still holds the DB.
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let _held = RocksEngine::open(dir.path(), RocksTuning::default())
                .await
                .unwrap();
            let second = RocksEngine::open_once(dir.path(), RocksTuning::default());
            let message = second.err().expect("the lock is held").to_string();
            assert!(is_locked(&message), "{message}");
        });
    }

    #[test]
    fn writes_are_visible_scanned_in_order_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let engine = RocksEngine::open(dir.path(), RocksTuning::default())
                .await
                .unwrap();
            let mut batch = WriteBatch::default();
            for i in [3u64, 1, 2, 10] {
                batch.put(Cf::RaftLog, i.to_be_bytes(), i.to_string());
            }
            engine.write(batch).unwrap();
            let got = engine
                .scan(Cf::RaftLog, &1u64.to_be_bytes(), &10u64.to_be_bytes(), 10)
                .unwrap();
            let keys: Vec<_> = got
                .iter()
                .map(|(k, _)| u64::from_be_bytes(k[..].try_into().unwrap()))
                .collect();
            assert_eq!(keys, vec![1, 2, 3]);
            let last = engine
                .last_in_range(Cf::RaftLog, &0u64.to_be_bytes(), &5u64.to_be_bytes())
                .unwrap();
            assert_eq!(last.unwrap().1, b"3");
            let mut del = WriteBatch::default();
            del.delete_range(Cf::RaftLog, 1u64.to_be_bytes(), 3u64.to_be_bytes());
            engine.write(del).unwrap();
            engine.sync().unwrap();
            drop(engine);
            let engine = RocksEngine::open(dir.path(), RocksTuning::default())
                .await
                .unwrap();
            let all = engine
                .scan(Cf::RaftLog, &[], &u64::MAX.to_be_bytes(), 10)
                .unwrap();
            assert_eq!(all.len(), 2, "keys 3 and 10 remain");
            assert!(engine.get(Cf::Meta, b"absent").unwrap().is_none());
        });
    }
}

//! Group commit: one WAL fsync for the appends of many partitions and requests.
//!
//! A writer first `write`s its batch (visible, not yet durable), then registers a waiter
//! here. One task drains every waiter registered so far (up to `max_waiters`), runs one
//! `sync` on a blocking thread and completes them all: a sync that starts after a waiter
//! was received covers that waiter's write. While a sync is running, new waiters queue up
//! for the next one, so the number of fsyncs per second stays bounded by the disk's
//! latency, not by the number of writers.
//!
//! The queue holds at most `max_waiters` waiters (one sync's worth): a writer that finds
//! it full waits for room, which is back-pressure on the Raft log appends, so a disk that
//! cannot keep up slows the writers instead of growing the queue.
//!
//! A failed fsync crashes the node ([`crate::rt::crash`]): its outcome is unknown, and the
//! only safe recovery is a restart from what is on disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{StorageEngine, StorageError};

/// Called once the write it follows is durable (an error only if the committer stopped).
pub type SyncWaiter = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

/// Counters, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct GroupCommitStats {
    pub syncs: AtomicU64,
    pub waiters: AtomicU64,
}

#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<SyncWaiter>,
    stats: Arc<GroupCommitStats>,
}

impl GroupCommit {
    /// Starts the committer task for `engine`. It stops when every handle is dropped.
    pub fn start(engine: Arc<dyn StorageEngine>, max_waiters: usize) -> Self {
        assert!(
            max_waiters > 0,
            "group commit needs room for at least one waiter"
        );
        let (tx, rx) = mpsc::channel(max_waiters);
        let stats = Arc::new(GroupCommitStats::default());
        crate::rt::spawn(run(engine, rx, max_waiters, stats.clone()));
        Self { tx, stats }
    }

    /// Calls `waiter` once every write that returned before this call is durable; waits
    /// while `max_waiters` waiters are queued.
    pub async fn after_sync(&self, waiter: SyncWaiter) {
        if let Err(mpsc::error::SendError(waiter)) = self.tx.send(waiter).await {
            waiter(Err(std::io::Error::other("group commit stopped")));
        }
    }

    /// Waits until every write that returned before this call is durable.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.after_sync(Box::new(move |result| {
            let _ = tx.send(result);
        }))
        .await;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageError::Engine(format!("sync failed: {e}"))),
            Err(_) => Err(StorageError::Engine("group commit stopped".into())),
        }
    }

    pub fn stats(&self) -> &GroupCommitStats {
        &self.stats
    }
}

async fn run(
    engine: Arc<dyn StorageEngine>,
    mut rx: mpsc::Receiver<SyncWaiter>,
    max_waiters: usize,
    stats: Arc<GroupCommitStats>,
) {
    let mut waiters: Vec<SyncWaiter> = Vec::with_capacity(max_waiters);
    while let Some(first) = rx.recv().await {
        waiters.push(first);
        while waiters.len() < max_waiters {
            match rx.try_recv() {
                Ok(waiter) => waiters.push(waiter),
                Err(_) => break,
            }
        }
        let latency = crate::sim_hooks::fsync_latency();
        if !latency.is_zero() {
            crate::rt::sleep(latency).await;
        }
        let engine = engine.clone();
        match crate::rt::spawn_blocking(move || engine.sync()).await {
            Ok(Ok(())) => {}
            // Never retried, never reported to the waiters as a recoverable error: see
            // `rt::crash`. The writes they wait for were not acknowledged to anyone.
            Ok(Err(e)) => crate::rt::crash(&format!("fsync failed: {e}")),
            Err(e) => crate::rt::crash(&format!("fsync task failed: {e}")),
        }
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats
            .waiters
            .fetch_add(waiters.len() as u64, Ordering::Relaxed);
        for waiter in waiters.drain(..) {
            waiter(Ok(()));
        }
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::storage::{Cf, KeyValue, WriteBatch};

    /// A disk whose fsync blocks until the test releases it; nothing else is called.
    struct StuckDisk {
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl StorageEngine for StuckDisk {
        fn write(&self, _: WriteBatch) -> Result<(), StorageError> {
            unreachable!("group commit only syncs")
        }
        fn sync(&self) -> Result<(), StorageError> {
            let _ = self.release.lock().unwrap().recv();
            Ok(())
        }
        fn get(&self, _: Cf, _: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            unreachable!("group commit only syncs")
        }
        fn scan(&self, _: Cf, _: &[u8], _: &[u8], _: usize) -> Result<Vec<KeyValue>, StorageError> {
            unreachable!("group commit only syncs")
        }
        fn last_in_range(
            &self,
            _: Cf,
            _: &[u8],
            _: &[u8],
        ) -> Result<Option<KeyValue>, StorageError> {
            unreachable!("group commit only syncs")
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_disk_makes_writers_wait_instead_of_growing_the_queue() {
        // Goal: while an fsync is stuck, at most `max_waiters` waiters queue; the next
        // writer waits for room (it would be queued at once with an unbounded queue).
        let (release, stuck) = std::sync::mpsc::channel();
        let disk = Arc::new(StuckDisk {
            release: Mutex::new(stuck),
        });
        let commit = GroupCommit::start(disk, 2);
        // The first is taken by the stuck sync; two more fill the queue.
        for _ in 0..3 {
            let queued = commit.after_sync(Box::new(|_| {}));
            tokio::time::timeout(Duration::from_secs(5), queued)
                .await
                .expect("room in the queue");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let fourth = commit.sync();
        tokio::pin!(fourth);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut fourth)
                .await
                .is_err(),
            "a fourth waiter was queued while the disk was stuck"
        );
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), fourth)
            .await
            .expect("the fourth waiter is served once the disk moves")
            .expect("synced");
        assert_eq!(commit.stats().waiters.load(Ordering::Relaxed), 4);
    }
}

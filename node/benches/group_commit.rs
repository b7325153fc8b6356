//! Benchmark: what group commit buys. N concurrent writers (think: N partitions, or N
//! produce requests) each append a 1 KiB record and wait until it is durable.
//!
//! - baseline: every append runs its own WAL fsync (what a naive log store does);
//! - group commit: appends register with `GroupCommit`, which runs one fsync for all of
//!   the appends that arrived while the previous fsync was running.
//!
//! Prints appends/s, fsyncs and appends per fsync for each writer count, and the speed-up
//! of group commit over the baseline in the same run. Run with
//! `cargo bench -p evlog-node --bench group_commit` (`EVLOG_BENCH_SECONDS` sets each
//! measurement's length, default 2).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evlog_node::keys::Cf;
use evlog_node::storage::rocks::RocksTuning;
use evlog_node::storage::{GroupCommit, RocksEngine, StorageEngine, WriteBatch};

const RECORD_BYTES: usize = 1024;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    FsyncEach,
    GroupCommit,
}

struct Outcome {
    appends: u64,
    fsyncs: u64,
    elapsed: Duration,
}

async fn run(
    engine: Arc<dyn StorageEngine>,
    mode: Mode,
    writers: usize,
    length: Duration,
) -> Outcome {
    let commit = GroupCommit::start(engine.clone(), 4096);
    let appends = Arc::new(AtomicU64::new(0));
    let fsyncs_each = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (engine, commit, appends, fsyncs_each) = (
            engine.clone(),
            commit.clone(),
            appends.clone(),
            fsyncs_each.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while started.elapsed() < length {
                let mut batch = WriteBatch::default();
                let key = [(writer as u64).to_be_bytes(), seq.to_be_bytes()].concat();
                batch.put(Cf::RaftLog, key, vec![0xAB; RECORD_BYTES]);
                engine.write(batch).expect("write");
                match mode {
                    Mode::FsyncEach => {
                        let engine = engine.clone();
                        tokio::task::spawn_blocking(move || engine.sync())
                            .await
                            .expect("join")
                            .expect("sync");
                        fsyncs_each.fetch_add(1, Ordering::Relaxed);
                    }
                    Mode::GroupCommit => commit.sync().await.expect("group sync"),
                }
                appends.fetch_add(1, Ordering::Relaxed);
                seq += 1;
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let fsyncs = match mode {
        Mode::FsyncEach => fsyncs_each.load(Ordering::Relaxed),
        Mode::GroupCommit => commit.stats().syncs.load(Ordering::Relaxed),
    };
    Outcome {
        appends: appends.load(Ordering::Relaxed),
        fsyncs,
        elapsed: started.elapsed(),
    }
}

fn main() {
    let seconds: u64 = std::env::var("EVLOG_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let length = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(512)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let engine: Arc<dyn StorageEngine> = runtime
        .block_on(RocksEngine::open(dir.path(), RocksTuning::default()))
        .map(Arc::new)
        .expect("open rocksdb");
    println!("group commit benchmark: {RECORD_BYTES}-byte appends, each waits until durable, {seconds} s per row");
    println!(
        "{:>8} {:>14} {:>14} {:>10} {:>14} {:>10}",
        "writers", "mode", "appends/s", "fsyncs", "appends/fsync", "speed-up"
    );
    for writers in [1usize, 8, 64, 256] {
        let baseline = runtime.block_on(run(engine.clone(), Mode::FsyncEach, writers, length));
        let grouped = runtime.block_on(run(engine.clone(), Mode::GroupCommit, writers, length));
        let rate = |o: &Outcome| o.appends as f64 / o.elapsed.as_secs_f64();
        for (name, outcome) in [("fsync-each", &baseline), ("group-commit", &grouped)] {
            let speedup = if name == "group-commit" {
                format!("{:.1}x", rate(&grouped) / rate(&baseline))
            } else {
                String::new()
            };
            println!(
                "{:>8} {:>14} {:>14.0} {:>10} {:>14.1} {:>10}",
                writers,
                name,
                rate(outcome),
                outcome.fsyncs,
                outcome.appends as f64 / outcome.fsyncs.max(1) as f64,
                speedup
            );
        }
    }
}

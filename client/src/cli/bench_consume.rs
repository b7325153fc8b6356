//! `evlog bench consume`: how fast a consumer group drains a topic, beside the machine's own
//! limit measured in the same run (plain `Subscribe` streams of the same partitions, no
//! group), and, with `--members 2` or more, the time from a member's death to its
//! partitions being consumed again.
//!
//! Phases: preload `--events` events of `--size` bytes (not measured as consumption);
//! baseline: one Subscription per partition from offset 0 to the end, run before and after
//! the group (the faster counts); group: `--members` members of a fresh group drain the
//! same events; failover (members >= 2): preload as
//! many again, let the members start on them, kill one (its runtime is dropped: no
//! commit, no leave, as a crash) and time until another member delivers an event of one
//! of its partitions.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use evlog_client::{Client, ConsumerConfig, Event, ProducerConfig, StartFrom, TopicPartition};
use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

/// Arguments of `evlog bench consume`.
#[derive(Debug, Clone, Args)]
pub struct ConsumeBenchArgs {
    /// Topic to consume (created and filled by the bench; use a fresh name per run).
    #[arg(long, default_value = "bench-consume")]
    pub topic: String,
    /// Events preloaded and consumed.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Value size of each event, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Partitions of the topic when the bench creates it.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Replication factor of the topic when the bench creates it.
    #[arg(long, default_value_t = 3)]
    pub replication_factor: u32,
    /// The consumer group (default: a fresh one per run).
    #[arg(long)]
    pub group: Option<String>,
    /// Members of the group consuming together.
    #[arg(long, default_value_t = 1)]
    pub members: usize,
    /// Session timeout the members ask for (the failover phase waits for it).
    #[arg(long, default_value_t = 10_000)]
    pub session_timeout_ms: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Throughput of one way of draining the topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    /// Events consumed.
    pub events: u64,
    /// Wall time from start to the last event.
    pub elapsed_s: f64,
    /// Events per second.
    pub events_per_s: f64,
    /// Value bytes per second, in MB (10^6 bytes).
    pub mb_per_s: f64,
}

/// The bench's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumeBenchReport {
    /// Topic consumed.
    pub topic: String,
    /// Its partitions.
    pub partitions: u32,
    /// Value size of each event.
    pub size_bytes: usize,
    /// Members of the group.
    pub members: usize,
    /// Plain Subscribe streams, one per partition, no group: the limit of this machine.
    pub subscribe_baseline: Rate,
    /// The consumer group.
    pub group: Rate,
    /// Group throughput as a share of the baseline.
    pub group_vs_baseline: f64,
    /// From a member's death to its partitions' first event at another member (members
    /// >= 2), with the session timeout it waited for.
    pub failover_ms: Option<u64>,
    /// The session timeout the members asked for.
    pub session_timeout_ms: u32,
}

fn rate(events: u64, elapsed: Duration, size: usize) -> Rate {
    let secs = elapsed.as_secs_f64().max(1e-9);
    Rate {
        events,
        elapsed_s: secs,
        events_per_s: events as f64 / secs,
        mb_per_s: (events as f64 * size as f64) / secs / 1e6,
    }
}

/// Runs `evlog bench consume`.
pub async fn run(client: &Client, args: ConsumeBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.members > 0, "--members must be at least 1");
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    client
        .admin()
        .create_topic(&args.topic, args.partitions, args.replication_factor)
        .await
        .map_err(|e| anyhow::anyhow!("create {} (use a fresh --topic per run): {e}", args.topic))?;
    preload(client, &args, 0).await?;
    // The baseline runs before and after the group (the first pass warms caches); the
    // faster of the two is the limit.
    let before = baseline(client, &args).await?;
    let group_id = args
        .group
        .clone()
        .unwrap_or_else(|| format!("bench-{}", std::process::id()));
    let group = group_drain(client, &args, &group_id).await?;
    let after = baseline(client, &args).await?;
    let baseline = if after.events_per_s > before.events_per_s {
        after
    } else {
        before
    };
    let failover_ms = if args.members >= 2 {
        Some(failover(client, &args, &group_id).await?)
    } else {
        None
    };
    let report = ConsumeBenchReport {
        topic: args.topic.clone(),
        partitions: args.partitions,
        size_bytes: args.size,
        members: args.members,
        group_vs_baseline: group.events_per_s / baseline.events_per_s.max(1e-9),
        subscribe_baseline: baseline,
        group,
        failover_ms,
        session_timeout_ms: args.session_timeout_ms,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

/// Publishes `--events` events numbered from `first`.
async fn preload(client: &Client, args: &ConsumeBenchArgs, first: u64) -> anyhow::Result<()> {
    let producer = client.producer(ProducerConfig::default())?;
    let value = vec![b'v'; args.size];
    let mut pending = Vec::with_capacity(1024);
    for i in first..first + args.events {
        let event = Event::new(value.clone()).with_key(format!("key-{}", i % 1024));
        pending.push(producer.send(&args.topic, event));
        if pending.len() == 1024 {
            for send in pending.drain(..) {
                send.await?;
            }
        }
    }
    for send in pending {
        send.await?;
    }
    producer.close().await;
    Ok(())
}

/// One plain Subscription per partition from offset 0, drained concurrently.
async fn baseline(client: &Client, args: &ConsumeBenchArgs) -> anyhow::Result<Rate> {
    let mut ends = Vec::new();
    for partition in 0..args.partitions {
        let read = client.read(&args.topic, partition, 0, 1).await?;
        ends.push(read.high_watermark);
    }
    let started = Instant::now();
    let drains = ends.iter().enumerate().map(|(partition, end)| {
        let client = client.clone();
        let (topic, end) = (args.topic.clone(), *end);
        async move {
            if end == 0 {
                return Ok::<u64, anyhow::Error>(0);
            }
            let mut events = client.subscribe(topic, partition as u32, StartFrom::Offset(0));
            let mut count = 0;
            while let Some(event) = events.next().await {
                count += 1;
                if event?.offset + 1 >= end {
                    break;
                }
            }
            Ok(count)
        }
    });
    let counts = futures::future::try_join_all(drains).await?;
    Ok(rate(counts.iter().sum(), started.elapsed(), args.size))
}

/// `--members` members of `group` drain the topic from its start.
async fn group_drain(
    client: &Client,
    args: &ConsumeBenchArgs,
    group: &str,
) -> anyhow::Result<Rate> {
    let consumed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut members = Vec::new();
    for _ in 0..args.members {
        let config = ConsumerConfig::new(group)
            .subscribe([args.topic.clone()])
            .with_session_timeout_ms(args.session_timeout_ms);
        let mut consumer = client.consumer(config)?;
        let consumed = consumed.clone();
        let total = args.events;
        members.push(tokio::spawn(async move {
            while consumed.load(Ordering::SeqCst) < total {
                match tokio::time::timeout(Duration::from_millis(100), consumer.next()).await {
                    Ok(Some(Ok(_))) => {
                        consumed.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Some(Err(e))) => return Err(anyhow::anyhow!("member: {e}")),
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
            consumer.close().await;
            Ok(())
        }));
    }
    let mut last_event = started.elapsed();
    for member in members {
        member.await??;
        last_event = last_event.max(started.elapsed());
    }
    Ok(rate(consumed.load(Ordering::SeqCst), last_event, args.size))
}

/// Kills one of `--members` members consuming a fresh batch and times how long until its
/// partitions are consumed again by another.
async fn failover(client: &Client, args: &ConsumeBenchArgs, group: &str) -> anyhow::Result<u64> {
    preload(client, args, args.events).await?;
    // Each member on its own runtime: dropping that runtime kills the member as a crash.
    let seen: Arc<Mutex<Vec<(usize, TopicPartition, Instant)>>> = Arc::default();
    let mut runtimes = Vec::new();
    for index in 0..args.members {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (client_config, seen) = (client.config().clone(), seen.clone());
        let config = ConsumerConfig::new(group)
            .subscribe([args.topic.clone()])
            .with_session_timeout_ms(args.session_timeout_ms);
        runtime.spawn(async move {
            let Ok(client) = Client::new_lazy(client_config) else {
                return;
            };
            let Ok(mut consumer) = client.consumer(config) else {
                return;
            };
            while let Some(Ok(event)) = consumer.next().await {
                let tp = TopicPartition::new(event.topic, event.partition);
                seen.lock().expect("seen").push((index, tp, Instant::now()));
                // Slow enough that the batch is not drained before the kill.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        runtimes.push(runtime);
    }
    let started = Instant::now();
    let owned_by = |index: usize| -> BTreeSet<TopicPartition> {
        let since = Instant::now() - Duration::from_millis(500);
        seen.lock()
            .expect("seen")
            .iter()
            .filter(|(i, _, at)| *i == index && *at >= since)
            .map(|(_, tp, _)| tp.clone())
            .collect()
    };
    while owned_by(0).is_empty() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "member 0 never consumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim = owned_by(0);
    let killed_at = Instant::now();
    runtimes.remove(0).shutdown_background();
    loop {
        let moved = seen
            .lock()
            .expect("seen")
            .iter()
            .find(|(i, tp, at)| *i != 0 && *at > killed_at && victim.contains(tp))
            .map(|(_, _, at)| *at);
        if let Some(at) = moved {
            for runtime in runtimes {
                runtime.shutdown_background();
            }
            return Ok(at.duration_since(killed_at).as_millis() as u64);
        }
        anyhow::ensure!(
            killed_at.elapsed() < Duration::from_secs(120),
            "the dead member's partitions were never consumed again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn print_text(r: &ConsumeBenchReport) {
    let line = |name: &str, rate: &Rate| {
        println!(
            "{name}: {} events in {:.2} s: {:.0} events/s, {:.1} MB/s",
            rate.events, rate.elapsed_s, rate.events_per_s, rate.mb_per_s
        )
    };
    println!(
        "consumed {} ({} partitions, {} bytes per event) with a group of {} member(s)",
        r.topic, r.partitions, r.size_bytes, r.members
    );
    line("subscribe baseline (no group)", &r.subscribe_baseline);
    line("consumer group", &r.group);
    println!("group / baseline: {:.2}", r.group_vs_baseline);
    if let Some(ms) = r.failover_ms {
        println!(
            "failover: a dead member's partitions consumed again after {ms} ms (session timeout {} ms)",
            r.session_timeout_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::BenchCommand;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn consume_bench_defaults_and_rates() {
        // Goal: the documented defaults, and rates computed from counts and time.
        let cli = Cli::try_parse_from(["evlog", "bench", "consume", "--members", "3"]).unwrap();
        let Command::Bench(BenchCommand::Consume(args)) = cli.command else {
            panic!("not bench consume");
        };
        assert_eq!(
            (args.events, args.size, args.partitions, args.members),
            (100_000, 1024, 1, 3)
        );
        assert_eq!(args.session_timeout_ms, 10_000);
        let r = rate(2_000, Duration::from_secs(2), 1_000_000);
        assert_eq!((r.events_per_s, r.mb_per_s), (1_000.0, 1_000.0));
    }
}

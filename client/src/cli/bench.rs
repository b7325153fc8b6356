//! `evlog bench produce`: throughput and acknowledgement latency of Producers (one per
//! `--connections`) driven by K concurrent sender tasks, after an uncounted warmup; text
//! or JSON report. With `--overload FACTOR` it runs the overload bench instead
//! (`overload.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use evlog_client::{Client, ClientError, ErrorCode, Event, Producer, ProducerConfig};
use hdrhistogram::Histogram;
use rand::RngCore;
use serde::Serialize;
use tokio::time::Instant;

/// Highest latency the histogram tracks, in microseconds (larger values saturate).
const LATENCY_MAX_US: u64 = 600_000_000;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Publish N events of SIZE bytes with K in flight; report events/s and ack latency.
    Produce(ProduceBenchArgs),
    /// Drain a topic with a consumer group beside plain subscriptions; failover time.
    Consume(super::bench_consume::ConsumeBenchArgs),
}

/// Arguments of `evlog bench produce`.
#[derive(Debug, Clone, Args)]
pub struct ProduceBenchArgs {
    /// Topic to publish to (created if missing).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Events to publish (after the warmup).
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Value size of each event, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Concurrent sends awaiting acknowledgement.
    #[arg(long, default_value_t = 1024)]
    pub in_flight: usize,
    /// Partitions of the topic when the bench creates it.
    #[arg(long, default_value_t = 3)]
    pub partitions: u32,
    /// Replication factor of the topic when the bench creates it.
    #[arg(long, default_value_t = 3)]
    pub replication_factor: u32,
    /// Producer linger, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,
    /// Producer batch size limit, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub batch_bytes_max: usize,
    /// Produce requests the producer keeps in flight per partition (1 to 5).
    #[arg(long, default_value_t = 1)]
    pub requests_in_flight_per_partition: usize,
    /// Events published first and not counted.
    #[arg(long, default_value_t = 0)]
    pub warmup_events: u64,
    /// Separate gRPC connections (clients) the load is spread over.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Overload bench: calibrate the sustainable rate, offer FACTOR times it from
    /// `--connections` connections with raw requests, then measure the recovery and read
    /// every acknowledged event back (`--events` and the producer flags do not apply).
    #[arg(long, value_name = "FACTOR")]
    pub overload: Option<f64>,
    /// Overload bench: length of each phase (calibrate, overload, recover), in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Overload bench: events in each raw produce request.
    #[arg(long, default_value_t = 100)]
    pub events_per_request: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Ack latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// The bench's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Topic published to.
    pub topic: String,
    /// Events acknowledged in the measured phase.
    pub events: u64,
    /// Sends that failed in the measured phase.
    pub errors: u64,
    /// Value size of each event.
    pub size_bytes: usize,
    /// Concurrent sends.
    pub in_flight: usize,
    /// Partitions of the topic.
    pub partitions: u32,
    /// Wall time of the measured phase.
    pub elapsed_s: f64,
    /// Acknowledged events per second.
    pub events_per_s: f64,
    /// Acknowledged value bytes per second, in MB (10^6 bytes).
    pub mb_per_s: f64,
    /// Ack latency.
    pub latency_ms: LatencyMs,
}

/// What one phase measured.
struct Phase {
    histogram: Histogram<u64>,
    acked: u64,
    errors: u64,
    first_error: Option<ClientError>,
    elapsed: Duration,
}

pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("static histogram bounds are valid")
}

/// Runs a bench command.
pub async fn run(client: &Client, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Produce(args) => produce(client, args).await,
        BenchCommand::Consume(args) => super::bench_consume::run(client, args).await,
    }
}

async fn produce(client: &Client, args: ProduceBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.in_flight > 0, "--in-flight must be at least 1");
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    if let Some(factor) = args.overload {
        return super::overload::run(client, &args, factor).await;
    }
    let partitions = ensure_topic(client, &args).await?;
    let config = ProducerConfig::default()
        .with_linger_ms(args.linger_ms)
        .with_batch_bytes_max(args.batch_bytes_max)
        .with_max_in_flight_per_partition(args.requests_in_flight_per_partition);
    let mut producers = vec![client.producer(config.clone())?];
    for _ in 1..args.connections {
        let own = Client::with_config(client.config().clone()).await?;
        producers.push(own.producer(config.clone())?);
    }
    let mut value = vec![0u8; args.size];
    rand::thread_rng().fill_bytes(&mut value);
    let value = Bytes::from(value);
    if args.warmup_events > 0 {
        let warmup = run_phase(
            &producers,
            &args.topic,
            args.warmup_events,
            args.in_flight,
            &value,
        )
        .await;
        if let Some(e) = warmup.first_error {
            anyhow::bail!("warmup failed: {e}");
        }
    }
    let phase = run_phase(&producers, &args.topic, args.events, args.in_flight, &value).await;
    futures::future::join_all(producers.into_iter().map(Producer::close)).await;
    let report = report(&args, partitions, &phase);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    match phase.first_error {
        Some(e) => anyhow::bail!(
            "{} of {} sends failed; first error: {e}",
            phase.errors,
            args.events
        ),
        None => Ok(()),
    }
}

/// Returns the topic's partition count, creating the topic if it does not exist.
pub(super) async fn ensure_topic(client: &Client, args: &ProduceBenchArgs) -> anyhow::Result<u32> {
    let admin = client.admin();
    match admin.describe_topic(&args.topic).await {
        Ok(topic) => {
            if topic.partition_count != args.partitions {
                eprintln!(
                    "note: topic {} exists with {} partitions; using it as is",
                    topic.name, topic.partition_count
                );
            }
            Ok(topic.partition_count)
        }
        Err(e) if e.code() == Some(ErrorCode::UnknownTopic) => {
            let topic = admin
                .create_topic(&args.topic, args.partitions, args.replication_factor)
                .await?;
            Ok(topic.partition_count)
        }
        Err(e) => Err(e.into()),
    }
}

/// Publishes `events` events from `in_flight` sender tasks sharing one counter, task `i`
/// on producer `i % producers.len()`.
async fn run_phase(
    producers: &[Producer],
    topic: &str,
    events: u64,
    in_flight: usize,
    value: &Bytes,
) -> Phase {
    let next = Arc::new(AtomicU64::new(0));
    let topic: Arc<str> = Arc::from(topic);
    let started = Instant::now();
    let workers = (0..in_flight.min(events.max(1) as usize)).map(|i| {
        let producer = producers[i % producers.len()].clone();
        let (topic, next, value) = (topic.clone(), next.clone(), value.clone());
        tokio::spawn(async move { sender(producer, topic, next, events, value).await })
    });
    let results = futures::future::join_all(workers.collect::<Vec<_>>()).await;
    let mut phase = Phase {
        histogram: new_histogram(),
        acked: 0,
        errors: 0,
        first_error: None,
        elapsed: started.elapsed(),
    };
    for result in results {
        match result {
            Ok(worker) => {
                let _ = phase.histogram.add(&worker.histogram);
                phase.acked += worker.acked;
                phase.errors += worker.errors;
                phase.first_error = phase.first_error.take().or(worker.first_error);
            }
            Err(e) => {
                phase.errors += 1;
                phase
                    .first_error
                    .get_or_insert(ClientError::Protocol(format!("sender task failed: {e}")));
            }
        }
    }
    phase
}

/// One sender task: takes event numbers until `events`, timing each send to its ack.
async fn sender(
    producer: Producer,
    topic: Arc<str>,
    next: Arc<AtomicU64>,
    events: u64,
    value: Bytes,
) -> Phase {
    let mut phase = Phase {
        histogram: new_histogram(),
        acked: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    while next.fetch_add(1, Ordering::Relaxed) < events {
        let sent = Instant::now();
        match producer.send(&topic, Event::new(value.clone())).await {
            Ok(_) => {
                phase
                    .histogram
                    .saturating_record(sent.elapsed().as_micros().max(1) as u64);
                phase.acked += 1;
            }
            Err(e) => {
                phase.errors += 1;
                phase.first_error.get_or_insert(e);
            }
        }
    }
    phase
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Percentiles of a histogram of microseconds, in milliseconds.
pub(super) fn latency_ms(h: &Histogram<u64>) -> LatencyMs {
    LatencyMs {
        p50: us_to_ms(h.value_at_quantile(0.50)),
        p99: us_to_ms(h.value_at_quantile(0.99)),
        p999: us_to_ms(h.value_at_quantile(0.999)),
        max: us_to_ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

fn report(args: &ProduceBenchArgs, partitions: u32, phase: &Phase) -> BenchReport {
    let secs = phase.elapsed.as_secs_f64().max(1e-9);
    BenchReport {
        topic: args.topic.clone(),
        events: phase.acked,
        errors: phase.errors,
        size_bytes: args.size,
        in_flight: args.in_flight,
        partitions,
        elapsed_s: secs,
        events_per_s: phase.acked as f64 / secs,
        mb_per_s: (phase.acked as f64 * args.size as f64) / secs / 1e6,
        latency_ms: latency_ms(&phase.histogram),
    }
}

fn print_text(r: &BenchReport) {
    println!(
        "produced {} events of {} bytes to {} ({} partitions) in {:.2} s with {} in flight",
        r.events, r.size_bytes, r.topic, r.partitions, r.elapsed_s, r.in_flight
    );
    println!(
        "throughput: {:.0} events/s, {:.1} MB/s",
        r.events_per_s, r.mb_per_s
    );
    let l = &r.latency_ms;
    println!(
        "ack latency ms: p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}  mean {:.3}",
        l.p50, l.p99, l.p999, l.max, l.mean
    );
    if r.errors > 0 {
        println!("errors: {}", r.errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(extra: &[&str]) -> ProduceBenchArgs {
        let mut argv = vec!["evlog", "bench", "produce"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Bench(BenchCommand::Produce(args)) => args,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bench_defaults_match_the_documented_ones() {
        let a = parse(&[]);
        assert_eq!(
            (
                a.topic.as_str(),
                a.events,
                a.size,
                a.in_flight,
                a.partitions
            ),
            ("bench", 100_000, 1024, 1024, 3)
        );
        assert_eq!(
            (a.replication_factor, a.linger_ms, a.warmup_events, a.json),
            (3, 0, 0, false)
        );
        assert_eq!(a.requests_in_flight_per_partition, 1);
        let a = parse(&[
            "--events",
            "10",
            "--size",
            "8",
            "--in-flight",
            "2",
            "--warmup-events",
            "5",
            "--json",
            "--linger-ms",
            "0",
            "--requests-in-flight-per-partition",
            "5",
        ]);
        assert_eq!(a.requests_in_flight_per_partition, 5);
        assert_eq!(
            (
                a.events,
                a.size,
                a.in_flight,
                a.warmup_events,
                a.json,
                a.linger_ms
            ),
            (10, 8, 2, 5, true, 0)
        );
    }

    #[test]
    fn report_computes_rates_and_percentiles() {
        // Goal: 1000 events of 1000 bytes in 2 s is 500 events/s and 0.5 MB/s; latencies
        // 1..=1000 ms give p50 ~500 ms and max ~1000 ms.
        let args = parse(&["--size", "1000"]);
        let mut histogram = new_histogram();
        for ms in 1..=1000u64 {
            histogram.record(ms * 1000).unwrap();
        }
        let phase = Phase {
            histogram,
            acked: 1000,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_secs(2),
        };
        let r = report(&args, 3, &phase);
        assert!((r.events_per_s - 500.0).abs() < 1e-6);
        assert!((r.mb_per_s - 0.5).abs() < 1e-9);
        assert!((r.latency_ms.p50 - 500.0).abs() < 1.0, "{:?}", r.latency_ms);
        assert!(
            (r.latency_ms.max - 1000.0).abs() < 1.0,
            "{:?}",
            r.latency_ms
        );
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(json["partitions"], 3);
        assert!(json["latency_ms"]["p999"].is_number());
    }
}

//! `evlog bench produce --overload FACTOR`: what a cluster does when offered more than it
//! can take. Raw Produce requests (as a client in any language sends them, without the
//! Producer's retries, so every refusal is seen) from `--connections` separate gRPC
//! connections, in four phases:
//!
//! 1. *calibrate*: a closed loop (`--in-flight` requests waiting at any time) for
//!    `--seconds`; its admitted rate is the sustainable rate S, measured in the same run;
//! 2. *overload*: an open loop offering FACTOR × S for `--seconds`, requests sent on a
//!    fixed schedule whatever the answers: admitted ones are timed, refusals counted;
//! 3. *recover*: once the load stops, the time to the first admitted request, then the
//!    closed loop again for `--seconds`;
//! 4. *verify*: every acknowledged event is read back at the offset it was acknowledged
//!    with (each value carries its request id and index).
//!
//! Requests carry no producer id: nothing is retried, so nothing needs deduplicating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use evlog_client::{Client, ErrorCode};
use evlog_proto::evlog::v1 as pb;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use super::bench::{latency_ms, new_histogram, LatencyMs, ProduceBenchArgs};

/// Requests one connection may have outstanding in the open loop; a tick that finds this
/// many is counted as `not_sent` (the client's own limit, so it cannot run out of memory).
const OUTSTANDING_PER_CONNECTION_MAX: usize = 4096;

/// Bytes at the start of every value: connection, request number, index in the request.
const ID_BYTES: usize = 16;

/// One phase's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Events offered per second (the open loop's schedule; 0 for a closed loop).
    pub offered_events_per_s: f64,
    /// Events acknowledged per second.
    pub admitted_events_per_s: f64,
    /// Requests acknowledged.
    pub admitted_requests: u64,
    /// Latency of acknowledged requests.
    pub admitted_latency_ms: LatencyMs,
    /// Requests refused with RESOURCE_EXHAUSTED.
    pub refused_requests: u64,
    /// How quickly refusals came back.
    pub refused_latency_ms: LatencyMs,
    /// Requests that failed otherwise (transport errors, timeouts, other codes).
    pub other_errors: u64,
    /// The first of those, if any.
    pub first_other_error: Option<String>,
    /// Open loop only: ticks skipped because the connection had too many outstanding.
    pub not_sent: u64,
    /// Wall time of the phase.
    pub elapsed_s: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct OverloadReport {
    pub topic: String,
    pub partitions: u32,
    pub connections: usize,
    pub events_per_request: usize,
    pub size_bytes: usize,
    pub factor: f64,
    pub calibrate: PhaseReport,
    pub overload: PhaseReport,
    /// From the end of the overload phase (every answer in) to the first admitted request.
    pub first_write_after_ms: f64,
    pub recover: PhaseReport,
    /// Acknowledged events read back at their acknowledged offsets.
    pub verified_events: u64,
    /// Acknowledged events missing or different at their offset (must be 0).
    pub lost_events: u64,
}

/// Where to send a partition's requests: one channel per (connection, leader address).
struct Routes {
    /// connection -> partition -> channel to its leader.
    channels: Vec<Vec<Channel>>,
}

/// An acknowledged request: where its events went.
#[derive(Clone, Copy)]
struct Acked {
    partition: u32,
    base_offset: u64,
    connection: u32,
    request: u64,
    events: u32,
}

#[derive(Default)]
struct Tally {
    admitted: Option<Histogram<u64>>,
    refused: Option<Histogram<u64>>,
    admitted_requests: u64,
    refused_requests: u64,
    other_errors: u64,
    first_other_error: Option<String>,
    acked: Vec<Acked>,
}

impl Tally {
    fn record(&mut self, outcome: Outcome, sent: Instant, id: (u32, u64), partition: u32, n: u32) {
        let us = sent.elapsed().as_micros().max(1) as u64;
        match outcome {
            Outcome::Acked(base_offset) => {
                self.admitted_requests += 1;
                self.admitted
                    .get_or_insert_with(new_histogram)
                    .saturating_record(us);
                self.acked.push(Acked {
                    partition,
                    base_offset,
                    connection: id.0,
                    request: id.1,
                    events: n,
                });
            }
            Outcome::Refused => {
                self.refused_requests += 1;
                self.refused
                    .get_or_insert_with(new_histogram)
                    .saturating_record(us);
            }
            Outcome::Failed(why) => {
                self.other_errors += 1;
                self.first_other_error.get_or_insert(why);
            }
        }
    }
}

enum Outcome {
    Acked(u64),
    Refused,
    Failed(String),
}

/// Shared by every request task of a run.
struct Run {
    routes: Routes,
    topic: String,
    partitions: u32,
    size: usize,
    events_per_request: usize,
    tally: Mutex<Tally>,
}

impl Run {
    /// Sends request `request` of `connection` to `partition`'s leader and records it.
    async fn produce(&self, connection: u32, request: u64) {
        let partition = (request % self.partitions as u64) as u32;
        let events = (0..self.events_per_request)
            .map(|index| pb::Event {
                value: value(self.size, connection, request, index as u32),
                ..Default::default()
            })
            .collect();
        let channel = self.routes.channels[connection as usize][partition as usize].clone();
        let mut rpc = pb::event_log_client::EventLogClient::new(channel);
        let sent = Instant::now();
        let answer = rpc
            .produce(pb::ProduceRequest {
                topic: self.topic.clone(),
                partition,
                events,
                ..Default::default()
            })
            .await;
        let outcome = match answer.map(|a| a.into_inner()) {
            Ok(pb::ProduceResponse {
                error: None,
                base_offset,
                ..
            }) => Outcome::Acked(base_offset),
            Ok(pb::ProduceResponse { error: Some(e), .. })
                if e.code == ErrorCode::ResourceExhausted as i32 =>
            {
                Outcome::Refused
            }
            Ok(pb::ProduceResponse { error: Some(e), .. }) => {
                Outcome::Failed(format!("{:?}: {}", ErrorCode::try_from(e.code), e.message))
            }
            Err(status) if status.code() == tonic::Code::ResourceExhausted => Outcome::Refused,
            Err(status) => Outcome::Failed(format!("{:?}: {}", status.code(), status.message())),
        };
        let n = self.events_per_request as u32;
        self.tally.lock().expect("tally lock").record(
            outcome,
            sent,
            (connection, request),
            partition,
            n,
        );
    }

    fn take(&self, elapsed: Duration, offered: f64, not_sent: u64) -> (PhaseReport, Vec<Acked>) {
        let tally = std::mem::take(&mut *self.tally.lock().expect("tally lock"));
        let secs = elapsed.as_secs_f64().max(1e-9);
        let summary =
            |h: &Option<Histogram<u64>>| latency_ms(h.as_ref().unwrap_or(&new_histogram()));
        let report = PhaseReport {
            offered_events_per_s: offered,
            admitted_events_per_s: (tally.admitted_requests * self.events_per_request as u64)
                as f64
                / secs,
            admitted_requests: tally.admitted_requests,
            admitted_latency_ms: summary(&tally.admitted),
            refused_requests: tally.refused_requests,
            refused_latency_ms: summary(&tally.refused),
            other_errors: tally.other_errors,
            first_other_error: tally.first_other_error,
            not_sent,
            elapsed_s: secs,
        };
        (report, tally.acked)
    }
}

/// The value of event `index` of `request`: its id, then filler up to `size` bytes.
fn value(size: usize, connection: u32, request: u64, index: u32) -> Bytes {
    let mut v = vec![0xA5u8; size.max(ID_BYTES)];
    v[0..4].copy_from_slice(&connection.to_be_bytes());
    v[4..12].copy_from_slice(&request.to_be_bytes());
    v[12..16].copy_from_slice(&index.to_be_bytes());
    Bytes::from(v)
}

/// Runs the overload bench and prints its report.
pub async fn run(client: &Client, args: &ProduceBenchArgs, factor: f64) -> anyhow::Result<()> {
    anyhow::ensure!(factor > 0.0, "--overload must be positive");
    anyhow::ensure!(
        args.events_per_request > 0,
        "--events-per-request must be at least 1"
    );
    let partitions = super::bench::ensure_topic(client, args).await?;
    let routes = routes(client, &args.topic, partitions, args.connections).await?;
    let run = Arc::new(Run {
        routes,
        topic: args.topic.clone(),
        partitions,
        size: args.size,
        events_per_request: args.events_per_request,
        tally: Mutex::new(Tally::default()),
    });
    let phase = Duration::from_secs_f64(args.seconds);
    let mut acked = Vec::new();
    let mut next_request = 0u64;

    let (calibrate, a) = closed_loop(&run, args, phase, &mut next_request).await;
    acked.extend(a);
    let sustainable = calibrate.admitted_events_per_s;
    anyhow::ensure!(
        sustainable > 0.0,
        "nothing was admitted while calibrating: {:?}",
        calibrate.first_other_error
    );
    let (overload, a) = open_loop(&run, args, phase, sustainable * factor, &mut next_request).await;
    acked.extend(a);
    let first_write_after_ms = first_write(&run, &mut next_request, &mut acked).await?;
    let (recover, a) = closed_loop(&run, args, phase, &mut next_request).await;
    acked.extend(a);
    let (verified_events, lost_events) = verify(client, &args.topic, &acked, args.size).await?;
    let report = OverloadReport {
        topic: args.topic.clone(),
        partitions,
        connections: args.connections,
        events_per_request: args.events_per_request,
        size_bytes: args.size,
        factor,
        calibrate,
        overload,
        first_write_after_ms,
        recover,
        verified_events,
        lost_events,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    anyhow::ensure!(
        lost_events == 0,
        "{lost_events} acknowledged events were not read back"
    );
    Ok(())
}

/// One channel per connection and partition leader (connections share nothing).
async fn routes(
    client: &Client,
    topic: &str,
    partitions: u32,
    connections: usize,
) -> anyhow::Result<Routes> {
    let admin = client.admin();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Every partition's leader and its client address (a node registers it after start).
    let (leaders, address) = loop {
        let described = admin.describe_topic(topic).await?;
        let leaders: Option<Vec<u64>> = described.partitions.iter().map(|p| p.leader_id).collect();
        let address: HashMap<u64, String> = admin
            .describe_cluster()
            .await?
            .nodes
            .into_iter()
            .map(|n| (n.node_id, n.addr))
            .collect();
        match leaders {
            Some(leaders)
                if leaders.len() == partitions as usize
                    && leaders.iter().all(|l| address.contains_key(l)) =>
            {
                break (leaders, address)
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => anyhow::bail!(
                "topic {topic}: not every partition has a reachable leader after 30 s"
            ),
        }
    };
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut by_node: HashMap<u64, Channel> = HashMap::new();
        let mut per_partition = Vec::with_capacity(partitions as usize);
        for leader in &leaders {
            if !by_node.contains_key(leader) {
                let channel = Endpoint::from_shared(format!("http://{}", address[leader]))?
                    .timeout(Duration::from_secs(15))
                    .connect()
                    .await?;
                by_node.insert(*leader, channel);
            }
            per_partition.push(by_node[leader].clone());
        }
        channels.push(per_partition);
    }
    Ok(Routes { channels })
}

/// `--in-flight` workers spread over the connections, each sending its next request when
/// the previous one is answered.
async fn closed_loop(
    run: &Arc<Run>,
    args: &ProduceBenchArgs,
    phase: Duration,
    next_request: &mut u64,
) -> (PhaseReport, Vec<Acked>) {
    let started = Instant::now();
    let end = started + phase;
    let workers = args.in_flight.max(1);
    let first = *next_request;
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let run = run.clone();
            let connection = (w % args.connections) as u32;
            tokio::spawn(async move {
                let mut request = first + w as u64;
                while Instant::now() < end {
                    run.produce(connection, request).await;
                    request += workers as u64;
                }
                request
            })
        })
        .collect();
    for handle in handles {
        let last = handle.await.expect("closed-loop worker");
        *next_request = (*next_request).max(last);
    }
    run.take(started.elapsed(), 0.0, 0)
}

/// Sends on a fixed schedule adding up to `events_per_s` across the connections.
async fn open_loop(
    run: &Arc<Run>,
    args: &ProduceBenchArgs,
    phase: Duration,
    events_per_s: f64,
    next_request: &mut u64,
) -> (PhaseReport, Vec<Acked>) {
    let requests_per_s = events_per_s / args.events_per_request as f64;
    let interval = Duration::from_secs_f64(args.connections as f64 / requests_per_s);
    let started = Instant::now();
    let end = started + phase;
    let first = *next_request;
    let connections = args.connections as u64;
    let tickers: Vec<_> = (0..args.connections)
        .map(|c| {
            let run = run.clone();
            tokio::spawn(async move {
                let outstanding =
                    Arc::new(tokio::sync::Semaphore::new(OUTSTANDING_PER_CONNECTION_MAX));
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let (mut request, mut not_sent, mut tasks) = (first + c as u64, 0u64, Vec::new());
                while Instant::now() < end {
                    ticks.tick().await;
                    let Ok(permit) = outstanding.clone().try_acquire_owned() else {
                        not_sent += 1;
                        continue;
                    };
                    let run = run.clone();
                    let id = request;
                    tasks.push(tokio::spawn(async move {
                        run.produce(c as u32, id).await;
                        drop(permit);
                    }));
                    request += connections;
                }
                futures::future::join_all(tasks).await;
                (request, not_sent)
            })
        })
        .collect();
    let mut not_sent = 0;
    for ticker in tickers {
        let (last, skipped) = ticker.await.expect("open-loop ticker");
        *next_request = (*next_request).max(last);
        not_sent += skipped;
    }
    // The schedule ends at `end`; answers to the last requests come after it.
    run.take(started.elapsed(), events_per_s, not_sent)
}

/// Milliseconds until one request is admitted again, retrying every 10 ms for 60 s.
async fn first_write(
    run: &Arc<Run>,
    next_request: &mut u64,
    acked: &mut Vec<Acked>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        run.produce(0, *next_request).await;
        *next_request += 1;
        let (phase, a) = run.take(started.elapsed(), 0.0, 0);
        acked.extend(a);
        if phase.admitted_requests > 0 {
            return Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("no write was admitted within 60 s after the overload stopped")
}

/// Reads every partition over the acknowledged offsets; returns (verified, lost).
async fn verify(
    client: &Client,
    topic: &str,
    acked: &[Acked],
    size: usize,
) -> anyhow::Result<(u64, u64)> {
    // (partition, offset) -> (connection, request, index) expected there.
    let mut expected: HashMap<u32, HashMap<u64, (u32, u64, u32)>> = HashMap::new();
    for a in acked {
        let offsets = expected.entry(a.partition).or_default();
        for i in 0..a.events {
            offsets.insert(a.base_offset + i as u64, (a.connection, a.request, i));
        }
    }
    let mut verified = 0u64;
    for (partition, offsets) in &expected {
        let (Some(&from), Some(&to)) = (offsets.keys().min(), offsets.keys().max()) else {
            continue;
        };
        let mut offset = from;
        while offset <= to {
            let read = client.read(topic, *partition, offset, 0).await?;
            anyhow::ensure!(
                !read.events.is_empty(),
                "partition {partition}: nothing at {offset}"
            );
            for event in &read.events {
                if let Some(&(c, r, i)) = offsets.get(&event.offset) {
                    verified += u64::from(event.value == value(size, c, r, i));
                }
            }
            offset = read.events.last().expect("checked non-empty").offset + 1;
        }
    }
    // Missing (never read) or different: both are lost acknowledged events.
    let total: u64 = expected.values().map(|o| o.len() as u64).sum();
    Ok((verified, total - verified))
}

fn print_phase(name: &str, p: &PhaseReport) {
    let a = &p.admitted_latency_ms;
    let r = &p.refused_latency_ms;
    println!(
        "{name}: admitted {:.0} events/s ({} requests), latency ms p50 {:.1} p99 {:.1} max {:.1}",
        p.admitted_events_per_s, p.admitted_requests, a.p50, a.p99, a.max
    );
    println!(
        "{:width$}  refused RESOURCE_EXHAUSTED {} requests (answered in p50 {:.1} p99 {:.1} ms), \
         other errors {}, not sent {}",
        "",
        p.refused_requests,
        r.p50,
        r.p99,
        p.other_errors,
        p.not_sent,
        width = name.len()
    );
    if let Some(e) = &p.first_other_error {
        println!("{:width$}  first other error: {e}", "", width = name.len());
    }
}

fn print_text(r: &OverloadReport) {
    println!(
        "overload bench: topic {} ({} partitions), {} connections, {} events of {} bytes per request",
        r.topic, r.partitions, r.connections, r.events_per_request, r.size_bytes
    );
    print_phase("calibrate (closed loop)", &r.calibrate);
    println!(
        "overload: offered {:.0} events/s = {:.1} x the calibrated {:.0} for {:.1} s",
        r.overload.offered_events_per_s,
        r.factor,
        r.calibrate.admitted_events_per_s,
        r.overload.elapsed_s
    );
    print_phase("overload (open loop)", &r.overload);
    println!(
        "first write admitted {:.1} ms after the overload stopped",
        r.first_write_after_ms
    );
    print_phase("recover (closed loop)", &r.recover);
    println!(
        "verified: {} acknowledged events read back at their offsets, {} lost",
        r.verified_events, r.lost_events
    );
}

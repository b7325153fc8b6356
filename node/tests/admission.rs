//! Goal: no produce request, however shaped, stops a partition from taking the next one,
//! and every refusal names its limit (finding 1 of "the node protects itself": one
//! Produce of 1,000,000 empty events, 2 MB on the wire, used to stall a partition for over
//! a minute). Method: real node processes; raw gRPC requests shaped at and past each
//! limit, each followed by an ordinary produce that must be answered at once; then a
//! cluster with tiny queues and budgets, flooded, must refuse the excess with a retryable
//! RESOURCE_EXHAUSTED and lose nothing it acknowledged.

mod common;

use std::time::{Duration, Instant};

use common::grpc::{self, code_of, events, produce, produce_request};
use common::{rss_bytes, TestCluster};
use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::event_log_client::EventLogClient;
use pb::ErrorCode;
use tonic::transport::Channel;

/// Generous bound on how long the next ordinary produce may take after an abusive one
/// (a liveness bound, not a performance target: a stalled partition takes over a minute).
const NEXT_WRITE_BOUND: Duration = Duration::from_secs(5);

/// An ordinary one-event produce must succeed within [`NEXT_WRITE_BOUND`].
async fn next_write_is_taken(log: &mut EventLogClient<Channel>, after: &str) {
    let started = Instant::now();
    let response = tokio::time::timeout(
        NEXT_WRITE_BOUND,
        produce(log, produce_request("t", 0, events(1, 10))),
    )
    .await
    .unwrap_or_else(|_| {
        panic!("the partition took no write for {NEXT_WRITE_BOUND:?} after {after}")
    });
    assert_eq!(
        code_of(&response.error),
        ErrorCode::Ok,
        "after {after}: {:?}",
        response.error
    );
    println!("after {after}: next write taken in {:?}", started.elapsed());
}

fn refusal(response: &pb::ProduceResponse, code: ErrorCode, limit: &str) {
    assert_eq!(code_of(&response.error), code, "{:?}", response.error);
    let message = &response.error.as_ref().expect("an error").message;
    assert!(message.contains(limit), "{message:?} does not name {limit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_and_past_every_limit_never_stall_the_partition() {
    let cluster = TestCluster::start(3);
    let leader = grpc::one_partition_topic(&cluster.bootstrap(), "t", 3).await;
    let mut log = grpc::event_log(grpc::channel(&leader).await);
    let leader_pid = cluster
        .nodes
        .iter()
        .find(|node| node.addr == leader)
        .and_then(|node| cluster.pid(node.id))
        .expect("the leader is one of the nodes");
    let rss_before = rss_bytes(leader_pid);

    // The finding: a million empty events (2 MB on the wire) are refused at once.
    let started = Instant::now();
    let million = produce(&mut log, produce_request("t", 0, events(1_000_000, 0))).await;
    refusal(
        &million,
        ErrorCode::InvalidArgument,
        "produce.request_events_max",
    );
    assert!(million.error.unwrap().message.contains("1000000 events"));
    println!("1,000,000 empty events refused in {:?}", started.elapsed());
    next_write_is_taken(&mut log, "a million empty events").await;
    println!(
        "leader RSS {} MiB before, {} MiB after",
        rss_before >> 20,
        rss_bytes(leader_pid) >> 20
    );
    // Also for a topic that does not exist: the count is checked before the node looks
    // the topic up (which may wait for the metadata group), so a million decoded events
    // are never held while it waits.
    let unknown = produce(&mut log, produce_request("nope", 0, events(1_000_000, 0))).await;
    refusal(
        &unknown,
        ErrorCode::InvalidArgument,
        "produce.request_events_max",
    );

    // At the count limit: accepted, and the partition goes on.
    let at_count = produce(&mut log, produce_request("t", 0, events(10_000, 0))).await;
    assert_eq!(
        code_of(&at_count.error),
        ErrorCode::Ok,
        "{:?}",
        at_count.error
    );
    next_write_is_taken(&mut log, "10,000 empty events").await;

    // At the byte limit (2 MiB accounted): two events of just under 1 MiB, eight
    // requests at once; then every one answered and the partition goes on.
    let big = (1 << 20) - 64;
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let mut log = log.clone();
            tokio::spawn(
                async move { produce(&mut log, produce_request("t", 0, events(2, big))).await },
            )
        })
        .collect();
    for request in requests {
        let response = request.await.expect("task");
        assert_eq!(
            code_of(&response.error),
            ErrorCode::Ok,
            "{:?}",
            response.error
        );
    }
    next_write_is_taken(&mut log, "eight 2 MiB requests at once").await;

    // Past each limit: refused whole, naming the limit.
    let past_bytes = produce(&mut log, produce_request("t", 0, events(3, big))).await;
    refusal(
        &past_bytes,
        ErrorCode::InvalidArgument,
        "produce.request_bytes_max",
    );
    let past_event = produce(&mut log, produce_request("t", 0, events(1, (1 << 20) + 1))).await;
    refusal(&past_event, ErrorCode::EventTooLarge, "at most 1048576");
    let mut headers = events(1, 1);
    headers[0].headers = (0..65)
        .map(|i| pb::Header {
            key: format!("h{i}"),
            value: Default::default(),
        })
        .collect();
    let past_headers = produce(&mut log, produce_request("t", 0, headers)).await;
    refusal(
        &past_headers,
        ErrorCode::InvalidArgument,
        "produce.headers_per_event_max",
    );
    next_write_is_taken(&mut log, "requests past each limit").await;
}

/// Goal: past a full queue or budget, requests are refused with a retryable
/// RESOURCE_EXHAUSTED that names the limit and says when to retry; every admitted request
/// is answered within its deadline; nothing acknowledged is lost; nothing refused is
/// written. Method: one node with a one-request queue, one entry in flight and a 1 ms
/// admission wait; 200 concurrent produce requests of distinct values; then read the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_the_excess_retryably_and_loses_nothing_it_acknowledged() {
    let cluster = TestCluster::start_with_env(
        1,
        &[
            ("EVLOG_PRODUCE__QUEUE_REQUESTS_MAX", "1"),
            ("EVLOG_PRODUCE__INFLIGHT_ENTRIES_MAX", "1"),
            ("EVLOG_PRODUCE__ADMISSION_WAIT_MS", "1"),
        ],
    );
    let leader = grpc::one_partition_topic(&cluster.bootstrap(), "t", 1).await;
    let log = grpc::event_log(grpc::channel(&leader).await);

    let started = Instant::now();
    let requests: Vec<_> = (0..200)
        .map(|i| {
            let mut log = log.clone();
            tokio::spawn(async move {
                let event = pb::Event {
                    value: format!("v{i}").into_bytes().into(),
                    ..Default::default()
                };
                let sent = Instant::now();
                let response = produce(&mut log, produce_request("t", 0, vec![event])).await;
                (i, response, sent.elapsed())
            })
        })
        .collect();
    let (mut acked, mut refused) = (Vec::new(), 0);
    for request in requests {
        let (i, response, took) = request.await.expect("task");
        assert!(
            took < Duration::from_secs(11),
            "answered after {took:?}, past the 10 s deadline"
        );
        match code_of(&response.error) {
            ErrorCode::Ok => acked.push((response.base_offset, format!("v{i}"))),
            ErrorCode::ResourceExhausted => {
                let error = response.error.unwrap();
                assert!(error.retry_after_ms.is_some_and(|ms| ms > 0), "{error:?}");
                assert!(
                    error.message.contains("produce.queue_requests_max"),
                    "{}",
                    error.message
                );
                refused += 1;
            }
            other => panic!("request {i}: unexpected {other:?} {:?}", response.error),
        }
    }
    println!(
        "{} acked, {refused} refused with RESOURCE_EXHAUSTED in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(
        refused > 0,
        "a one-request queue under 200 concurrent requests must refuse some"
    );
    assert!(!acked.is_empty());

    // The log holds exactly the acknowledged events (after the leader probe at offset 0).
    let mut log = log;
    let read = log
        .read(pb::ReadRequest {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            max_bytes: 0,
            max_events: 0,
        })
        .await
        .expect("read rpc")
        .into_inner();
    let mut stored: Vec<(u64, String)> = read
        .events
        .iter()
        .map(|e| (e.offset, String::from_utf8_lossy(&e.value).into_owned()))
        .collect();
    acked.sort();
    stored.sort();
    assert_eq!(stored, acked, "the log holds exactly what was acknowledged");
}

//! Goal: a Subscribe stream first says where it starts, with `earliest` or `latest`
//! resolved, before any event. A client whose stream breaks before its first event then
//! resumes at that offset instead of resolving `latest` again and skipping what was
//! committed in between (the client side is unit-tested in `client/src/subscription.rs`).
//!
//! Method: one real node, a topic with 3 events; Subscribe from `latest`, `earliest`
//! and offset 1: each stream's first message carries no events and the resolved start.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use evlog_client::{Client, Event, ProducerConfig};
use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::event_log_client::EventLogClient;
use pb::start_position::Position;

async fn first_message(addr: &str, position: Position) -> pb::SubscribeResponse {
    let mut client = EventLogClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let request = pb::SubscribeRequest {
        topic: "t".into(),
        partition: 0,
        start: Some(pb::StartPosition {
            position: Some(position),
        }),
        max_bytes: 1 << 20,
        ..Default::default()
    };
    let mut stream = client
        .subscribe(request)
        .await
        .expect("subscribe")
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a first message in time")
        .expect("stream open")
        .expect("a first message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_stream_first_says_where_it_starts() {
    let cluster = TestCluster::start(1);
    let client = Client::connect(cluster.bootstrap()).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = client.admin().create_topic("t", 1, 1).await {
        assert!(Instant::now() < deadline, "create topic: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let producer = client
        .producer(ProducerConfig::default())
        .expect("producer");
    for i in 0..3 {
        producer
            .send("t", Event::new(format!("e{i}")))
            .await
            .expect("acknowledged");
    }
    let addr = &cluster.node(1).addr;
    for (position, start) in [
        (Position::Latest(true), 3),
        (Position::Earliest(true), 0),
        (Position::Offset(1), 1),
    ] {
        let first = first_message(addr, position).await;
        assert_eq!(first.error, None);
        assert!(
            first.events.is_empty(),
            "{position:?}: the start comes first"
        );
        assert_eq!(first.start_offset, Some(start), "{position:?}");
        assert_eq!(first.high_watermark, 3);
    }
}

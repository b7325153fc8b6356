//! Goal: bad input gets a clear error code, nothing of it is written, and the node keeps
//! serving. Method: a one-node cluster (real process); raw gRPC clients send each kind of
//! bad request (unknown topic, invalid names, zero partitions, replication factor larger
//! than the cluster, an oversized event, undecodable bytes), then a good request must
//! still succeed and the log must hold only the good events.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::admin_client::AdminClient;
use evlog_proto::evlog::v1::event_log_client::EventLogClient;
use pb::ErrorCode;
use tonic::transport::Channel;

async fn channel(addr: &str) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
        {
            Ok(channel) => return channel,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }
}

fn code_of(error: &Option<pb::Error>) -> ErrorCode {
    error.as_ref().map_or(ErrorCode::Ok, |e| {
        ErrorCode::try_from(e.code).expect("known code")
    })
}

async fn create(
    admin: &mut AdminClient<Channel>,
    name: &str,
    partitions: u32,
    rf: u32,
    max_event_bytes: u32,
) -> pb::CreateTopicResponse {
    let request = pb::CreateTopicRequest {
        name: name.into(),
        config: Some(pb::TopicConfig {
            partitions,
            replication_factor: rf,
            max_event_bytes,
        }),
    };
    admin
        .create_topic(request)
        .await
        .expect("create rpc")
        .into_inner()
}

/// Creates the topic once the metadata group has a leader.
async fn create_good_topic(admin: &mut AdminClient<Channel>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = create(admin, "good", 1, 1, 1024).await;
        match code_of(&response.error) {
            ErrorCode::Ok => return,
            ErrorCode::NotLeader | ErrorCode::Unavailable if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("creating the good topic: {other:?} {:?}", response.error),
        }
    }
}

fn produce_request(topic: &str, partition: u32, values: &[usize]) -> pb::ProduceRequest {
    pb::ProduceRequest {
        topic: topic.into(),
        partition,
        producer_id: 0,
        first_sequence: 0,
        events: values
            .iter()
            .map(|len| pb::Event {
                value: vec![b'x'; *len].into(),
                ..Default::default()
            })
            .collect(),
    }
}

/// Produces until the partition's leader is up (right after creation it may not be).
async fn produce_until_served(
    log: &mut EventLogClient<Channel>,
    request: pb::ProduceRequest,
) -> pb::ProduceResponse {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = log
            .produce(request.clone())
            .await
            .expect("produce rpc")
            .into_inner();
        match code_of(&response.error) {
            ErrorCode::NotLeader | ErrorCode::Unavailable if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => return response,
        }
    }
}

async fn read_good(log: &mut EventLogClient<Channel>, offset: u64) -> pb::ReadResponse {
    let request = pb::ReadRequest {
        topic: "good".into(),
        partition: 0,
        offset,
        max_bytes: 0,
        max_events: 0,
    };
    log.read(request).await.expect("read rpc").into_inner()
}

/// A message whose field 1 (`topic`, a string) is sent as a varint: undecodable as a
/// ProduceRequest.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(uint64, tag = "1")]
    topic: u64,
}

async fn send_garbage(channel: Channel) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/evlog.v1.EventLog/Produce");
    let codec = tonic_prost::ProstCodec::<Garbage, pb::ProduceResponse>::default();
    grpc.unary(tonic::Request::new(Garbage { topic: 7 }), path, codec)
        .await
        .expect_err("undecodable request must be refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_error_codes_and_the_node_keeps_serving() {
    let cluster = TestCluster::start(1);
    let addr = cluster.node(1).addr.clone();
    let channel = channel(&addr).await;
    let mut admin = AdminClient::new(channel.clone());
    let mut log = EventLogClient::new(channel.clone());
    create_good_topic(&mut admin).await;

    let cases = [
        ("bad name!", 1, 1, ErrorCode::InvalidArgument),
        ("", 1, 1, ErrorCode::InvalidArgument),
        ("zero", 0, 1, ErrorCode::InvalidArgument),
        ("too-replicated", 1, 2, ErrorCode::InvalidArgument),
        ("good", 1, 1, ErrorCode::TopicExists),
    ];
    for (name, partitions, rf, expected) in cases {
        let response = create(&mut admin, name, partitions, rf, 0).await;
        assert_eq!(
            code_of(&response.error),
            expected,
            "create {name:?}: {:?}",
            response.error
        );
        assert!(
            !response.error.unwrap().message.is_empty(),
            "errors say what failed"
        );
    }

    let ok = produce_until_served(&mut log, produce_request("good", 0, &[10, 20])).await;
    assert_eq!(code_of(&ok.error), ErrorCode::Ok, "{:?}", ok.error);
    let produce_cases = [
        (produce_request("nope", 0, &[1]), ErrorCode::UnknownTopic),
        (
            produce_request("good", 5, &[1]),
            ErrorCode::UnknownPartition,
        ),
        (produce_request("good", 0, &[]), ErrorCode::InvalidArgument),
        (
            produce_request("good", 0, &[10, 1025]),
            ErrorCode::EventTooLarge,
        ),
    ];
    for (request, expected) in produce_cases {
        let response = log
            .produce(request)
            .await
            .expect("produce rpc")
            .into_inner();
        assert_eq!(code_of(&response.error), expected, "{:?}", response.error);
    }
    let status = send_garbage(channel.clone()).await;
    assert_ne!(status.code(), tonic::Code::Ok);

    // Still serving, and only the good events were written.
    let again = log
        .produce(produce_request("good", 0, &[30]))
        .await
        .expect("produce rpc")
        .into_inner();
    assert_eq!(code_of(&again.error), ErrorCode::Ok);
    assert_eq!(
        again.base_offset, 2,
        "the refused requests consumed no offsets"
    );
    let read = read_good(&mut log, 0).await;
    let sizes: Vec<usize> = read.events.iter().map(|e| e.value.len()).collect();
    assert_eq!(sizes, vec![10, 20, 30]);
    let beyond = read_good(&mut log, 99).await;
    assert_eq!(code_of(&beyond.error), ErrorCode::OffsetOutOfRange);
}

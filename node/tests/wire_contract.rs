//! Goal: the wire contract a client in any language relies on, as `evlog.proto` states it,
//! against real nodes and with raw gRPC only (as a client in another language would):
//! - finding 4: a producer with several requests in flight retries an older request
//!   after a newer one was accepted, and gets the older one's original offsets with
//!   `duplicate = true` (the node remembers the last 5 requests per producer); a retry
//!   older than that window gets DUPLICATE_SEQUENCE, and a gap OUT_OF_ORDER_SEQUENCE with
//!   the expected sequence. Read back, every event is in the log exactly once.
//! - finding 6: a message over the node's limit is refused with gRPC RESOURCE_EXHAUSTED
//!   naming the limit (not the transport's OUT_OF_RANGE), and a body that does not decode
//!   with INVALID_ARGUMENT (not INTERNAL); the partition takes the next write at once.

mod common;

use common::grpc::{self, code_of, events, produce, produce_request};
use common::TestCluster;
use evlog_proto::evlog::v1 as pb;
use pb::ErrorCode;

fn idempotent(
    producer_id: u64,
    first_sequence: u64,
    count: usize,
    tag: &str,
) -> pb::ProduceRequest {
    let events = (0..count)
        .map(|i| pb::Event {
            value: format!("{tag}-{i}").into_bytes().into(),
            ..Default::default()
        })
        .collect();
    pb::ProduceRequest {
        producer_id,
        first_sequence,
        ..produce_request("t", 0, events)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_inside_the_window_of_five_get_their_original_offsets() {
    let cluster = TestCluster::start(3);
    let leader = grpc::one_partition_topic(&cluster.bootstrap(), "t", 3).await;
    let mut log = grpc::event_log(grpc::channel(&leader).await);
    let producer_id = 0x5eed_1234;

    // Six requests of 2 events each, sequences 0, 2, ..., 10; the first two in flight at
    // once, as a pipelined producer sends them.
    let (mut first_lane, mut second_lane) = (log.clone(), log.clone());
    let (first, second) = tokio::join!(
        produce(&mut first_lane, idempotent(producer_id, 0, 2, "r0")),
        async {
            // The second goes out just after the first, on the same connection.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            produce(&mut second_lane, idempotent(producer_id, 2, 2, "r1")).await
        }
    );
    // Had the second overtaken the first on the way in, the node would have answered it
    // OUT_OF_ORDER_SEQUENCE (nothing written); a pipelining client resends it then.
    let second = if code_of(&second.error) == ErrorCode::OutOfOrderSequence {
        produce(&mut log, idempotent(producer_id, 2, 2, "r1")).await
    } else {
        second
    };
    let mut offsets = vec![];
    for response in [&first, &second] {
        assert_eq!(
            code_of(&response.error),
            ErrorCode::Ok,
            "{:?}",
            response.error
        );
        assert!(!response.duplicate);
        offsets.push(response.base_offset);
    }
    // The older request is retried after the newer one was accepted (finding 4).
    let retried = produce(&mut log, idempotent(producer_id, 0, 2, "r0")).await;
    assert_eq!(
        code_of(&retried.error),
        ErrorCode::Ok,
        "{:?}",
        retried.error
    );
    assert!(retried.duplicate, "a retry must not append again");
    assert_eq!(retried.base_offset, offsets[0]);

    for (request, sequence) in (2..6).zip((4..).step_by(2)) {
        let response = produce(
            &mut log,
            idempotent(producer_id, sequence, 2, &format!("r{request}")),
        )
        .await;
        assert_eq!(
            code_of(&response.error),
            ErrorCode::Ok,
            "{:?}",
            response.error
        );
        offsets.push(response.base_offset);
    }
    // Requests 1..=5 are the window: each retry gets its original offsets.
    for (request, sequence) in (1..6).zip((2..).step_by(2)) {
        let tag = format!("r{request}");
        let retried = produce(&mut log, idempotent(producer_id, sequence, 2, &tag)).await;
        assert_eq!(
            code_of(&retried.error),
            ErrorCode::Ok,
            "{tag}: {:?}",
            retried.error
        );
        assert!(retried.duplicate, "{tag}");
        assert_eq!(retried.base_offset, offsets[request], "{tag}");
    }
    // Request 0 has left the window: final, already written.
    let too_old = produce(&mut log, idempotent(producer_id, 0, 2, "r0")).await;
    assert_eq!(
        code_of(&too_old.error),
        ErrorCode::DuplicateSequence,
        "{:?}",
        too_old.error
    );
    // A gap: refused, with the sequence the node expects.
    let gap = produce(&mut log, idempotent(producer_id, 20, 1, "gap")).await;
    assert_eq!(
        code_of(&gap.error),
        ErrorCode::OutOfOrderSequence,
        "{:?}",
        gap.error
    );
    assert_eq!(
        gap.error.as_ref().and_then(|e| e.expected_sequence),
        Some(12)
    );

    // Read back: 12 events of this producer, each once, at the acknowledged offsets.
    let read = log
        .read(pb::ReadRequest {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            max_events: 1000,
        })
        .await
        .expect("read rpc")
        .into_inner();
    let ours: Vec<(u64, String)> = read
        .events
        .iter()
        .map(|e| (e.offset, String::from_utf8_lossy(&e.value).into_owned()))
        .filter(|(_, value)| value.starts_with('r'))
        .collect();
    let expected: Vec<(u64, String)> = offsets
        .iter()
        .enumerate()
        .flat_map(|(request, base)| (0..2).map(move |i| (base + i, format!("r{request}-{i}"))))
        .collect();
    assert_eq!(ours, expected);
}

/// A message whose field 1 (ProduceRequest.topic, a string) holds bytes that are not
/// UTF-8: it frames fine and does not decode.
#[derive(Clone, PartialEq, prost::Message)]
struct Undecodable {
    #[prost(bytes = "vec", tag = "1")]
    topic: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_refusals_are_resource_exhausted_and_invalid_argument() {
    let cluster = TestCluster::start(1);
    let leader = grpc::one_partition_topic(&cluster.bootstrap(), "t", 1).await;
    let channel = grpc::channel(&leader).await;
    let mut log = grpc::event_log(channel.clone());

    // 12 MiB in one message, over the node's 2 MiB + framing.
    let status = log
        .produce(produce_request("t", 0, events(1, 12 << 20)))
        .await
        .expect_err("an oversized message is refused by the transport");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("produce.request_bytes_max"),
        "{status:?}"
    );
    assert!(status.message().contains("the limit is"), "{status:?}");

    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.expect("channel ready");
    let status = raw
        .unary::<Undecodable, pb::ProduceResponse, _>(
            tonic::Request::new(Undecodable {
                topic: vec![0xff, 0xfe, 0xfd],
            }),
            "/evlog.v1.EventLog/Produce".parse().expect("path"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("an undecodable body is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("malformed request"), "{status:?}");

    let next = produce(&mut log, produce_request("t", 0, events(1, 10))).await;
    assert_eq!(code_of(&next.error), ErrorCode::Ok, "{:?}", next.error);
}

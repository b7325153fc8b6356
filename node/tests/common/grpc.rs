//! Raw gRPC helpers for tests that speak the wire protocol directly (as a client in
//! another language would): connect, create a topic, find a partition's leader by
//! following NOT_LEADER hints, read error codes.

use std::time::{Duration, Instant};

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::admin_client::AdminClient;
use evlog_proto::evlog::v1::event_log_client::EventLogClient;
use pb::ErrorCode;
use tonic::transport::Channel;

/// Largest message these helpers send or accept (tests send oversized requests on purpose).
pub const MESSAGE_BYTES_MAX: usize = 64 << 20;

/// A channel to `addr`, retrying the connection for up to 20 s (the node may be starting).
pub async fn channel(addr: &str) -> Channel {
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

pub fn event_log(channel: Channel) -> EventLogClient<Channel> {
    EventLogClient::new(channel)
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX)
}

pub fn code_of(error: &Option<pb::Error>) -> ErrorCode {
    error.as_ref().map_or(ErrorCode::Ok, |e| {
        ErrorCode::try_from(e.code).expect("known code")
    })
}

/// Creates `name` through any node, retrying while the cluster forms (no metadata leader
/// yet, or asked a follower: follows its hint).
pub async fn create_topic(bootstrap: &str, name: &str, partitions: u32, rf: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut addr = bootstrap.to_string();
    loop {
        let mut admin = AdminClient::new(channel(&addr).await);
        let request = pb::CreateTopicRequest {
            name: name.into(),
            config: Some(pb::TopicConfig {
                partitions,
                replication_factor: rf,
                max_event_bytes: 0,
            }),
        };
        // A broken call is an unknown outcome: retry (TOPIC_EXISTS then means it was made).
        let response = match admin.create_topic(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if Instant::now() < deadline => {
                eprintln!("create {name}: {status}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(status) => panic!("creating {name}: {status}"),
        };
        match code_of(&response.error) {
            ErrorCode::Ok | ErrorCode::TopicExists => return,
            ErrorCode::NotLeader | ErrorCode::Unavailable if Instant::now() < deadline => {
                if let Some(leader) = response.error.and_then(|e| e.leader_addr) {
                    addr = leader;
                }
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("creating {name}: {other:?} {:?}", response.error),
        }
    }
}

/// The client address of the leader of `topic`/`partition`: asks `bootstrap`, then
/// follows NOT_LEADER hints with a probe produce of one event, until a node takes it.
pub async fn leader_of(bootstrap: &[String], topic: &str, partition: u32) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut candidates = bootstrap.iter().cycle();
    let mut addr = candidates.next().expect("a bootstrap address").clone();
    loop {
        let mut log = event_log(channel(&addr).await);
        let probe = pb::ProduceRequest {
            topic: topic.into(),
            partition,
            events: vec![pb::Event {
                value: b"leader-probe".to_vec().into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = log.produce(probe).await.expect("produce rpc").into_inner();
        match code_of(&response.error) {
            ErrorCode::Ok => return addr,
            ErrorCode::NotLeader | ErrorCode::Unavailable | ErrorCode::UnknownTopic
                if Instant::now() < deadline =>
            {
                addr = match response.error.and_then(|e| e.leader_addr) {
                    Some(leader) => leader,
                    None => candidates.next().expect("cycle").clone(),
                };
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!(
                "finding the leader of {topic}/{partition}: {other:?} {:?}",
                response.error
            ),
        }
    }
}

/// Creates topic `name` with one partition and replication factor `rf` and returns the
/// client address of its leader, once it takes writes.
pub async fn one_partition_topic(bootstrap: &[String], name: &str, rf: u32) -> String {
    create_topic(&bootstrap[0], name, 1, rf).await;
    leader_of(bootstrap, name, 0).await
}

/// One Produce call; the gRPC call itself must succeed (the answer may carry an error).
pub async fn produce(
    log: &mut EventLogClient<Channel>,
    request: pb::ProduceRequest,
) -> pb::ProduceResponse {
    log.produce(request)
        .await
        .expect("produce rpc")
        .into_inner()
}

/// `count` events of `value_bytes` bytes each.
pub fn events(count: usize, value_bytes: usize) -> Vec<pb::Event> {
    let event = pb::Event {
        value: vec![b'x'; value_bytes].into(),
        ..Default::default()
    };
    vec![event; count]
}

pub fn produce_request(topic: &str, partition: u32, events: Vec<pb::Event>) -> pb::ProduceRequest {
    pb::ProduceRequest {
        topic: topic.into(),
        partition,
        events,
        ..Default::default()
    }
}

/// The client address of `group`'s coordinator: asks every node until one answers FindCoordinator
/// (following hints; retrying while `__groups` is created and elects its leaders).
pub async fn coordinator(bootstrap: &[String], group: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut candidates = bootstrap.iter().cycle();
    let mut addr = candidates.next().expect("a node").clone();
    loop {
        let mut groups =
            evlog_proto::evlog::v1::groups_client::GroupsClient::new(channel(&addr).await);
        let answer = groups
            .find_coordinator(pb::FindCoordinatorRequest {
                group: group.into(),
            })
            .await
            .expect("find coordinator rpc")
            .into_inner();
        match code_of(&answer.error) {
            ErrorCode::Ok => return answer.addr,
            ErrorCode::NotCoordinator | ErrorCode::Unavailable if Instant::now() < deadline => {
                addr = match answer.error.and_then(|e| e.leader_addr) {
                    Some(hint) => hint,
                    None => candidates.next().expect("cycle").clone(),
                };
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("find coordinator: {other:?} {:?}", answer.error),
        }
    }
}

//! Goal: the consumer-group protocol works on the wire as groups.proto says, for a client
//! in any language: join, cooperative revocation, commits fenced by ownership and epoch,
//! describe with lag, reset and delete only while empty, expulsion after the session
//! timeout; and every bad request gets its stable code while the node keeps serving.
//! Method: a 3-node cluster of real processes with a 1 s minimum session timeout; raw
//! gRPC `Groups` clients follow NOT_COORDINATOR hints to the coordinator.

mod common;

use std::process::Command;

use std::time::{Duration, Instant};

use common::grpc::{
    channel, code_of, coordinator, create_topic, event_log, events, leader_of, produce,
    produce_request,
};
use common::TestCluster;
use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::groups_client::GroupsClient;
use pb::ErrorCode;
use tonic::transport::Channel;

const TOPIC: &str = "orders";
const GROUP: &str = "billing";

/// Runs the `evlog` CLI (built next to `evlog-node`) against `cluster`; its stdout, once
/// it succeeded.
fn evlog(cluster: &TestCluster, args: &[&str]) -> String {
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_evlog-node")).with_file_name("evlog");
    let out = Command::new(binary)
        .args(args)
        .env("EVLOG_BOOTSTRAP", cluster.bootstrap().join(","))
        .output()
        .expect("run evlog (cargo build --release --bins first)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "evlog {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn beat(member: &str, epoch: u64, owned: &[pb::TopicPartition]) -> pb::HeartbeatRequest {
    pb::HeartbeatRequest {
        group: GROUP.into(),
        member_id: member.into(),
        member_epoch: epoch,
        topics: vec![TOPIC.into()],
        owned: owned.to_vec(),
        session_timeout_ms: 2_000,
        ..Default::default()
    }
}

async fn heartbeat(
    groups: &mut GroupsClient<Channel>,
    request: pb::HeartbeatRequest,
) -> pb::HeartbeatResponse {
    groups
        .heartbeat(request)
        .await
        .expect("heartbeat rpc")
        .into_inner()
}

fn commit(member: &str, epoch: u64, partition: u32, offset: u64) -> pb::CommitOffsetsRequest {
    pb::CommitOffsetsRequest {
        group: GROUP.into(),
        member_id: member.into(),
        member_epoch: epoch,
        offsets: vec![pb::OffsetCommit {
            partition: Some(pb::TopicPartition {
                topic: TOPIC.into(),
                partition,
            }),
            next_offset: offset,
            metadata: String::new(),
        }],
    }
}

async fn commit_code(
    groups: &mut GroupsClient<Channel>,
    request: pb::CommitOffsetsRequest,
) -> ErrorCode {
    let answer = groups
        .commit_offsets(request)
        .await
        .expect("commit rpc")
        .into_inner();
    code_of(&answer.error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_move_partitions_cooperatively_and_commits_are_fenced() {
    let mut cluster =
        TestCluster::start_with_env(3, &[("EVLOG_GROUPS__SESSION_TIMEOUT_MS_MIN", "1000")]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap[0], TOPIC, 2, 3).await;
    for partition in 0..2 {
        let leader = leader_of(&bootstrap, TOPIC, partition).await;
        let mut log = event_log(channel(&leader).await);
        let answer = produce(&mut log, produce_request(TOPIC, partition, events(10, 8))).await;
        assert_eq!(code_of(&answer.error), ErrorCode::Ok);
    }
    let addr = coordinator(&bootstrap, GROUP).await;
    let mut groups = GroupsClient::new(channel(&addr).await);

    // a joins alone: both partitions.
    let a = heartbeat(&mut groups, beat("member-a", 0, &[])).await;
    assert_eq!(code_of(&a.error), ErrorCode::Ok, "{:?}", a.error);
    assert_eq!(a.assigned.len(), 2);
    assert!(a.heartbeat_interval_ms > 0 && a.heartbeat_interval_ms <= 2_000 / 3);
    // b joins: gets nothing until a revoked one.
    let b = heartbeat(&mut groups, beat("member-b", 0, &[])).await;
    assert_eq!(code_of(&b.error), ErrorCode::Ok);
    assert!(
        b.assigned.is_empty(),
        "nothing is b's before a revoked it: {b:?}"
    );
    let a2 = heartbeat(&mut groups, beat("member-a", a.member_epoch, &a.assigned)).await;
    assert_eq!(a2.revoking.len(), 1, "{a2:?}");
    assert_eq!(a2.assigned.len(), 1);
    let moving = a2.revoking[0].clone();
    // a commits what it processed of the revoked partition, then releases it.
    let done = commit_code(
        &mut groups,
        commit("member-a", a2.member_epoch, moving.partition, 4),
    )
    .await;
    assert_eq!(done, ErrorCode::Ok);
    let a3 = heartbeat(&mut groups, beat("member-a", a2.member_epoch, &a2.assigned)).await;
    assert!(a3.revoking.is_empty());
    let b2 = heartbeat(&mut groups, beat("member-b", b.member_epoch, &[])).await;
    assert_eq!(
        b2.assigned,
        vec![moving.clone()],
        "b gets it once a released it"
    );

    // A member several epochs behind is brought up to date; an epoch never given is fenced.
    let behind = heartbeat(&mut groups, beat("member-a", 1, &a3.assigned)).await;
    assert_eq!(code_of(&behind.error), ErrorCode::Ok, "{:?}", behind.error);
    assert_eq!(behind.member_epoch, a3.member_epoch);
    let ahead = heartbeat(
        &mut groups,
        beat("member-a", a3.member_epoch + 5, &a3.assigned),
    )
    .await;
    assert_eq!(code_of(&ahead.error), ErrorCode::FencedMember);

    // Fencing: a no longer owns it; an epoch before b got it; an unknown member.
    let stale = commit_code(
        &mut groups,
        commit("member-a", a3.member_epoch, moving.partition, 5),
    )
    .await;
    assert_eq!(stale, ErrorCode::StaleEpoch);
    let early = commit_code(
        &mut groups,
        commit("member-b", b.member_epoch, moving.partition, 5),
    )
    .await;
    assert_eq!(early, ErrorCode::StaleEpoch);
    let unknown = commit_code(&mut groups, commit("member-z", 1, moving.partition, 5)).await;
    assert_eq!(unknown, ErrorCode::FencedMember);
    // Beyond the high watermark (10 events and leader_of's probe: 11), and backwards.
    let beyond = commit_code(
        &mut groups,
        commit("member-b", b2.member_epoch, moving.partition, 12),
    )
    .await;
    assert_eq!(beyond, ErrorCode::InvalidArgument);
    let back = commit_code(
        &mut groups,
        commit("member-b", b2.member_epoch, moving.partition, 3),
    )
    .await;
    assert_eq!(back, ErrorCode::InvalidArgument);
    assert_eq!(
        commit_code(
            &mut groups,
            commit("member-b", b2.member_epoch, moving.partition, 11)
        )
        .await,
        ErrorCode::Ok
    );

    // Describe: committed, watermark, lag, owners.
    let described = groups
        .describe_group(pb::DescribeGroupRequest {
            group: GROUP.into(),
        })
        .await
        .expect("describe rpc")
        .into_inner();
    assert_eq!(code_of(&described.error), ErrorCode::Ok);
    let group = described.group.expect("a description");
    assert_eq!(group.members.len(), 2);
    assert_eq!(group.state, "stable");
    let moved = group
        .partitions
        .iter()
        .find(|p| p.partition.as_ref() == Some(&moving))
        .expect("the moved partition");
    assert_eq!(
        (moved.committed, moved.high_watermark, moved.lag),
        (Some(11), Some(11), Some(0))
    );
    assert_eq!(moved.member_id.as_deref(), Some("member-b"));

    // Reset and delete need an empty group.
    let reset = pb::ResetOffsetsRequest {
        group: GROUP.into(),
        topic: TOPIC.into(),
        to: Some(pb::reset_offsets_request::To::Earliest(true)),
    };
    let refused = groups
        .reset_offsets(reset.clone())
        .await
        .expect("reset rpc")
        .into_inner();
    assert_eq!(code_of(&refused.error), ErrorCode::GroupNotEmpty);
    let refused = groups
        .delete_group(pb::DeleteGroupRequest {
            group: GROUP.into(),
        })
        .await
        .expect("delete rpc")
        .into_inner();
    assert_eq!(code_of(&refused.error), ErrorCode::GroupNotEmpty);

    // a leaves cleanly; b goes silent and is expelled after its 2 s session timeout.
    let left = groups
        .leave_group(pb::LeaveGroupRequest {
            group: GROUP.into(),
            member_id: "member-a".into(),
        })
        .await
        .expect("leave rpc")
        .into_inner();
    assert_eq!(code_of(&left.error), ErrorCode::Ok);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let described = groups
            .describe_group(pb::DescribeGroupRequest {
                group: GROUP.into(),
            })
            .await
            .expect("describe rpc")
            .into_inner();
        if described.group.is_some_and(|g| g.members.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "b was not expelled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fenced = heartbeat(&mut groups, beat("member-b", b2.member_epoch, &b2.assigned)).await;
    assert_eq!(code_of(&fenced.error), ErrorCode::FencedMember);

    let reset = groups
        .reset_offsets(reset)
        .await
        .expect("reset rpc")
        .into_inner();
    assert_eq!(code_of(&reset.error), ErrorCode::Ok, "{:?}", reset.error);
    let fetched = groups
        .fetch_offsets(pb::FetchOffsetsRequest {
            group: GROUP.into(),
            partitions: Vec::new(),
        })
        .await
        .expect("fetch rpc")
        .into_inner();
    assert_eq!(fetched.offsets.len(), 2);
    assert!(
        fetched.offsets.iter().all(|o| o.next_offset == 0),
        "{fetched:?}"
    );
    // The same through the CLI: list, describe as JSON, reset to latest, delete.
    let listed = evlog(&cluster, &["group", "list"]);
    assert!(
        listed.contains(GROUP) && listed.contains("empty"),
        "{listed}"
    );
    let reset = evlog(
        &cluster,
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            TOPIC,
            "--to",
            "latest",
        ],
    );
    assert!(
        reset.contains("orders/0: 11") && reset.contains("orders/1: 11"),
        "{reset}"
    );
    let described: serde_json::Value = serde_json::from_str(&evlog(
        &cluster,
        &["group", "describe", GROUP, "--format", "json"],
    ))
    .expect("describe prints JSON");
    assert_eq!(described["state"], "empty");
    assert_eq!(described["partitions"][0]["lag"], 0);
    let deleted = evlog(&cluster, &["group", "delete", GROUP]);
    assert!(deleted.contains("deleted group billing"), "{deleted}");
    let gone = groups
        .describe_group(pb::DescribeGroupRequest {
            group: GROUP.into(),
        })
        .await
        .expect("describe rpc")
        .into_inner();
    assert_eq!(code_of(&gone.error), ErrorCode::UnknownGroup);
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_requests_get_their_codes_and_the_node_keeps_serving() {
    let mut cluster = TestCluster::start(3);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap[0], TOPIC, 1, 3).await;
    let addr = coordinator(&bootstrap, GROUP).await;
    let mut groups = GroupsClient::new(channel(&addr).await);
    let cases: Vec<(&str, pb::HeartbeatRequest, ErrorCode)> = vec![
        (
            "empty group id",
            pb::HeartbeatRequest {
                group: String::new(),
                ..beat("m", 0, &[])
            },
            ErrorCode::InvalidArgument,
        ),
        (
            "oversized group id",
            pb::HeartbeatRequest {
                group: "g".repeat(250),
                ..beat("m", 0, &[])
            },
            ErrorCode::InvalidArgument,
        ),
        (
            "bad member id",
            beat("no spaces", 0, &[]),
            ErrorCode::InvalidArgument,
        ),
        (
            "no topics",
            pb::HeartbeatRequest {
                topics: Vec::new(),
                ..beat("m", 0, &[])
            },
            ErrorCode::InvalidArgument,
        ),
        (
            "unknown topic",
            pb::HeartbeatRequest {
                topics: vec!["nope".into()],
                ..beat("m", 0, &[])
            },
            ErrorCode::UnknownTopic,
        ),
        (
            "internal topic",
            pb::HeartbeatRequest {
                topics: vec!["__groups".into()],
                ..beat("m", 0, &[])
            },
            ErrorCode::InvalidArgument,
        ),
        (
            "session timeout too short",
            pb::HeartbeatRequest {
                session_timeout_ms: 10,
                ..beat("m", 0, &[])
            },
            ErrorCode::InvalidArgument,
        ),
        ("never joined", beat("m", 7, &[]), ErrorCode::FencedMember),
    ];
    for (what, request, expected) in cases {
        // UNAVAILABLE is retryable (e.g. the node cannot confirm with the metadata leader
        // that a topic does not exist while it elects): retry as a client would.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut answer = heartbeat(&mut groups, request.clone()).await;
        while code_of(&answer.error) == ErrorCode::Unavailable && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer = heartbeat(&mut groups, request.clone()).await;
        }
        assert_eq!(
            code_of(&answer.error),
            expected,
            "{what}: {:?}",
            answer.error
        );
    }
    let duplicate = pb::CommitOffsetsRequest {
        offsets: [commit("m", 1, 0, 0).offsets, commit("m", 1, 0, 0).offsets].concat(),
        ..commit("m", 1, 0, 0)
    };
    assert_eq!(
        commit_code(&mut groups, duplicate).await,
        ErrorCode::InvalidArgument
    );
    let empty = pb::CommitOffsetsRequest {
        offsets: Vec::new(),
        ..commit("m", 1, 0, 0)
    };
    assert_eq!(
        commit_code(&mut groups, empty).await,
        ErrorCode::InvalidArgument
    );
    let mut huge_metadata = commit("m", 1, 0, 0);
    huge_metadata.offsets[0].metadata = "x".repeat(5000);
    assert_eq!(
        commit_code(&mut groups, huge_metadata).await,
        ErrorCode::InvalidArgument
    );
    let mut nobody = GroupsClient::new(channel(&coordinator(&bootstrap, "nobody").await).await);
    let unknown = nobody
        .describe_group(pb::DescribeGroupRequest {
            group: "nobody".into(),
        })
        .await
        .expect("describe rpc")
        .into_inner();
    assert_eq!(code_of(&unknown.error), ErrorCode::UnknownGroup);

    // Any other node points at the coordinator.
    let other = bootstrap
        .iter()
        .find(|a| **a != addr)
        .expect("another node");
    let mut elsewhere = GroupsClient::new(channel(other).await);
    let answer = heartbeat(&mut elsewhere, beat("m", 0, &[])).await;
    assert_eq!(code_of(&answer.error), ErrorCode::NotCoordinator);
    assert_eq!(
        answer.error.and_then(|e| e.leader_addr).as_deref(),
        Some(addr.as_str())
    );

    // The internal topic is not a topic for clients.
    let leader = leader_of(&bootstrap, TOPIC, 0).await;
    let mut log = event_log(channel(&leader).await);
    let answer = produce(&mut log, produce_request("__groups", 0, events(1, 1))).await;
    assert_eq!(code_of(&answer.error), ErrorCode::InvalidArgument);

    // Still serving: a member joins and gets the partition.
    let joined = heartbeat(&mut groups, beat("m", 0, &[])).await;
    assert_eq!(code_of(&joined.error), ErrorCode::Ok, "{:?}", joined.error);
    assert_eq!(joined.assigned.len(), 1);
    cluster.stop_all();
}

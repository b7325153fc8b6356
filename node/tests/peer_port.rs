//! Goal: clients and peers are kept apart. The client listener serves no Raft, the peer
//! listener serves no client API, and a Raft message for another cluster or another node
//! is refused before it is decoded; nodes advertise client addresses to clients, never
//! peer addresses. Method: a real 3-node cluster; raw gRPC calls on the wrong listener
//! and with wrong envelopes; DescribeCluster and NOT_LEADER hints must name the client
//! listeners.

mod common;

use common::grpc::{self, code_of};
use common::TestCluster;
use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::admin_client::AdminClient;
use evlog_proto::raft::v1::raft_transport_client::RaftTransportClient;
use evlog_proto::raft::v1::{Envelope, RaftRequest, RegisterNodeRequest};

fn raft_request(cluster_id: &str, to_node: u64) -> RaftRequest {
    RaftRequest {
        group_id: 0,
        // Not a valid openraft message: a refused envelope must stop it before decoding.
        payload: vec![0xde, 0xad].into(),
        envelope: Some(Envelope {
            cluster_id: cluster_id.into(),
            from_node: 2,
            to_node,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_reach_raft_and_peers_check_every_envelope() {
    let cluster = TestCluster::start(3);
    let node = cluster.node(1);

    // The client API is not on the peer listener.
    let peer_channel = grpc::channel(&node.peer_addr).await;
    let status = AdminClient::new(peer_channel.clone())
        .describe_cluster(pb::DescribeClusterRequest {})
        .await
        .expect_err("the peer listener serves no client API");
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status}");

    // Raft is not on the client listener.
    let client_channel = grpc::channel(&node.addr).await;
    let status = RaftTransportClient::new(client_channel.clone())
        .vote(raft_request("evlog", 1))
        .await
        .expect_err("the client listener serves no Raft");
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status}");

    // On the peer listener: another cluster, another node, no envelope: refused.
    let mut raft = RaftTransportClient::new(peer_channel);
    let other_cluster = raft
        .vote(raft_request("other", 1))
        .await
        .expect("rpc")
        .into_inner();
    assert!(
        other_cluster.refused.contains("cluster \"other\""),
        "{other_cluster:?}"
    );
    let other_node = raft
        .vote(raft_request("evlog", 2))
        .await
        .expect("rpc")
        .into_inner();
    assert!(other_node.refused.contains("for node 2"), "{other_node:?}");
    let mut bare = raft_request("evlog", 1);
    bare.envelope = None;
    let bare = raft.append_entries(bare).await.expect("rpc").into_inner();
    assert!(bare.refused.contains("without an envelope"), "{bare:?}");
    let registration = raft
        .register_node(RegisterNodeRequest {
            envelope: Some(Envelope {
                cluster_id: "other".into(),
                from_node: 9,
                to_node: 1,
            }),
            client_addr: "10.9.9.9:7101".into(),
        })
        .await
        .expect("rpc")
        .into_inner();
    assert!(!registration.refused.is_empty(), "{registration:?}");
    // The right envelope with a garbled payload reaches the decoder, which refuses it.
    let status = raft
        .vote(raft_request("evlog", 1))
        .await
        .expect_err("an undecodable payload is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");

    // Clients are told client addresses: every node registered its own.
    let bootstrap = cluster.bootstrap();
    grpc::create_topic(&bootstrap[0], "t", 3, 3).await;
    let expected: Vec<(u64, String, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id, n.addr.clone(), n.peer_addr.clone()))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let described = loop {
        let described = AdminClient::new(client_channel.clone())
            .describe_cluster(pb::DescribeClusterRequest {})
            .await
            .expect("describe")
            .into_inner();
        let mut addrs: Vec<(u64, String, String)> = described
            .nodes
            .iter()
            .map(|n| (n.node_id, n.addr.clone(), n.peer_addr.clone()))
            .collect();
        addrs.sort();
        if addrs == expected {
            break described;
        }
        // A node registers its client address once the metadata group has a leader.
        assert!(
            std::time::Instant::now() < deadline,
            "client and peer addresses as configured: {addrs:?} != {expected:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(described.cluster_id, "evlog");

    // A NOT_LEADER answer names the leader's client address.
    let leader = grpc::leader_of(&bootstrap, "t", 0).await;
    let follower = bootstrap
        .iter()
        .find(|a| **a != leader)
        .expect("a follower");
    let mut log = grpc::event_log(grpc::channel(follower).await);
    let answer = log
        .produce(grpc::produce_request("t", 0, grpc::events(1, 1)))
        .await
        .expect("produce rpc")
        .into_inner();
    assert_eq!(code_of(&answer.error), pb::ErrorCode::NotLeader);
    assert_eq!(answer.error.and_then(|e| e.leader_addr), Some(leader));
}

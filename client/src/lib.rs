//! `evlog-client`: the Rust client of evlog, a Raft-replicated event log.
//!
//! Module map:
//! - [`Client`] (`client.rs`): the cheap-to-clone handle; owns the config and the
//!   metadata cache (`metadata.rs`: nodes, topics, leader guesses, one gRPC channel per
//!   node) and hands out everything else.
//! - [`Admin`] (`admin.rs`): create, delete, list, describe topics; describe the cluster;
//!   (`group_admin.rs`) list, describe, reset and delete consumer groups.
//! - [`Producer`] (`producer.rs`, `lane.rs`, `partitioner.rs`): ordered sends,
//!   partitioning, back-pressure, per-partition batching with one request in flight,
//!   idempotent appends (a retried batch never appends twice).
//! - [`Consumer`] (`consumer/`): a member of a consumer group: the events of its assigned
//!   partitions as one stream, cooperative rebalancing, commits of what was processed.
//! - [`Subscription`] and [`Client::read`] (`subscription.rs`): ordered, gap-free reads
//!   that follow leader changes.
//! - `retry.rs`: the single retry loop (routing, leader hints, backoff with jitter,
//!   per-attempt timeout, operation deadline) behind every RPC.
//! - [`ClientError`] (`error.rs`): the server's stable error codes, and what is retryable.
//!
//! # Example
//!
//! ```no_run
//! use evlog_client::{Client, ClientError, Event, ProducerConfig, StartFrom};
//! use futures::StreamExt;
//!
//! # async fn example() -> Result<(), ClientError> {
//! // Any reachable node is enough to find the others.
//! let client = Client::connect(["127.0.0.1:7101", "127.0.0.1:7102"]).await?;
//!
//! // A topic with 3 partitions, each replicated on 3 nodes.
//! match client.admin().create_topic("orders", 3, 3).await {
//!     Ok(_) => {}
//!     Err(e) if e.code() == Some(evlog_client::ErrorCode::TopicExists) => {}
//!     Err(e) => return Err(e),
//! }
//!
//! // Publish: `send` resolves once the event is on disk on a majority of replicas.
//! let producer = client.producer(ProducerConfig::default())?;
//! let ack = producer
//!     .send("orders", Event::new("created").with_key("order-1").with_header("source", "web"))
//!     .await?;
//! println!("appended at partition {} offset {}", ack.partition, ack.offset);
//! producer.close().await;
//!
//! // Subscribe to that partition from its first event, following new ones.
//! let mut events = client.subscribe("orders", ack.partition, StartFrom::Earliest);
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{}:{} {:?}", event.partition, event.offset, event.value);
//!     if event.offset == ack.offset {
//!         break;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod admin;
mod client;
mod config;
mod consumer;
mod error;
mod event;
mod group_admin;
mod lane;
mod metadata;
mod partitioner;
mod producer;
mod retry;
mod rng;
mod subscription;

pub use admin::{Admin, ClusterInfo, NodeInfo, PartitionInfo, TopicInfo, TopicSpec};
pub use bytes::Bytes;
pub use client::Client;
pub use config::{ClientConfig, ProducerConfig, DEFAULT_BOOTSTRAP};
pub use consumer::{
    AssignmentCallback, AutoOffsetReset, Consumer, ConsumerConfig, LostCallback, LostPartitions,
};
pub use error::{code_name, ClientError, ErrorCode};
pub use event::{Ack, Event, ReadResult, ReceivedEvent};
pub use group_admin::{
    CommittedOffset, GroupInfo, GroupListing, GroupMember, GroupPartition, ResetTo, TopicPartition,
    GROUPS_TOPIC,
};
pub use partitioner::{fnv1a64, partition_for_key};
pub use producer::{Producer, SendFuture};
pub use subscription::{StartFrom, Subscription};

/// The Rust examples of docs/consumer-groups.md, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/consumer-groups.md")]
pub struct ConsumerGroupsGuide;

//! `Client`: the cheap-to-clone handle to a cluster. It owns the configuration and the
//! metadata cache, and hands out `Admin`, `Producer`, `Subscription` and unary reads.

use std::sync::Arc;

use crate::admin::Admin;
use crate::config::{ClientConfig, ProducerConfig};
use crate::error::ClientError;
use crate::event::ReadResult;
use crate::metadata::Metadata;
use crate::producer::Producer;
use crate::retry;
use crate::subscription::{self, StartFrom, Subscription};

/// What every handle shares: configuration and metadata cache (with its channels).
pub(crate) struct Shared {
    pub config: ClientConfig,
    pub metadata: Metadata,
}

/// A connection to an evlog cluster.
///
/// Cloning is cheap: clones share the metadata cache and the per-node gRPC channels.
///
/// ```no_run
/// # async fn example() -> Result<(), evlog_client::ClientError> {
/// let client = evlog_client::Client::connect(["127.0.0.1:7101"]).await?;
/// let topics = client.admin().list_topics().await?;
/// println!("{} topics", topics.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.shared.config.bootstrap)
            .finish()
    }
}

impl Client {
    /// Connects with default settings to the cluster one of `bootstrap` (`host:port`)
    /// belongs to. See [`Client::with_config`].
    pub async fn connect(
        bootstrap: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Client, ClientError> {
        Self::with_config(ClientConfig::new(bootstrap)).await
    }

    /// Connects with `config`: fetches the cluster's nodes and topics from the first
    /// bootstrap node that answers, retrying until the operation deadline.
    pub async fn with_config(config: ClientConfig) -> Result<Client, ClientError> {
        let client = Self::new_lazy(config)?;
        let metadata = &client.shared.metadata;
        retry::until_ok(client.shared.config.operation_deadline(), || {
            metadata.refresh()
        })
        .await?;
        Ok(client)
    }

    /// A client that contacts no node until its first request.
    pub fn new_lazy(config: ClientConfig) -> Result<Client, ClientError> {
        config.validate()?;
        let shared = Shared {
            metadata: Metadata::new(config.clone()),
            config,
        };
        Ok(Client {
            shared: Arc::new(shared),
        })
    }

    /// The configuration this client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Topic and cluster administration.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// A batching, idempotent producer. See [`Producer`]. Must be called inside a Tokio
    /// runtime (it spawns the producer's dispatcher task).
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer, ClientError> {
        Producer::new(self.clone(), config)
    }

    /// Follows one partition from `from`, across leader changes, as a stream of events.
    /// Must be called inside a Tokio runtime (it spawns the task feeding the stream).
    pub fn subscribe(
        &self,
        topic: impl Into<String>,
        partition: u32,
        from: StartFrom,
    ) -> Subscription {
        subscription::spawn(self.clone(), topic.into(), partition, from)
    }

    /// Reads up to `max_events` committed events (and at most
    /// [`ClientConfig::max_read_bytes`]) of one partition from `offset`, on its leader.
    /// `max_events == 0` means no event count limit. Fails with `OFFSET_OUT_OF_RANGE`
    /// outside `[log_start_offset, high_watermark]`.
    pub async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_events: u32,
    ) -> Result<ReadResult, ClientError> {
        subscription::read(self, topic, partition, offset, max_events).await
    }

    /// The number of partitions of `topic` (from the cache, refreshed if unknown).
    pub async fn partition_count(&self, topic: &str) -> Result<u32, ClientError> {
        Ok(self.topic_shape(topic).await?.0)
    }

    /// Partition count and event size limit of `topic`: cached, else refreshed (with
    /// retries while the cluster is unreachable); `UNKNOWN_TOPIC` if it does not exist.
    pub(crate) async fn topic_shape(&self, topic: &str) -> Result<(u32, u32), ClientError> {
        let metadata = &self.shared.metadata;
        if let Some(shape) = metadata.topic_shape(topic) {
            return Ok(shape);
        }
        retry::until_ok(self.shared.config.operation_deadline(), || {
            metadata.topic_shape_or_refresh(topic)
        })
        .await
    }

    /// Re-fetches nodes and topics now (normally done on demand).
    pub async fn refresh_metadata(&self) -> Result<(), ClientError> {
        self.shared.metadata.refresh().await
    }
}

//! `Consumer`: a member of a consumer group, as a `Stream` of the events of every
//! partition the group's coordinator currently assigns to it (docs/consumer-groups.md).
//!
//! Two halves share the [`book::Book`]: the member task (`member.rs`) heartbeats, follows
//! the assignment (starting a fetcher per gained partition at the group's committed offset,
//! finishing revocations: commit, then release), and commits what was processed every
//! `auto_commit_interval_ms`; the stream hands events to the application in offset order
//! per partition and records what it processed; `process_keyed` (`keyed.rs`) runs a
//! handler on them instead, per-key ordered and parallel across keys. At-least-once: a
//! crash replays the events after the last commit, never skips one.

mod book;
mod keyed;
mod member;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::ClientError;
use crate::event::ReceivedEvent;
use crate::group_admin::TopicPartition;
use book::Book;
use member::{Control, Delivery, Member};

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// Its first retained event.
    Earliest,
    /// Its next new event.
    Latest,
}

/// Called with the partitions a member gains or gives up (revoked, on close, and lost
/// ones when no [`LostCallback`] is set).
pub type AssignmentCallback = Arc<dyn Fn(&[TopicPartition]) + Send + Sync>;

/// Partitions a member lost without revoking them: its session may have lapsed (it was
/// paused, or cut off from its coordinator), it was fenced, or the coordinator no longer
/// lists them. Another member may own them already and nothing was committed for them, so
/// an application should discard (not flush) what it did with them since its last commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostPartitions {
    /// The partitions lost.
    pub partitions: Vec<TopicPartition>,
    /// The member handed out no event of these partitions after this instant: the end of
    /// its session's validity for a lapse, else the moment it learned of the loss. It may
    /// be well before the callback runs (a process paused past its session).
    pub held_until: Instant,
}

/// Called with the partitions a member lost (see [`LostPartitions`]).
pub type LostCallback = Arc<dyn Fn(&LostPartitions) + Send + Sync>;

/// Settings of a [`Consumer`].
#[derive(Clone)]
pub struct ConsumerConfig {
    /// The group's id (1-249 characters of `[A-Za-z0-9._-]`).
    pub group: String,
    /// The topics the member subscribes to.
    pub topics: Vec<String>,
    /// Static membership: a restarted instance with the same id takes its partitions back
    /// without a rebalance, within its session timeout.
    pub instance_id: Option<String>,
    /// Where partitions without a committed offset start (default `Earliest`).
    pub auto_offset_reset: AutoOffsetReset,
    /// Commit what was processed every `auto_commit_interval_ms` (default true).
    pub auto_commit: bool,
    /// Default 5000.
    pub auto_commit_interval_ms: u64,
    /// 0: the node's default (`groups.session_timeout_ms`, 10 s).
    pub session_timeout_ms: u32,
    /// Called after partitions were gained, before their first event.
    pub on_assigned: Option<AssignmentCallback>,
    /// Called before revoked partitions are committed and released (and for lost ones,
    /// which are not committed, when `on_lost` is not set), so the application can flush
    /// its own state.
    pub on_revoked: Option<AssignmentCallback>,
    /// Called for partitions lost without a revocation (Kafka's `onPartitionsLost`).
    pub on_lost: Option<LostCallback>,
}

impl std::fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("instance_id", &self.instance_id)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("auto_commit", &self.auto_commit)
            .field("auto_commit_interval_ms", &self.auto_commit_interval_ms)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .finish_non_exhaustive()
    }
}

impl ConsumerConfig {
    /// A member of `group` subscribing to nothing yet (see [`ConsumerConfig::subscribe`]).
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            topics: Vec::new(),
            instance_id: None,
            auto_offset_reset: AutoOffsetReset::Earliest,
            auto_commit: true,
            auto_commit_interval_ms: 5_000,
            session_timeout_ms: 0,
            on_assigned: None,
            on_revoked: None,
            on_lost: None,
        }
    }

    /// Subscribes to `topics`.
    pub fn subscribe(mut self, topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the instance id (static membership).
    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Sets where partitions without a committed offset start.
    pub fn with_auto_offset_reset(mut self, reset: AutoOffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Turns auto-commit on or off (off: only [`Consumer::commit`] and close commit).
    pub fn with_auto_commit(mut self, on: bool) -> Self {
        self.auto_commit = on;
        self
    }

    /// Sets the auto-commit interval.
    pub fn with_auto_commit_interval_ms(mut self, ms: u64) -> Self {
        self.auto_commit_interval_ms = ms;
        self
    }

    /// Sets the session timeout the member asks for.
    pub fn with_session_timeout_ms(mut self, ms: u32) -> Self {
        self.session_timeout_ms = ms;
        self
    }

    /// Calls `f` with the partitions gained.
    pub fn on_assigned(mut self, f: impl Fn(&[TopicPartition]) + Send + Sync + 'static) -> Self {
        self.on_assigned = Some(Arc::new(f));
        self
    }

    /// Calls `f` with the partitions given up.
    pub fn on_revoked(mut self, f: impl Fn(&[TopicPartition]) + Send + Sync + 'static) -> Self {
        self.on_revoked = Some(Arc::new(f));
        self
    }

    /// Calls `f` with the partitions lost without a revocation, instead of `on_revoked`:
    ///
    /// ```
    /// use evlog_client::ConsumerConfig;
    ///
    /// let config = ConsumerConfig::new("billing")
    ///     .subscribe(["orders"])
    ///     .on_lost(|lost| {
    ///         eprintln!("lost {:?}: discard work since the last commit", lost.partitions)
    ///     });
    /// # let _ = config;
    /// ```
    pub fn on_lost(mut self, f: impl Fn(&LostPartitions) + Send + Sync + 'static) -> Self {
        self.on_lost = Some(Arc::new(f));
        self
    }

    /// Checks the settings the client can check itself.
    pub fn validate(&self) -> Result<(), ClientError> {
        let invalid = |m: String| Err(ClientError::InvalidArgument(m));
        if self.group.is_empty() {
            return invalid("a consumer needs a group id".into());
        }
        if self.topics.is_empty() {
            return invalid(format!(
                "consumer of group {:?} subscribes to no topic",
                self.group
            ));
        }
        if self.auto_commit && self.auto_commit_interval_ms == 0 {
            return invalid("auto_commit_interval_ms must be positive".into());
        }
        Ok(())
    }
}

/// Events the fetchers hold for the stream, all partitions together.
const DELIVERY_BUFFER: usize = 1024;

/// A member of a consumer group: a stream of the events of its assigned partitions.
///
/// Get one with [`Client::consumer`]. Events of one partition come in offset order; an
/// event counts as processed once the application asks for the next one, and processed
/// offsets are committed every `auto_commit_interval_ms`, on [`Consumer::commit`], when a
/// partition is revoked and on [`Consumer::close`] (which also leaves the group at once).
///
/// ```no_run
/// use evlog_client::{Client, ConsumerConfig};
/// use futures::StreamExt;
///
/// # async fn example(client: Client) -> Result<(), evlog_client::ClientError> {
/// let mut consumer = client.consumer(ConsumerConfig::new("billing").subscribe(["orders"]))?;
/// while let Some(event) = consumer.next().await {
///     let event = event?;
///     println!("{}/{}@{}: {:?}", event.topic, event.partition, event.offset, event.value);
/// }
/// consumer.close().await;
/// # Ok(()) }
/// ```
pub struct Consumer {
    rx: mpsc::Receiver<Delivery>,
    book: Arc<Mutex<Book>>,
    wake: Arc<Notify>,
    control: mpsc::Sender<Control>,
    task: Option<tokio::task::JoinHandle<()>>,
    member_id: String,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("member_id", &self.member_id)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub(crate) fn start(client: Client, config: ConsumerConfig) -> Result<Self, ClientError> {
        config.validate()?;
        let (tx, rx) = mpsc::channel(DELIVERY_BUFFER);
        let (control_tx, control_rx) = mpsc::channel(16);
        let book = Arc::new(Mutex::new(Book::default()));
        let wake = Arc::new(Notify::new());
        let member_id = format!("{:016x}", crate::rng::random_u64());
        let member = Member::new(
            client,
            config,
            member_id.clone(),
            book.clone(),
            wake.clone(),
            tx,
            control_rx,
        );
        let task = tokio::spawn(member.run());
        Ok(Self {
            rx,
            book,
            wake,
            control: control_tx,
            task: Some(task),
            member_id,
        })
    }

    /// This member's id in its group.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The partitions it may consume now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        let book = self.book.lock().expect("consumer book poisoned");
        book.owned
            .iter()
            .filter(|(_, o)| !o.revoking)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Asks for a commit of what was processed, without waiting for it.
    pub fn commit(&self) {
        let _ = self.control.try_send(Control::Commit(None));
    }

    /// Commits what was processed (the event in hand included: call it after processing)
    /// and waits for the coordinator's answer.
    pub async fn commit_sync(&self) -> Result<(), ClientError> {
        self.book
            .lock()
            .expect("consumer book poisoned")
            .finish_in_hand();
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Control::Commit(Some(reply)))
            .await
            .map_err(|_| ClientError::Closed)?;
        answer.await.map_err(|_| ClientError::Closed)?
    }

    /// Commits what was processed (the last event handed out included), leaves the group
    /// at once (its partitions move to the others) and stops.
    pub async fn close(mut self) {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Stream for Consumer {
    type Item = Result<ReceivedEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        {
            let mut book = self.book.lock().expect("consumer book poisoned");
            book.finish_in_hand();
            if !book.revoked_and_idle().is_empty() {
                self.wake.notify_one();
            }
        }
        loop {
            let delivery = match self.rx.poll_recv(cx) {
                Poll::Ready(Some(delivery)) => delivery,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            let mut book = self.book.lock().expect("consumer book poisoned");
            if !book.deliverable(&delivery.partition, delivery.generation) {
                if book.lapsed {
                    self.wake.notify_one(); // The member task drops everything.
                }
                continue; // Fetched under an ownership that ended or may have.
            }
            return Poll::Ready(Some(match delivery.event {
                Ok(event) => {
                    book.hand_out(delivery.partition, delivery.generation, event.offset);
                    Ok(event)
                }
                Err(e) => Err(e),
            }));
        }
    }
}

impl Client {
    /// Joins `config.group` as a new member and streams the events of the partitions it is
    /// assigned. Must be called inside a Tokio runtime (it spawns the member task).
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer, ClientError> {
        Consumer::start(self.clone(), config)
    }
}

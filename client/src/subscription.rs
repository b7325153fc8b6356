//! The read path: unary `read` and the `Subscription` stream.
//!
//! A subscription is a task that opens a Subscribe stream on the partition's leader and
//! forwards events into a bounded channel, which the `Subscription` stream drains. When
//! the node's stream ends (leader change, node restart, lost connection) the task
//! follows the leader hint and resubscribes at the first offset it has not delivered,
//! skipping anything already delivered, so the caller sees each offset exactly once and
//! in order. Fatal errors (the topic was deleted, the offset fell out of retention) end
//! the stream after one `Err` item.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use evlog_proto::evlog::v1 as pb;
use evlog_proto::evlog::v1::event_log_client::EventLogClient;
use evlog_proto::evlog::v1::start_position::Position;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::client::Client;
use crate::error::ClientError;
use crate::event::{ReadResult, ReceivedEvent};
use crate::metadata::{Route, MAX_DECODING_BYTES};
use crate::retry::{self, Retrier};

/// Events buffered between the subscription task and the stream's consumer.
pub(crate) const SUBSCRIPTION_BUFFER_EVENTS: usize = 1024;

/// A Subscribe stream open at least this long counts as healthy when it ends.
const HEALTHY_STREAM: Duration = Duration::from_secs(1);

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The first retained event.
    Earliest,
    /// The next event to be committed (only new events).
    Latest,
    /// This offset (must lie within the retained log or equal the high watermark).
    Offset(u64),
}

/// A stream of one partition's events, in offset order, without gaps or repeats.
///
/// Get one with [`Client::subscribe`]. It follows the partition forever, across leader
/// changes; it yields `Err` once and ends when something fatal happens (or when the
/// partition stays unreachable past the operation deadline). Dropping it stops the
/// background task.
///
/// ```no_run
/// use evlog_client::{Client, StartFrom};
/// use futures::StreamExt;
///
/// # async fn example(client: Client) -> Result<(), evlog_client::ClientError> {
/// let mut events = client.subscribe("orders", 0, StartFrom::Earliest);
/// while let Some(event) = events.next().await {
///     let event = event?;
///     println!("{}: {:?}", event.offset, event.value);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscription {
    topic: String,
    partition: u32,
    rx: mpsc::Receiver<Result<ReceivedEvent, ClientError>>,
}

impl Subscription {
    /// The topic followed.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition followed.
    pub fn partition(&self) -> u32 {
        self.partition
    }
}

impl Stream for Subscription {
    type Item = Result<ReceivedEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

pub(crate) fn spawn(
    client: Client,
    topic: String,
    partition: u32,
    from: StartFrom,
) -> Subscription {
    let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER_EVENTS);
    let follower = Follower {
        route: Route::Partition {
            topic: topic.clone(),
            partition,
        },
        client,
        topic: topic.clone(),
        partition,
        from,
        next: None,
        tx,
    };
    tokio::spawn(follower.run());
    Subscription {
        topic,
        partition,
        rx,
    }
}

/// How one Subscribe stream ended.
enum StreamEnd {
    /// The consumer dropped the subscription.
    Dropped,
    /// The node ended the stream; `progress` says whether events were delivered.
    Failed { error: ClientError, progress: bool },
}

/// The task behind a subscription.
struct Follower {
    client: Client,
    route: Route,
    topic: String,
    partition: u32,
    from: StartFrom,
    /// The first offset not yet delivered, once known.
    next: Option<u64>,
    tx: mpsc::Sender<Result<ReceivedEvent, ClientError>>,
}

impl Follower {
    async fn run(mut self) {
        let budget = self.client.shared.config.operation_deadline();
        let mut retrier = Retrier::new(budget);
        loop {
            let stream = tokio::select! {
                biased;
                opened = self.open(&mut retrier) => opened,
                () = self.tx.closed() => return,
            };
            let (addr, stream) = match stream {
                Ok(opened) => opened,
                Err(e) => return self.fail(e).await,
            };
            let opened_at = Instant::now();
            let (error, progress) = match self.pump(stream).await {
                StreamEnd::Dropped => return,
                StreamEnd::Failed { error, progress } => (error.with_addr(&addr), progress),
            };
            // A stream that delivered events or stayed up a while was healthy: its end
            // starts a new retry budget (an idle subscription may run for days).
            if progress || opened_at.elapsed() >= HEALTHY_STREAM {
                retrier.reset();
            }
            let disposition = self
                .client
                .shared
                .metadata
                .observe(&self.route, &addr, &error)
                .await;
            if let Err(e) = retrier.after_failure(error, disposition).await {
                return self.fail(e).await;
            }
        }
    }

    async fn fail(&self, error: ClientError) {
        let _ = self.tx.send(Err(error)).await;
    }

    fn start(&self) -> pb::StartPosition {
        let position = match (self.next, self.from) {
            (Some(offset), _) | (None, StartFrom::Offset(offset)) => Position::Offset(offset),
            (None, StartFrom::Earliest) => Position::Earliest(true),
            (None, StartFrom::Latest) => Position::Latest(true),
        };
        pb::StartPosition {
            position: Some(position),
        }
    }

    /// Opens a Subscribe stream on the leader (with routing and retries).
    async fn open(
        &self,
        retrier: &mut Retrier,
    ) -> Result<(String, tonic::Streaming<pb::SubscribeResponse>), ClientError> {
        let request = pb::SubscribeRequest {
            topic: self.topic.clone(),
            partition: self.partition,
            start: Some(self.start()),
            max_bytes: self.client.shared.config.max_read_bytes,
            heartbeat_interval_ms: self.client.shared.config.subscribe_heartbeat_ms,
        };
        retry::call_with(&self.client.shared, &self.route, retrier, |channel, _| {
            let request = request.clone();
            async move {
                let stream = event_log(channel)
                    .subscribe(request)
                    .await
                    .map_err(|s| ClientError::from_status("", s))?;
                Ok(stream.into_inner())
            }
        })
        .await
    }

    /// Pins the start the node resolved for `earliest`/`latest` (sent before any event),
    /// so that a resubscribe before the first event asks for that offset instead of
    /// resolving `latest` again, later, and skipping what was committed in between.
    fn pin_start(&mut self, start_offset: Option<u64>) {
        if self.next.is_none() {
            self.next = start_offset;
        }
    }

    /// The events of one message not delivered yet (a resubscribe may repeat some),
    /// advancing the next offset past them.
    fn undelivered(&mut self, events: Vec<pb::StoredEvent>) -> Vec<ReceivedEvent> {
        let mut fresh = Vec::with_capacity(events.len());
        for event in events {
            if self.next.is_some_and(|next| event.offset < next) {
                continue;
            }
            self.next = Some(event.offset + 1);
            fresh.push(ReceivedEvent::from_wire(&self.topic, self.partition, event));
        }
        fresh
    }

    /// Forwards the stream's events until it ends or the consumer goes away.
    async fn pump(&mut self, mut stream: tonic::Streaming<pb::SubscribeResponse>) -> StreamEnd {
        let mut progress = false;
        let silence = self.client.shared.config.subscribe_silence();
        loop {
            let message = tokio::select! {
                biased;
                message = tokio::time::timeout(silence, stream.message()) => message,
                () = self.tx.closed() => return StreamEnd::Dropped,
            };
            // The node heartbeats an idle stream: silence means a frozen or cut-off leader.
            let Ok(message) = message else {
                let error = ClientError::Transport {
                    addr: String::new(),
                    code: tonic::Code::Unavailable,
                    message: format!(
                        "no message or heartbeat for {silence:?}: the leader may be frozen or \
                         cut off; subscribing again"
                    ),
                };
                return StreamEnd::Failed { error, progress };
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => {
                    let error = ClientError::Transport {
                        addr: String::new(),
                        code: tonic::Code::Unavailable,
                        message: "the node ended the subscription stream".into(),
                    };
                    return StreamEnd::Failed { error, progress };
                }
                Err(status) => {
                    let error = ClientError::from_status("", status);
                    return StreamEnd::Failed { error, progress };
                }
            };
            if let Some(error) = ClientError::from_wire(response.error) {
                return StreamEnd::Failed { error, progress };
            }
            self.pin_start(response.start_offset);
            for event in self.undelivered(response.events) {
                if self.tx.send(Ok(event)).await.is_err() {
                    return StreamEnd::Dropped;
                }
                progress = true;
            }
        }
    }
}

fn event_log(channel: Channel) -> EventLogClient<Channel> {
    EventLogClient::new(channel).max_decoding_message_size(MAX_DECODING_BYTES)
}

/// Unary Read on the partition's leader, with routing and retries.
pub(crate) async fn read(
    client: &Client,
    topic: &str,
    partition: u32,
    offset: u64,
    max_events: u32,
) -> Result<ReadResult, ClientError> {
    let request = pb::ReadRequest {
        topic: topic.to_string(),
        partition,
        offset,
        max_bytes: client.shared.config.max_read_bytes,
        max_events,
    };
    let route = Route::Partition {
        topic: topic.to_string(),
        partition,
    };
    let response = retry::call(&client.shared, &route, |channel, _| {
        let request = request.clone();
        async move {
            let response = event_log(channel)
                .read(request)
                .await
                .map_err(|s| ClientError::from_status("", s))?
                .into_inner();
            ClientError::check(response.error.clone())?;
            Ok(response)
        }
    })
    .await?;
    Ok(ReadResult {
        events: response
            .events
            .into_iter()
            .map(|e| ReceivedEvent::from_wire(topic, partition, e))
            .collect(),
        high_watermark: response.high_watermark,
        log_start_offset: response.log_start_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;

    fn follower(from: StartFrom) -> (Follower, mpsc::Receiver<Result<ReceivedEvent, ClientError>>) {
        let client = Client::new_lazy(ClientConfig::default()).unwrap();
        let (tx, rx) = mpsc::channel(8);
        let f = Follower {
            client,
            route: Route::Partition {
                topic: "t".into(),
                partition: 1,
            },
            topic: "t".into(),
            partition: 1,
            from,
            next: None,
            tx,
        };
        (f, rx)
    }

    #[test]
    fn resubscribe_starts_at_the_next_undelivered_offset() {
        // Goal: after delivering offsets up to n-1, a resubscribe asks for offset n,
        // whatever the original start position was.
        for from in [StartFrom::Earliest, StartFrom::Latest, StartFrom::Offset(3)] {
            let (mut f, _rx) = follower(from);
            f.next = Some(17);
            assert_eq!(f.start().position, Some(Position::Offset(17)));
        }
        let (f, _rx) = follower(StartFrom::Latest);
        assert_eq!(f.start().position, Some(Position::Latest(true)));
        let (f, _rx) = follower(StartFrom::Offset(5));
        assert_eq!(f.start().position, Some(Position::Offset(5)));
    }

    #[test]
    fn a_latest_subscription_resumes_where_it_started_not_at_a_newer_latest() {
        // Goal: `latest` is resolved once. The node's first message says where the stream
        // starts; if the stream breaks before any event, the resubscribe asks for that
        // offset (a second `latest` would skip what was committed in between).
        let (mut f, _rx) = follower(StartFrom::Latest);
        f.pin_start(Some(7));
        assert_eq!(f.start().position, Some(Position::Offset(7)));
        // Once events were delivered, a later message's start never moves the cursor.
        let (mut f, _rx) = follower(StartFrom::Latest);
        f.next = Some(12);
        f.pin_start(Some(7));
        assert_eq!(f.start().position, Some(Position::Offset(12)));
    }

    fn stored(offset: u64) -> pb::StoredEvent {
        pb::StoredEvent {
            offset,
            value: bytes::Bytes::from(format!("v{offset}")),
            ..Default::default()
        }
    }

    #[test]
    fn events_delivered_before_a_resubscribe_are_not_repeated() {
        // Goal: a resubscribed stream that replays offsets 3..8 after 0..4 were delivered
        // yields only 5, 6, 7. Method: feed both messages through the dedup step.
        let (mut f, _rx) = follower(StartFrom::Earliest);
        let first: Vec<u64> = f
            .undelivered((0..5).map(stored).collect())
            .iter()
            .map(|e| e.offset)
            .collect();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        let second = f.undelivered((3..8).map(stored).collect());
        assert_eq!(
            second.iter().map(|e| e.offset).collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        assert_eq!(second[0].value, "v5");
        assert_eq!((second[0].topic.as_str(), second[0].partition), ("t", 1));
        assert_eq!(f.next, Some(8));
    }
}

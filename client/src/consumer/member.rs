//! The member task: heartbeats the group's coordinator and makes the consumer follow its
//! answers. Gained partitions get a fetcher starting at the group's committed offset (or
//! `auto_offset_reset`); revoked ones stop fetching at once, and once the application holds
//! none of their events they are committed and released (reported in the next heartbeat,
//! sent at once); partitions the coordinator no longer lists, or all of them when the
//! member is fenced or has had no successful heartbeat for its session timeout minus one
//! interval, are dropped without a commit (another member may own them already).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evlog_proto::evlog::v1 as pb;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::book::{Book, Owned};
use super::{AutoOffsetReset, ConsumerConfig, LostPartitions};
use crate::client::Client;
use crate::error::{ClientError, ErrorCode};
use crate::event::ReceivedEvent;
use crate::group_admin::{coordinator, groups_client, status, TopicPartition};
use crate::retry::{self, Retrier};
use crate::subscription::StartFrom;

/// The least time one call of the member loop gets, even right before its session lapses.
const CALL_BUDGET_MIN: Duration = Duration::from_millis(100);

/// Until the first answer tells the real ones.
const FIRST_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const FIRST_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// An event (or a fetch error) of one partition, tagged with the ownership it was fetched
/// under.
pub(crate) struct Delivery {
    pub partition: TopicPartition,
    pub generation: u64,
    pub event: Result<ReceivedEvent, ClientError>,
}

pub(crate) enum Control {
    Commit(Option<oneshot::Sender<Result<(), ClientError>>>),
    Close(oneshot::Sender<()>),
}

pub(crate) struct Member {
    client: Client,
    config: ConsumerConfig,
    member_id: String,
    epoch: u64,
    book: Arc<Mutex<Book>>,
    wake: Arc<Notify>,
    deliveries: mpsc::Sender<Delivery>,
    control: mpsc::Receiver<Control>,
    fetchers: HashMap<TopicPartition, JoinHandle<()>>,
    heartbeat_interval: Duration,
    session_timeout: Duration,
    last_heartbeat_ok: Instant,
}

impl Member {
    pub(crate) fn new(
        client: Client,
        config: ConsumerConfig,
        member_id: String,
        book: Arc<Mutex<Book>>,
        wake: Arc<Notify>,
        deliveries: mpsc::Sender<Delivery>,
        control: mpsc::Receiver<Control>,
    ) -> Self {
        Self {
            client,
            config,
            member_id,
            epoch: 0,
            book,
            wake,
            deliveries,
            control,
            fetchers: HashMap::new(),
            heartbeat_interval: FIRST_HEARTBEAT_INTERVAL,
            session_timeout: FIRST_SESSION_TIMEOUT,
            last_heartbeat_ok: Instant::now(),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("consumer book poisoned")
    }

    pub(crate) async fn run(mut self) {
        let commit_interval = Duration::from_millis(self.config.auto_commit_interval_ms.max(1));
        let mut next_beat = Instant::now();
        let mut next_commit = Instant::now() + commit_interval;
        loop {
            let mut wake_at = if self.config.auto_commit {
                next_beat.min(next_commit)
            } else {
                next_beat
            };
            // Wake when the session may lapse, to drop the partitions right then.
            if let Some(until) = self.live_until() {
                wake_at = wake_at.min(until);
            }
            tokio::select! {
                biased;
                control = self.control.recv() => match control {
                    Some(Control::Commit(reply)) => {
                        self.book().finish_in_hand();
                        let result = self.commit(|_| true).await;
                        if let Some(reply) = reply {
                            let _ = reply.send(result);
                        }
                        continue;
                    }
                    Some(Control::Close(reply)) => {
                        self.close().await;
                        let _ = reply.send(());
                        return;
                    }
                    // The consumer was dropped without close: close anyway.
                    None => return self.close().await,
                },
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
            }
            // The session is checked after every call that may have taken a while, so a
            // lapse drops the partitions as soon as the loop is back.
            if self.finish_revocations().await {
                next_beat = Instant::now();
            }
            self.check_session();
            if self.config.auto_commit && Instant::now() >= next_commit {
                if let Err(e) = self.commit(|o| !o.revoking).await {
                    tracing::warn!(group = %self.config.group, "auto-commit failed: {e}");
                }
                next_commit = Instant::now() + commit_interval;
                self.check_session();
            }
            if Instant::now() >= next_beat {
                let again_now = self.heartbeat().await;
                next_beat = if again_now {
                    Instant::now()
                } else {
                    Instant::now() + self.heartbeat_interval
                };
            }
            self.check_session();
        }
    }

    /// One heartbeat; true when another should follow at once (fenced: rejoin).
    async fn heartbeat(&mut self) -> bool {
        // Validity counts from the send: the coordinator heard it no earlier.
        let sent = Instant::now();
        let owned: Vec<pb::TopicPartition> = self
            .book()
            .owned
            .keys()
            .map(|tp| pb::TopicPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
            .collect();
        let request = pb::HeartbeatRequest {
            group: self.config.group.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            instance_id: self.config.instance_id.clone(),
            topics: self.config.topics.clone(),
            owned,
            session_timeout_ms: self.config.session_timeout_ms,
        };
        let route = coordinator(&self.config.group);
        // Long enough for a heartbeat that is a Raft write on a busy coordinator; short
        // enough to leave room for retries within the session timeout.
        let mut retrier = Retrier::new(self.call_budget());
        let shared = &self.client.shared;
        let answer = retry::call_with(shared, &route, &mut retrier, |channel, _| {
            let request = request.clone();
            async move {
                let response = groups_client(channel)
                    .heartbeat(request)
                    .await
                    .map_err(|s| status(s, "heartbeat"))?
                    .into_inner();
                ClientError::check(response.error.clone())?;
                Ok(response)
            }
        })
        .await;
        match answer {
            Ok((_, response)) => {
                self.last_heartbeat_ok = sent;
                self.epoch = response.member_epoch;
                self.heartbeat_interval =
                    Duration::from_millis(u64::from(response.heartbeat_interval_ms.max(1)));
                if response.session_timeout_ms > 0 {
                    self.session_timeout =
                        Duration::from_millis(u64::from(response.session_timeout_ms));
                }
                let give_up_after = self.session_timeout.saturating_sub(self.heartbeat_interval);
                self.book().valid_until = Some(sent + give_up_after);
                self.follow(response.assigned, response.revoking).await;
                false
            }
            Err(e) if e.code() == Some(ErrorCode::FencedMember) => {
                tracing::info!(group = %self.config.group, member = %self.member_id, "fenced: dropping every partition and rejoining ({e})");
                self.drop_all(Instant::now());
                self.epoch = 0;
                true
            }
            Err(e) => {
                tracing::debug!(group = %self.config.group, "heartbeat failed: {e}");
                false
            }
        }
    }

    /// How long one call of the member loop (heartbeat, commit, offsets fetch) may take:
    /// long enough for a Raft write on a busy coordinator, short enough to heartbeat
    /// within the session, and never past the session's validity while partitions are
    /// held (the loop must be back to drop them right then).
    fn call_budget(&self) -> Duration {
        let mut budget = (self.session_timeout / 3).max(self.heartbeat_interval);
        if let Some(until) = self.live_until() {
            let left = until.saturating_duration_since(Instant::now());
            budget = budget.min(left).max(CALL_BUDGET_MIN);
        }
        budget
    }

    /// Whether the session is still valid (the last answered heartbeat is recent enough).
    fn session_valid(&self) -> bool {
        self.book()
            .valid_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// Until when the member may hand out events, while it holds partitions.
    fn live_until(&self) -> Option<Instant> {
        let book = self.book();
        if book.owned.is_empty() {
            return None;
        }
        book.valid_until
    }

    /// A member that has not heard from its coordinator for its session timeout (minus
    /// one heartbeat, so it stops before the coordinator can give its partitions away)
    /// drops them.
    fn check_session(&mut self) {
        let give_up_after = self.session_timeout.saturating_sub(self.heartbeat_interval);
        let (lapsed, holding) = {
            let mut book = self.book();
            (std::mem::take(&mut book.lapsed), !book.owned.is_empty())
        };
        if lapsed || (holding && self.last_heartbeat_ok.elapsed() >= give_up_after) {
            tracing::warn!(
                group = %self.config.group,
                member = %self.member_id,
                "no heartbeat answered for {} ms: partitions considered lost, rejoining",
                self.last_heartbeat_ok.elapsed().as_millis()
            );
            // Nothing was handed out past the validity (the stream checks it per event).
            let now = Instant::now();
            let held_until = self.book().valid_until.map_or(now, |until| until.min(now));
            self.drop_all(held_until);
            self.epoch = 0;
        }
    }

    /// Makes the book follow the coordinator's answer.
    async fn follow(
        &mut self,
        assigned: Vec<pb::TopicPartition>,
        revoking: Vec<pb::TopicPartition>,
    ) {
        let assigned: BTreeSet<TopicPartition> = assigned
            .into_iter()
            .map(TopicPartition::from_wire)
            .collect();
        let revoking: BTreeSet<TopicPartition> = revoking
            .into_iter()
            .map(TopicPartition::from_wire)
            .collect();
        let (lost, newly_revoking, gained) = {
            let mut book = self.book();
            let held: Vec<TopicPartition> = book.owned.keys().cloned().collect();
            let lost: Vec<TopicPartition> = held
                .iter()
                .filter(|tp| !assigned.contains(*tp) && !revoking.contains(*tp))
                .cloned()
                .collect();
            let mut newly_revoking = Vec::new();
            for tp in &revoking {
                if let Some(owned) = book.owned.get_mut(tp) {
                    if !owned.revoking {
                        owned.revoking = true;
                        newly_revoking.push(tp.clone());
                    }
                }
            }
            let gained: Vec<TopicPartition> = assigned
                .iter()
                .filter(|tp| !book.owned.contains_key(*tp))
                .cloned()
                .collect();
            (lost, newly_revoking, gained)
        };
        for tp in &newly_revoking {
            self.stop_fetcher(tp);
        }
        if !lost.is_empty() {
            self.lost_callback(lost.clone(), Instant::now());
            self.forget(&lost);
        }
        if !gained.is_empty() {
            self.gain(gained).await;
        }
        // Revoked partitions the application holds nothing of can go at once.
        if !newly_revoking.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Starts fetching `gained` at the group's committed offsets.
    async fn gain(&mut self, gained: Vec<TopicPartition>) {
        if !self.session_valid() {
            return; // A late answer: offered again by the next answered heartbeat.
        }
        let budget = self.call_budget();
        let admin = self.client.admin();
        let fetched =
            match tokio::time::timeout(budget, admin.fetch_offsets(&self.config.group)).await {
                Ok(fetched) => fetched,
                Err(_) => Err(ClientError::server(
                    ErrorCode::Timeout,
                    format!("no committed offsets within {} ms", budget.as_millis()),
                )),
            };
        let committed = match fetched {
            Ok(offsets) => offsets
                .into_iter()
                .map(|c| (c.partition, c.next_offset))
                .collect::<HashMap<_, _>>(),
            Err(e) => {
                // Without its committed offsets a partition cannot start: the next
                // heartbeat offers it again.
                tracing::debug!(group = %self.config.group, "cannot fetch committed offsets: {e}");
                return;
            }
        };
        if !self.session_valid() {
            return; // The fetch outlasted the session: do not start what may be gone.
        }
        for tp in &gained {
            let start = committed.get(tp).copied();
            let generation = self.book().gain(tp.clone(), start);
            let from = match (start, self.config.auto_offset_reset) {
                (Some(offset), _) => StartFrom::Offset(offset),
                (None, AutoOffsetReset::Earliest) => StartFrom::Earliest,
                (None, AutoOffsetReset::Latest) => StartFrom::Latest,
            };
            let fetcher = tokio::spawn(fetch(
                self.client.clone(),
                tp.clone(),
                generation,
                from,
                self.config.auto_offset_reset,
                self.deliveries.clone(),
            ));
            if let Some(old) = self.fetchers.insert(tp.clone(), fetcher) {
                old.abort();
            }
        }
        if let Some(f) = &self.config.on_assigned {
            f(&gained);
        }
    }

    /// Revoked partitions the application holds no event of: flushed by the callback,
    /// committed, released. True when some were released.
    async fn finish_revocations(&mut self) -> bool {
        let idle = self.book().revoked_and_idle();
        if idle.is_empty() {
            return false;
        }
        self.revoked_callback(&idle);
        let which: BTreeSet<TopicPartition> = idle.iter().cloned().collect();
        let offsets: Vec<(TopicPartition, u64)> = self
            .book()
            .to_commit(|o| o.revoking)
            .into_iter()
            .filter(|(tp, _)| which.contains(tp))
            .collect();
        if let Err(e) = self.commit_offsets(offsets).await {
            tracing::warn!(group = %self.config.group, "commit of revoked partitions failed: {e}");
        }
        self.forget(&idle);
        true
    }

    fn revoked_callback(&self, partitions: &[TopicPartition]) {
        if let Some(f) = &self.config.on_revoked {
            f(partitions);
        }
    }

    /// `on_lost`, or `on_revoked` when the application set no `on_lost`.
    fn lost_callback(&self, partitions: Vec<TopicPartition>, held_until: Instant) {
        match &self.config.on_lost {
            Some(f) => f(&LostPartitions {
                partitions,
                held_until,
            }),
            None => self.revoked_callback(&partitions),
        }
    }

    fn stop_fetcher(&mut self, tp: &TopicPartition) {
        if let Some(fetcher) = self.fetchers.remove(tp) {
            fetcher.abort();
        }
    }

    fn forget(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.stop_fetcher(tp);
        }
        self.book().forget(partitions);
    }

    /// Drops every partition without committing (fenced, or the session is lost); none of
    /// their events was handed out after `held_until`.
    fn drop_all(&mut self, held_until: Instant) {
        let all: Vec<TopicPartition> = self.book().owned.keys().cloned().collect();
        if !all.is_empty() {
            self.lost_callback(all.clone(), held_until);
        }
        self.forget(&all);
    }

    /// Commits the processed offsets of the partitions `which` selects.
    async fn commit(&self, which: impl Fn(&Owned) -> bool) -> Result<(), ClientError> {
        let offsets = self.book().to_commit(which);
        self.commit_offsets(offsets).await
    }

    async fn commit_offsets(&self, offsets: Vec<(TopicPartition, u64)>) -> Result<(), ClientError> {
        if offsets.is_empty() || self.epoch == 0 {
            return Ok(());
        }
        let request = pb::CommitOffsetsRequest {
            group: self.config.group.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            offsets: offsets
                .iter()
                .map(|(tp, offset)| pb::OffsetCommit {
                    partition: Some(pb::TopicPartition {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                    }),
                    next_offset: *offset,
                    metadata: String::new(),
                })
                .collect(),
        };
        let route = coordinator(&self.config.group);
        // Bounded like a heartbeat (a failed auto-commit is tried again next interval).
        let mut retrier = Retrier::new(self.call_budget());
        retry::call_with(&self.client.shared, &route, &mut retrier, |channel, _| {
            let request = request.clone();
            async move {
                let response = groups_client(channel)
                    .commit_offsets(request)
                    .await
                    .map_err(|s| status(s, "commit offsets"))?
                    .into_inner();
                ClientError::check(response.error)
            }
        })
        .await?;
        self.book().committed(&offsets);
        Ok(())
    }

    /// Commits everything processed (the last event handed out included), leaves the
    /// group and stops every fetcher.
    async fn close(&mut self) {
        self.book().finish_in_hand();
        if let Err(e) = self.commit(|_| true).await {
            tracing::warn!(group = %self.config.group, "commit on close failed: {e}");
        }
        let all: Vec<TopicPartition> = self.book().owned.keys().cloned().collect();
        if !all.is_empty() {
            self.revoked_callback(&all);
        }
        self.forget(&all);
        if self.epoch == 0 {
            return;
        }
        let request = pb::LeaveGroupRequest {
            group: self.config.group.clone(),
            member_id: self.member_id.clone(),
        };
        let route = coordinator(&self.config.group);
        let left = retry::call(&self.client.shared, &route, |channel, _| {
            let request = request.clone();
            async move {
                let response = groups_client(channel)
                    .leave_group(request)
                    .await
                    .map_err(|s| status(s, "leave group"))?
                    .into_inner();
                ClientError::check(response.error)
            }
        })
        .await;
        if let Err(e) = left {
            tracing::warn!(group = %self.config.group, "leaving the group failed (the coordinator expels this member after its session timeout): {e}");
        }
    }
}

/// Follows one gained partition into the consumer's delivery channel. A start offset
/// that retention removed restarts at `reset`.
async fn fetch(
    client: Client,
    partition: TopicPartition,
    generation: u64,
    mut from: StartFrom,
    reset: AutoOffsetReset,
    deliveries: mpsc::Sender<Delivery>,
) {
    'subscribe: loop {
        let mut events = client.subscribe(partition.topic.clone(), partition.partition, from);
        while let Some(event) = events.next().await {
            if let Err(e) = &event {
                if e.code() == Some(ErrorCode::OffsetOutOfRange)
                    && matches!(from, StartFrom::Offset(_))
                {
                    from = match reset {
                        AutoOffsetReset::Earliest => StartFrom::Earliest,
                        AutoOffsetReset::Latest => StartFrom::Latest,
                    };
                    tracing::warn!(%partition, "committed offset out of range: restarting from {from:?}");
                    continue 'subscribe;
                }
            }
            let fatal = event.is_err();
            let delivery = Delivery {
                partition: partition.clone(),
                generation,
                event,
            };
            if deliveries.send(delivery).await.is_err() || fatal {
                return;
            }
        }
        return;
    }
}

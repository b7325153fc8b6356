//! The coordinator's clock: on every `__groups` partition this node leads, it expels
//! members it has not heard from for their session timeout, forgets groups that stayed
//! empty for the offsets retention, and tells groups when a subscribed topic's partition
//! count changed. Each is a [`GroupCommand`] proposed like any other; the decision is
//! the leader's (its soft state), the change is replicated.
//!
//! A member's deadline counts from the later of its last heartbeat here and the moment
//! this node began to lead the partition: a new coordinator gives every member a full
//! session timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::command::GroupCommand;
use super::coordinator::Coordinator;
use super::GROUPS_TOPIC;
use crate::partition::Leadership;
use crate::types::PartitionId;

/// How often the coordinator looks for expired members and groups.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Most commands one pass proposes (the rest wait for the next pass).
const PROPOSALS_PER_PASS_MAX: usize = 256;

/// Runs until `shutdown` turns true.
pub async fn run(coordinator: Arc<Coordinator>, mut shutdown: watch::Receiver<bool>) {
    loop {
        coordinator.expire_once().await;
        tokio::select! {
            // biased: a deterministic branch order (the simulation checks determinism).
            biased;
            _ = shutdown.changed() => return,
            _ = crate::rt::sleep(CHECK_INTERVAL) => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

impl Coordinator {
    /// One pass over the `__groups` partitions this node leads.
    pub async fn expire_once(&self) {
        let view = self.metadata.view();
        let Some(topic) = view.topics.get(GROUPS_TOPIC) else {
            return;
        };
        let now = crate::rt::now();
        let led: Vec<(PartitionId, u64)> = topic
            .partitions
            .iter()
            .filter_map(|p| {
                let replica = self.registry.get(p.id)?;
                (replica.leadership() == Leadership::Leader).then(|| (p.id, replica.term()))
            })
            .collect();
        let commands = {
            let mut liveness = self.liveness.lock().expect("liveness poisoned");
            liveness
                .leading_since
                .retain(|id, (term, _)| led.contains(&(*id, *term)));
            for (id, term) in &led {
                liveness.leading_since.entry(*id).or_insert((*term, now));
            }
            let led: Vec<PartitionId> = led.iter().map(|(id, _)| *id).collect();
            let mut commands = Vec::new();
            for id in &led {
                let replica = self.registry.get(*id).expect("led above");
                let since = liveness.leading_since[id].1;
                let groups = replica.groups.borrow().clone();
                for (group_id, group) in groups.iter() {
                    for (member_id, member) in &group.members {
                        let heard = liveness
                            .heard
                            .get(&(group_id.clone(), member_id.clone()))
                            .map_or(since, |h| (*h).max(since));
                        let timeout = Duration::from_millis(u64::from(member.session_timeout_ms));
                        if now.duration_since(heard) >= timeout {
                            commands.push((
                                *id,
                                GroupCommand::Expel {
                                    group: group_id.clone(),
                                    member: member_id.clone(),
                                    now_ms: crate::rt::unix_time_ms(),
                                },
                            ));
                        }
                    }
                    if let Some(empty_since_ms) = group.empty_since_ms {
                        let retention =
                            i64::try_from(self.settings.offsets_retention_ms).unwrap_or(i64::MAX);
                        if group.members.is_empty()
                            && crate::rt::unix_time_ms().saturating_sub(empty_since_ms) >= retention
                        {
                            commands.push((
                                *id,
                                GroupCommand::Expire {
                                    group: group_id.clone(),
                                    empty_since_ms,
                                },
                            ));
                        }
                    }
                    let subscribed = group.members.values().flat_map(|m| &m.subscription);
                    let counts = Coordinator::partition_counts(&view, subscribed);
                    if !group.members.is_empty() && counts != group.partition_counts {
                        commands.push((
                            *id,
                            GroupCommand::Topics {
                                group: group_id.clone(),
                                partition_counts: counts,
                            },
                        ));
                    }
                }
            }
            // Forget members that are no longer in a group this node coordinates, unless
            // heard recently: a member whose Join is still being applied is not in the
            // view yet, and forgetting it would expel it at once when the Join lands.
            let known: std::collections::HashSet<(_, _)> = led
                .iter()
                .filter_map(|id| self.registry.get(*id))
                .flat_map(|r| {
                    let groups = r.groups.borrow().clone();
                    groups
                        .iter()
                        .flat_map(|(g, group)| group.members.keys().map(|m| (g.clone(), m.clone())))
                        .collect::<Vec<_>>()
                })
                .collect();
            let keep = Duration::from_millis(u64::from(self.settings.session_timeout_ms_max));
            liveness
                .heard
                .retain(|key, at| known.contains(key) || now.duration_since(*at) < keep);
            commands.truncate(PROPOSALS_PER_PASS_MAX);
            // Decided under the same lock a heartbeat takes to be heard: from now until
            // the proposal is done, a heartbeat from the member is answered FENCED_MEMBER.
            for (_, command) in &commands {
                if let GroupCommand::Expel { group, member, .. } = command {
                    liveness.expelling.insert((group.clone(), member.clone()));
                }
            }
            commands
        };
        for (partition, command) in commands {
            let Some(replica) = self.registry.get(partition) else {
                continue;
            };
            let expelled = match &command {
                GroupCommand::Expel { group, member, .. } => Some((group.clone(), member.clone())),
                _ => None,
            };
            let what = format!("{command:?}");
            let proposed = self.propose(&replica, command).await;
            if let Some(key) = &expelled {
                let mut liveness = self.liveness.lock().expect("liveness poisoned");
                liveness.expelling.remove(key);
            }
            match proposed {
                Ok(_) => match expelled {
                    Some((group, member)) => tracing::info!(
                        %group, %member, "member expelled: no heartbeat within its session timeout; its partitions move to the others"
                    ),
                    None => tracing::debug!(%partition, "coordinator proposed {what}"),
                },
                Err(e) => tracing::debug!(%partition, "coordinator could not propose {what}: {e}"),
            }
        }
    }
}

//! `evlog topic create|list|describe|delete`.

use std::collections::BTreeSet;

use clap::Subcommand;
use evlog_client::{Client, TopicInfo, TopicSpec};

use super::{or_dash, table};

/// Topic commands.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Replicas per partition.
        #[arg(long, default_value_t = 3)]
        replication_factor: u32,
        /// Largest event accepted in bytes (0 = the node's default).
        #[arg(long, default_value_t = 0)]
        max_event_bytes: u32,
    },
    /// List topics.
    List,
    /// Show a topic's partitions: group id, leader, replicas, high watermark.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and its events.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// Runs a topic command.
pub async fn run(client: &Client, command: TopicCommand) -> anyhow::Result<()> {
    let admin = client.admin();
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            max_event_bytes,
        } => {
            let spec = TopicSpec {
                partitions,
                replication_factor,
                max_event_bytes,
            };
            let topic = admin.create_topic_with(&name, spec).await?;
            println!(
                "created topic {} with {} partitions, replication factor {}",
                topic.name, topic.partition_count, topic.replication_factor
            );
        }
        TopicCommand::List => {
            let mut topics = admin.list_topics().await?;
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            let rows: Vec<Vec<String>> = topics
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.partition_count.to_string(),
                        t.replication_factor.to_string(),
                    ]
                })
                .collect();
            println!("{}", table(&["TOPIC", "PARTITIONS", "REPLICATION"], &rows));
        }
        TopicCommand::Describe { name } => {
            let topic = describe_with_watermarks(client, &name).await?;
            println!(
                "topic {}: {} partitions, replication factor {}, max event {} bytes",
                topic.name, topic.partition_count, topic.replication_factor, topic.max_event_bytes
            );
            println!("{}", describe_table(&topic));
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

/// Describes a topic, completing leaders and watermarks from the nodes hosting replicas
/// (a node only knows those of its own replicas). Unreachable nodes are skipped.
pub async fn describe_with_watermarks(client: &Client, name: &str) -> anyhow::Result<TopicInfo> {
    let admin = client.admin();
    let mut topic = admin.describe_topic(name).await?;
    let cluster = admin.describe_cluster().await?;
    let hosts: BTreeSet<u64> = topic
        .partitions
        .iter()
        .flat_map(|p| p.replicas.iter().copied())
        .collect();
    let views = futures::future::join_all(
        cluster
            .nodes
            .iter()
            .filter(|n| hosts.contains(&n.node_id))
            .map(|n| admin.describe_topic_at(&n.addr, name)),
    )
    .await;
    for view in views.into_iter().flatten() {
        merge_view(&mut topic, &view);
    }
    Ok(topic)
}

/// Fills in what `view` knows: its leader guess where ours is missing, the highest
/// watermark seen (the leader's is the freshest).
fn merge_view(topic: &mut TopicInfo, view: &TopicInfo) {
    for (mine, theirs) in topic.partitions.iter_mut().zip(&view.partitions) {
        if mine.leader_id.is_none() {
            mine.leader_id = theirs.leader_id;
        }
        mine.high_watermark = mine.high_watermark.max(theirs.high_watermark);
        mine.log_start_offset = mine.log_start_offset.max(theirs.log_start_offset);
    }
}

fn describe_table(topic: &TopicInfo) -> String {
    let rows: Vec<Vec<String>> = topic
        .partitions
        .iter()
        .map(|p| {
            let replicas: Vec<String> = p.replicas.iter().map(u64::to_string).collect();
            vec![
                p.partition.to_string(),
                p.group_id.to_string(),
                or_dash(p.leader_id),
                replicas.join(","),
                or_dash(p.high_watermark),
            ]
        })
        .collect();
    table(
        &["PARTITION", "GROUP", "LEADER", "REPLICAS", "HIGH WATERMARK"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use evlog_client::PartitionInfo;

    #[test]
    fn topic_create_parses_partitions_and_replication_factor() {
        let cli = Cli::try_parse_from([
            "evlog",
            "topic",
            "create",
            "orders",
            "--partitions",
            "6",
            "--replication-factor",
            "1",
        ])
        .unwrap();
        match cli.command {
            Command::Topic(TopicCommand::Create {
                name,
                partitions,
                replication_factor,
                ..
            }) => assert_eq!(
                (name.as_str(), partitions, replication_factor),
                ("orders", 6, 1)
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["evlog", "topic", "create", "x", "--partitions", "many"]).is_err()
        );
        assert!(
            Cli::try_parse_from(["evlog", "topic", "describe"]).is_err(),
            "describe needs a name"
        );
    }

    fn partition(partition: u32, leader: Option<u64>, hwm: Option<u64>) -> PartitionInfo {
        PartitionInfo {
            partition,
            group_id: 10 + u64::from(partition),
            replicas: vec![1, 2, 3],
            leader_id: leader,
            high_watermark: hwm,
            log_start_offset: None,
        }
    }

    #[test]
    fn views_from_replica_nodes_fill_leaders_and_watermarks() {
        let mut topic = TopicInfo {
            name: "t".into(),
            partition_count: 2,
            replication_factor: 3,
            max_event_bytes: 100,
            partitions: vec![partition(0, None, None), partition(1, Some(1), Some(5))],
        };
        let mut view = topic.clone();
        view.partitions = vec![
            partition(0, Some(2), Some(7)),
            partition(1, Some(3), Some(4)),
        ];
        merge_view(&mut topic, &view);
        assert_eq!(topic.partitions[0].leader_id, Some(2));
        assert_eq!(topic.partitions[0].high_watermark, Some(7));
        assert_eq!(
            topic.partitions[1].leader_id,
            Some(1),
            "a known leader is kept"
        );
        assert_eq!(
            topic.partitions[1].high_watermark,
            Some(5),
            "the highest watermark wins"
        );
        let out = describe_table(&topic);
        assert!(
            out.starts_with("PARTITION  GROUP  LEADER  REPLICAS  HIGH WATERMARK\n0"),
            "{out}"
        );
        assert!(out.contains("1,2,3"));
    }
}

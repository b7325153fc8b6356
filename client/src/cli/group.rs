//! `evlog group list|describe|reset-offsets|delete`: consumer-group administration.

use clap::{Subcommand, ValueEnum};
use evlog_client::{Client, GroupInfo, ResetTo};
use serde::Serialize;

use super::{or_dash, table};

/// Output format of `group describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DescribeFormat {
    /// Two tables: members, then partitions with lag.
    Text,
    /// One JSON object.
    Json,
}

/// Consumer-group commands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the cluster's consumer groups.
    List,
    /// Show a group's members, assignments, committed offsets and lag.
    Describe {
        /// Group id.
        group: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DescribeFormat::Text)]
        format: DescribeFormat,
    },
    /// Move a group's committed offsets of one topic (the group must have no members).
    ResetOffsets {
        /// Group id.
        group: String,
        /// Topic whose partitions are reset.
        #[arg(long)]
        topic: String,
        /// `earliest`, `latest` or an offset.
        #[arg(long, value_parser = parse_reset)]
        to: ResetTo,
    },
    /// Delete a group and its offsets (it must have no members).
    Delete {
        /// Group id.
        group: String,
    },
}

/// Parses `earliest`, `latest` or an offset.
pub fn parse_reset(s: &str) -> Result<ResetTo, String> {
    match s {
        "earliest" => Ok(ResetTo::Earliest),
        "latest" => Ok(ResetTo::Latest),
        offset => offset
            .parse()
            .map(ResetTo::Offset)
            .map_err(|_| format!("expected earliest, latest or an offset, got {s:?}")),
    }
}

#[derive(Serialize)]
struct JsonTopicPartition<'a> {
    topic: &'a str,
    partition: u32,
}

#[derive(Serialize)]
struct JsonMember<'a> {
    member_id: &'a str,
    instance_id: Option<&'a str>,
    assigned: Vec<JsonTopicPartition<'a>>,
}

#[derive(Serialize)]
struct JsonPartition<'a> {
    topic: &'a str,
    partition: u32,
    committed: Option<u64>,
    high_watermark: Option<u64>,
    lag: Option<u64>,
    member_id: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    group: &'a str,
    state: &'a str,
    members: Vec<JsonMember<'a>>,
    partitions: Vec<JsonPartition<'a>>,
}

/// The `--format json` shape of a group (documented in docs/consumer-groups.md).
pub fn group_json(group: &GroupInfo) -> String {
    let json = JsonGroup {
        group: &group.group,
        state: &group.state,
        members: group
            .members
            .iter()
            .map(|m| JsonMember {
                member_id: &m.member_id,
                instance_id: m.instance_id.as_deref(),
                assigned: m
                    .assigned
                    .iter()
                    .map(|tp| JsonTopicPartition {
                        topic: &tp.topic,
                        partition: tp.partition,
                    })
                    .collect(),
            })
            .collect(),
        partitions: group
            .partitions
            .iter()
            .map(|p| JsonPartition {
                topic: &p.partition.topic,
                partition: p.partition.partition,
                committed: p.committed,
                high_watermark: p.high_watermark,
                lag: p.lag,
                member_id: p.member_id.as_deref(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&json).expect("a group always serializes")
}

/// The text shape of a group: a line, the members table, the partitions table.
pub fn group_text(group: &GroupInfo) -> String {
    let members: Vec<Vec<String>> = group
        .members
        .iter()
        .map(|m| {
            let assigned: Vec<String> = m.assigned.iter().map(ToString::to_string).collect();
            vec![
                m.member_id.clone(),
                or_dash(m.instance_id.clone()),
                m.member_epoch.to_string(),
                if assigned.is_empty() {
                    "-".into()
                } else {
                    assigned.join(",")
                },
            ]
        })
        .collect();
    let partitions: Vec<Vec<String>> = group
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.topic.clone(),
                p.partition.partition.to_string(),
                or_dash(p.committed),
                or_dash(p.high_watermark),
                or_dash(p.lag),
                or_dash(p.member_id.clone()),
            ]
        })
        .collect();
    format!(
        "group {}: {}, epoch {}, {} members\n\n{}\n\n{}",
        group.group,
        group.state,
        group.epoch,
        group.members.len(),
        table(&["MEMBER", "INSTANCE", "EPOCH", "ASSIGNED"], &members),
        table(
            &[
                "TOPIC",
                "PARTITION",
                "COMMITTED",
                "HIGH-WATERMARK",
                "LAG",
                "MEMBER"
            ],
            &partitions
        )
    )
}

/// Runs a group command.
pub async fn run(client: &Client, command: GroupCommand) -> anyhow::Result<()> {
    let admin = client.admin();
    match command {
        GroupCommand::List => {
            let rows: Vec<Vec<String>> = admin
                .list_groups()
                .await?
                .into_iter()
                .map(|g| vec![g.group, g.state, g.members.to_string()])
                .collect();
            println!("{}", table(&["GROUP", "STATE", "MEMBERS"], &rows));
        }
        GroupCommand::Describe { group, format } => {
            let group = admin.describe_group(&group).await?;
            match format {
                DescribeFormat::Text => println!("{}", group_text(&group)),
                DescribeFormat::Json => println!("{}", group_json(&group)),
            }
        }
        GroupCommand::ResetOffsets { group, topic, to } => {
            let offsets = admin.reset_offsets(&group, &topic, to).await?;
            for o in offsets {
                println!("{}: {}", o.partition, o.next_offset);
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_group(&group).await?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use evlog_client::{GroupMember, GroupPartition, TopicPartition};

    #[test]
    fn describe_json_has_the_documented_fields() {
        // Goal: `group describe --format json` prints the shape the docs promise.
        let group = GroupInfo {
            group: "billing".into(),
            state: "stable".into(),
            epoch: 3,
            members: vec![GroupMember {
                member_id: "m1".into(),
                instance_id: None,
                member_epoch: 2,
                topics: vec!["orders".into()],
                assigned: vec![TopicPartition::new("orders", 0)],
                revoking: Vec::new(),
            }],
            partitions: vec![GroupPartition {
                partition: TopicPartition::new("orders", 0),
                committed: Some(5),
                high_watermark: Some(7),
                lag: Some(2),
                member_id: Some("m1".into()),
            }],
        };
        let value: serde_json::Value = serde_json::from_str(&group_json(&group)).unwrap();
        assert_eq!(value["group"], "billing");
        assert_eq!(value["state"], "stable");
        assert_eq!(value["members"][0]["member_id"], "m1");
        assert!(value["members"][0]["instance_id"].is_null());
        assert_eq!(value["members"][0]["assigned"][0]["topic"], "orders");
        assert_eq!(value["partitions"][0]["lag"], 2);
        assert_eq!(value["partitions"][0]["member_id"], "m1");
        assert!(group_text(&group).contains("orders/0"));
    }

    #[test]
    fn reset_targets_parse() {
        assert_eq!(parse_reset("earliest"), Ok(ResetTo::Earliest));
        assert_eq!(parse_reset("latest"), Ok(ResetTo::Latest));
        assert_eq!(parse_reset("42"), Ok(ResetTo::Offset(42)));
        assert!(parse_reset("soon").is_err());
    }
}

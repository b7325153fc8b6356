//! `evlog cluster status`: every node and whether it answers, the metadata leader, and
//! each topic's partition count.

use clap::Subcommand;
use evlog_client::{Client, ClientError, ClusterInfo};

use super::{or_dash, table};

/// Cluster commands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Nodes (and which answer), metadata leader, topics.
    Status,
}

/// Runs a cluster command.
pub async fn run(client: &Client, command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status => status(client).await,
    }
}

async fn status(client: &Client) -> anyhow::Result<()> {
    let admin = client.admin();
    let cluster = admin.describe_cluster().await?;
    let answers = futures::future::join_all(cluster.nodes.iter().map(|n| async {
        // A node lists no client address until it has registered one.
        if n.addr.is_empty() {
            return Err(ClientError::InvalidArgument(
                "has not registered its client address yet (starting)".into(),
            ));
        }
        admin.describe_cluster_at(&n.addr).await
    }))
    .await;
    let mut problems = Vec::new();
    let rows: Vec<Vec<String>> = cluster
        .nodes
        .iter()
        .zip(&answers)
        .map(|(node, answer)| {
            let (state, leader) = match answer {
                Ok(view) => ("up", or_dash(view.metadata_leader_id)),
                Err(e) => {
                    problems.push(format!("node {}: {e}", node.node_id));
                    let state = if node.addr.is_empty() {
                        "registering"
                    } else {
                        "unreachable"
                    };
                    (state, "-".to_string())
                }
            };
            vec![
                node.node_id.to_string(),
                node.addr.clone(),
                state.to_string(),
                leader,
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["NODE", "ADDRESS", "STATE", "SEES METADATA LEADER"], &rows)
    );
    for problem in problems {
        println!("  {problem}");
    }
    let views: Vec<&ClusterInfo> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    println!("nodes answering: {}/{}", views.len(), cluster.nodes.len());
    match metadata_leader(&cluster, &views) {
        Some((leader, term)) => println!("metadata leader: node {leader} (term {term})"),
        None => println!("metadata leader: unknown"),
    }
    let mut topics = admin.list_topics().await?;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| vec![t.name.clone(), t.partition_count.to_string()])
        .collect();
    println!("{}", table(&["TOPIC", "PARTITIONS"], &rows));
    Ok(())
}

/// The metadata leader seen in the highest term among the answers.
fn metadata_leader(first: &ClusterInfo, views: &[&ClusterInfo]) -> Option<(u64, u64)> {
    views
        .iter()
        .copied()
        .chain(std::iter::once(first))
        .filter_map(|v| v.metadata_leader_id.map(|l| (v.metadata_term, l)))
        .max()
        .map(|(term, leader)| (leader, term))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn view(leader: Option<u64>, term: u64) -> ClusterInfo {
        ClusterInfo {
            nodes: vec![],
            metadata_leader_id: leader,
            answered_by: 1,
            metadata_term: term,
        }
    }

    #[test]
    fn the_leader_of_the_highest_term_wins() {
        let first = view(Some(1), 3);
        let a = view(Some(2), 5);
        let b = view(None, 9);
        assert_eq!(metadata_leader(&first, &[&a, &b]), Some((2, 5)));
        assert_eq!(metadata_leader(&view(None, 1), &[]), None);
    }

    #[test]
    fn cluster_status_parses() {
        let cli = Cli::try_parse_from(["evlog", "cluster", "status"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Cluster(ClusterCommand::Status)
        ));
    }
}

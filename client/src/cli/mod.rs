//! The `evlog` command line: global options, the command tree (one file per noun) and
//! small output helpers shared by the commands.

pub mod bench;
pub mod bench_consume;
pub mod cluster;
pub mod consume;
pub mod group;
mod overload;
pub mod produce;
pub mod topic;

use clap::{Parser, Subcommand};
use evlog_client::{Client, ClientConfig, DEFAULT_BOOTSTRAP};

/// Command-line client of evlog, a replicated event log.
#[derive(Debug, Parser)]
#[command(name = "evlog", version, about)]
pub struct Cli {
    /// Nodes to contact first, comma-separated `host:port`.
    #[arg(long, global = true, env = "EVLOG_BOOTSTRAP", value_delimiter = ',', default_value = DEFAULT_BOOTSTRAP)]
    pub bootstrap: Vec<String>,

    /// Give up on an operation (retries included) after this many milliseconds.
    #[arg(
        long,
        global = true,
        env = "EVLOG_DEADLINE_MS",
        default_value_t = 30_000
    )]
    pub deadline_ms: u64,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command tree.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Publish events: one from the command line, or one per stdin line.
    Produce(produce::ProduceArgs),
    /// Print a topic's events.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Inspect the cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Measure the cluster.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Logs to stderr, `warn` and up unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Connects and runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = ClientConfig::new(cli.bootstrap).with_operation_deadline_ms(cli.deadline_ms);
    config.validate()?;
    let client = Client::with_config(config).await?;
    match cli.command {
        Command::Topic(command) => topic::run(&client, command).await,
        Command::Produce(args) => produce::run(&client, args).await,
        Command::Consume(args) => consume::run(&client, args).await,
        Command::Group(command) => group::run(&client, command).await,
        Command::Cluster(command) => cluster::run(&client, command).await,
        Command::Bench(command) => bench::run(&client, command).await,
    }
}

/// Renders rows under headers as left-aligned columns separated by two spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `Some(v)` as text, `None` as `-`.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_bootstrap_is_comma_separated_and_defaults_to_localhost() {
        // Goal: `--bootstrap a,b` yields two nodes; no flag yields the dev default.
        let cli =
            Cli::try_parse_from(["evlog", "--bootstrap", "a:1,b:2", "topic", "list"]).unwrap();
        assert_eq!(cli.bootstrap, vec!["a:1", "b:2"]);
        if std::env::var_os("EVLOG_BOOTSTRAP").is_none() {
            let cli = Cli::try_parse_from(["evlog", "topic", "list"]).unwrap();
            assert_eq!(cli.bootstrap, vec![DEFAULT_BOOTSTRAP]);
        }
        // Global flags may also follow the subcommand.
        let cli = Cli::try_parse_from(["evlog", "topic", "list", "--bootstrap", "c:3"]).unwrap();
        assert_eq!(cli.bootstrap, vec!["c:3"]);
    }

    #[test]
    fn unknown_commands_are_usage_errors() {
        let err = Cli::try_parse_from(["evlog", "frobnicate"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn table_aligns_columns() {
        let out = table(
            &["A", "LONG"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(out, "A    LONG\nxyz  1\nq    22");
    }
}

//! `evlog produce TOPIC [VALUE]`: one event from the command line, or one per stdin line
//! (optionally split into key and value at a separator).

use clap::Args;
use evlog_client::{Client, Event, Producer, ProducerConfig, SendFuture};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Sends awaiting acknowledgement at once when reading stdin.
const STDIN_IN_FLIGHT_MAX: usize = 1024;

/// Arguments of `evlog produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to publish to.
    pub topic: String,
    /// The event's value; without it, every stdin line is an event.
    pub value: Option<String>,
    /// The events' key (picks the partition).
    #[arg(long)]
    pub key: Option<String>,
    /// Split each stdin line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header `name=value` (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Publish to this partition instead of choosing by key.
    #[arg(long)]
    pub partition: Option<u32>,
}

/// Parses `name=value`.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("a header is `name=value`, got {s:?}")),
    }
}

/// Splits a stdin line into (key, value): at the first `separator` when given and
/// present, else the whole line is the value and the key is `default_key`.
pub fn split_line<'a>(
    line: &'a str,
    separator: Option<&str>,
    default_key: Option<&'a str>,
) -> (Option<&'a str>, &'a str) {
    match separator
        .filter(|s| !s.is_empty())
        .and_then(|sep| line.split_once(sep))
    {
        Some((key, value)) => (Some(key), value),
        None => (default_key, line),
    }
}

impl ProduceArgs {
    fn event(&self, key: Option<&str>, value: &str) -> Event {
        let mut event = Event::new(value.to_string());
        if let Some(key) = key {
            event = event.with_key(key.to_string());
        }
        for (name, value) in &self.headers {
            event = event.with_header(name.clone(), value.clone());
        }
        event
    }

    /// Queues the event at once (so stdin lines keep their order) and returns its ack.
    fn send(&self, producer: &Producer, event: Event) -> SendFuture {
        match self.partition {
            Some(partition) => producer.send_to(&self.topic, partition, event),
            None => producer.send(&self.topic, event),
        }
    }
}

/// Runs `evlog produce`.
pub async fn run(client: &Client, args: ProduceArgs) -> anyhow::Result<()> {
    let producer = client.producer(ProducerConfig::default())?;
    if let Some(value) = &args.value {
        let ack = args
            .send(&producer, args.event(args.key.as_deref(), value))
            .await?;
        eprintln!("partition {} offset {}", ack.partition, ack.offset);
        producer.close().await;
        return Ok(());
    }
    let produced = produce_stdin(&args, &producer).await;
    producer.close().await;
    let produced = produced?;
    eprintln!("produced {produced} events");
    Ok(())
}

/// One event per stdin line, up to `STDIN_IN_FLIGHT_MAX` unacknowledged at a time.
async fn produce_stdin(args: &ProduceArgs, producer: &Producer) -> anyhow::Result<u64> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut in_flight = FuturesUnordered::new();
    let mut produced = 0u64;
    let mut eof = false;
    loop {
        tokio::select! {
            biased;
            line = lines.next_line(), if !eof && in_flight.len() < STDIN_IN_FLIGHT_MAX => match line? {
                Some(line) => {
                    let (key, value) = split_line(&line, args.key_separator.as_deref(), args.key.as_deref());
                    in_flight.push(args.send(producer, args.event(key, value)));
                }
                None => eof = true,
            },
            Some(acked) = in_flight.next(), if !in_flight.is_empty() => {
                if let Err(e) = acked {
                    anyhow::bail!("{e} (after {produced} events were produced)");
                }
                produced += 1;
            }
            else => break,
        }
    }
    Ok(produced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn key_separator_splits_at_the_first_separator_only() {
        assert_eq!(split_line("k:v:w", Some(":"), None), (Some("k"), "v:w"));
        assert_eq!(split_line("k::v", Some("::"), None), (Some("k"), "v"));
        assert_eq!(split_line(":v", Some(":"), None), (Some(""), "v"));
    }

    #[test]
    fn lines_without_separator_are_whole_values_with_the_default_key() {
        assert_eq!(
            split_line("just a value", Some(":"), Some("dk")),
            (Some("dk"), "just a value")
        );
        assert_eq!(split_line("a:b", None, None), (None, "a:b"));
        assert_eq!(
            split_line("a:b", Some(""), None),
            (None, "a:b"),
            "an empty separator never splits"
        );
    }

    #[test]
    fn produce_parses_value_key_and_repeated_headers() {
        let cli = Cli::try_parse_from([
            "evlog", "produce", "t", "hello", "--key", "k", "--header", "a=1", "--header", "b=x=y",
        ])
        .unwrap();
        let Command::Produce(args) = cli.command else {
            panic!("not produce")
        };
        assert_eq!(args.topic, "t");
        assert_eq!(args.value.as_deref(), Some("hello"));
        assert_eq!(
            args.headers,
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        let event = args.event(args.key.as_deref(), "hello");
        assert_eq!(event.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(event.headers.len(), 2);
    }

    #[test]
    fn malformed_headers_are_usage_errors() {
        let err =
            Cli::try_parse_from(["evlog", "produce", "t", "v", "--header", "novalue"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(parse_header("=v").is_err());
    }

    #[test]
    fn stdin_mode_takes_a_key_separator() {
        let cli = Cli::try_parse_from(["evlog", "produce", "t", "--key-separator", "\t"]).unwrap();
        let Command::Produce(args) = cli.command else {
            panic!("not produce")
        };
        assert!(args.value.is_none());
        assert_eq!(args.key_separator.as_deref(), Some("\t"));
    }
}

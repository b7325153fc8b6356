//! `evlog consume TOPIC`: print events of one or all partitions, up to the high
//! watermark seen at start (Read in a loop), or following new ones (`--follow`,
//! Subscribe), as text or JSON lines.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use clap::{Args, ValueEnum};
use evlog_client::{
    AutoOffsetReset, Client, ClientError, ConsumerConfig, ErrorCode, ReceivedEvent, StartFrom,
};
use futures::StreamExt;
use serde::Serialize;

/// How often `consume --group` without `--follow` checks whether it is done.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// How long `consume --group` without `--follow` waits for its first assignment.
const ASSIGNMENT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Events asked for per Read.
const READ_EVENTS_MAX: u32 = 10_000;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `PARTITION:OFFSET KEY VALUE` (`-` for no key), lossy UTF-8.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `evlog consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Only this partition (default: all, merged).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Where to start: `earliest`, `latest` or an offset.
    #[arg(long, default_value = "earliest", value_parser = parse_start)]
    pub from: StartFrom,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Keep following new events instead of stopping at the current end.
    #[arg(long)]
    pub follow: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Consume as a member of this consumer group: print the events of the partitions it
    /// is assigned (announced on stderr), starting at the group's committed offsets
    /// (`--from` earliest|latest for partitions without one), and commit what was printed.
    #[arg(long, conflicts_with = "partition")]
    pub group: Option<String>,
    /// With `--group` and without `--follow`: stop once no event arrived for this long.
    #[arg(long, default_value_t = 2_000)]
    pub idle_ms: u64,
    /// With `--group`: a static member id. A restarted process with the same instance id
    /// takes back its partitions without a rebalance if it returns within its session
    /// timeout; one process per instance id.
    #[arg(long, requires = "group")]
    pub instance_id: Option<String>,
    /// With `--group`: the session timeout to ask for (default: the node's, 10 s).
    #[arg(long, requires = "group")]
    pub session_timeout_ms: Option<u32>,
}

/// Parses `earliest`, `latest` or an offset.
pub fn parse_start(s: &str) -> Result<StartFrom, String> {
    match s {
        "earliest" => Ok(StartFrom::Earliest),
        "latest" => Ok(StartFrom::Latest),
        offset => offset
            .parse()
            .map(StartFrom::Offset)
            .map_err(|_| format!("expected earliest, latest or an offset, got {s:?}")),
    }
}

/// The JSON shape of one event (field order as printed).
#[derive(Debug, Serialize)]
struct JsonEvent<'a> {
    topic: &'a str,
    partition: u32,
    offset: u64,
    key: Option<Cow<'a, str>>,
    value: Cow<'a, str>,
    headers: BTreeMap<&'a str, Cow<'a, str>>,
    timestamp_ms: i64,
}

/// Renders one event as a line (without the newline).
pub fn format_event(event: &ReceivedEvent, format: Format) -> String {
    let key = event.key.as_ref().map(|k| String::from_utf8_lossy(k));
    let value = String::from_utf8_lossy(&event.value);
    match format {
        Format::Text => format!(
            "{}:{} {} {}",
            event.partition,
            event.offset,
            key.as_deref().unwrap_or("-"),
            value
        ),
        Format::Json => {
            let json = JsonEvent {
                topic: &event.topic,
                partition: event.partition,
                offset: event.offset,
                key,
                value,
                headers: event
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v)))
                    .collect(),
                timestamp_ms: event.timestamp_ms,
            };
            serde_json::to_string(&json).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        }
    }
}

/// Prints events to stdout; a closed pipe (e.g. `| head`) ends consumption quietly.
struct Printer {
    format: Format,
    remaining: Option<u64>,
    out: std::io::Stdout,
}

impl Printer {
    /// Prints one event; `false` once no more should be printed.
    fn print(&mut self, event: &ReceivedEvent) -> anyhow::Result<bool> {
        if self.remaining == Some(0) {
            return Ok(false);
        }
        match writeln!(self.out.lock(), "{}", format_event(event, self.format)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        if let Some(n) = self.remaining.as_mut() {
            *n -= 1;
        }
        Ok(self.remaining != Some(0))
    }

    fn done(&self) -> bool {
        self.remaining == Some(0)
    }
}

/// Runs `evlog consume`.
pub async fn run(client: &Client, args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = args.group.clone() {
        return consume_group(client, &group, &args).await;
    }
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => (0..client.partition_count(&args.topic).await?).collect(),
    };
    let mut printer = Printer {
        format: args.format,
        remaining: args.count,
        out: std::io::stdout(),
    };
    if printer.done() {
        return Ok(());
    }
    if args.follow {
        return follow(client, &args, &partitions, &mut printer).await;
    }
    for p in partitions {
        if !drain_partition(client, &args.topic, p, args.from, &mut printer).await? {
            break;
        }
    }
    Ok(())
}

/// Joins `group` and prints what it is assigned until `--count`, or (without `--follow`)
/// until `--idle-ms` pass without an event; closing commits what was printed.
async fn consume_group(client: &Client, group: &str, args: &ConsumeArgs) -> anyhow::Result<()> {
    let reset = match args.from {
        StartFrom::Earliest => AutoOffsetReset::Earliest,
        StartFrom::Latest => AutoOffsetReset::Latest,
        StartFrom::Offset(_) => {
            anyhow::bail!("with --group, --from is earliest or latest (the group's committed offsets say where each partition starts)")
        }
    };
    let mut config = ConsumerConfig::new(group)
        .subscribe([args.topic.clone()])
        .with_auto_offset_reset(reset)
        .on_assigned(|tps| eprintln!("assigned: {}", join(tps)))
        .on_revoked(|tps| eprintln!("revoked: {}", join(tps)))
        .on_lost(|lost| eprintln!("lost: {}", join(&lost.partitions)));
    if let Some(instance) = &args.instance_id {
        config = config.with_instance_id(instance.clone());
    }
    if let Some(ms) = args.session_timeout_ms {
        config = config.with_session_timeout_ms(ms);
    }
    let mut consumer = client.consumer(config)?;
    let mut printer = Printer {
        format: args.format,
        remaining: args.count,
        out: std::io::stdout(),
    };
    let idle = std::time::Duration::from_millis(args.idle_ms);
    let started = tokio::time::Instant::now();
    // Without --follow: since when nothing arrived while partitions were assigned.
    let mut quiet_since: Option<tokio::time::Instant> = None;
    let outcome = loop {
        if printer.done() {
            break Ok(());
        }
        let event = if args.follow {
            consumer.next().await
        } else {
            match tokio::time::timeout(IDLE_CHECK, consumer.next()).await {
                Ok(event) => {
                    quiet_since = None;
                    event
                }
                Err(_) if consumer.assignment().is_empty() => {
                    if started.elapsed() >= ASSIGNMENT_WAIT {
                        eprintln!(
                            "no partition of {} was assigned within {} s (more members than \
                             partitions?)",
                            args.topic,
                            ASSIGNMENT_WAIT.as_secs()
                        );
                        break Ok(());
                    }
                    continue;
                }
                Err(_) => {
                    let since = *quiet_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= idle {
                        break Ok(());
                    }
                    continue;
                }
            }
        };
        match event {
            Some(Ok(event)) => match printer.print(&event) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            },
            Some(Err(e)) => break Err(e.into()),
            None => break Ok(()),
        }
    };
    consumer.close().await;
    outcome
}

fn join(partitions: &[evlog_client::TopicPartition]) -> String {
    let names: Vec<String> = partitions.iter().map(ToString::to_string).collect();
    names.join(", ")
}

/// Subscribes to every partition and prints the merged streams until `--count`.
async fn follow(
    client: &Client,
    args: &ConsumeArgs,
    partitions: &[u32],
    printer: &mut Printer,
) -> anyhow::Result<()> {
    let subscriptions = partitions
        .iter()
        .map(|p| client.subscribe(args.topic.clone(), *p, args.from));
    let mut merged = futures::stream::select_all(subscriptions);
    while let Some(event) = merged.next().await {
        if !printer.print(&event?)? {
            break;
        }
    }
    Ok(())
}

/// Prints one partition from `from` up to the high watermark seen by the first read.
/// Returns `false` when printing should stop (count reached, pipe closed).
async fn drain_partition(
    client: &Client,
    topic: &str,
    partition: u32,
    from: StartFrom,
    printer: &mut Printer,
) -> anyhow::Result<bool> {
    let mut offset = match from {
        StartFrom::Latest => return Ok(true),
        StartFrom::Offset(offset) => offset,
        StartFrom::Earliest => log_start(client, topic, partition).await?,
    };
    let mut end: Option<u64> = None;
    while end.is_none_or(|end| offset < end) {
        let max = printer.remaining.map_or(READ_EVENTS_MAX, |r| {
            r.min(u64::from(READ_EVENTS_MAX)) as u32
        });
        let read = client.read(topic, partition, offset, max).await?;
        let end = *end.get_or_insert(read.high_watermark);
        if read.events.is_empty() {
            break;
        }
        for event in read.events.iter().take_while(|e| e.offset < end) {
            offset = event.offset + 1;
            if !printer.print(event)? {
                return Ok(false);
            }
        }
        if read.events.last().is_some_and(|e| e.offset + 1 >= end) {
            break;
        }
    }
    Ok(true)
}

/// The partition's first retained offset: 0 unless retention removed a prefix, in
/// which case the nodes hosting it say where the log starts now.
async fn log_start(client: &Client, topic: &str, partition: u32) -> anyhow::Result<u64> {
    match client.read(topic, partition, 0, 1).await {
        Ok(_) => return Ok(0),
        Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {}
        Err(e) => return Err(e.into()),
    }
    let topic_info = super::topic::describe_with_watermarks(client, topic).await?;
    topic_info
        .partitions
        .get(partition as usize)
        .and_then(|p| p.log_start_offset)
        .ok_or_else(|| {
            ClientError::InvalidArgument(format!(
                "cannot find where partition {partition} of {topic:?} starts"
            ))
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use bytes::Bytes;
    use clap::Parser;

    fn event(key: Option<&'static [u8]>, value: &'static [u8]) -> ReceivedEvent {
        ReceivedEvent {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            key: key.map(Bytes::from_static),
            value: Bytes::from_static(value),
            headers: vec![
                ("z".into(), Bytes::from_static(b"1")),
                ("a".into(), Bytes::from_static(b"\xff")),
            ],
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn json_output_has_every_field_in_order_with_lossy_strings() {
        let line = format_event(&event(Some(b"k"), b"hello"), Format::Json);
        assert_eq!(
            line,
            r#"{"topic":"orders","partition":2,"offset":41,"key":"k","value":"hello","headers":{"a":"\u{FFFD}","z":"1"},"timestamp_ms":1700000000000}"#
                .replace(r"\u{FFFD}", "\u{FFFD}")
        );
        let parsed: serde_json::Value =
            serde_json::from_str(&format_event(&event(None, b"v"), Format::Json)).unwrap();
        assert!(parsed["key"].is_null());
        assert_eq!(parsed["value"], "v");
    }

    #[test]
    fn text_output_is_partition_offset_key_value() {
        assert_eq!(
            format_event(&event(Some(b"k"), b"hello world"), Format::Text),
            "2:41 k hello world"
        );
        assert_eq!(format_event(&event(None, b"v"), Format::Text), "2:41 - v");
    }

    #[test]
    fn consume_parses_start_positions_and_formats() {
        assert_eq!(parse_start("earliest"), Ok(StartFrom::Earliest));
        assert_eq!(parse_start("latest"), Ok(StartFrom::Latest));
        assert_eq!(parse_start("42"), Ok(StartFrom::Offset(42)));
        assert!(parse_start("-1").is_err());
        let cli = Cli::try_parse_from([
            "evlog",
            "consume",
            "t",
            "--partition",
            "1",
            "--from",
            "7",
            "--count",
            "3",
            "--follow",
            "--format",
            "json",
        ])
        .unwrap();
        let Command::Consume(args) = cli.command else {
            panic!("not consume")
        };
        assert_eq!(
            (
                args.partition,
                args.from,
                args.count,
                args.follow,
                args.format
            ),
            (Some(1), StartFrom::Offset(7), Some(3), true, Format::Json)
        );
        let cli = Cli::try_parse_from(["evlog", "consume", "t"]).unwrap();
        let Command::Consume(args) = cli.command else {
            panic!("not consume")
        };
        assert_eq!(
            (args.from, args.follow, args.format),
            (StartFrom::Earliest, false, Format::Text)
        );
        assert!(Cli::try_parse_from(["evlog", "consume", "t", "--format", "xml"]).is_err());
    }
}

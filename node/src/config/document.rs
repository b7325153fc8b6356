//! The config as a commented TOML file ([`Config::to_toml_string`], printed by
//! `evlog-node --print-default-config`): a header explaining the layers, then every field
//! with its operator-facing documentation from [`FIELD_DOCS`] above it.

use super::Config;

impl Config {
    /// The config as a commented TOML file that [`Config::load`] reads back unchanged
    /// (`evlog-node --print-default-config` prints the default one).
    ///
    /// # Panics
    /// If a number exceeds `i64::MAX`, which TOML cannot represent (no loaded config can
    /// hold one except through a flag).
    pub fn to_toml_string(&self) -> String {
        let body = toml::to_string(self).expect("every config field is representable in TOML");
        let mut out = String::from(FILE_HEADER);
        let mut section = String::new();
        let mut documented_sections = Vec::new();
        // Blank lines are ours: one before every top-level field and every table header.
        for line in body.lines().filter(|line| !line.trim().is_empty()) {
            let trimmed = line.trim();
            let header = trimmed
                .strip_prefix("[[")
                .and_then(|s| s.strip_suffix("]]"))
                .or_else(|| trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')));
            if let Some(name) = header {
                section = name.to_owned();
                out.push('\n');
                // An array of tables repeats its header: document it once.
                if !documented_sections.contains(&section) {
                    push_doc(&mut out, &section);
                    documented_sections.push(section.clone());
                }
            } else if let Some((key, _)) = trimmed.split_once(" = ") {
                if section.is_empty() {
                    out.push('\n');
                    push_doc(&mut out, key);
                } else {
                    push_doc(&mut out, &format!("{section}.{key}"));
                }
            }
            out.push_str(line);
            out.push('\n');
            // An unset optional address has no line of its own: show it commented out.
            if section.is_empty() && trimmed.starts_with("listen = ") && self.advertise.is_none() {
                out.push('\n');
                push_doc(&mut out, "advertise");
                out.push_str("# advertise = \"10.0.0.5:7101\"\n");
            }
            if section.is_empty()
                && trimmed.starts_with("peer_listen = ")
                && self.peer_advertise.is_none()
            {
                out.push('\n');
                push_doc(&mut out, "peer_advertise");
                out.push_str("# peer_advertise = \"10.0.0.5:7201\"\n");
            }
        }
        out
    }
}

fn push_doc(out: &mut String, path: &str) {
    if let Some((_, doc)) = FIELD_DOCS.iter().find(|(p, _)| *p == path) {
        for line in doc.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    }
}

const FILE_HEADER: &str = "\
# evlog-node configuration.
#
# Every field is optional except node_id and initial_cluster; a missing field keeps the
# default shown here. Precedence, later wins: defaults < this file (--config PATH) <
# EVLOG_* environment variables < command-line flags. A top-level field is set from the
# environment as EVLOG_<FIELD> (EVLOG_NODE_ID=1), a field of a section as
# EVLOG_<SECTION>__<FIELD> (EVLOG_RAFT__HEARTBEAT_INTERVAL_MS=50).
# Units are the last word of each name: _ms milliseconds, _bytes bytes.
";

/// Operator-facing documentation of every field, printed above it by
/// [`Config::to_toml_string`]; a test checks that no field is missing.
const FIELD_DOCS: &[(&str, &str)] = &[
    (
        "node_id",
        "This node's id: unique in the cluster, never reused, >= 1 (0 = not set).\n\
         Flag --node-id.",
    ),
    (
        "cluster_id",
        "The cluster this node belongs to, the same on every node. Every peer message carries\n\
         it and a node refuses messages of another cluster. Flag --cluster-id.",
    ),
    (
        "listen",
        "Socket address of the client listener (the evlog.v1 API). Flag --listen.",
    ),
    (
        "advertise",
        "Address clients use to reach this node; default: listen. Required when listen is a\n\
         wildcard such as 0.0.0.0:7101; in containers, the address published to clients.\n\
         Flag --advertise.",
    ),
    (
        "peer_listen",
        "Socket address of the peer listener: the Raft transport between nodes, nothing else.\n\
         Keep it reachable by the other nodes only. Flag --peer-listen.",
    ),
    (
        "peer_advertise",
        "Address the other nodes use to reach the peer listener; default: peer_listen. It is\n\
         this node's address in initial_cluster. Flag --peer-advertise.",
    ),
    (
        "data_dir",
        "Directory of this node's RocksDB: one directory per node, on a disk that honors \
         fsync.\nFlag --data-dir.",
    ),
    (
        "initial_cluster",
        "The initial voters by peer address, this node included, the same list on every node;\n\
         they form the metadata group. Each node's addr must equal its peer_advertise (or\n\
         peer_listen) address.\n\
         initial_cluster = [{ id = 1, addr = \"127.0.0.1:7201\" }, { id = 2, addr = \"127.0.0.1:7202\" }]\n\
         Flag --initial-cluster 1=127.0.0.1:7201,2=127.0.0.1:7202,3=127.0.0.1:7203.",
    ),
    (
        "shutdown_grace_ms",
        "On SIGTERM or Ctrl-C: how long in-flight requests may take to finish before the node\n\
         closes anyway.",
    ),
    (
        "raft",
        "Raft timing and sizes, shared by every partition and by the metadata group.",
    ),
    (
        "raft.heartbeat_interval_ms",
        "How often a leader sends heartbeats to its followers.",
    ),
    (
        "raft.election_timeout_min_ms",
        "A follower that hears no leader for a random time between min and max starts an\n\
         election. min must be more than twice heartbeat_interval_ms.",
    ),
    (
        "raft.election_timeout_max_ms",
        "Upper end of the election timeout; must be greater than election_timeout_min_ms.",
    ),
    (
        "raft.max_payload_entries",
        "Most log entries sent in one AppendEntries RPC. openraft gives each AppendEntries\n\
         heartbeat_interval_ms to complete, so keep append_entries_bytes_max sendable in that time.",
    ),
    (
        "raft.append_entries_bytes_max",
        "Most entry bytes in one AppendEntries RPC; an entry larger than that goes alone.\n\
         At least produce.request_bytes_max and produce.batch_bytes_max (an entry is at most\n\
         the larger of the two), and small enough to replicate within heartbeat_interval_ms.",
    ),
    (
        "produce",
        "Limits of the produce path: requests are coalesced into batches, one batch per Raft \
         entry.\n\
         Byte limits count each event as key + value + headers plus 32 bytes (and 8 per \
         header),\nso that empty events are not free.",
    ),
    (
        "produce.batch_bytes_max",
        "Most bytes of events in one batch.",
    ),
    (
        "produce.batch_events_max",
        "Most events in one batch.",
    ),
    (
        "produce.inflight_entries_max",
        "Most batches of one partition proposed to Raft and not yet committed; producers\n\
         beyond it wait (backpressure).",
    ),
    (
        "produce.request_bytes_max",
        "Largest produce request accepted; a larger one is refused with INVALID_ARGUMENT.",
    ),
    (
        "produce.request_events_max",
        "Most events in one produce request; more are refused with INVALID_ARGUMENT.",
    ),
    (
        "produce.headers_per_event_max",
        "Most headers on one event; more are refused with INVALID_ARGUMENT.",
    ),
    (
        "produce.default_max_event_bytes",
        "Largest event (key + value + headers) for topics that do not set their own limit.\n\
         At most request_bytes_max.",
    ),
    (
        "produce.request_timeout_ms",
        "How long a produce request may wait for its commit before it fails with a timeout\n\
         (the client retries with the same sequence numbers: no duplicates).",
    ),
    (
        "produce.queue_requests_max",
        "Produce requests of one partition waiting to be batched; beyond it requests wait\n\
         (backpressure), then are refused with RESOURCE_EXHAUSTED.",
    ),
    (
        "produce.queue_bytes_max",
        "Bytes of the produce requests waiting to be batched, per partition; same rule.",
    ),
    (
        "produce.admission_wait_ms",
        "How long a request may wait for room in a full queue or memory budget before it is\n\
         refused with RESOURCE_EXHAUSTED (retryable, nothing written). Less than\n\
         request_timeout_ms.",
    ),
    (
        "produce.queue_delay_target_ms",
        "How long a request may wait from its arrival until it is proposed to Raft, per\n\
         partition. While the last proposed request waited longer and requests are still\n\
         queued, the partition is falling behind: new requests are refused at once with\n\
         RESOURCE_EXHAUSTED instead of waiting, so what is admitted is committed soon.\n\
         Less than request_timeout_ms.",
    ),
    ("read", "Limits of the read and subscribe path."),
    (
        "read.response_bytes_max",
        "Most bytes of events in one read response or subscription message.",
    ),
    (
        "read.subscribe_buffer_bytes_max",
        "Bytes of events one subscription holds waiting for its client; when full, the\n\
         subscription stops reading (backpressure). A message is at most this large.",
    ),
    (
        "read.subscribe_heartbeat_ms",
        "How often an idle subscription sends a heartbeat with the high watermark (a client\n\
         may ask for another interval, 100 ms to 60 s).",
    ),
    (
        "read.slow_consumer_timeout_ms",
        "A subscription whose client takes nothing for this long while events wait for it\n\
         is ended with SLOW_CONSUMER (the client resubscribes from its next offset).",
    ),
    (
        "groups",
        "Consumer groups: the internal __groups topic that holds them, and the coordinator's\n\
         timeouts.",
    ),
    (
        "groups.partitions",
        "Partitions of the internal topic __groups (a group's coordinator is the leader of\n\
         one of them). Fixed when the metadata leader creates the topic, at the first group\n\
         request of the cluster: changing it later has no effect.",
    ),
    (
        "groups.session_timeout_ms",
        "A member that sends no heartbeat for this long is expelled and its partitions go\n\
         to the others; the default for members that ask for none.",
    ),
    (
        "groups.session_timeout_ms_min",
        "The shortest session timeout a member may ask for.",
    ),
    (
        "groups.session_timeout_ms_max",
        "The longest session timeout a member may ask for.",
    ),
    (
        "groups.heartbeat_interval_ms",
        "How often members heartbeat (capped at a third of their session timeout).",
    ),
    (
        "groups.offsets_retention_ms",
        "How long the committed offsets of a group without members are kept (7 days).",
    ),
    (
        "storage",
        "The node's RocksDB and the group commit that shares one WAL fsync among many appends.",
    ),
    (
        "storage.block_cache_bytes",
        "RocksDB block cache, shared by every column family.",
    ),
    (
        "storage.write_buffer_bytes",
        "RocksDB write buffer (memtable) budget.",
    ),
    (
        "storage.group_commit_max_waiters",
        "Most appends waiting on one shared WAL fsync; more wait for the next one.",
    ),
    (
        "storage.blocking_threads_max",
        "Threads for blocking storage work: reads for Read and Subscribe, WAL fsyncs. More\n\
         such work waits for a thread; an idle thread exits after 1 s.",
    ),
    (
        "server",
        "Limits of the client and peer listeners' connections and of HTTP/2 on them. A\n\
         connection over a limit is closed at once (clients retry elsewhere or later).",
    ),
    (
        "server.connections_max",
        "Connections open on the client listener, all clients together.",
    ),
    (
        "server.connections_per_ip_max",
        "Connections open on the client listener from one IP address.",
    ),
    (
        "server.peer_connections_max",
        "Connections open on the peer listener.",
    ),
    (
        "server.connection_handshake_timeout_ms",
        "A connection that has not started HTTP/2 within this time is closed.",
    ),
    (
        "server.connection_idle_timeout_ms",
        "A connection that carried no request or response data for this long is closed;\n\
         clients reconnect when they need to.",
    ),
    (
        "server.http2_keepalive_interval_ms",
        "How often the node pings each connection (HTTP/2 PING).",
    ),
    (
        "server.http2_keepalive_timeout_ms",
        "A connection whose peer does not answer a ping within this time is closed (a\n\
         frozen or vanished peer).",
    ),
    (
        "server.http2_streams_per_connection_max",
        "Concurrent requests (HTTP/2 streams) per connection.",
    ),
    (
        "server.http2_stream_window_bytes",
        "HTTP/2 flow-control window per stream: what a client may send before it is read.",
    ),
    (
        "server.http2_connection_window_bytes",
        "HTTP/2 flow-control window per connection.",
    ),
    (
        "memory",
        "Memory budgets of the node. A node's memory is about: twice the produce budget (as\n\
         much again may wait for room) + the subscribe budget + the RocksDB block cache and\n\
         twice the write buffer + per connection its HTTP/2 windows + ~50 MiB.",
    ),
    (
        "memory.produce_bytes_max",
        "Produce requests admitted and not yet answered, all partitions together; beyond it\n\
         requests wait (admission_wait_ms), then are refused with RESOURCE_EXHAUSTED.",
    ),
    (
        "memory.subscribe_bytes_max",
        "Events read for subscriptions and not yet taken by their clients, all together;\n\
         beyond it subscriptions wait for their clients.",
    ),
];

#[cfg(test)]
mod tests {
    use super::super::testing::{load_file, node1, write_file};
    use super::*;

    #[test]
    fn to_toml_string_round_trips_through_load() {
        // Goal: the printed file loads back unchanged, default or customized.
        // Method: print, write, load, compare; for the default and a config touching every
        // kind of field (optional set, list non-empty, nested changed).
        let dir = tempfile::tempdir().expect("tempdir");
        let mut custom = node1();
        custom.advertise = Some("127.0.0.1:7101".to_owned());
        custom.listen = "0.0.0.0:7101".to_owned();
        custom.storage.block_cache_bytes = 1;
        custom.shutdown_grace_ms = 5;
        for config in [Config::default(), custom] {
            let text = config.to_toml_string();
            let path = write_file(&dir, &text);
            let loaded = load_file(&path);
            assert_eq!(loaded.expect(&text), config, "{text}");
        }
    }

    #[test]
    fn to_toml_string_documents_every_field() {
        // Goal: no field reaches the printed file without a comment. Method: every key path
        // of the serialized config (advertise set so it is present) has a FIELD_DOCS entry,
        // and every entry names a real field.
        let config = Config {
            advertise: Some("a:1".to_owned()),
            peer_advertise: Some("a:2".to_owned()),
            ..Config::default()
        };
        let tree = toml::Table::try_from(&config).expect("serializes");
        let mut paths = Vec::new();
        for (key, value) in &tree {
            paths.push(key.clone());
            if let toml::Value::Table(section) = value {
                paths.extend(section.keys().map(|field| format!("{key}.{field}")));
            }
        }
        for path in &paths {
            assert!(
                FIELD_DOCS.iter().any(|(p, _)| p == path),
                "{path} has no FIELD_DOCS entry"
            );
        }
        for (path, _) in FIELD_DOCS {
            assert!(
                paths.iter().any(|p| p == path),
                "FIELD_DOCS documents unknown {path}"
            );
        }
        let text = Config::default().to_toml_string();
        assert!(text.contains("# advertise = "), "{text}");
        assert!(text.contains("# peer_advertise = "), "{text}");
        assert!(text.contains("\n# Most bytes of events in one batch.\nbatch_bytes_max = "));
    }
}

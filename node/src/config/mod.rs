//! The node's configuration tree: everything a node needs to start, with a default for
//! everything except its identity (`node_id`, `initial_cluster`).
//!
//! Layers, later wins: built-in defaults < TOML file (`--config PATH`) < `EVLOG_*`
//! environment variables < command-line flags. [`Config::load`] stacks the layers;
//! [`Config::validate`] checks the result and reports every problem at once, so an operator
//! fixes a config in one pass instead of one restart per mistake.
//!
//! Environment variables name a field by its path: `EVLOG_NODE_ID`, `EVLOG_LISTEN`,
//! `EVLOG_ADVERTISE`, `EVLOG_PEER_LISTEN`, `EVLOG_PEER_ADVERTISE`, `EVLOG_CLUSTER_ID`,
//! `EVLOG_DATA_DIR`, `EVLOG_INITIAL_CLUSTER` (flag syntax
//! `1=HOST:PORT,2=HOST:PORT`), and a nested field as `EVLOG_<SECTION>__<FIELD>`, e.g.
//! `EVLOG_RAFT__HEARTBEAT_INTERVAL_MS=50`. They are applied generically through the TOML tree,
//! so a new field needs no code here. An `EVLOG_` variable that names no field is an error:
//! a typo must not silently leave a default in place. Variables owned by other tools
//! ([`OTHER_TOOLS_ENV_VARS`], [`OTHER_TOOLS_ENV_PREFIXES`]) are ignored.
//!
//! Units are the last word of every field name (`_ms`, `_bytes`, `_entries`, ...).
//!
//! This file owns the types, their defaults and the error; the rest is split by job:
//! - `load`: the file, environment and flag layers, and the `ID=HOST:PORT` peer-list syntax;
//! - `validate`: the rules of [`Config::validate`];
//! - `document`: [`Config::to_toml_string`], the commented TOML file.

mod document;
mod load;
mod validate;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use load::{format_initial_cluster, parse_initial_cluster};

/// Prefix of every environment variable the node reads.
pub const ENV_PREFIX: &str = "EVLOG_";

/// `EVLOG_` variables that belong to other tools (the `evlog` CLI, the scripts): the node
/// ignores them instead of rejecting them as unknown settings.
pub const OTHER_TOOLS_ENV_VARS: &[&str] = &[
    "EVLOG_BOOTSTRAP",
    "EVLOG_DEADLINE_MS",
    "EVLOG_LOG",
    "EVLOG_SKIP_LINT",
    "EVLOG_SKIP_DOCKER",
    "EVLOG_DETERMINISM_SEEDS",
    "EVLOG_FUZZ_SECONDS",
];

/// Prefixes of `EVLOG_` variables that belong to other tools (the simulator, benchmarks
/// and scripts).
pub const OTHER_TOOLS_ENV_PREFIXES: &[&str] = &["EVLOG_SIM_", "EVLOG_BENCH_"];

const MIB: u64 = 1024 * 1024;

/// A node's whole configuration. See [`Config::to_toml_string`] for every field explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's id, >= 1. 0 means "not set" and fails validation.
    pub node_id: u64,
    /// The cluster this node belongs to: every peer message carries it, and a node refuses
    /// messages of another cluster and a data dir written by another cluster.
    pub cluster_id: String,
    /// Socket address of the client listener (the `evlog.v1` API).
    pub listen: String,
    /// Address clients use to reach this node; `None` means `listen`.
    pub advertise: Option<String>,
    /// Socket address of the peer listener (the `raft.v1` transport between nodes only).
    pub peer_listen: String,
    /// Address the other nodes use to reach this node's peer listener; `None` means
    /// `peer_listen`. It is this node's address in `initial_cluster`.
    pub peer_advertise: Option<String>,
    /// Directory of this node's RocksDB.
    pub data_dir: PathBuf,
    /// The initial voters, this node included, by peer address; the same list on every node.
    pub initial_cluster: Vec<Peer>,
    pub raft: RaftConfig,
    pub produce: ProduceConfig,
    pub read: ReadConfig,
    pub storage: StorageConfig,
    pub memory: MemoryConfig,
    pub server: ServerConfig,
    pub groups: GroupsConfig,
    /// How long a shutdown waits for in-flight requests before closing anyway.
    pub shutdown_grace_ms: u64,
}

/// One initial voter: `id=addr` on the command line, `{ id = 1, addr = "..." }` in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub id: u64,
    /// `HOST:PORT` of its peer listener, which the other nodes dial.
    pub addr: String,
}

/// Raft timing and sizes, shared by every partition and the metadata group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub max_payload_entries: u64,
    /// Most entry bytes in one AppendEntries RPC (a larger entry is sent alone).
    pub append_entries_bytes_max: u64,
}

/// Limits of the produce path (requests -> batches -> Raft entries). Every byte limit
/// counts accounted bytes (`evlog_proto::limits`): payload plus a per-event overhead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProduceConfig {
    pub batch_bytes_max: u64,
    pub batch_events_max: u64,
    pub inflight_entries_max: u64,
    pub request_bytes_max: u64,
    pub request_events_max: u64,
    pub headers_per_event_max: u64,
    pub default_max_event_bytes: u64,
    pub request_timeout_ms: u64,
    /// Requests of one partition waiting to be batched.
    pub queue_requests_max: u64,
    /// Bytes of those requests.
    pub queue_bytes_max: u64,
    /// How long a request waits for room in a full queue or budget before it is refused
    /// with RESOURCE_EXHAUSTED.
    pub admission_wait_ms: u64,
    /// Arrival to proposal: while the last proposed request waited longer and requests
    /// are still queued, new ones are refused at once with RESOURCE_EXHAUSTED.
    pub queue_delay_target_ms: u64,
}

/// Limits of the read and subscribe path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadConfig {
    pub response_bytes_max: u64,
    /// Bytes one subscription may hold waiting for its client.
    pub subscribe_buffer_bytes_max: u64,
    /// How often an idle subscription sends a heartbeat (unless its client asks otherwise).
    pub subscribe_heartbeat_ms: u64,
    /// A subscription whose client takes nothing for this long while messages wait is
    /// ended with SLOW_CONSUMER.
    pub slow_consumer_timeout_ms: u64,
}

/// RocksDB and group-commit sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub block_cache_bytes: u64,
    pub write_buffer_bytes: u64,
    pub group_commit_max_waiters: u64,
    /// Threads for blocking storage work (reads for subscriptions and fetches, fsyncs).
    pub blocking_threads_max: u64,
}

/// The node's memory budgets: what admitted requests and open subscriptions may hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Produce requests admitted and not yet answered, all partitions together.
    pub produce_bytes_max: u64,
    /// Events read for subscriptions and not yet taken by their clients, all together.
    pub subscribe_bytes_max: u64,
}

/// Limits of the two listeners' connections and of HTTP/2 on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Connections open on the client listener, all clients together.
    pub connections_max: u64,
    /// Connections open on the client listener from one IP address.
    pub connections_per_ip_max: u64,
    /// Connections open on the peer listener.
    pub peer_connections_max: u64,
    /// A connection that has not started HTTP/2 within this time is closed.
    pub connection_handshake_timeout_ms: u64,
    /// A connection that carried no request or response data for this long is closed
    /// (the client reconnects when it needs to).
    pub connection_idle_timeout_ms: u64,
    /// How often a node pings each connection; one whose peer does not answer within
    /// `http2_keepalive_timeout_ms` (a frozen or vanished peer) is closed.
    pub http2_keepalive_interval_ms: u64,
    pub http2_keepalive_timeout_ms: u64,
    /// Concurrent HTTP/2 streams (requests) per connection.
    pub http2_streams_per_connection_max: u64,
    /// HTTP/2 flow-control windows: what a peer may send before the node reads it.
    pub http2_stream_window_bytes: u64,
    pub http2_connection_window_bytes: u64,
}

/// Consumer groups: the internal `__groups` topic and the coordinator's timeouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsConfig {
    /// Partitions of `__groups`, fixed when the metadata leader creates it (at the first
    /// group request of the cluster).
    pub partitions: u64,
    /// The session timeout of a member that asks for none.
    pub session_timeout_ms: u64,
    /// Bounds of the session timeout a member may ask for.
    pub session_timeout_ms_min: u64,
    pub session_timeout_ms_max: u64,
    /// How often members heartbeat (at most a third of their session timeout).
    pub heartbeat_interval_ms: u64,
    /// How long the committed offsets of a group without members are kept.
    pub offsets_retention_ms: u64,
}

/// The command-line layer: `Some` wins over the file and the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagOverrides {
    pub node_id: Option<u64>,
    pub cluster_id: Option<String>,
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub peer_listen: Option<String>,
    pub peer_advertise: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub initial_cluster: Option<Vec<Peer>>,
}

/// Why a configuration could not be loaded or is not acceptable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse config file {}: {source}", path.display())]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error(
        "invalid initial cluster {value:?}: {message} \
         (expected ID=HOST:PORT,ID=HOST:PORT,..., e.g. 1=127.0.0.1:7101,2=127.0.0.1:7102)"
    )]
    InitialCluster { value: String, message: String },
    /// Every problem [`Config::validate`] found, one sentence each.
    #[error("invalid configuration:{}", problem_lines(.0))]
    Invalid(Vec<String>),
}

fn problem_lines(problems: &[String]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 0,
            cluster_id: "evlog".to_owned(),
            listen: "127.0.0.1:7101".to_owned(),
            advertise: None,
            peer_listen: "127.0.0.1:7201".to_owned(),
            peer_advertise: None,
            data_dir: PathBuf::from("./evlog-data"),
            initial_cluster: Vec::new(),
            raft: RaftConfig::default(),
            produce: ProduceConfig::default(),
            read: ReadConfig::default(),
            storage: StorageConfig::default(),
            memory: MemoryConfig::default(),
            server: ServerConfig::default(),
            groups: GroupsConfig::default(),
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            max_payload_entries: 16,
            append_entries_bytes_max: 2 * MIB,
        }
    }
}

impl Default for ProduceConfig {
    fn default() -> Self {
        ProduceConfig {
            batch_bytes_max: MIB,
            batch_events_max: 10_000,
            inflight_entries_max: 4,
            request_bytes_max: 2 * MIB,
            request_events_max: 10_000,
            headers_per_event_max: 64,
            default_max_event_bytes: MIB,
            request_timeout_ms: 10_000,
            queue_requests_max: 1024,
            queue_bytes_max: 32 * MIB,
            admission_wait_ms: 1_000,
            queue_delay_target_ms: 200,
        }
    }
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            response_bytes_max: MIB,
            subscribe_buffer_bytes_max: 2 * MIB,
            subscribe_heartbeat_ms: 2_000,
            slow_consumer_timeout_ms: 30_000,
        }
    }
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            partitions: 8,
            // Kafka's group.consumer.session.timeout.ms and its bounds.
            session_timeout_ms: 10_000,
            session_timeout_ms_min: 1_000,
            session_timeout_ms_max: 300_000,
            heartbeat_interval_ms: 3_000,
            // Kafka's offsets.retention.minutes: 7 days.
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            block_cache_bytes: 64 * MIB,
            write_buffer_bytes: 64 * MIB,
            group_commit_max_waiters: 4096,
            blocking_threads_max: 64,
        }
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            produce_bytes_max: 256 * MIB,
            subscribe_bytes_max: 256 * MIB,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            connections_max: 1024,
            connections_per_ip_max: 256,
            peer_connections_max: 128,
            connection_handshake_timeout_ms: 10_000,
            // Kafka's connections.max.idle.ms.
            connection_idle_timeout_ms: 600_000,
            http2_keepalive_interval_ms: 20_000,
            http2_keepalive_timeout_ms: 10_000,
            http2_streams_per_connection_max: 256,
            http2_stream_window_bytes: 2 * MIB,
            http2_connection_window_bytes: 4 * MIB,
        }
    }
}

impl Config {
    /// The address clients use to reach this node: `advertise`, else `listen`.
    pub fn advertise_addr(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }

    /// The address the other nodes use: `peer_advertise`, else `peer_listen`.
    pub fn peer_advertise_addr(&self) -> &str {
        self.peer_advertise.as_deref().unwrap_or(&self.peer_listen)
    }
}

/// Helpers shared by the tests of every file of this module.
#[cfg(test)]
mod testing {
    use std::path::{Path, PathBuf};

    use super::*;

    pub fn peers(spec: &str) -> Vec<Peer> {
        parse_initial_cluster(spec).expect("test peer list parses")
    }

    /// Node 1 of a 3-node local cluster: the smallest config that validates.
    pub fn node1() -> Config {
        Config {
            node_id: 1,
            initial_cluster: peers("1=127.0.0.1:7201,2=127.0.0.1:7202,3=127.0.0.1:7203"),
            ..Config::default()
        }
    }

    /// The problems [`Config::validate`] reports; none when it accepts `config`.
    pub fn problems(config: &Config) -> Vec<String> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid(problems)) => problems,
            Err(other) => panic!("validate returned a non-Invalid error: {other}"),
        }
    }

    /// Writes `text` as `evlog.toml` in `dir` and returns its path.
    pub fn write_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("evlog.toml");
        std::fs::write(&path, text).expect("write test config file");
        path
    }

    /// Loads `path` with no environment and no flags.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        Config::load(Some(path), &[], &FlagOverrides::default())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{node1, problems};
    use super::*;

    #[test]
    fn defaults_with_identity_set_validate() {
        // Goal: the defaults are a working config once the two identity fields are given.
        // Method: validate node 1 of a local 3-node cluster built on Config::default().
        assert_eq!(node1().validate().ok(), Some(()));
        assert_eq!(node1().advertise_addr(), "127.0.0.1:7101");
        assert_eq!(node1().peer_advertise_addr(), "127.0.0.1:7201");
    }

    #[test]
    fn defaults_without_identity_report_node_id_and_initial_cluster() {
        // Goal: an empty config names both missing identity fields. Method: validate default.
        let problems = problems(&Config::default());
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("node_id is not set"));
        assert!(problems[1].contains("initial_cluster is empty"));
    }
}

//! The node's configuration tree: everything a node needs to start, with a default for
//! everything except its identity (`node_id`, `initial_cluster`).
//!
//! Layers, later wins: built-in defaults < TOML file (`--config PATH`) < `EVLOG_*`
//! environment variables < command-line flags. [`Config::load`] stacks the layers;
//! [`Config::validate`] checks the result and reports every problem at once, so an operator
//! fixes a config in one pass instead of one restart per mistake.
//!
//! Environment variables name a field by its path: `EVLOG_NODE_ID`, `EVLOG_LISTEN`,
//! `EVLOG_ADVERTISE`, `EVLOG_DATA_DIR`, `EVLOG_INITIAL_CLUSTER` (flag syntax
//! `1=HOST:PORT,2=HOST:PORT`), and a nested field as `EVLOG_<SECTION>__<FIELD>`, e.g.
//! `EVLOG_RAFT__HEARTBEAT_INTERVAL_MS=50`. They are applied generically through the TOML tree,
//! so a new field needs no code here. An `EVLOG_` variable that names no field is an error:
//! a typo must not silently leave a default in place. Variables owned by other tools
//! ([`OTHER_TOOLS_ENV_VARS`], [`OTHER_TOOLS_ENV_PREFIXES`]) are ignored.
//!
//! Units are the last word of every field name (`_ms`, `_bytes`, `_entries`, ...).

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::{Deserialize, Serialize};

/// Prefix of every environment variable the node reads.
pub const ENV_PREFIX: &str = "EVLOG_";

/// `EVLOG_` variables that belong to other tools (the `evlog` CLI, the scripts): the node
/// ignores them instead of rejecting them as unknown settings.
pub const OTHER_TOOLS_ENV_VARS: &[&str] = &["EVLOG_BOOTSTRAP", "EVLOG_LOG", "EVLOG_SKIP_LINT"];

/// Prefixes of `EVLOG_` variables that belong to other tools (the simulator and its scripts).
pub const OTHER_TOOLS_ENV_PREFIXES: &[&str] = &["EVLOG_SIM_"];

const MIB: u64 = 1024 * 1024;

/// A node's whole configuration. See [`Config::to_toml_string`] for every field explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's id, >= 1. 0 means "not set" and fails validation.
    pub node_id: u64,
    /// Socket address this node binds (gRPC for clients and peers).
    pub listen: String,
    /// Address other nodes and clients use to reach this node; `None` means `listen`.
    pub advertise: Option<String>,
    /// Directory of this node's RocksDB.
    pub data_dir: PathBuf,
    /// The initial voters, this node included; the same list on every node.
    pub initial_cluster: Vec<Peer>,
    pub raft: RaftConfig,
    pub produce: ProduceConfig,
    pub read: ReadConfig,
    pub storage: StorageConfig,
    /// How long a shutdown waits for in-flight requests before closing anyway.
    pub shutdown_grace_ms: u64,
}

/// One initial voter: `id=addr` on the command line, `{ id = 1, addr = "..." }` in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub id: u64,
    /// `HOST:PORT` the other nodes dial.
    pub addr: String,
}

/// Raft timing and sizes, shared by every partition and the metadata group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub rpc_timeout_ms: u64,
    pub max_payload_entries: u64,
}

/// Limits of the produce path (requests -> batches -> Raft entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProduceConfig {
    pub batch_bytes_max: u64,
    pub batch_events_max: u64,
    pub inflight_entries_max: u64,
    pub request_bytes_max: u64,
    pub default_max_event_bytes: u64,
    pub request_timeout_ms: u64,
}

/// Limits of the read and subscribe path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadConfig {
    pub response_bytes_max: u64,
    pub subscribe_buffer_messages: u64,
}

/// RocksDB and group-commit sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub block_cache_bytes: u64,
    pub write_buffer_bytes: u64,
    pub group_commit_max_waiters: u64,
}

/// The command-line layer: `Some` wins over the file and the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagOverrides {
    pub node_id: Option<u64>,
    pub listen: Option<String>,
    pub advertise: Option<String>,
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
            listen: "127.0.0.1:7101".to_owned(),
            advertise: None,
            data_dir: PathBuf::from("./evlog-data"),
            initial_cluster: Vec::new(),
            raft: RaftConfig::default(),
            produce: ProduceConfig::default(),
            read: ReadConfig::default(),
            storage: StorageConfig::default(),
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
            rpc_timeout_ms: 1000,
            max_payload_entries: 512,
        }
    }
}

impl Default for ProduceConfig {
    fn default() -> Self {
        ProduceConfig {
            batch_bytes_max: MIB,
            batch_events_max: 10_000,
            inflight_entries_max: 64,
            request_bytes_max: 8 * MIB,
            default_max_event_bytes: MIB,
            request_timeout_ms: 10_000,
        }
    }
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            response_bytes_max: MIB,
            subscribe_buffer_messages: 16,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            block_cache_bytes: 64 * MIB,
            write_buffer_bytes: 64 * MIB,
            group_commit_max_waiters: 4096,
        }
    }
}

impl Config {
    /// Stacks the layers: defaults < `file` < `EVLOG_*` variables in `env` (pass
    /// `std::env::vars()` collected; other variables are ignored) < `overrides`.
    /// Does not validate: call [`Config::validate`] on the result.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        overrides: &FlagOverrides,
    ) -> Result<Config, ConfigError> {
        let config = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let mut config = config.with_env(env)?;
        overrides.apply_to(&mut config);
        Ok(config)
    }

    /// Reads a TOML file; fields it does not mention keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Toml {
            path: path.to_owned(),
            source,
        })
    }

    /// The address peers and clients use to reach this node: `advertise`, else `listen`.
    pub fn advertise_addr(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }

    /// Checks every rule and reports every broken one, one sentence each.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let advertise_ok = self.check_identity(&mut problems);
        self.check_initial_cluster(advertise_ok, &mut problems);
        self.raft.check(&mut problems);
        self.produce.check(&mut problems);
        self.read.check(&mut problems);
        self.storage.check(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

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
            if section.is_empty() && trimmed.starts_with("listen = ") && self.advertise.is_none() {
                out.push('\n');
                push_doc(&mut out, "advertise");
                out.push_str("# advertise = \"10.0.0.5:7101\"\n");
            }
        }
        out
    }

    /// Returns whether the advertised address is usable (else it is reported already).
    fn check_identity(&self, problems: &mut Vec<String>) -> bool {
        if self.node_id == 0 {
            problems.push(
                "node_id is not set: give every node a unique id >= 1 \
                 (--node-id, EVLOG_NODE_ID or node_id in the config file)"
                    .to_owned(),
            );
        }
        let reported = problems.len();
        match self.listen.parse::<SocketAddr>() {
            Err(_) => problems.push(format!(
                "listen {:?} is not a socket address IP:PORT (e.g. 127.0.0.1:7101 or 0.0.0.0:7101)",
                self.listen
            )),
            Ok(addr) if addr.port() == 0 => problems.push(format!(
                "listen {:?} has port 0, a random port that peers cannot know",
                self.listen
            )),
            Ok(addr) if addr.ip().is_unspecified() && self.advertise.is_none() => {
                problems.push(format!(
                    "listen {:?} is a wildcard address: set advertise to an address that peers \
                     and clients can reach",
                    self.listen
                ))
            }
            Ok(_) => {}
        }
        if let Some(advertise) = &self.advertise {
            if let Err(why) = check_dialable(advertise) {
                problems.push(format!("advertise {advertise:?} {why}"));
            }
        }
        let advertise_ok = problems.len() == reported;
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir is empty".to_owned());
        }
        advertise_ok
    }

    /// `advertise_ok`: false when the advertised address was reported as unusable, so a
    /// mismatch with it would only repeat that.
    fn check_initial_cluster(&self, advertise_ok: bool, problems: &mut Vec<String>) {
        if self.initial_cluster.is_empty() {
            problems.push(
                "initial_cluster is empty: list every initial voter, this node included \
                 (e.g. --initial-cluster 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103)"
                    .to_owned(),
            );
            return;
        }
        let mut ids_by_addr: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut count_by_id: BTreeMap<u64, usize> = BTreeMap::new();
        for peer in &self.initial_cluster {
            if peer.id == 0 {
                problems.push(format!(
                    "initial_cluster has node id 0 (address {:?}): node ids start at 1",
                    peer.addr
                ));
            }
            if let Err(why) = check_dialable(&peer.addr) {
                problems.push(format!(
                    "initial_cluster: node {} address {:?} {why}",
                    peer.id, peer.addr
                ));
            }
            ids_by_addr.entry(&peer.addr).or_default().push(peer.id);
            *count_by_id.entry(peer.id).or_default() += 1;
        }
        for (id, count) in count_by_id.iter().filter(|(_, count)| **count > 1) {
            problems.push(format!("initial_cluster lists node id {id} {count} times"));
        }
        for (addr, ids) in ids_by_addr.iter().filter(|(_, ids)| ids.len() > 1) {
            problems.push(format!(
                "initial_cluster gives the same address {addr:?} to nodes {ids:?}"
            ));
        }
        if self.node_id == 0 {
            return; // Already reported; "does not contain node 0" would only add noise.
        }
        let advertised = self.advertise_addr();
        let source = if self.advertise.is_some() {
            "advertise"
        } else {
            "listen, as advertise is not set"
        };
        match self.initial_cluster.iter().find(|p| p.id == self.node_id) {
            None => problems.push(format!(
                "initial_cluster ({}) does not contain this node (node_id {})",
                format_initial_cluster(&self.initial_cluster),
                self.node_id
            )),
            Some(me) if advertise_ok && me.addr != advertised => problems.push(format!(
                "initial_cluster gives this node (node_id {}) the address {:?}, but it \
                 advertises {advertised:?} ({source}): they must be equal",
                self.node_id, me.addr
            )),
            Some(_) => {}
        }
    }

    /// Applies the `EVLOG_*` variables of `env` in name order (deterministic errors).
    fn with_env(self, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut vars: Vec<&(String, String)> = env
            .iter()
            .filter(|(var, _)| var.starts_with(ENV_PREFIX) && !is_other_tools_var(var))
            .collect();
        vars.sort();
        vars.into_iter()
            .try_fold(self, |config, (var, raw)| config.with_env_var(var, raw))
    }

    /// Sets the field that `var` names through the TOML tree, so every field, present or
    /// future, is settable without code here; deserializing back checks name and type.
    fn with_env_var(self, var: &str, raw: &str) -> Result<Config, ConfigError> {
        let env_error = |message: String| ConfigError::Env {
            var: var.to_owned(),
            message,
        };
        let key = &var[ENV_PREFIX.len()..];
        if key == "INITIAL_CLUSTER" {
            let initial_cluster =
                parse_initial_cluster(raw).map_err(|e| env_error(e.to_string()))?;
            return Ok(Config {
                initial_cluster,
                ..self
            });
        }
        let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
        let unknown = || {
            env_error(format!(
                "unknown variable: there is no setting `{}` (a nested setting is \
                 EVLOG_<SECTION>__<FIELD>, e.g. EVLOG_RAFT__HEARTBEAT_INTERVAL_MS)",
                path.join(".")
            ))
        };
        let Some((leaf, sections)) = path.split_last() else {
            return Err(unknown());
        };
        if path.iter().any(String::is_empty) {
            return Err(unknown());
        }
        let mut tree = toml::Table::try_from(&self)
            .map_err(|e| env_error(format!("cannot apply to the current config: {e}")))?;
        let mut table = &mut tree;
        for section in sections {
            table = match table.get_mut(section.as_str()) {
                Some(toml::Value::Table(inner)) => inner,
                _ => return Err(unknown()),
            };
        }
        let value = match table.get(leaf.as_str()) {
            Some(toml::Value::Table(_)) => {
                return Err(env_error(format!(
                    "`{}` is a section: set its fields one by one, e.g. {var}__<FIELD>",
                    path.join(".")
                )))
            }
            Some(current) => parse_like(current, raw).map_err(env_error)?,
            // An unset optional field, or no field at all: deserializing tells them apart.
            None => toml::Value::String(raw.to_owned()),
        };
        let was_present = table.insert(leaf.clone(), value).is_some();
        toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| {
                if !was_present && e.message().contains("unknown field") {
                    unknown()
                } else {
                    env_error(format!("invalid value {raw:?}: {}", e.message().trim()))
                }
            })
    }
}

impl RaftConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_positive(
            problems,
            &[
                ("raft.heartbeat_interval_ms", self.heartbeat_interval_ms),
                ("raft.rpc_timeout_ms", self.rpc_timeout_ms),
                ("raft.max_payload_entries", self.max_payload_entries),
            ],
        );
        if self.election_timeout_min_ms <= self.heartbeat_interval_ms.saturating_mul(2) {
            problems.push(format!(
                "raft.election_timeout_min_ms ({}) must be more than twice \
                 raft.heartbeat_interval_ms ({}), so that one late heartbeat does not start \
                 an election",
                self.election_timeout_min_ms, self.heartbeat_interval_ms
            ));
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            problems.push(format!(
                "raft.election_timeout_max_ms ({}) must be greater than \
                 raft.election_timeout_min_ms ({}): timeouts are drawn at random between them \
                 so that candidates do not collide",
                self.election_timeout_max_ms, self.election_timeout_min_ms
            ));
        }
    }
}

impl ProduceConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_positive(
            problems,
            &[
                ("produce.batch_bytes_max", self.batch_bytes_max),
                ("produce.batch_events_max", self.batch_events_max),
                ("produce.inflight_entries_max", self.inflight_entries_max),
                ("produce.request_bytes_max", self.request_bytes_max),
                (
                    "produce.default_max_event_bytes",
                    self.default_max_event_bytes,
                ),
                ("produce.request_timeout_ms", self.request_timeout_ms),
            ],
        );
        if self.default_max_event_bytes > self.request_bytes_max {
            problems.push(format!(
                "produce.default_max_event_bytes ({}) is larger than produce.request_bytes_max \
                 ({}): an event that large could never be sent",
                self.default_max_event_bytes, self.request_bytes_max
            ));
        }
    }
}

impl ReadConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_positive(
            problems,
            &[
                ("read.response_bytes_max", self.response_bytes_max),
                (
                    "read.subscribe_buffer_messages",
                    self.subscribe_buffer_messages,
                ),
            ],
        );
    }
}

impl StorageConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_positive(
            problems,
            &[
                ("storage.block_cache_bytes", self.block_cache_bytes),
                ("storage.write_buffer_bytes", self.write_buffer_bytes),
                (
                    "storage.group_commit_max_waiters",
                    self.group_commit_max_waiters,
                ),
            ],
        );
    }
}

impl FlagOverrides {
    fn apply_to(&self, config: &mut Config) {
        if let Some(node_id) = self.node_id {
            config.node_id = node_id;
        }
        if let Some(listen) = &self.listen {
            config.listen.clone_from(listen);
        }
        if let Some(advertise) = &self.advertise {
            config.advertise = Some(advertise.clone());
        }
        if let Some(data_dir) = &self.data_dir {
            config.data_dir.clone_from(data_dir);
        }
        if let Some(initial_cluster) = &self.initial_cluster {
            config.initial_cluster.clone_from(initial_cluster);
        }
    }
}

impl FromStr for Peer {
    type Err = ConfigError;

    /// Parses one `ID=HOST:PORT` entry.
    fn from_str(entry: &str) -> Result<Peer, ConfigError> {
        let error = |message: String| ConfigError::InitialCluster {
            value: entry.to_owned(),
            message,
        };
        let Some((id, addr)) = entry.trim().split_once('=') else {
            return Err(error(format!("entry {entry:?} is not ID=HOST:PORT")));
        };
        let (id, addr) = (id.trim(), addr.trim());
        let id: u64 = id
            .parse()
            .map_err(|_| error(format!("{id:?} is not a node id (a whole number >= 1)")))?;
        if id == 0 {
            return Err(error("node id 0: node ids start at 1".to_owned()));
        }
        if addr.is_empty() {
            return Err(error(format!("node {id} has no address")));
        }
        check_host_port(addr).map_err(|why| error(format!("node {id} address {addr:?} {why}")))?;
        Ok(Peer {
            id,
            addr: addr.to_owned(),
        })
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.id, self.addr)
    }
}

/// Parses `--initial-cluster 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT` (also `EVLOG_INITIAL_CLUSTER`).
pub fn parse_initial_cluster(value: &str) -> Result<Vec<Peer>, ConfigError> {
    let error = |message: String| ConfigError::InitialCluster {
        value: value.to_owned(),
        message,
    };
    if value.trim().is_empty() {
        return Err(error("it is empty".to_owned()));
    }
    let mut peers: Vec<Peer> = Vec::new();
    for entry in value.split(',') {
        if entry.trim().is_empty() {
            return Err(error("it has an empty entry".to_owned()));
        }
        let peer: Peer = entry.parse().map_err(|e| match e {
            ConfigError::InitialCluster { message, .. } => error(message),
            other => other,
        })?;
        if peers.iter().any(|p| p.id == peer.id) {
            return Err(error(format!("node id {} is listed twice", peer.id)));
        }
        if let Some(other) = peers.iter().find(|p| p.addr == peer.addr) {
            return Err(error(format!(
                "nodes {} and {} have the same address {:?}",
                other.id, peer.id, peer.addr
            )));
        }
        peers.push(peer);
    }
    Ok(peers)
}

/// The flag form of a peer list, `1=HOST:PORT,2=HOST:PORT`; [`parse_initial_cluster`] reads it.
pub fn format_initial_cluster(peers: &[Peer]) -> String {
    peers
        .iter()
        .map(Peer::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn is_other_tools_var(var: &str) -> bool {
    OTHER_TOOLS_ENV_VARS.contains(&var)
        || OTHER_TOOLS_ENV_PREFIXES
            .iter()
            .any(|prefix| var.starts_with(prefix))
}

fn check_positive(problems: &mut Vec<String>, limits: &[(&str, u64)]) {
    for (name, value) in limits {
        if *value == 0 {
            problems.push(format!("{name} must be greater than 0"));
        }
    }
}

/// `HOST:PORT` with a hostname or IP (IPv6 in brackets) and a port in 1..=65535.
/// The reason it is not, as the end of a sentence, on error.
fn check_host_port(addr: &str) -> Result<(), String> {
    if let Ok(socket) = addr.parse::<SocketAddr>() {
        return if socket.port() == 0 {
            Err("has port 0".to_owned())
        } else {
            Ok(())
        };
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err("has no port (expected HOST:PORT)".to_owned());
    };
    if host.is_empty() {
        return Err("has no host (expected HOST:PORT)".to_owned());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(format!("has port {port:?}, not a number in 1-65535")),
        Ok(_) => {}
    }
    let hostname_chars = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
    if !host.chars().all(hostname_chars) {
        return Err(format!(
            "has host {host:?}, neither a hostname nor an IP address (IPv6 goes in brackets: \
             [::1]:7101)"
        ));
    }
    Ok(())
}

/// [`check_host_port`], and not a wildcard IP such as `0.0.0.0`: nobody can dial that.
fn check_dialable(addr: &str) -> Result<(), String> {
    check_host_port(addr)?;
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => Err("is a wildcard address nobody can dial".to_owned()),
        _ => Ok(()),
    }
}

/// `current` is the field's current TOML value: its type says how to read `raw`.
fn parse_like(current: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    use toml::Value;
    match current {
        Value::String(_) => Ok(Value::String(raw.to_owned())),
        Value::Integer(_) => raw
            .trim()
            .parse()
            .map(Value::Integer)
            .map_err(|_| format!("expected an integer, got {raw:?}")),
        Value::Float(_) => raw
            .trim()
            .parse()
            .map(Value::Float)
            .map_err(|_| format!("expected a number, got {raw:?}")),
        Value::Boolean(_) => match raw.trim() {
            "true" => Ok(Value::Boolean(true)),
            "false" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        Value::Datetime(_) => raw
            .trim()
            .parse()
            .map(Value::Datetime)
            .map_err(|_| format!("expected a TOML date-time, got {raw:?}")),
        Value::Array(_) | Value::Table(_) => {
            Err("a list or section cannot be set from the environment: use the config file".into())
        }
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
        "listen",
        "Socket address this node binds: gRPC for clients and for the other nodes.\n\
         Flag --listen.",
    ),
    (
        "advertise",
        "Address the other nodes and clients use to reach this node; default: listen.\n\
         Required when listen is a wildcard such as 0.0.0.0:7101. Flag --advertise.",
    ),
    (
        "data_dir",
        "Directory of this node's RocksDB: one directory per node, on a disk that honors \
         fsync.\nFlag --data-dir.",
    ),
    (
        "initial_cluster",
        "The initial voters, this node included, the same list on every node; they form the\n\
         metadata group. Each node's addr must equal its advertise (or listen) address.\n\
         initial_cluster = [{ id = 1, addr = \"127.0.0.1:7101\" }, { id = 2, addr = \"127.0.0.1:7102\" }]\n\
         Flag --initial-cluster 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103.",
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
        "raft.rpc_timeout_ms",
        "Timeout of one Raft RPC between two nodes.",
    ),
    (
        "raft.max_payload_entries",
        "Most log entries sent in one AppendEntries RPC.",
    ),
    (
        "produce",
        "Limits of the produce path: requests are coalesced into batches, one batch per Raft \
         entry.",
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
        "Largest produce request accepted; a larger one is refused with an error.",
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
    ("read", "Limits of the read and subscribe path."),
    (
        "read.response_bytes_max",
        "Most bytes of events in one read response or subscription message.",
    ),
    (
        "read.subscribe_buffer_messages",
        "Messages a subscription buffers ahead of a slow client before it waits.",
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
];

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(spec: &str) -> Vec<Peer> {
        parse_initial_cluster(spec).expect("test peer list parses")
    }

    /// Node 1 of a 3-node local cluster: the smallest config that validates.
    fn node1() -> Config {
        Config {
            node_id: 1,
            initial_cluster: peers("1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103"),
            ..Config::default()
        }
    }

    fn problems(config: &Config) -> Vec<String> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid(problems)) => problems,
            Err(other) => panic!("validate returned a non-Invalid error: {other}"),
        }
    }

    /// Asserts `config` has exactly one problem and that it mentions every `needle`.
    fn assert_one_problem(config: &Config, needles: &[&str]) {
        let problems = problems(config);
        assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
        for needle in needles {
            assert!(
                problems[0].contains(needle),
                "problem {:?} does not mention {needle:?}",
                problems[0]
            );
        }
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(None, &env(vars), &FlagOverrides::default())
    }

    fn write_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("evlog.toml");
        std::fs::write(&path, text).expect("write test config file");
        path
    }

    fn env_error_var(result: Result<Config, ConfigError>) -> (String, String) {
        match result {
            Err(ConfigError::Env { var, message }) => (var, message),
            other => panic!("expected an Env error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_with_identity_set_validate() {
        // Goal: the defaults are a working config once the two identity fields are given.
        // Method: validate node 1 of a local 3-node cluster built on Config::default().
        assert_eq!(node1().validate().ok(), Some(()));
        assert_eq!(node1().advertise_addr(), "127.0.0.1:7101");
    }

    #[test]
    fn defaults_without_identity_report_node_id_and_initial_cluster() {
        // Goal: an empty config names both missing identity fields. Method: validate default.
        let problems = problems(&Config::default());
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("node_id is not set"));
        assert!(problems[1].contains("initial_cluster is empty"));
    }

    #[test]
    fn validate_reports_every_problem_one_per_line() {
        // Goal: every problem is reported at once, one per Display line.
        // Method: break three unrelated rules and count problems and lines.
        let mut config = node1();
        config.listen = "nowhere".to_owned();
        config.raft.election_timeout_max_ms = config.raft.election_timeout_min_ms;
        config.produce.batch_events_max = 0;
        let error = config.validate().expect_err("three broken rules");
        let ConfigError::Invalid(list) = &error else {
            panic!("expected Invalid, got {error:?}");
        };
        assert_eq!(list.len(), 3, "{list:#?}");
        let text = error.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "invalid configuration:");
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].contains("listen \"nowhere\""));
        assert!(lines[2].contains("election_timeout_max_ms"));
        assert!(lines[3].contains("produce.batch_events_max must be greater than 0"));
    }

    #[test]
    fn validate_rejects_listen_that_is_not_a_socket_address() {
        // Goal: hostnames and port 0 are refused for the bind address. Method: one each.
        let mut config = node1();
        config.listen = "localhost:7101".to_owned();
        assert_one_problem(
            &config,
            &["listen \"localhost:7101\"", "not a socket address"],
        );
        config.listen = "127.0.0.1:0".to_owned();
        assert_one_problem(&config, &["port 0"]);
    }

    #[test]
    fn validate_rejects_wildcard_listen_without_advertise() {
        // Goal: 0.0.0.0 needs an advertise address. Method: wildcard listen, then advertise.
        let mut config = node1();
        config.listen = "0.0.0.0:7101".to_owned();
        assert_one_problem(&config, &["wildcard", "advertise"]);
        config.advertise = Some("127.0.0.1:7101".to_owned());
        assert_eq!(problems(&config), Vec::<String>::new());
    }

    #[test]
    fn validate_rejects_duplicate_ids_and_addresses() {
        // Goal: duplicates in a TOML-given cluster (not parsed by the flag parser) are caught.
        // Method: build the lists by hand.
        let mut config = node1();
        config.initial_cluster.push(Peer {
            id: 2,
            addr: "127.0.0.1:7109".to_owned(),
        });
        assert_one_problem(&config, &["node id 2 2 times"]);
        let mut config = node1();
        config.initial_cluster[2].addr = "127.0.0.1:7102".to_owned();
        assert_one_problem(&config, &["same address \"127.0.0.1:7102\"", "[2, 3]"]);
    }

    #[test]
    fn validate_rejects_node_id_zero_in_cluster() {
        // Goal: id 0 is never a valid member. Method: rename member 3 to 0.
        let mut config = node1();
        config.initial_cluster[2].id = 0;
        assert_one_problem(&config, &["node id 0"]);
    }

    #[test]
    fn validate_rejects_undialable_cluster_address() {
        // Goal: member addresses must be dialable HOST:PORT. Method: no port; wildcard IP.
        let mut config = node1();
        config.initial_cluster[1].addr = "host-without-port".to_owned();
        assert_one_problem(&config, &["node 2", "no port"]);
        config.initial_cluster[1].addr = "0.0.0.0:7102".to_owned();
        assert_one_problem(&config, &["node 2", "wildcard"]);
    }

    #[test]
    fn validate_rejects_cluster_without_this_node() {
        // Goal: a node must be one of the initial voters. Method: node_id 4 of a 3-node list.
        let mut config = node1();
        config.node_id = 4;
        assert_one_problem(&config, &["does not contain this node (node_id 4)"]);
    }

    #[test]
    fn validate_rejects_own_entry_that_differs_from_advertise() {
        // Goal: the mismatch names both addresses. Method: advertise, then listen, disagree.
        let mut config = node1();
        config.advertise = Some("10.0.0.1:7101".to_owned());
        assert_one_problem(
            &config,
            &["\"127.0.0.1:7101\"", "\"10.0.0.1:7101\"", "advertise"],
        );
        let mut config = node1();
        config.listen = "127.0.0.1:8000".to_owned();
        assert_one_problem(
            &config,
            &["\"127.0.0.1:7101\"", "\"127.0.0.1:8000\"", "listen"],
        );
    }

    #[test]
    fn validate_rejects_election_timeouts_too_close_to_heartbeat() {
        // Goal: min > 2 x heartbeat and max > min. Method: each bound exactly at the limit.
        let mut config = node1();
        config.raft.heartbeat_interval_ms = 200;
        assert_one_problem(
            &config,
            &["election_timeout_min_ms (400)", "twice", "(200)"],
        );
        let mut config = node1();
        config.raft.election_timeout_max_ms = 400;
        assert_one_problem(&config, &["election_timeout_max_ms (400)"]);
    }

    #[test]
    fn validate_rejects_zero_limits() {
        // Goal: every size and count limit must be positive. Method: zero them all.
        let mut config = node1();
        config.raft.rpc_timeout_ms = 0;
        config.raft.max_payload_entries = 0;
        config.produce = ProduceConfig {
            batch_bytes_max: 0,
            batch_events_max: 0,
            inflight_entries_max: 0,
            request_bytes_max: 0,
            default_max_event_bytes: 0,
            request_timeout_ms: 0,
        };
        config.read = ReadConfig {
            response_bytes_max: 0,
            subscribe_buffer_messages: 0,
        };
        config.storage = StorageConfig {
            block_cache_bytes: 0,
            write_buffer_bytes: 0,
            group_commit_max_waiters: 0,
        };
        let problems = problems(&config);
        assert_eq!(problems.len(), 13, "{problems:#?}");
        assert!(problems
            .iter()
            .all(|p| p.ends_with("must be greater than 0")));
    }

    #[test]
    fn validate_rejects_event_larger_than_request() {
        // Goal: the largest event must fit in a request. Method: one byte more than a request.
        let mut config = node1();
        config.produce.default_max_event_bytes = config.produce.request_bytes_max + 1;
        assert_one_problem(&config, &["default_max_event_bytes", "request_bytes_max"]);
    }

    #[test]
    fn initial_cluster_parses_flag_syntax() {
        // Goal: the flag syntax round-trips, spaces allowed. Method: parse, format, parse.
        let parsed = peers(" 1=127.0.0.1:7101, 2=node-2.evlog:7101 ,3=[::1]:7103");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[1].addr, "node-2.evlog:7101");
        let text = format_initial_cluster(&parsed);
        assert_eq!(text, "1=127.0.0.1:7101,2=node-2.evlog:7101,3=[::1]:7103");
        assert_eq!(peers(&text), parsed);
    }

    #[test]
    fn initial_cluster_rejects_malformed_entries() {
        // Goal: each malformed form fails with a message saying why.
        // Method: one input per mistake, checked against a fragment of its message.
        let cases = [
            ("1=", "has no address"),
            ("x=a:1", "\"x\" is not a node id"),
            ("1=a:1,1=b:2", "node id 1 is listed twice"),
            ("1=a:1,2=a:1", "same address"),
            ("0=a:1", "node ids start at 1"),
            ("a:1", "is not ID=HOST:PORT"),
            ("1=a", "no port"),
            ("1=a:99999", "not a number in 1-65535"),
            ("1=a:1,", "empty entry"),
            ("", "it is empty"),
        ];
        for (input, fragment) in cases {
            match parse_initial_cluster(input) {
                Err(error @ ConfigError::InitialCluster { .. }) => {
                    let text = error.to_string();
                    assert!(
                        text.contains(fragment),
                        "{input:?}: {text:?} lacks {fragment:?}"
                    );
                    assert!(
                        text.contains(&format!("{input:?}")),
                        "{text:?} lacks the input"
                    );
                }
                other => panic!("{input:?}: expected an InitialCluster error, got {other:?}"),
            }
        }
    }

    #[test]
    fn load_applies_file_then_env_then_flags() {
        // Goal: defaults < file < env < flags. Method: set `listen` in all three layers and
        // one distinct field per layer; every layer's own field survives, the top wins listen.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_file(
            &dir,
            "node_id = 7\nlisten = \"127.0.0.1:1001\"\n[read]\nresponse_bytes_max = 4096\n",
        );
        let vars = env(&[
            ("EVLOG_LISTEN", "127.0.0.1:1002"),
            ("EVLOG_DATA_DIR", "/var/lib/evlog"),
            ("PATH", "/usr/bin"),
        ]);
        let flags = FlagOverrides {
            listen: Some("127.0.0.1:1003".to_owned()),
            advertise: Some("10.1.1.1:1003".to_owned()),
            ..FlagOverrides::default()
        };
        let config = Config::load(Some(&path), &vars, &flags).expect("loads");
        assert_eq!(config.listen, "127.0.0.1:1003");
        assert_eq!(config.node_id, 7);
        assert_eq!(config.read.response_bytes_max, 4096);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/evlog"));
        assert_eq!(config.advertise_addr(), "10.1.1.1:1003");
        assert_eq!(config.raft, RaftConfig::default());

        let without_flags = Config::load(Some(&path), &vars, &FlagOverrides::default());
        assert_eq!(without_flags.expect("loads").listen, "127.0.0.1:1002");
        let file_only = Config::load(Some(&path), &[], &FlagOverrides::default());
        assert_eq!(file_only.expect("loads").listen, "127.0.0.1:1001");
    }

    #[test]
    fn env_sets_nested_fields_and_identity() {
        // Goal: EVLOG_<SECTION>__<FIELD> and the identity variables reach their fields.
        // Method: set one of each kind and compare with the expected config.
        let config = load_env(&[
            ("EVLOG_PRODUCE__BATCH_BYTES_MAX", "2097152"),
            ("EVLOG_RAFT__HEARTBEAT_INTERVAL_MS", "50"),
            ("EVLOG_NODE_ID", "2"),
            ("EVLOG_ADVERTISE", "node-2.evlog:7101"),
            ("EVLOG_INITIAL_CLUSTER", "1=a:1,2=node-2.evlog:7101"),
        ])
        .expect("loads");
        let mut expected = Config {
            node_id: 2,
            advertise: Some("node-2.evlog:7101".to_owned()),
            initial_cluster: peers("1=a:1,2=node-2.evlog:7101"),
            ..Config::default()
        };
        expected.produce.batch_bytes_max = 2 * MIB;
        expected.raft.heartbeat_interval_ms = 50;
        assert_eq!(config, expected);
    }

    #[test]
    fn env_rejects_unknown_variable_by_name() {
        // Goal: a typo is an error naming the variable; other tools' variables are ignored.
        // Method: misspelled top-level and nested names, a section name, then foreign ones.
        for var in [
            "EVLOG_NODEID",
            "EVLOG_RAFT__HEARTBEAT_MS",
            "EVLOG_NOPE__X",
            "EVLOG_",
            "EVLOG_RAFT____X",
        ] {
            let (named, message) = env_error_var(load_env(&[(var, "1")]));
            assert_eq!(named, var);
            assert!(message.contains("unknown variable"), "{var}: {message}");
        }
        let (_, message) = env_error_var(load_env(&[("EVLOG_RAFT", "1")]));
        assert!(message.contains("is a section"), "{message}");
        let foreign = [
            ("EVLOG_BOOTSTRAP", "127.0.0.1:7101"),
            ("EVLOG_LOG", "debug"),
            ("EVLOG_SIM_SEED", "42"),
        ];
        assert_eq!(load_env(&foreign).expect("ignored"), Config::default());
    }

    #[test]
    fn env_rejects_unparsable_value_with_expected_type() {
        // Goal: a bad value names the variable and the expected type.
        // Method: text, a negative number, and a bad peer list for integer and list fields.
        let (var, message) = env_error_var(load_env(&[("EVLOG_RAFT__RPC_TIMEOUT_MS", "1s")]));
        assert_eq!(var, "EVLOG_RAFT__RPC_TIMEOUT_MS");
        assert!(message.contains("expected an integer"), "{message}");
        let (var, message) = env_error_var(load_env(&[("EVLOG_NODE_ID", "-1")]));
        assert_eq!(var, "EVLOG_NODE_ID");
        assert!(message.contains("u64"), "{message}");
        let (var, message) = env_error_var(load_env(&[("EVLOG_INITIAL_CLUSTER", "1=")]));
        assert_eq!(var, "EVLOG_INITIAL_CLUSTER");
        assert!(message.contains("has no address"), "{message}");
    }

    #[test]
    fn file_rejects_unknown_fields() {
        // Goal: a misspelled key in a file fails with the file's path, at any depth.
        // Method: one unknown top-level key, one unknown section key, one unknown peer key.
        let dir = tempfile::tempdir().expect("tempdir");
        for text in [
            "node_idd = 1\n",
            "[raft]\nheartbeat_ms = 5\n",
            "initial_cluster = [{ id = 1, address = \"a:1\" }]\n",
        ] {
            let path = write_file(&dir, text);
            match Config::load(Some(&path), &[], &FlagOverrides::default()) {
                Err(error @ ConfigError::Toml { .. }) => {
                    let message = error.to_string();
                    assert!(message.contains("unknown field"), "{message}");
                    assert!(message.contains("evlog.toml"), "{message}");
                }
                other => panic!("{text:?}: expected a Toml error, got {other:?}"),
            }
        }
    }

    #[test]
    fn file_that_does_not_exist_is_an_io_error() {
        // Goal: a wrong --config path says which path. Method: load a path that is not there.
        let path = Path::new("/nonexistent/evlog.toml");
        match Config::load(Some(path), &[], &FlagOverrides::default()) {
            Err(error @ ConfigError::Io { .. }) => {
                assert!(error.to_string().contains("/nonexistent/evlog.toml"));
            }
            other => panic!("expected an Io error, got {other:?}"),
        }
    }

    #[test]
    fn file_accepts_inline_initial_cluster() {
        // Goal: the documented TOML form of initial_cluster loads. Method: load it.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_file(
            &dir,
            "node_id = 1\ninitial_cluster = [{ id = 1, addr = \"127.0.0.1:7101\" }, \
             { id = 2, addr = \"127.0.0.1:7102\" }, { id = 3, addr = \"127.0.0.1:7103\" }]\n",
        );
        let config = Config::load(Some(&path), &[], &FlagOverrides::default()).expect("loads");
        assert_eq!(config, node1());
    }

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
            let loaded = Config::load(Some(&path), &[], &FlagOverrides::default());
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
        assert!(text.contains("\n# Most bytes of events in one batch.\nbatch_bytes_max = "));
    }
}

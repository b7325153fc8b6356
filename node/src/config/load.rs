//! Building a [`Config`] from its layers, later wins: defaults < TOML file < `EVLOG_*`
//! environment variables < command-line flags ([`FlagOverrides`]); and the flag syntax of a
//! peer list, `ID=HOST:PORT,ID=HOST:PORT` ([`parse_initial_cluster`],
//! [`format_initial_cluster`]).
//!
//! Environment variables are applied through the TOML tree of the current config, so every
//! field, present or future, is settable without code here, and deserializing the tree back
//! checks the variable's name and the value's type.

use std::{fmt, path::Path, str::FromStr};

use super::{
    validate::check_host_port, Config, ConfigError, FlagOverrides, Peer, ENV_PREFIX,
    OTHER_TOOLS_ENV_PREFIXES, OTHER_TOOLS_ENV_VARS,
};

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

impl FlagOverrides {
    fn apply_to(&self, config: &mut Config) {
        if let Some(node_id) = self.node_id {
            config.node_id = node_id;
        }
        if let Some(cluster_id) = &self.cluster_id {
            config.cluster_id.clone_from(cluster_id);
        }
        if let Some(listen) = &self.listen {
            config.listen.clone_from(listen);
        }
        if let Some(advertise) = &self.advertise {
            config.advertise = Some(advertise.clone());
        }
        if let Some(peer_listen) = &self.peer_listen {
            config.peer_listen.clone_from(peer_listen);
        }
        if let Some(peer_advertise) = &self.peer_advertise {
            config.peer_advertise = Some(peer_advertise.clone());
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
        parse_peer(entry).map_err(invalid_cluster(entry))
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.id, self.addr)
    }
}

/// Parses `--initial-cluster 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT` (also `EVLOG_INITIAL_CLUSTER`).
pub fn parse_initial_cluster(value: &str) -> Result<Vec<Peer>, ConfigError> {
    let error = invalid_cluster(value);
    if value.trim().is_empty() {
        return Err(error("it is empty".to_owned()));
    }
    let mut peers: Vec<Peer> = Vec::new();
    for entry in value.split(',') {
        if entry.trim().is_empty() {
            return Err(error("it has an empty entry".to_owned()));
        }
        let peer = parse_peer(entry).map_err(&error)?;
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

/// The error for a peer list or entry `value`, built from the reason it is invalid.
fn invalid_cluster(value: &str) -> impl Fn(String) -> ConfigError + '_ {
    move |message| ConfigError::InitialCluster {
        value: value.to_owned(),
        message,
    }
}

/// One `ID=HOST:PORT` entry; the reason it is not one on error.
fn parse_peer(entry: &str) -> Result<Peer, String> {
    let Some((id, addr)) = entry.trim().split_once('=') else {
        return Err(format!("entry {entry:?} is not ID=HOST:PORT"));
    };
    let (id, addr) = (id.trim(), addr.trim());
    let id: u64 = id
        .parse()
        .map_err(|_| format!("{id:?} is not a node id (a whole number >= 1)"))?;
    if id == 0 {
        return Err("node id 0: node ids start at 1".to_owned());
    }
    if addr.is_empty() {
        return Err(format!("node {id} has no address"));
    }
    check_host_port(addr).map_err(|why| format!("node {id} address {addr:?} {why}"))?;
    Ok(Peer {
        id,
        addr: addr.to_owned(),
    })
}

fn is_other_tools_var(var: &str) -> bool {
    OTHER_TOOLS_ENV_VARS.contains(&var)
        || OTHER_TOOLS_ENV_PREFIXES
            .iter()
            .any(|prefix| var.starts_with(prefix))
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::{
        testing::{load_file, node1, peers, write_file},
        RaftConfig, MIB,
    };
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(None, &env(vars), &FlagOverrides::default())
    }

    fn env_error_var(result: Result<Config, ConfigError>) -> (String, String) {
        match result {
            Err(ConfigError::Env { var, message }) => (var, message),
            other => panic!("expected an Env error, got {other:?}"),
        }
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
        assert_eq!(load_file(&path).expect("loads").listen, "127.0.0.1:1001");
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
        let (var, message) =
            env_error_var(load_env(&[("EVLOG_RAFT__HEARTBEAT_INTERVAL_MS", "1s")]));
        assert_eq!(var, "EVLOG_RAFT__HEARTBEAT_INTERVAL_MS");
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
            match load_file(&path) {
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
        match load_file(Path::new("/nonexistent/evlog.toml")) {
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
            "node_id = 1\ninitial_cluster = [{ id = 1, addr = \"127.0.0.1:7201\" }, \
             { id = 2, addr = \"127.0.0.1:7202\" }, { id = 3, addr = \"127.0.0.1:7203\" }]\n",
        );
        assert_eq!(load_file(&path).expect("loads"), node1());
    }
}

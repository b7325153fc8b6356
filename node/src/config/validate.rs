//! The rules a loaded [`Config`] must satisfy, checked by [`Config::validate`]: identity and
//! addresses, the initial cluster, and the limits of every section. Every broken rule is
//! reported, one sentence each, so an operator fixes a config in one pass.
//!
//! Also the `HOST:PORT` address rule that the peer-list parser shares.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use evlog_proto::limits::{EVENT_OVERHEAD_BYTES, HEADER_OVERHEAD_BYTES};

use super::{
    format_initial_cluster, Config, ConfigError, GroupsConfig, MemoryConfig, ProduceConfig,
    RaftConfig, ReadConfig, ServerConfig, StorageConfig,
};

impl Config {
    /// Checks every rule and reports every broken one, one sentence each.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let advertise_ok = self.check_identity(&mut problems);
        self.check_initial_cluster(advertise_ok, &mut problems);
        self.raft.check(&mut problems);
        self.produce.check(&mut problems);
        self.read.check(&mut problems);
        self.storage.check(&mut problems);
        self.memory.check(&mut problems);
        self.server.check(&mut problems);
        self.groups.check(&mut problems);
        self.check_limits_fit(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Limits of different sections that must fit in each other: the largest event in a
    /// request, a request in its queue and budget and in one AppendEntries, a subscription
    /// message in the subscription budget.
    fn check_limits_fit(&self, problems: &mut Vec<String>) {
        let p = &self.produce;
        let mut must_fit = |what: &str, size: u64, room: &str, limit: u64| {
            if size > limit {
                problems.push(format!(
                    "{what} ({size}) is larger than {room} ({limit}): it could never be admitted"
                ));
            }
        };
        let largest_event = p
            .default_max_event_bytes
            .saturating_add(EVENT_OVERHEAD_BYTES as u64)
            .saturating_add(
                p.headers_per_event_max
                    .saturating_mul(HEADER_OVERHEAD_BYTES as u64),
            );
        must_fit(
            "produce.default_max_event_bytes plus its overhead",
            largest_event,
            "produce.request_bytes_max",
            p.request_bytes_max,
        );
        must_fit(
            "produce.request_bytes_max",
            p.request_bytes_max,
            "produce.queue_bytes_max",
            p.queue_bytes_max,
        );
        must_fit(
            "produce.request_bytes_max",
            p.request_bytes_max,
            "memory.produce_bytes_max",
            self.memory.produce_bytes_max,
        );
        must_fit(
            "produce.request_bytes_max",
            p.request_bytes_max,
            "raft.append_entries_bytes_max",
            self.raft.append_entries_bytes_max,
        );
        must_fit(
            "produce.batch_bytes_max",
            p.batch_bytes_max,
            "raft.append_entries_bytes_max",
            self.raft.append_entries_bytes_max,
        );
        must_fit(
            "read.subscribe_buffer_bytes_max",
            self.read.subscribe_buffer_bytes_max,
            "memory.subscribe_bytes_max",
            self.memory.subscribe_bytes_max,
        );
    }

    /// Returns whether the advertised peer address is usable (else it is reported already).
    fn check_identity(&self, problems: &mut Vec<String>) -> bool {
        if self.node_id == 0 {
            problems.push(
                "node_id is not set: give every node a unique id >= 1 \
                 (--node-id, EVLOG_NODE_ID or node_id in the config file)"
                    .to_owned(),
            );
        }
        let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.cluster_id.is_empty()
            || self.cluster_id.len() > 64
            || !self.cluster_id.chars().all(id_ok)
        {
            problems.push(format!(
                "cluster_id {:?} must be 1 to 64 ASCII letters, digits, '.', '_' or '-'",
                self.cluster_id
            ));
        }
        check_listener(
            problems,
            ("listen", &self.listen),
            ("advertise", &self.advertise),
        );
        let reported = problems.len();
        check_listener(
            problems,
            ("peer_listen", &self.peer_listen),
            ("peer_advertise", &self.peer_advertise),
        );
        let peer_advertise_ok = problems.len() == reported;
        if let (Ok(client), Ok(peer)) = (
            self.listen.parse::<SocketAddr>(),
            self.peer_listen.parse::<SocketAddr>(),
        ) {
            let clash = client.port() == peer.port()
                && (client.ip() == peer.ip()
                    || client.ip().is_unspecified()
                    || peer.ip().is_unspecified());
            if clash {
                problems.push(format!(
                    "listen {:?} and peer_listen {:?} are the same socket: clients and peers \
                     get separate listeners (e.g. 127.0.0.1:7101 and 127.0.0.1:7201)",
                    self.listen, self.peer_listen
                ));
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir is empty".to_owned());
        }
        peer_advertise_ok
    }

    /// `advertise_ok`: false when the advertised peer address was reported as unusable,
    /// so a mismatch with it would only repeat that.
    fn check_initial_cluster(&self, advertise_ok: bool, problems: &mut Vec<String>) {
        if self.initial_cluster.is_empty() {
            problems.push(
                "initial_cluster is empty: list every initial voter by its peer address, this \
                 node included (e.g. --initial-cluster \
                 1=127.0.0.1:7201,2=127.0.0.1:7202,3=127.0.0.1:7203)"
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
        let advertised = self.peer_advertise_addr();
        let source = if self.peer_advertise.is_some() {
            "peer_advertise"
        } else {
            "peer_listen, as peer_advertise is not set"
        };
        match self.initial_cluster.iter().find(|p| p.id == self.node_id) {
            None => problems.push(format!(
                "initial_cluster ({}) does not contain this node (node_id {})",
                format_initial_cluster(&self.initial_cluster),
                self.node_id
            )),
            Some(me) if advertise_ok && me.addr != advertised => problems.push(format!(
                "initial_cluster gives this node (node_id {}) the address {:?}, but its peer \
                 address is {advertised:?} ({source}): they must be equal",
                self.node_id, me.addr
            )),
            Some(_) => {}
        }
    }
}

impl RaftConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_positive(
            problems,
            &[
                ("raft.heartbeat_interval_ms", self.heartbeat_interval_ms),
                ("raft.max_payload_entries", self.max_payload_entries),
                (
                    "raft.append_entries_bytes_max",
                    self.append_entries_bytes_max,
                ),
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
                ("produce.request_events_max", self.request_events_max),
                ("produce.headers_per_event_max", self.headers_per_event_max),
                (
                    "produce.default_max_event_bytes",
                    self.default_max_event_bytes,
                ),
                ("produce.request_timeout_ms", self.request_timeout_ms),
                ("produce.queue_requests_max", self.queue_requests_max),
                ("produce.queue_bytes_max", self.queue_bytes_max),
                ("produce.admission_wait_ms", self.admission_wait_ms),
                ("produce.queue_delay_target_ms", self.queue_delay_target_ms),
            ],
        );
        for (name, wait_ms) in [
            ("produce.admission_wait_ms", self.admission_wait_ms),
            ("produce.queue_delay_target_ms", self.queue_delay_target_ms),
        ] {
            if wait_ms >= self.request_timeout_ms {
                problems.push(format!(
                    "{name} ({wait_ms}) must be less than produce.request_timeout_ms ({}): \
                     an admitted request needs time left to be committed",
                    self.request_timeout_ms
                ));
            }
        }
    }
}

impl ServerConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_positive(
            problems,
            &[
                ("server.connections_max", self.connections_max),
                ("server.connections_per_ip_max", self.connections_per_ip_max),
                ("server.peer_connections_max", self.peer_connections_max),
                (
                    "server.connection_handshake_timeout_ms",
                    self.connection_handshake_timeout_ms,
                ),
                (
                    "server.connection_idle_timeout_ms",
                    self.connection_idle_timeout_ms,
                ),
                (
                    "server.http2_keepalive_interval_ms",
                    self.http2_keepalive_interval_ms,
                ),
                (
                    "server.http2_keepalive_timeout_ms",
                    self.http2_keepalive_timeout_ms,
                ),
                (
                    "server.http2_streams_per_connection_max",
                    self.http2_streams_per_connection_max,
                ),
                (
                    "server.http2_stream_window_bytes",
                    self.http2_stream_window_bytes,
                ),
                (
                    "server.http2_connection_window_bytes",
                    self.http2_connection_window_bytes,
                ),
            ],
        );
        // HTTP/2 caps a flow-control window at 2^31 - 1 bytes.
        for (name, window) in [
            (
                "server.http2_stream_window_bytes",
                self.http2_stream_window_bytes,
            ),
            (
                "server.http2_connection_window_bytes",
                self.http2_connection_window_bytes,
            ),
        ] {
            if window > (1 << 31) - 1 {
                problems.push(format!(
                    "{name} ({window}) is above HTTP/2's limit of 2147483647"
                ));
            }
        }
        if self.connections_per_ip_max > self.connections_max {
            problems.push(format!(
                "server.connections_per_ip_max ({}) is larger than server.connections_max ({})",
                self.connections_per_ip_max, self.connections_max
            ));
        }
    }
}

impl MemoryConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_positive(
            problems,
            &[
                ("memory.produce_bytes_max", self.produce_bytes_max),
                ("memory.subscribe_bytes_max", self.subscribe_bytes_max),
            ],
        );
    }
}

impl ReadConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_positive(
            problems,
            &[
                ("read.response_bytes_max", self.response_bytes_max),
                (
                    "read.subscribe_buffer_bytes_max",
                    self.subscribe_buffer_bytes_max,
                ),
                ("read.subscribe_heartbeat_ms", self.subscribe_heartbeat_ms),
                (
                    "read.slow_consumer_timeout_ms",
                    self.slow_consumer_timeout_ms,
                ),
            ],
        );
    }
}

impl GroupsConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_positive(
            problems,
            &[
                ("groups.partitions", self.partitions),
                ("groups.session_timeout_ms_min", self.session_timeout_ms_min),
                ("groups.heartbeat_interval_ms", self.heartbeat_interval_ms),
                ("groups.offsets_retention_ms", self.offsets_retention_ms),
            ],
        );
        let max_partitions = u64::from(crate::metadata::state::PARTITIONS_MAX);
        if self.partitions > max_partitions {
            problems.push(format!(
                "groups.partitions is {}; a topic has at most {max_partitions} partitions",
                self.partitions
            ));
        }
        let (min, default, max) = (
            self.session_timeout_ms_min,
            self.session_timeout_ms,
            self.session_timeout_ms_max,
        );
        if !(min <= default && default <= max) {
            problems.push(format!(
                "groups.session_timeout_ms ({default}) must lie within \
                 groups.session_timeout_ms_min ({min}) and groups.session_timeout_ms_max ({max})"
            ));
        }
        if max > u64::from(u32::MAX) {
            problems.push(format!(
                "groups.session_timeout_ms_max is {max}; at most {} ms",
                u32::MAX
            ));
        }
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
                ("storage.blocking_threads_max", self.blocking_threads_max),
            ],
        );
    }
}

/// One listener: its bind address (`IP:PORT`, port not 0, a wildcard only with an
/// advertised address) and its advertised address (dialable `HOST:PORT`).
fn check_listener(
    problems: &mut Vec<String>,
    (listen_name, listen): (&str, &String),
    (advertise_name, advertise): (&str, &Option<String>),
) {
    match listen.parse::<SocketAddr>() {
        Err(_) => problems.push(format!(
            "{listen_name} {listen:?} is not a socket address IP:PORT (e.g. 127.0.0.1:7101 or \
             0.0.0.0:7101)"
        )),
        Ok(addr) if addr.port() == 0 => problems.push(format!(
            "{listen_name} {listen:?} has port 0, a random port that others cannot know"
        )),
        Ok(addr) if addr.ip().is_unspecified() && advertise.is_none() => problems.push(format!(
            "{listen_name} {listen:?} is a wildcard address: set {advertise_name} to an address \
             the others can reach"
        )),
        Ok(_) => {}
    }
    if let Some(advertise) = advertise {
        if let Err(why) = check_dialable(advertise) {
            problems.push(format!("{advertise_name} {advertise:?} {why}"));
        }
    }
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
pub(super) fn check_host_port(addr: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::super::{
        testing::{node1, problems},
        Peer,
    };
    use super::*;

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
        config.peer_listen = "0.0.0.0:7201".to_owned();
        assert_one_problem(&config, &["peer_listen", "wildcard", "peer_advertise"]);
        config.peer_advertise = Some("127.0.0.1:7201".to_owned());
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
        config.initial_cluster[2].addr = "127.0.0.1:7202".to_owned();
        assert_one_problem(&config, &["same address \"127.0.0.1:7202\"", "[2, 3]"]);
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
    fn validate_rejects_own_entry_that_differs_from_peer_advertise() {
        // Goal: the initial cluster lists peer addresses; the mismatch names both.
        // Method: peer_advertise, then peer_listen, disagree with node 1's entry.
        let mut config = node1();
        config.peer_advertise = Some("10.0.0.1:7201".to_owned());
        assert_one_problem(
            &config,
            &["\"127.0.0.1:7201\"", "\"10.0.0.1:7201\"", "peer_advertise"],
        );
        let mut config = node1();
        config.peer_listen = "127.0.0.1:8000".to_owned();
        assert_one_problem(
            &config,
            &["\"127.0.0.1:7201\"", "\"127.0.0.1:8000\"", "peer_listen"],
        );
        // The client address is free to differ: it is not a peer address.
        let mut config = node1();
        config.advertise = Some("10.0.0.1:9101".to_owned());
        assert_eq!(problems(&config), Vec::<String>::new());
    }

    #[test]
    fn validate_rejects_one_socket_for_clients_and_peers() {
        // Goal: the peer listener is separate. Method: the same socket, then a wildcard
        // peer listener on the client port.
        let mut config = node1();
        config.peer_listen = config.listen.clone();
        config.initial_cluster[0].addr = config.listen.clone();
        assert_one_problem(&config, &["listen", "peer_listen", "same socket"]);
        let mut config = node1();
        config.peer_listen = "0.0.0.0:7101".to_owned();
        config.peer_advertise = Some("127.0.0.1:7201".to_owned());
        assert_one_problem(&config, &["same socket"]);
    }

    #[test]
    fn validate_rejects_a_bad_cluster_id() {
        for bad in ["", "two words", &"x".repeat(65)] {
            let mut config = node1();
            config.cluster_id = bad.to_owned();
            assert_one_problem(&config, &["cluster_id"]);
        }
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
        config.raft.max_payload_entries = 0;
        config.raft.append_entries_bytes_max = 0;
        config.produce = ProduceConfig {
            batch_bytes_max: 0,
            batch_events_max: 0,
            inflight_entries_max: 0,
            request_bytes_max: 0,
            request_events_max: 0,
            headers_per_event_max: 0,
            default_max_event_bytes: 0,
            request_timeout_ms: 0,
            queue_requests_max: 0,
            queue_bytes_max: 0,
            admission_wait_ms: 0,
            queue_delay_target_ms: 0,
        };
        config.read = ReadConfig {
            response_bytes_max: 0,
            subscribe_buffer_bytes_max: 0,
            subscribe_heartbeat_ms: 0,
            slow_consumer_timeout_ms: 0,
        };
        config.storage = StorageConfig {
            block_cache_bytes: 0,
            write_buffer_bytes: 0,
            group_commit_max_waiters: 0,
            blocking_threads_max: 0,
        };
        config.memory = MemoryConfig {
            produce_bytes_max: 0,
            subscribe_bytes_max: 0,
        };
        config.server = ServerConfig {
            connections_max: 0,
            connections_per_ip_max: 0,
            peer_connections_max: 0,
            connection_handshake_timeout_ms: 0,
            connection_idle_timeout_ms: 0,
            http2_keepalive_interval_ms: 0,
            http2_keepalive_timeout_ms: 0,
            http2_streams_per_connection_max: 0,
            http2_stream_window_bytes: 0,
            http2_connection_window_bytes: 0,
        };
        let problems: Vec<String> = problems(&config)
            .into_iter()
            .filter(|p| !p.contains("could never be admitted") && !p.contains("must be less than"))
            .collect();
        assert_eq!(problems.len(), 34, "{problems:#?}");
        assert!(problems
            .iter()
            .all(|p| p.ends_with("must be greater than 0")));
    }

    #[test]
    fn validate_rejects_event_larger_than_request() {
        // Goal: the largest event, with its overhead, must fit in a request. Method: an
        // event limit that leaves one byte too few for the overhead.
        let mut config = node1();
        let overhead = (EVENT_OVERHEAD_BYTES as u64)
            + config.produce.headers_per_event_max * HEADER_OVERHEAD_BYTES as u64;
        config.produce.default_max_event_bytes = config.produce.request_bytes_max - overhead;
        assert_eq!(problems(&config), Vec::<String>::new());
        config.produce.default_max_event_bytes += 1;
        assert_one_problem(&config, &["default_max_event_bytes", "request_bytes_max"]);
    }

    #[test]
    fn validate_rejects_a_request_that_fits_no_queue_budget_or_append_entries() {
        // Goal: a request must fit its partition's queue, the node's budget and one
        // AppendEntries. Method: shrink each room below the request size, one at a time.
        type Shrink = fn(&mut Config);
        let cases: [(&str, Shrink); 3] = [
            ("produce.queue_bytes_max", |c| {
                c.produce.queue_bytes_max = 1024
            }),
            ("memory.produce_bytes_max", |c| {
                c.memory.produce_bytes_max = 1024
            }),
            ("raft.append_entries_bytes_max", |c| {
                c.raft.append_entries_bytes_max = c.produce.request_bytes_max - 1
            }),
        ];
        for (room, shrink) in cases {
            let mut config = node1();
            shrink(&mut config);
            assert_one_problem(&config, &["produce.request_bytes_max", room]);
        }
    }

    #[test]
    fn validate_rejects_an_admission_wait_as_long_as_the_request_timeout() {
        let mut config = node1();
        config.produce.admission_wait_ms = config.produce.request_timeout_ms;
        assert_one_problem(&config, &["admission_wait_ms", "request_timeout_ms"]);
        let mut config = node1();
        config.produce.queue_delay_target_ms = config.produce.request_timeout_ms;
        assert_one_problem(&config, &["queue_delay_target_ms", "request_timeout_ms"]);
    }

    #[test]
    fn group_timeouts_must_nest_and_the_groups_topic_fit_a_topic() {
        // Goal: a wrong [groups] section is refused with the rule it breaks. Method: a
        // default outside its bounds, a zero interval, too many partitions.
        let mut config = node1();
        config.groups.session_timeout_ms = 500;
        config.groups.heartbeat_interval_ms = 0;
        config.groups.partitions = 5000;
        let problems = problems(&config);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].contains("groups.heartbeat_interval_ms"));
        assert!(problems[1].contains("at most 1024 partitions"));
        assert!(problems[2].contains("must lie within"));
    }
}

//! `evlog-node dev`: a local cluster with zero configuration, for newcomers and demos.
//!
//! The path: check the arguments -> (`--fresh`) delete the data directory -> check the ports
//! are free -> spawn N children of this very executable, node i on `127.0.0.1:(base + i - 1)`
//! with its data in `DIR/node-i` and the same `--initial-cluster` -> forward each child's
//! stdout and stderr, line by line, prefixed `[node-i]`, to our stdout -> print how to reach
//! the cluster -> wait for Ctrl-C or SIGTERM, reporting children that exit on their own
//! (the others keep running) -> SIGTERM every child, SIGKILL those still running after
//! [`STOP_GRACE`].
//!
//! Real processes, pipes and threads: this module is never built under madsim (lib.rs gates
//! it with `#[cfg(not(madsim))]`); the simulator starts its nodes in-process.

use std::{
    fs,
    io::{self, BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::{format_initial_cluster, Peer};

/// Most nodes a dev cluster runs: a laptop-sized cluster with single-digit ids.
pub const MAX_NODES: u16 = 9;
/// How long children get between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often the supervisor looks for children that exited.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Longer child output lines are forwarded in pieces of this size.
const LINE_BYTES_MAX: u64 = 64 * 1024;
/// The dev cluster only ever listens on loopback.
const HOST: &str = "127.0.0.1";
/// A node's peer port is this far above its client port.
const PEER_PORT_OFFSET: u32 = 100;
/// Variables that would give every child the same identity: children get flags instead.
/// Tuning variables (`EVLOG_RAFT__...`) pass through, so a dev cluster can be tuned.
const IDENTITY_ENV_VARS: &[&str] = &[
    "EVLOG_NODE_ID",
    "EVLOG_LISTEN",
    "EVLOG_ADVERTISE",
    "EVLOG_PEER_LISTEN",
    "EVLOG_PEER_ADVERTISE",
    "EVLOG_DATA_DIR",
    "EVLOG_INITIAL_CLUSTER",
];

/// `evlog-node dev [--nodes 3] [--data-dir .evlog-dev] [--base-port 7101] [--fresh]`
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct DevArgs {
    /// How many nodes to run (1-9).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Directory holding the nodes' data directories (node-1, node-2, ...).
    #[arg(long, default_value = ".evlog-dev")]
    pub data_dir: PathBuf,
    /// Client port of node 1; node i listens for clients on base-port + i - 1 and for
    /// its peers on base-port + 100 + i - 1.
    #[arg(long, default_value_t = 7101)]
    pub base_port: u16,
    /// Delete the data directory first: start an empty cluster.
    #[arg(long)]
    pub fresh: bool,
}

impl DevArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=MAX_NODES).contains(&self.nodes) {
            bail!("--nodes {} is out of range: 1 to {MAX_NODES}", self.nodes);
        }
        let last_port = u32::from(self.base_port) + PEER_PORT_OFFSET + u32::from(self.nodes) - 1;
        if self.base_port == 0 || last_port > u32::from(u16::MAX) {
            bail!(
                "--base-port {} does not leave room for {} client and peer ports (1 to 65535; \
                 peer ports are {PEER_PORT_OFFSET} above client ports)",
                self.base_port,
                self.nodes
            );
        }
        if self.data_dir.as_os_str().is_empty() {
            bail!("--data-dir is empty");
        }
        Ok(())
    }

    /// The cluster's members by peer address: node i on `127.0.0.1:(base_port + 100 + i - 1)`.
    pub fn peers(&self) -> Vec<Peer> {
        (1..=self.nodes)
            .map(|i| Peer {
                id: u64::from(i),
                addr: format!(
                    "{HOST}:{}",
                    u32::from(self.base_port) + PEER_PORT_OFFSET + u32::from(i) - 1
                ),
            })
            .collect()
    }

    /// Node `id`'s client address: `127.0.0.1:(base_port + id - 1)`.
    pub fn client_addr(&self, id: u64) -> String {
        format!("{HOST}:{}", u64::from(self.base_port) + id - 1)
    }

    fn node_dir(&self, id: u64) -> PathBuf {
        self.data_dir.join(format!("node-{id}"))
    }
}

/// Runs the dev cluster until Ctrl-C or SIGTERM (or until every node has exited).
pub fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    args.validate()?;
    let peers = args.peers();
    prepare_data_dir(&args)?;
    check_ports_free(&args, &peers)?;
    let exe = std::env::current_exe().context("cannot locate this executable to spawn nodes")?;

    // Listen for signals before spawning, so that none is lost in between.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal-handling runtime")?;
    let mut signals = runtime.block_on(async { StopSignals::new() })?;

    let initial_cluster = format_initial_cluster(&peers);
    let mut nodes: Vec<DevNode> = Vec::with_capacity(peers.len());
    for peer in &peers {
        let client_addr = args.client_addr(peer.id);
        match DevNode::spawn(
            &exe,
            peer,
            &client_addr,
            &args.node_dir(peer.id),
            &initial_cluster,
        ) {
            Ok(node) => nodes.push(node),
            Err(error) => {
                stop_all(&mut nodes);
                return Err(error);
            }
        }
    }
    print_banner(&args, &peers, &exe);

    let reason = runtime.block_on(supervise(&mut nodes, &mut signals));
    println!("==> {reason}: stopping the dev cluster");
    stop_all(&mut nodes);
    Ok(())
}

/// One child node and the threads forwarding its output.
struct DevNode {
    id: u64,
    child: Child,
    exit: Option<ExitStatus>,
    forwarders: Vec<JoinHandle<()>>,
}

impl DevNode {
    fn spawn(
        exe: &Path,
        peer: &Peer,
        client_addr: &str,
        data_dir: &Path,
        initial_cluster: &str,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(exe);
        command
            .arg("--node-id")
            .arg(peer.id.to_string())
            .arg("--listen")
            .arg(client_addr)
            .arg("--peer-listen")
            .arg(&peer.addr)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--initial-cluster")
            .arg(initial_cluster)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in IDENTITY_ENV_VARS {
            command.env_remove(var);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start node {} ({})", peer.id, exe.display()))?;
        let prefix = format!("[node-{}]", peer.id);
        let mut forwarders = Vec::with_capacity(2);
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for pipe in pipes.into_iter().flatten() {
            match forward_lines(prefix.clone(), pipe) {
                Ok(handle) => forwarders.push(handle),
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(error).context("cannot start a thread to forward node output");
                }
            }
        }
        Ok(DevNode {
            id: peer.id,
            child,
            exit: None,
            forwarders,
        })
    }

    /// Records and returns the exit status if the child has exited since the last look.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return None;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                Some(status)
            }
            Ok(None) => None,
            Err(error) => {
                println!(
                    "[node-{}] cannot check whether it is running: {error}",
                    self.id
                );
                None
            }
        }
    }

    fn running(&self) -> bool {
        self.exit.is_none()
    }

    /// Asks the node to shut down gracefully (SIGTERM, like systemd or Kubernetes would).
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !sent && self.poll_exit().is_none() && self.running() {
            println!(
                "[node-{}] cannot send SIGTERM to pid {pid}: killing it",
                self.id
            );
            let _ = self.child.kill();
        }
    }

    fn kill(&mut self) {
        println!(
            "[node-{}] still running {} s after SIGTERM: killing it",
            self.id,
            STOP_GRACE.as_secs()
        );
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => self.exit = Some(status),
            Err(error) => println!("[node-{}] cannot wait for it: {error}", self.id),
        }
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, registered once so that no signal is missed between polls.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Must run inside the runtime (it registers with its signal driver).
    fn new() -> anyhow::Result<Self> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }
}

/// Waits for a stop signal, reporting nodes that exit on their own meanwhile; returns why it
/// stopped waiting.
async fn supervise(nodes: &mut [DevNode], signals: &mut StopSignals) -> &'static str {
    loop {
        tokio::select! {
            _ = signals.interrupt.recv() => return "Ctrl-C",
            _ = signals.terminate.recv() => return "SIGTERM",
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        for node in nodes.iter_mut() {
            if let Some(status) = node.poll_exit() {
                println!(
                    "[node-{}] exited unexpectedly ({status}); the other nodes keep running",
                    node.id
                );
            }
        }
        if nodes.iter().all(|node| !node.running()) {
            return "every node has exited";
        }
    }
}

/// SIGTERM to every running node, then SIGKILL to those still running after [`STOP_GRACE`];
/// waits for the output forwarders so the nodes' last lines are printed.
fn stop_all(nodes: &mut [DevNode]) {
    for node in nodes.iter_mut() {
        node.poll_exit();
        if node.running() {
            node.terminate();
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        for node in nodes.iter_mut() {
            if let Some(status) = node.poll_exit() {
                println!("[node-{}] stopped ({status})", node.id);
            }
        }
        if nodes.iter().all(|node| !node.running()) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    for node in nodes.iter_mut().filter(|node| node.running()) {
        node.kill();
    }
    for node in nodes.iter_mut() {
        for forwarder in node.forwarders.drain(..) {
            let _ = forwarder.join();
        }
    }
}

/// Copies `pipe` to our stdout line by line, each line prefixed; ends when the pipe closes.
fn forward_lines(prefix: String, pipe: Box<dyn Read + Send>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("{prefix} output"))
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader
                    .by_ref()
                    .take(LINE_BYTES_MAX)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                // Our stdout closing (e.g. piped into `head`) must not stop the cluster.
                let _ = writeln!(io::stdout().lock(), "{prefix} {text}");
            }
        })
}

/// Creates the data directory; with `--fresh`, deletes it first, but only if it holds
/// nothing but `node-*` directories, so a mistyped `--data-dir ~` cannot delete a home.
fn prepare_data_dir(args: &DevArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    if args.fresh && dir.exists() {
        let entries =
            fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with("node-") {
                bail!(
                    "refusing to delete {} for --fresh: it holds {:?}, which evlog-node dev \
                     did not create",
                    dir.display(),
                    name
                );
            }
        }
        fs::remove_dir_all(dir).with_context(|| format!("cannot delete {}", dir.display()))?;
        println!("==> --fresh: deleted {}", dir.display());
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Fails early, with a hint, when a port is taken (often: another dev cluster is running).
fn check_ports_free(args: &DevArgs, peers: &[Peer]) -> anyhow::Result<()> {
    for peer in peers {
        for addr in [args.client_addr(peer.id), peer.addr.clone()] {
            if let Err(error) = TcpListener::bind(&addr) {
                bail!(
                    "cannot use {addr} for node {}: {error} (is another dev cluster running? \
                     try --base-port)",
                    peer.id
                );
            }
        }
    }
    Ok(())
}

fn print_banner(args: &DevArgs, peers: &[Peer], exe: &Path) {
    let bootstrap = peers
        .iter()
        .map(|peer| args.client_addr(peer.id))
        .collect::<Vec<_>>()
        .join(",");
    let data_dir = fs::canonicalize(&args.data_dir).unwrap_or_else(|_| args.data_dir.clone());
    let mut text = format!(
        "\n==> evlog dev cluster: {} node(s), data in {}\n",
        args.nodes,
        data_dir.display()
    );
    for peer in peers {
        let dir = args.node_dir(peer.id);
        text.push_str(&format!(
            "    node {}  clients {}  peers {}  {}\n",
            peer.id,
            args.client_addr(peer.id),
            peer.addr,
            dir.display()
        ));
    }
    text.push_str(&format!(
        "\nBootstrap addresses: {bootstrap}\n\nIn another terminal:\n"
    ));
    let cli = exe.with_file_name("evlog");
    match cli.parent().filter(|_| cli.exists()) {
        Some(bin_dir) => text.push_str(&format!(
            "    export PATH=\"{}:$PATH\"\n",
            bin_dir.display()
        )),
        None => {
            text.push_str("    cargo build --release -p evlog-client   # builds the evlog CLI\n")
        }
    }
    text.push_str(&format!("    export EVLOG_BOOTSTRAP={bootstrap}\n"));
    text.push_str(&format!(
        "    evlog topic create demo --partitions 3 --replication-factor {}\n",
        args.nodes.min(3)
    ));
    text.push_str("    echo hello | evlog produce demo\n");
    text.push_str("    evlog consume demo --from earliest\n");
    text.push_str(&format!(
        "\nCtrl-C stops the cluster; its data stays in {} (--fresh starts over).\n",
        data_dir.display()
    ));
    // Our stdout closing must not stop the cluster.
    let _ = io::stdout().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u16, base_port: u16) -> DevArgs {
        DevArgs {
            nodes,
            data_dir: PathBuf::from(".evlog-dev"),
            base_port,
            fresh: false,
        }
    }

    #[test]
    fn peers_are_numbered_from_one_on_consecutive_ports() {
        // Goal: node i listens for clients on base + i - 1 and for peers 100 above, and
        // the peer list parses back as a cluster. Method: 3 nodes from 7101, compared.
        let peers = args(3, 7101).peers();
        assert_eq!(
            format_initial_cluster(&peers),
            "1=127.0.0.1:7201,2=127.0.0.1:7202,3=127.0.0.1:7203"
        );
        assert_eq!(args(3, 7101).client_addr(2), "127.0.0.1:7102");
        assert_eq!(args(9, 65427).peers()[8].addr, "127.0.0.1:65535");
    }

    #[test]
    fn validate_rejects_node_counts_and_ports_out_of_range() {
        // Goal: 1-9 nodes whose ports all fit. Method: the edges on both sides.
        assert!(args(1, 7101).validate().is_ok());
        assert!(args(MAX_NODES, 65427).validate().is_ok());
        for bad in [args(0, 7101), args(10, 7101), args(3, 0), args(3, 65434)] {
            assert!(bad.validate().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn fresh_refuses_to_delete_a_directory_it_did_not_create() {
        // Goal: --fresh deletes only a dev cluster's data. Method: a stray file blocks the
        // delete; without it the directory is recreated empty.
        let root = tempfile::tempdir().expect("tempdir");
        let dev = DevArgs {
            data_dir: root.path().join("dev"),
            fresh: true,
            ..args(3, 7101)
        };
        fs::create_dir_all(dev.data_dir.join("node-1")).expect("create node-1");
        fs::write(dev.data_dir.join("precious.txt"), b"keep").expect("write stray file");
        let error = prepare_data_dir(&dev).expect_err("a stray file blocks --fresh");
        assert!(error.to_string().contains("precious.txt"), "{error}");
        assert!(dev.data_dir.join("node-1").exists());

        fs::remove_file(dev.data_dir.join("precious.txt")).expect("remove stray file");
        prepare_data_dir(&dev).expect("only node-* entries: deleted");
        assert_eq!(fs::read_dir(&dev.data_dir).expect("recreated").count(), 0);
    }
}

//! `evlog-node`: parse the flags, load and validate the config, init tracing, run the node
//! until Ctrl-C or SIGTERM, then shut it down gracefully. `evlog-node dev` runs a local
//! cluster instead (`evlog_node::dev`). Under `--cfg madsim` this binary is a stub: the
//! simulator starts nodes in-process with `Node::start`, and has no OS signals.

/// jemalloc, not glibc's malloc: its background threads hand freed memory back to the
/// OS (after the decay set in `.cargo/config.toml`), so a node's RSS falls back after a
/// burst: slow subscribers cut off, a flood refused.
#[cfg(not(madsim))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(madsim)]
fn main() {
    eprintln!("evlog-node does not run under --cfg madsim: the simulator starts nodes itself");
}

#[cfg(not(madsim))]
mod cli {
    use std::{path::PathBuf, process::ExitCode};

    use evlog_node::config::{parse_initial_cluster, Config, ConfigError, FlagOverrides};
    use evlog_node::dev::{run_dev, DevArgs};

    /// Exit status for a configuration the node refuses to start with.
    const EXIT_BAD_CONFIG: u8 = 2;

    /// What the node logs unless `EVLOG_LOG` says otherwise: evlog's own lines from INFO up.
    /// openraft's are off: it logs a WARN or ERROR for every vote or append that a peer did
    /// not answer in time, which is normal while nodes start or a peer restarts; evlog
    /// logs the faults that matter itself (a peer unreachable for 10 s, a replica that
    /// stops, a storage error), once, with what to do.
    const DEFAULT_LOG_FILTER: &str = "info,openraft=off";

    /// An evlog node. Settings: defaults < --config file < EVLOG_* env vars < these flags.
    #[derive(Debug, clap::Parser)]
    #[command(name = "evlog-node", version, args_conflicts_with_subcommands = true)]
    struct Cli {
        /// This node's id (>= 1), unique in the cluster.
        #[arg(long, value_name = "ID")]
        node_id: Option<u64>,
        /// The cluster's id, the same on every node (default: evlog).
        #[arg(long, value_name = "ID")]
        cluster_id: Option<String>,
        /// Socket address of the client listener.
        #[arg(long, value_name = "IP:PORT")]
        listen: Option<String>,
        /// Address clients use to reach this node (default: --listen).
        #[arg(long, value_name = "HOST:PORT")]
        advertise: Option<String>,
        /// Socket address of the peer listener (Raft between nodes only).
        #[arg(long, value_name = "IP:PORT")]
        peer_listen: Option<String>,
        /// Address the other nodes use to reach the peer listener (default: --peer-listen).
        #[arg(long, value_name = "HOST:PORT")]
        peer_advertise: Option<String>,
        /// Directory of this node's data.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The initial voters by peer address, this node included.
        #[arg(long, value_name = "ID=HOST:PORT,...")]
        initial_cluster: Option<String>,
        /// TOML config file.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Print the default config as commented TOML and exit.
        #[arg(long)]
        print_default_config: bool,
        #[command(subcommand)]
        command: Option<Command>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Command {
        /// Run a local cluster of N nodes on 127.0.0.1, for trying evlog out.
        Dev(DevArgs),
    }

    pub fn main() -> ExitCode {
        let cli = <Cli as clap::Parser>::parse();
        if let Some(Command::Dev(args)) = cli.command {
            return run_dev(args).map_or_else(
                |error| {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                },
                |()| ExitCode::SUCCESS,
            );
        }
        if cli.print_default_config {
            print!("{}", Config::default().to_toml_string());
            return ExitCode::SUCCESS;
        }
        let config = match load_config(&cli) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
        };
        let filter = tracing_subscriber::EnvFilter::try_from_env("EVLOG_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
        // No color codes in files, journald or the `dev` cluster's pipes.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .init();
        run_node(config)
    }

    fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
        let overrides = FlagOverrides {
            node_id: cli.node_id,
            cluster_id: cli.cluster_id.clone(),
            listen: cli.listen.clone(),
            advertise: cli.advertise.clone(),
            peer_listen: cli.peer_listen.clone(),
            peer_advertise: cli.peer_advertise.clone(),
            data_dir: cli.data_dir.clone(),
            initial_cluster: cli
                .initial_cluster
                .as_deref()
                .map(parse_initial_cluster)
                .transpose()?,
        };
        // Not env::vars(): it panics on any variable that is not UTF-8, even an unrelated one.
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(var, value)| {
                Some((var.into_string().ok()?, value.to_string_lossy().into()))
            })
            .collect();
        let config = Config::load(cli.config.as_deref(), &env, &overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Builds the runtime (its blocking pool bounded by `storage.blocking_threads_max`,
    /// idle blocking threads gone after a second, so a burst of readers does not leave
    /// threads and their memory behind) and runs the node on it until a stop signal.
    fn run_node(config: Config) -> ExitCode {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .max_blocking_threads(config.storage.blocking_threads_max as usize)
            .thread_keep_alive(std::time::Duration::from_secs(1))
            .build();
        match runtime {
            Ok(runtime) => runtime.block_on(serve(config)),
            Err(error) => {
                tracing::error!(%error, "cannot start the async runtime");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve(config: Config) -> ExitCode {
        let node_id = config.node_id;
        let node = match evlog_node::Node::start(config).await {
            Ok(node) => node,
            Err(error) => {
                tracing::error!(node_id, %error, "node failed to start");
                return ExitCode::FAILURE;
            }
        };
        match stop_signal().await {
            Ok(signal) => tracing::info!(node_id, signal, "shutting down"),
            Err(error) => {
                tracing::error!(node_id, %error, "cannot wait for signals: shutting down")
            }
        }
        node.shutdown().await;
        tracing::info!(node_id, "stopped");
        ExitCode::SUCCESS
    }

    /// Waits for Ctrl-C (SIGINT) or SIGTERM and names the one that came.
    async fn stop_signal() -> std::io::Result<&'static str> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    }
}

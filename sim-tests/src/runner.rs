//! Runs a simulation scenario on one or more seeds, with madsim's environment variables:
//! `MADSIM_TEST_SEED` (the first seed, 1 by default), `MADSIM_TEST_NUM` (how many seeds,
//! one by default) and `MADSIM_TEST_CHECK_DETERMINISM` (run each seed twice and compare).
//! A failing seed is printed with the one command that replays it.
//!
//! Why not `#[madsim::test]`'s own determinism check: it runs a seed twice in one process,
//! but tokio's and futures' `select!` seed their branch-order randomness from process-wide
//! counters, so the second run of a seed differs from the first for reasons outside our
//! code. Here each run of a determinism check is its own process, started fresh, and the
//! two runs must end with the same fingerprint: the simulated time at the end, the next
//! value of the seed's RNG (which depends on every random draw the run made: every task
//! scheduling decision, election timeout, network delay) and the scenario's own trace.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Command;

use madsim::runtime::Runtime;
use madsim::Config;

use crate::scenario::SeedReport;

/// The most simulated time one seed may take.
const SIMULATED_TIME_MAX: std::time::Duration = std::time::Duration::from_secs(600);

/// Set in a child run of a determinism check: where it writes its fingerprint.
const FINGERPRINT_ENV: &str = "EVLOG_SIM_FINGERPRINT_FILE";

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// Sends the simulation's logs to the test output, filtered by `RUST_LOG` (or
/// `default_filter` when unset). Timestamps are simulated time.
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| default_filter.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Runs `scenario` on every configured seed; panics (after printing the replay command)
/// on the first failing seed. The scenario returns its trace (what it observed, in order),
/// which is part of the determinism fingerprint.
pub fn run<F>(test_binary: &str, test_name: &str, scenario: fn() -> F)
where
    F: Future<Output = String> + 'static,
{
    if write_child_fingerprint(|seed| run_seed(seed, scenario)) {
        return;
    }
    for seed in seeds() {
        let result = std::panic::catch_unwind(|| {
            if check_determinism() {
                check_seed_determinism(seed, test_name);
            } else {
                run_seed(seed, scenario);
            }
        });
        if let Err(panic) = result {
            eprintln!("{}", replay_hint(seed, test_binary, test_name));
            std::panic::resume_unwind(panic);
        }
    }
}

/// The durability sweep: runs `scenario` on every configured seed and prints one line
/// per seed and a summary (seeds, faults injected by kind, operations and events
/// checked, failures). A failing seed prints its full report and replay command; the
/// sweep stops there unless `EVLOG_SIM_KEEP_GOING=1`, and fails at the end if any seed
/// failed.
pub fn sweep<F>(test_binary: &str, test_name: &str, scenario: fn() -> F)
where
    F: Future<Output = SeedReport> + 'static,
{
    let fingerprint = |seed| run_seed(seed, scenario).fingerprint();
    if write_child_fingerprint(fingerprint) {
        return;
    }
    let keep_going = std::env::var("EVLOG_SIM_KEEP_GOING").is_ok_and(|v| v == "1");
    let mut summary = SweepSummary::default();
    for seed in seeds() {
        if check_determinism() {
            let result = std::panic::catch_unwind(|| check_seed_determinism(seed, test_name));
            if let Err(panic) = result {
                eprintln!("{}", replay_hint(seed, test_binary, test_name));
                std::panic::resume_unwind(panic);
            }
            summary.seeds += 1;
            continue;
        }
        let started = std::time::Instant::now();
        let report = std::panic::catch_unwind(|| run_seed(seed, scenario));
        let report = match report {
            Ok(report) => report,
            Err(panic) => {
                eprintln!("{}", replay_hint(seed, test_binary, test_name));
                std::panic::resume_unwind(panic);
            }
        };
        summary.add(&report);
        if report.passed() {
            println!(
                "seed {seed}: ok ({} nodes, {} faults, {} acked, {} events checked, {:.1}s)",
                report.cluster_size,
                report.faults.values().sum::<u64>(),
                report.acked,
                report.events_checked,
                started.elapsed().as_secs_f64()
            );
        } else {
            println!(
                "seed {seed}: FAILED {:?}\n{}",
                report.failed_checkers(),
                report.summary()
            );
            eprintln!("{}", replay_hint(seed, test_binary, test_name));
            if !keep_going {
                break;
            }
        }
    }
    println!("{}", summary.render());
    assert!(
        summary.failed_seeds.is_empty(),
        "{} of {} seeds failed: {:?}",
        summary.failed_seeds.len(),
        summary.seeds,
        summary.failed_seeds
    );
}

/// Totals over a sweep.
#[derive(Debug, Default)]
pub struct SweepSummary {
    pub seeds: u64,
    pub by_cluster_size: BTreeMap<u64, u64>,
    pub faults: BTreeMap<String, u64>,
    pub publishes: u64,
    pub acked: u64,
    pub unknown: u64,
    pub failed: u64,
    pub unknown_duplicates: u64,
    pub events_checked: u64,
    pub consumed: u64,
    pub seeds_with_groups: u64,
    pub member_churn: BTreeMap<&'static str, u64>,
    pub group_deliveries: u64,
    pub failed_seeds: Vec<(u64, Vec<&'static str>)>,
}

impl SweepSummary {
    fn add(&mut self, report: &SeedReport) {
        self.seeds += 1;
        *self.by_cluster_size.entry(report.cluster_size).or_default() += 1;
        for (fault, count) in &report.faults {
            *self.faults.entry(format!("{fault:?}")).or_default() += count;
        }
        self.publishes += report.publishes as u64;
        self.acked += report.acked as u64;
        self.unknown += report.unknown as u64;
        self.failed += report.failed as u64;
        self.unknown_duplicates += report.unknown_duplicates as u64;
        self.events_checked += report.events_checked as u64;
        self.consumed += report.consumed as u64;
        if !report.member_churn.is_empty() {
            self.seeds_with_groups += 1;
        }
        for (kind, count) in &report.member_churn {
            *self.member_churn.entry(kind).or_default() += count;
        }
        self.group_deliveries += report.group_deliveries as u64;
        if !report.passed() {
            self.failed_seeds
                .push((report.seed, report.failed_checkers()));
        }
    }

    /// The summary block; its `SUMMARY` lines are what `scripts/sweep.sh` adds up.
    pub fn render(&self) -> String {
        let mut out = String::from("\n==> sweep summary\n");
        out.push_str(&format!("SUMMARY seeds {}\n", self.seeds));
        for (size, count) in &self.by_cluster_size {
            out.push_str(&format!("SUMMARY seeds_with_{size}_nodes {count}\n"));
        }
        for (fault, count) in &self.faults {
            out.push_str(&format!("SUMMARY fault_{fault} {count}\n"));
        }
        for (kind, count) in &self.member_churn {
            out.push_str(&format!("SUMMARY member_{kind} {count}\n"));
        }
        for (name, value) in [
            ("publishes", self.publishes),
            ("acked", self.acked),
            ("unknown_outcome", self.unknown),
            ("refused", self.failed),
            ("duplicates_of_unknown", self.unknown_duplicates),
            ("events_checked", self.events_checked),
            ("events_consumed", self.consumed),
            ("seeds_with_groups", self.seeds_with_groups),
            ("group_deliveries", self.group_deliveries),
            ("failed_seeds", self.failed_seeds.len() as u64),
        ] {
            out.push_str(&format!("SUMMARY {name} {value}\n"));
        }
        for (seed, checkers) in &self.failed_seeds {
            out.push_str(&format!("FAILED seed {seed}: {checkers:?}\n"));
        }
        out
    }
}

fn seeds() -> std::ops::Range<u64> {
    let first = env_u64("MADSIM_TEST_SEED", 1);
    first..first + env_u64("MADSIM_TEST_NUM", 1)
}

fn check_determinism() -> bool {
    std::env::var("MADSIM_TEST_CHECK_DETERMINISM").is_ok()
}

fn replay_hint(seed: u64, test_binary: &str, test_name: &str) -> String {
    format!(
        "\nsimulation failed on seed {seed}. Replay it with:\n  MADSIM_TEST_SEED={seed} scripts/sim.sh --test {test_binary} {test_name}\n"
    )
}

/// In a child run of a determinism check, runs the one seed and writes its fingerprint;
/// returns whether this was such a run.
fn write_child_fingerprint(fingerprint: impl FnOnce(u64) -> String) -> bool {
    let Ok(path) = std::env::var(FINGERPRINT_ENV) else {
        return false;
    };
    let seed = env_u64("MADSIM_TEST_SEED", 1);
    std::fs::write(&path, fingerprint(seed)).expect("write fingerprint");
    true
}

/// Runs one seed on a fresh thread: madsim seeds std's `HashMap` keys from the seed, but
/// only on a thread that has not hashed anything yet (libtest's thread has).
pub fn run_seed<S, F, T>(seed: u64, scenario: S) -> T
where
    S: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Fingerprint + Send + 'static,
{
    quiet_expected_crashes();
    let run = std::thread::spawn(move || {
        let mut runtime = Runtime::with_seed_and_config(seed, Config::default());
        // A seed normally ends within two simulated minutes; one that runs away fails
        // with its replay command instead of running (and allocating) forever.
        runtime.set_time_limit(SIMULATED_TIME_MAX);
        runtime.block_on(async move {
            let mut outcome = scenario().await;
            let end = madsim::time::TimeHandle::current().elapsed();
            let next_draw: u64 = madsim::rand::random();
            outcome.stamp(format!(
                "seed {seed}\nend {end:?}\nnext draw {next_draw:#018x}"
            ));
            outcome
        })
    });
    match run.join() {
        Ok(outcome) => outcome,
        Err(panic) => {
            // The panic hook stays quiet about node crashes (see `quiet_expected_crashes`):
            // one that fails the run is named here.
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied());
            eprintln!(
                "seed {seed} panicked: {}",
                message.unwrap_or("(no message)")
            );
            std::panic::resume_unwind(panic)
        }
    }
}

/// A node that crashes on purpose (a failed fsync: `rt::crash`) panics in the simulation,
/// and the harness restarts it like a supervisor would: such a panic is a fault the
/// nemesis injected, counted in the report, not news. Keep the panic hook from printing a
/// message and backtrace for each (thousands in a sweep); every other panic prints as usual.
fn quiet_expected_crashes() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected = info
                .payload_as_str()
                .is_some_and(|message| message.starts_with(evlog_node::rt::CRASH_MESSAGE));
            if !expected {
                previous(info);
            }
        }));
    });
}

/// What a scenario returns: it takes the run's end state into its fingerprint.
pub trait Fingerprint {
    fn stamp(&mut self, end_state: String);
    fn fingerprint(&self) -> String;
}

impl Fingerprint for String {
    fn stamp(&mut self, end_state: String) {
        *self = format!("{end_state}\n{self}");
    }

    fn fingerprint(&self) -> String {
        self.clone()
    }
}

impl Fingerprint for SeedReport {
    fn stamp(&mut self, end_state: String) {
        self.trace.insert(0, end_state);
    }

    fn fingerprint(&self) -> String {
        SeedReport::fingerprint(self)
    }
}

/// Runs the seed in two fresh processes and compares their fingerprints.
fn check_seed_determinism(seed: u64, test_name: &str) {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = std::env::temp_dir().join(format!("evlog-sim-determinism-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("fingerprint dir");
    let fingerprints: Vec<String> = (1..=2)
        .map(|run| {
            let path: PathBuf = dir.join(format!("{test_name}-{seed}-{run}"));
            let status = Command::new(&exe)
                .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
                .env(FINGERPRINT_ENV, &path)
                .env("MADSIM_TEST_SEED", seed.to_string())
                .env_remove("MADSIM_TEST_CHECK_DETERMINISM")
                .env_remove("MADSIM_TEST_NUM")
                .status()
                .expect("run the test binary");
            assert!(
                status.success(),
                "seed {seed}: determinism run {run} failed"
            );
            std::fs::read_to_string(&path).expect("fingerprint written")
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    if fingerprints[0] != fingerprints[1] {
        let a: Vec<&str> = fingerprints[0].lines().collect();
        let b: Vec<&str> = fingerprints[1].lines().collect();
        let first = (0..a.len().max(b.len()))
            .find(|i| a.get(*i) != b.get(*i))
            .unwrap_or(0);
        let window = |lines: &[&str]| {
            lines[first.saturating_sub(2).min(lines.len())..(first + 3).min(lines.len())].join("\n")
        };
        panic!(
            "non-determinism on seed {seed} (fingerprints differ from line {first}):\n--- run 1\n{}\n...\n{}\n--- run 2\n{}\n...\n{}",
            first_lines(&fingerprints[0]),
            window(&a),
            first_lines(&fingerprints[1]),
            window(&b)
        );
    }
}

/// The lines around the first difference, so a failure says where the runs parted.
fn first_lines(text: &str) -> String {
    text.lines().take(12).collect::<Vec<_>>().join("\n")
}

//! Runs a simulation scenario on one or more seeds, with madsim's environment variables:
//! `MADSIM_TEST_SEED` (first seed, default 1), `MADSIM_TEST_NUM` (how many seeds, default
//! 1) and `MADSIM_TEST_CHECK_DETERMINISM` (run each seed twice and compare). A failing seed
//! is printed with the one command that replays it.
//!
//! Why not `#[madsim::test]`'s own determinism check: it runs a seed twice in one process,
//! but tokio's and futures' `select!` seed their branch-order randomness from process-wide
//! counters, so the second run of a seed differs from the first for reasons outside our
//! code. Here each run of a determinism check is its own process, started fresh, and the
//! two runs must end with the same fingerprint: the simulated time at the end, the next
//! value of the seed's RNG (which depends on every random draw the run made: every task
//! scheduling decision, election timeout, network delay) and the scenario's own trace.

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;

use madsim::runtime::Runtime;
use madsim::Config;

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

/// Runs `scenario` on every configured seed; panics (after printing the replay command)
/// on the first failing seed. The scenario returns its trace (what it observed, in order),
/// which is part of the determinism fingerprint.
pub fn run<F>(test_binary: &str, test_name: &str, scenario: fn() -> F)
where
    F: Future<Output = String> + 'static,
{
    if let Ok(path) = std::env::var(FINGERPRINT_ENV) {
        let seed = env_u64("MADSIM_TEST_SEED", 1);
        let fingerprint = run_seed(seed, scenario);
        std::fs::write(&path, fingerprint).expect("write fingerprint");
        return;
    }
    let first = env_u64("MADSIM_TEST_SEED", 1);
    let count = env_u64("MADSIM_TEST_NUM", 1);
    let check_determinism = std::env::var("MADSIM_TEST_CHECK_DETERMINISM").is_ok();
    for seed in first..first + count {
        let result = std::panic::catch_unwind(|| {
            if check_determinism {
                check_seed_determinism(seed, test_name);
            } else {
                run_seed(seed, scenario);
            }
        });
        if let Err(panic) = result {
            eprintln!(
                "\nsimulation failed on seed {seed}. Replay it with:\n  MADSIM_TEST_SEED={seed} scripts/sim.sh --test {test_binary} {test_name}\n"
            );
            std::panic::resume_unwind(panic);
        }
    }
}

/// Runs one seed on a fresh thread: madsim seeds std's `HashMap` keys from the seed, but
/// only on a thread that has not hashed anything yet (libtest's thread has).
fn run_seed<F>(seed: u64, scenario: fn() -> F) -> String
where
    F: Future<Output = String> + 'static,
{
    let run = std::thread::spawn(move || {
        Runtime::with_seed_and_config(seed, Config::default()).block_on(async move {
            let trace = scenario().await;
            let end = madsim::time::TimeHandle::current().elapsed();
            let next_draw: u64 = madsim::rand::random();
            format!("seed {seed}\nend {end:?}\nnext draw {next_draw:#018x}\n{trace}")
        })
    });
    match run.join() {
        Ok(fingerprint) => fingerprint,
        Err(panic) => std::panic::resume_unwind(panic),
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

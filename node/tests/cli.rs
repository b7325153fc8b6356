//! Goal: the README's CLI walk-through works against a real cluster. Method: three real
//! nodes; run the `evlog` binary (built next to `evlog-node`: `cargo build --release
//! --bins`, which scripts/test.sh does first) for every documented step and check what
//! it prints and how it exits, including a clear error for an unknown topic.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestCluster;

fn evlog_binary() -> PathBuf {
    let node = PathBuf::from(env!("CARGO_BIN_EXE_evlog-node"));
    let cli = node.with_file_name("evlog");
    assert!(
        cli.exists(),
        "{} is missing: run `cargo build --release --bins` first",
        cli.display()
    );
    cli
}

fn evlog(cluster: &TestCluster, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(evlog_binary())
        .args(args)
        .env("EVLOG_BOOTSTRAP", cluster.bootstrap().join(","))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evlog");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("evlog output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(cluster: &TestCluster, args: &[&str], stdin: Option<&str>) -> String {
    let out = evlog(cluster, args, stdin);
    assert!(
        out.status.success(),
        "evlog {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn the_readme_walk_through_works_end_to_end() {
    let cluster = TestCluster::start(3);
    // Finding 5: right after the nodes start, the cluster is still forming (no metadata
    // leader, nodes not registered yet); the CLI retries that and the first call succeeds.
    let created = ok(
        &cluster,
        &[
            "topic",
            "create",
            "demo",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
        None,
    );
    assert!(created.contains("demo"), "{created}");
    // Metadata reads are answered from the asked node's applied view, which may trail the
    // metadata leader by a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok(&cluster, &["topic", "list"], None).contains("demo") {
        assert!(
            Instant::now() < deadline,
            "the new topic never showed up in topic list"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let describe = ok(&cluster, &["topic", "describe", "demo"], None);
    assert_eq!(
        describe
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .count(),
        3,
        "{describe}"
    );

    ok(
        &cluster,
        &[
            "produce",
            "demo",
            "hello",
            "--key",
            "k0",
            "--header",
            "source=cli",
        ],
        None,
    );
    ok(
        &cluster,
        &["produce", "demo", "--key-separator", ":"],
        Some("k1:one\nk2:two\nk3:three\n"),
    );

    let json = ok(
        &cluster,
        &["consume", "demo", "--from", "earliest", "--format", "json"],
        None,
    );
    let mut seen: Vec<(String, String)> = json
        .lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(v["topic"], "demo");
            (
                v["key"].as_str().expect("key").to_string(),
                v["value"].as_str().expect("value").to_string(),
            )
        })
        .collect();
    seen.sort();
    let expected = [
        ("k0", "hello"),
        ("k1", "one"),
        ("k2", "two"),
        ("k3", "three"),
    ];
    assert_eq!(
        seen,
        expected
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .to_vec()
    );
    assert!(json.contains("\"source\""), "headers are printed: {json}");

    // A node registers its client address with the metadata group on its own schedule
    // (every 200 ms until applied): a node still `registering` is not yet answering.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = ok(&cluster, &["cluster", "status"], None);
        if status.contains("nodes answering: 3/3") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every node answers: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let unknown = evlog(&cluster, &["produce", "nope", "x"], None);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("UNKNOWN_TOPIC"),
        "{}",
        text(&unknown.stderr)
    );

    ok(&cluster, &["topic", "delete", "demo"], None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok(&cluster, &["topic", "list"], None).contains("demo") {
        assert!(
            Instant::now() < deadline,
            "the deleted topic stayed in topic list"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_overload_bench_counts_refusals_and_reads_back_every_acknowledged_event() {
    // Goal: `evlog bench produce --overload` runs its phases against a real cluster and
    // reports admitted, refused and verified events (docs/operations.md). Method: a short
    // run with a one-request queue per partition, one entry in flight and a 10 ms
    // admission wait, so the open loop at 4x is refused in part.
    let cluster = TestCluster::start_with_env(
        3,
        &[
            ("EVLOG_PRODUCE__QUEUE_REQUESTS_MAX", "1"),
            ("EVLOG_PRODUCE__INFLIGHT_ENTRIES_MAX", "1"),
            ("EVLOG_PRODUCE__ADMISSION_WAIT_MS", "10"),
        ],
    );
    let json = ok(
        &cluster,
        &[
            "bench",
            "produce",
            "--topic",
            "overload",
            "--overload",
            "4",
            "--connections",
            "4",
            "--seconds",
            "1",
            "--in-flight",
            "8",
            "--events-per-request",
            "20",
            "--size",
            "256",
            "--json",
        ],
        None,
    );
    let report: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
    let admitted = |phase: &str| report[phase]["admitted_requests"].as_u64().expect("count");
    assert!(
        admitted("calibrate") > 0 && admitted("recover") > 0,
        "{report}"
    );
    assert!(
        report["overload"]["offered_events_per_s"].as_f64() > Some(0.0),
        "{report}"
    );
    assert!(
        report["overload"]["refused_requests"].as_u64() > Some(0),
        "{report}"
    );
    assert_eq!(report["lost_events"], 0, "{report}");
    let verified = report["verified_events"].as_u64().expect("count");
    let phases = ["calibrate", "overload", "recover"]
        .map(admitted)
        .iter()
        .sum::<u64>();
    assert!(
        verified >= phases * 20,
        "{verified} verified of {phases} requests: {report}"
    );
}

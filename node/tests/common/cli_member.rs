//! Consumer-group members as real processes: `evlog consume TOPIC --group G --follow
//! --format json` (processed = printed), with every printed event and every stderr line
//! (assigned / revoked / lost) timestamped by a reader thread, so a test can SIGKILL,
//! SIGSTOP or restart a member and judge what it printed when.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TestCluster;

/// One printed event: when it was read, partition, offset, key, value.
pub type Line = (Instant, u32, u64, String, String);

pub struct CliMember {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<Line>>>,
    /// Its stderr lines, with when they were read.
    pub stderr: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl CliMember {
    /// Starts `evlog consume topic --group group --follow --format json` plus `extra`.
    pub fn start(cluster: &TestCluster, topic: &str, group: &str, extra: &[&str]) -> CliMember {
        let binary =
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_evlog-node")).with_file_name("evlog");
        let mut child = Command::new(binary)
            .args([
                "consume", topic, "--group", group, "--follow", "--format", "json",
            ])
            .args(extra)
            .env("EVLOG_BOOTSTRAP", cluster.bootstrap().join(","))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn evlog consume (cargo build --release --bins first)");
        let lines: Arc<Mutex<Vec<Line>>> = Arc::default();
        let stdout = child.stdout.take().expect("stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let v: serde_json::Value =
                    serde_json::from_str(&line).expect("a JSON event per line");
                sink.lock().unwrap().push((
                    Instant::now(),
                    v["partition"].as_u64().expect("partition") as u32,
                    v["offset"].as_u64().expect("offset"),
                    v["key"].as_str().unwrap_or_default().to_owned(),
                    v["value"].as_str().expect("value").to_owned(),
                ));
            }
        });
        let stderr: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let errors = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || read_lines(errors, &sink));
        CliMember {
            child,
            lines,
            stderr,
        }
    }

    /// How many events it printed.
    pub fn printed(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Its stderr lines starting with `prefix` (e.g. "assigned:").
    pub fn said(&self, prefix: &str) -> Vec<(Instant, String)> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Its whole stderr, for failure messages.
    pub fn stderr_text(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(from: impl Read, sink: &Mutex<Vec<(Instant, String)>>) {
    for line in BufReader::new(from).lines() {
        let Ok(line) = line else { return };
        sink.lock().unwrap().push((Instant::now(), line));
    }
}

/// Polls `done` every 50 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! Goal: the API is usable from another language with the `.proto` alone (finding 8):
//! the minimal Python client of docs/protocol.md (docs/examples/python) creates a topic,
//! produces to every partition, retries a request and gets it answered as a duplicate at
//! its original offsets, and subscribes, reading its events back in order and a heartbeat.
//!
//! Method: three real nodes; the example runs with the Python that scripts/setup.sh
//! prepares (a virtualenv with grpcio under ~/.cache/evlog/python).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::TestCluster;

fn python() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    let python = PathBuf::from(home).join(".cache/evlog/python/bin/python3");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh, which installs the Python client's \
         dependencies (docs/examples/python/requirements.txt)",
        python.display()
    );
    python
}

#[test]
fn the_minimal_python_client_produces_retries_and_subscribes() {
    let cluster = TestCluster::start(3);
    let example =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/python/evlog_example.py");
    let output = Command::new(python())
        .arg(&example)
        .args(["--bootstrap", &cluster.bootstrap().join(",")])
        .output()
        .expect("run the Python example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed ({}):\n{stdout}\n{stderr}\nnode 1: {}",
        output.status,
        cluster.log_tail(1)
    );
    for line in [
        "created topic py-demo",
        "produced 300 events",
        "retry answered as a duplicate at offset 90",
        "subscribed: 100 events in order, each once",
        "heartbeat with high watermark 100",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

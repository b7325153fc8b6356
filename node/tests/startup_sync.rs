//! Goal: a node makes what it finds on disk durable before it trusts any of it. A
//! process crash leaves the previous run's unsynced writes in the page cache, where the
//! restarted node reads them (a vote, say) and acts on them; a power failure after that
//! would take them back. The simulation found it: a vote read at start-up and later lost
//! to a power failure let a node's vote go backward.
//!
//! Method: start a node, stop it, start it again on an engine that records its calls:
//! the first `sync` must come before the first read of any Raft state.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use evlog_node::config::{Config, Peer};
use evlog_node::keys::Cf;
use evlog_node::storage::rocks::RocksTuning;
use evlog_node::storage::{KeyValue, RocksEngine, StorageEngine, StorageError, WriteBatch};

struct Recording {
    inner: RocksEngine,
    calls: Mutex<Vec<&'static str>>,
}

impl Recording {
    fn note(&self, cf: Cf) {
        if matches!(cf, Cf::RaftState | Cf::RaftLog | Cf::PartitionState) {
            self.calls.lock().unwrap().push("read raft state");
        }
    }
}

impl StorageEngine for Recording {
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.inner.write(batch)
    }
    fn sync(&self) -> Result<(), StorageError> {
        self.calls.lock().unwrap().push("sync");
        self.inner.sync()
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.note(cf);
        self.inner.get(cf, key)
    }
    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        self.note(cf);
        self.inner.scan(cf, from, to, limit)
    }
    fn last_in_range(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
    ) -> Result<Option<KeyValue>, StorageError> {
        self.note(cf);
        self.inner.last_in_range(cf, from, to)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_syncs_what_it_finds_before_reading_raft_state() {
    let dir = tempfile::tempdir().unwrap();
    let port = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let peer_addr = format!("127.0.0.1:{}", port());
    let config = Config {
        node_id: 1,
        listen: format!("127.0.0.1:{}", port()),
        peer_listen: peer_addr.clone(),
        data_dir: dir.path().to_path_buf(),
        initial_cluster: vec![Peer {
            id: 1,
            addr: peer_addr,
        }],
        ..Config::default()
    };
    // A first run claims the data dir; the restart is what is checked.
    let first = Arc::new(
        RocksEngine::open(&dir.path().join("db"), RocksTuning::default())
            .await
            .unwrap(),
    );
    let node = evlog_node::Node::start_with_engine(config.clone(), first.clone())
        .await
        .expect("node starts");
    node.shutdown().await;
    drop(first);
    let inner = RocksEngine::open(&dir.path().join("db"), RocksTuning::default())
        .await
        .unwrap();
    let engine = Arc::new(Recording {
        inner,
        calls: Mutex::new(Vec::new()),
    });
    let node = evlog_node::Node::start_with_engine(config, engine.clone())
        .await
        .expect("node restarts");
    let calls = engine.calls.lock().unwrap().clone();
    node.shutdown().await;
    let first_sync = calls.iter().position(|c| *c == "sync").expect("a sync");
    let first_read = calls
        .iter()
        .position(|c| *c == "read raft state")
        .expect("a read");
    assert!(first_sync < first_read, "calls: {calls:?}");
}

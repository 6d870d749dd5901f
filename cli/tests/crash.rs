//! Crash safety of the real binary: `aurigraph start` as a child process on 127.0.0.1,
//! transfers submitted under load, `kill -9` in the middle of it, a restart on the same data
//! folder. Every transaction the node acknowledged as accepted commits (accepted submissions
//! are recorded durably in the `mempool` column family and admitted again on start), the
//! restart succeeds (the node recomputes the state root from the stored state and checks it
//! against the head's on open), and the head is at least where it was before the kill.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use parking_lot::Mutex;
use serde_json::json;

/// A child node, killed (SIGKILL) when dropped so a failing test leaves nothing behind.
pub(crate) struct ChildNode {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `aurigraph start` on a free port and waits until `/readyz` answers 200; tries
/// another port when the child exits (the port was taken meanwhile).
async fn spawn_node(dir: &Path, c: &reqwest::Client) -> ChildNode {
    let data = dir.join("data");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).expect("empty dir");
    for attempt in 0..5 {
        let port = free_port();
        let log = std::fs::File::create(dir.join(format!("node-{port}.log"))).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_aurigraph"))
            .args(["start", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("AURIGRAPH_ADMIN_TOKEN", TOKEN)
            .env("AURIGRAPH_MODELS_DIR", &empty)
            .env("AURIGRAPH_PLUGINS_DIR", &empty)
            .env("AURIGRAPH_BLOCK_INTERVAL_MS", "20")
            .env_remove("AURIGRAPH_CONFIG")
            .env_remove("AURIGRAPH_LISTEN")
            .env_remove("AURIGRAPH_DATA_DIR")
            .env_remove("AURIGRAPH_SYNC")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the binary starts");
        let mut node = ChildNode {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = node.child.try_wait().expect("child status") {
                let log = std::fs::read_to_string(dir.join(format!("node-{port}.log")))
                    .unwrap_or_default();
                assert!(
                    log.contains("E_LISTEN") && attempt < 4,
                    "the node exited with {status}:\n{log}"
                );
                break;
            }
            if let Ok(r) = c.get(format!("{}/readyz", node.base)).send().await
                && r.status().as_u16() == 200
            {
                return node;
            }
            assert!(Instant::now() < deadline, "the node did not become ready");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    unreachable!("the loop returns or panics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_no_acknowledged_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let node = spawn_node(dir.path(), &c).await;
    let base = node.base.clone();

    // Load: 16 senders, one transfer per request, every acknowledged hash recorded.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for acct in 0..16u32 {
        let (c, url, acked, stop) = (
            c.clone(),
            format!("{base}/v1/transactions"),
            acked.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut nonce = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = transfer(acct, nonce, 40 + acct, 7);
                let body = json!(hex_of(&t)).to_string();
                let Ok(r) = c
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                else {
                    // The node is gone (killed): no answer, no acknowledgement.
                    break;
                };
                let status = r.status().as_u16();
                let Ok(v) = r.json::<serde_json::Value>().await else {
                    break;
                };
                match status {
                    200 => {
                        assert_eq!(v["results"][0]["hash"], t.hash().to_string(), "{v}");
                        acked.lock().push(t.hash().to_string());
                        nonce += 1;
                    }
                    // Back-pressure is fine; anything else is a bug.
                    429 => tokio::time::sleep(Duration::from_millis(5)).await,
                    other => panic!("the node answered {other}: {v}"),
                }
            }
        }));
    }

    // Let it commit some blocks under load, then kill it mid-load.
    let before = poll_until(Duration::from_secs(15), "blocks under load", || async {
        let (s, v) = get_json(&c, &format!("{base}/v1/head")).await;
        let h = v["height"].as_u64().unwrap_or(0);
        (s == 200 && h >= 5 && acked.lock().len() >= 300).then_some(h)
    })
    .await;
    let mut node = node;
    node.child.kill().expect("SIGKILL");
    node.child.wait().expect("reaped");
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.expect("a load task panicked");
    }
    drop(node);
    let acked = std::mem::take(&mut *acked.lock());
    assert!(acked.len() >= 300, "{} acknowledged", acked.len());

    // Restart on the same data folder: the open checks the recomputed state root against
    // the head's, so a successful start is that check passing.
    let node = spawn_node(dir.path(), &c).await;
    let base = node.base.clone();
    let head = rest_head(&c, &base).await;
    let after = head["height"].as_u64().expect("height");
    assert!(
        after >= before,
        "the head went back from {before} to {after}"
    );

    // Every acknowledged transaction commits.
    let mut missing: Vec<String> = acked.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !missing.is_empty() {
        let mut still = Vec::new();
        for h in missing {
            let (s, v) = get_json(&c, &format!("{base}/v1/transactions/{h}")).await;
            match (s, v["state"].as_str()) {
                (200, Some("committed")) => {}
                (200, Some("pending")) => still.push(h),
                _ => panic!("acknowledged transaction {h} is lost: {s} {v}"),
            }
        }
        missing = still;
        assert!(
            Instant::now() < deadline,
            "{} acknowledged transactions still pending",
            missing.len()
        );
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The head is consistent with its last block, and the node keeps committing.
    let head = rest_head(&c, &base).await;
    let h = head["height"].as_u64().expect("height");
    let (s, b) = get_json(&c, &format!("{base}/v1/blocks/{h}")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state_root"], head["state_root"]);
    assert_eq!(b["hash"], head["hash"]);
    let (s, acc) = get_json(&c, &format!("{base}/v1/accounts/{}", addr_hex(0))).await;
    assert_eq!(s, 200);
    let next = acc["next_nonce"].as_u64().expect("nonce");
    let t = transfer(0, next, 1, 1);
    let (s, v) = post_json(
        &c,
        &format!("{base}/v1/transactions"),
        &json!(hex_of(&t)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    wait_committed(&c, &base, &t.hash().to_string()).await;
    println!(
        "crash: {} acknowledged before the kill at height {before}, all committed; head {h}",
        acked.len()
    );
    drop(node);
}

//! Storage tiers under `kill -9`: the real binary with tiny archive thresholds (blocks move
//! to the archive two at a time, three blocks behind the head) runs under load and is killed
//! (SIGKILL) again and again, each time at a different point of its archive cycle, then
//! restarted on the same data folder. Afterwards every block height answers (hot or cold,
//! chained by parent hashes), every acknowledged transaction is committed, and no temporary
//! segment file is left.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::crash::{ChildNode, free_port};
use parking_lot::Mutex;
use serde_json::json;

/// Starts `aurigraph start --config dir/node.toml` on a free port, waits for `/readyz` 200.
async fn spawn_node(dir: &Path, c: &reqwest::Client) -> ChildNode {
    let data = dir.join("data");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).expect("empty dir");
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        "[storage]\narchive_after_blocks = 3\narchive_segment_blocks = 2\n",
    )
    .expect("config");
    for attempt in 0..5 {
        let port = free_port();
        let logfile = dir.join(format!("node-{port}.log"));
        let log = std::fs::File::create(&logfile).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_aurigraph"))
            .args(["start", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("AURIGRAPH_ADMIN_TOKEN", TOKEN)
            .env("AURIGRAPH_MODELS_DIR", &empty)
            .env("AURIGRAPH_PLUGINS_DIR", &empty)
            .env("AURIGRAPH_BLOCK_INTERVAL_MS", "10")
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
                let log = std::fs::read_to_string(&logfile).unwrap_or_default();
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

/// `aurigraph_storage_archived_height` from `/metrics` (0 when unreadable).
async fn archived_height(c: &reqwest::Client, base: &str) -> u64 {
    let Ok(r) = c.get(format!("{base}/metrics")).send().await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("aurigraph_storage_archived_height "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_while_archiving_loses_no_block_and_no_acknowledged_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    const CYCLES: u32 = 8;
    const SENDERS: u32 = 3;
    let mut archived = 0;
    for cycle in 0..CYCLES {
        let node = spawn_node(dir.path(), &c).await;
        let base = node.base.clone();
        // Fresh senders each cycle (nonces from 0): what a killed request left undecided
        // never collides with a later nonce.
        let stop = Arc::new(AtomicBool::new(false));
        let mut load = Vec::new();
        for s in 0..SENDERS {
            let acct = cycle * SENDERS + s;
            let (c, url, acked, stop) = (
                c.clone(),
                format!("{base}/v1/transactions"),
                acked.clone(),
                stop.clone(),
            );
            load.push(tokio::spawn(async move {
                let mut nonce = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = transfer(acct, nonce, 50 + s, 3);
                    let Ok(r) = c
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(json!(hex_of(&t)).to_string())
                        .send()
                        .await
                    else {
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
                        429 => tokio::time::sleep(Duration::from_millis(5)).await,
                        other => panic!("the node answered {other}: {v}"),
                    }
                }
            }));
        }
        // Run until the archive moved on, then a little more: each cycle kills at another
        // point (mid-segment write, between the rename and the batch, mid-block).
        let target = archived + 4;
        archived = poll_until(Duration::from_secs(20), "archive runs", || async {
            let a = archived_height(&c, &base).await;
            (a >= target).then_some(a)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(5 * u64::from(cycle) + 1)).await;
        let mut node = node;
        node.child.kill().expect("SIGKILL");
        node.child.wait().expect("reaped");
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.await.expect("a load task panicked");
        }
    }
    let acked = std::mem::take(&mut *acked.lock());
    assert!(acked.len() >= 50, "{} acknowledged", acked.len());

    let node = spawn_node(dir.path(), &c).await;
    let base = node.base.clone();
    // Every acknowledged transaction commits.
    let mut missing = acked;
    let deadline = Instant::now() + Duration::from_secs(20);
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
    // Every height answers, chained by parent hashes, old ones from the archive.
    let head = rest_head(&c, &base).await["height"]
        .as_u64()
        .expect("height");
    let archived = archived_height(&c, &base).await;
    assert!(
        archived >= 10 && archived < head,
        "archived {archived}, head {head}"
    );
    let mut parent: Option<String> = None;
    for h in 1..=head {
        let (s, b) = get_json(&c, &format!("{base}/v1/blocks/{h}")).await;
        assert_eq!(s, 200, "block {h}: {b}");
        assert_eq!(b["height"], h);
        if let Some(p) = &parent {
            assert_eq!(b["parent_hash"].as_str(), Some(p.as_str()), "block {h}");
        }
        parent = b["hash"].as_str().map(str::to_string);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data/archive"))
        .expect("the archive folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(node);
}

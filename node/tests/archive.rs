//! Storage tiers through a real node: with small thresholds old blocks move to archive
//! segments while the node commits; every old block and transaction still answers through
//! REST (also after a restart), the hot `blocks` family stays bounded by the configuration,
//! and the archive runs show in `/metrics`.

use std::time::Duration;

use crate::common::*;
use aurigraph_node::NodeConfig;
use serde_json::json;

const AFTER: u64 = 4;
const SEGMENT: u64 = 3;

fn archiving(dir: &std::path::Path) -> NodeConfig {
    let mut c = config(dir);
    c.storage.sync = false;
    c.storage.archive_after_blocks = AFTER;
    c.storage.archive_segment_blocks = SEGMENT;
    c
}

/// The value of the metric line starting with `name ` (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_blocks_move_to_the_archive_and_still_answer_with_hot_blocks_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(archiving(dir.path())).await;
    let c = http();
    let base = base(&node);
    // One transaction per block: each waits for the previous to commit.
    let mut txs = Vec::new();
    for nonce in 0..30u64 {
        let tx = transfer(1, nonce, 2, 1);
        let (s, v) = post_json(
            &c,
            &format!("{base}/v1/transactions"),
            &json!(hex_of(&tx)),
            None,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["accepted"], 1, "{v}");
        wait_committed(&c, &base, &tx.hash().to_string()).await;
        txs.push(tx);
        let hot = node.core().storage.hot_block_count().unwrap() as u64;
        assert!(hot <= AFTER + 2 * SEGMENT, "{hot} hot blocks");
    }
    let head = rest_head(&c, &base).await["height"].as_u64().unwrap();
    // The producer archives between rounds: wait for the last whole segment to move.
    let want = (head - AFTER) / SEGMENT * SEGMENT;
    poll_until(
        Duration::from_secs(10),
        "the archive to catch up",
        || async { (node.core().storage.archived_to().unwrap() >= want).then_some(()) },
    )
    .await;
    assert!(want >= 21, "head {head}");
    let hot = node.core().storage.hot_block_count().unwrap() as u64;
    assert!(hot <= AFTER + 2 * SEGMENT, "{hot} hot blocks");

    let (s, text) = {
        let r = c.get(format!("{base}/metrics")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(s, 200);
    assert!(
        metric(&text, "aurigraph_storage_archived_blocks_total") >= want as f64,
        "{text}"
    );
    assert!(metric(&text, "aurigraph_storage_archive_runs_total") >= (want / SEGMENT) as f64);
    assert!(metric(&text, "aurigraph_storage_archived_height") >= want as f64);
    assert!(metric(&text, "aurigraph_storage_archive_bytes") > 0.0);
    assert!(text.contains("aurigraph_storage_archive_run_seconds_count"));

    let check = |base: String,
                 c: reqwest::Client,
                 txs: Vec<aurigraph_ledger::tx::SignedTransaction>| async move {
        for h in 1..=head {
            let (s, b) = get_json(&c, &format!("{base}/v1/blocks/{h}")).await;
            assert_eq!(s, 200, "block {h}: {b}");
            assert_eq!(b["height"], h);
        }
        for tx in &txs {
            let (s, v) = get_json(&c, &format!("{base}/v1/transactions/{}", tx.hash())).await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["state"], "committed", "{v}");
            assert!(v["receipt"].is_object(), "{v}");
        }
    };
    check(base.clone(), c.clone(), txs.clone()).await;
    node.shutdown().await;

    // After a restart the archive opens again and the old heights still answer.
    let node = start(archiving(dir.path())).await;
    let base = crate::common::base(&node);
    check(base, c.clone(), txs).await;
    node.shutdown().await;
}

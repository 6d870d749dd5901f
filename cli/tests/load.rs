//! `aurigraph load` (the real binary) against a real node (in-process, 127.0.0.1, an
//! ephemeral port): its report's figures hold against the node's own blocks, read here
//! independently through the REST API, and the run keeps its time bound.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// Runs `aurigraph load --json --quiet --hashes FILE ARGS` against `base`: its report, the
/// acknowledged hashes it wrote, and how long the process took.
async fn run_load(
    base: &str,
    dir: &Path,
    name: &str,
    args: &[&str],
) -> (Value, Vec<String>, Duration) {
    let hashes = dir.join(format!("{name}.hashes"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aurigraph"));
    cmd.args(["load", "--json", "--quiet", "--node", base, "--hashes"])
        .arg(&hashes)
        .args(args)
        .env_remove("AURIGRAPH_NODE");
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("the binary runs");
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "aurigraph load failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the report is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let hashes: Vec<String> = std::fs::read_to_string(&hashes)
        .expect("the hashes file")
        .lines()
        .map(str::to_string)
        .collect();
    (report, hashes, took)
}

/// Every transaction hash in blocks `from..=to`, through `GET /v1/blocks/{h}`.
async fn hashes_in_blocks(c: &reqwest::Client, base: &str, from: u64, to: u64) -> HashSet<String> {
    let mut all = HashSet::new();
    for h in from..=to {
        let (s, b) = get_json(c, &format!("{base}/v1/blocks/{h}")).await;
        assert_eq!(s, 200, "block {h}: {b}");
        for t in b["transactions"].as_array().expect("transactions") {
            all.insert(t["hash"].as_str().expect("hash").to_string());
        }
    }
    all
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The checks every run must pass: offered >= acknowledged >= committed, the refusals
/// account for the difference, the committed count is the acknowledged hashes found in the
/// blocks after the head at start (counted here through the API), and the time bound:
/// sending stops at the deadline (give or take the answers in flight), the drain within its
/// timeout, nothing else in the run's wall time.
async fn check(
    c: &reqwest::Client,
    base: &str,
    r: &Value,
    hashes: &[String],
    took: Duration,
    duration_s: f64,
    drain_timeout_s: f64,
) {
    let offered = n(&r["offered"]["transactions"]);
    let acked = n(&r["acknowledged"]["transactions"]);
    let committed = n(&r["committed"]["transactions"]);
    assert!(offered >= acked && acked >= committed, "{r:#}");
    let refused: u64 = r["refused"]
        .as_object()
        .expect("refused")
        .values()
        .map(n)
        .sum();
    assert_eq!(offered, acked + refused, "{r:#}");
    assert_eq!(hashes.len() as u64, acked, "one line per acknowledged hash");
    assert_eq!(
        hashes.iter().collect::<HashSet<_>>().len(),
        hashes.len(),
        "no hash acknowledged twice"
    );
    assert_eq!(
        n(&r["committed"]["not_committed"]),
        acked - committed,
        "{r:#}"
    );

    // Independently: the acknowledged hashes in the node's blocks between the heads.
    let (start, end) = (n(&r["start_head"]), n(&r["final_head"]));
    assert!(end >= start, "{r:#}");
    let in_blocks = hashes_in_blocks(c, base, start + 1, end).await;
    let found = hashes.iter().filter(|h| in_blocks.contains(*h)).count() as u64;
    assert_eq!(
        found,
        committed,
        "the report's committed count against the blocks {}..={end}",
        start + 1
    );
    // And none of them before the start.
    if start > 0 {
        let before = hashes_in_blocks(c, base, start.saturating_sub(3).max(1), start).await;
        assert!(hashes.iter().all(|h| !before.contains(h)));
    }

    // The time bound.
    let sending = f(&r["offered"]["seconds"]);
    let drain = f(&r["drain"]["seconds"]);
    let wall = f(&r["wall_seconds"]);
    assert!(
        sending <= duration_s + 1.0,
        "sending took {sending} s for --duration {duration_s}s"
    );
    assert!(drain <= drain_timeout_s + 0.5, "drain {drain} s: {r:#}");
    assert!(
        wall <= sending + drain + 0.5,
        "wall {wall} s beyond sending {sending} s and drain {drain} s"
    );
    println!(
        "load: offered {offered}, acknowledged {acked}, committed {committed} (blocks {}..={end}); \
         sending {sending} s, drain {drain} s ({}), wall {wall} s, process {took:?}",
        start + 1,
        r["drain"]["ended_by"]
    );
    let setup = f(&r["setup"]["funding_seconds"]) + f(&r["setup"]["presign_seconds"]);
    assert!(
        took.as_secs_f64() <= setup + wall + 10.0,
        "the process took {took:?}: setup {setup} s, wall {wall} s"
    );
    assert!(
        took.as_secs_f64() <= 10.0 + 60.0 + duration_s + drain_timeout_s,
        "the process took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_reports_what_the_blocks_hold_and_stops_at_its_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(config(dir.path())).await;
    let base = base(&node);
    let c = http();

    // A rate the node keeps up with: the senders are funded first (a setup phase that waits
    // for the funding to commit), then everything acknowledged commits and the drain ends
    // on that.
    let (r, hashes, took) = run_load(
        &base,
        dir.path(),
        "kept",
        &[
            "--rate",
            "400",
            "--duration",
            "2s",
            "--senders",
            "40",
            "--connections",
            "2",
            "--drain-timeout",
            "20s",
        ],
    )
    .await;
    check(&c, &base, &r, &hashes, took, 2.0, 20.0).await;
    assert_eq!(n(&r["setup"]["funded"]), 40, "{r:#}");
    assert_eq!(n(&r["setup"]["funding_transfers"]), 3, "{r:#}");
    assert_eq!(n(&r["in_flight_bound"]), 40 * 64, "{r:#}");
    assert!(n(&r["acknowledged"]["transactions"]) >= 400, "{r:#}");
    assert_eq!(
        r["drain"]["ended_by"], "all acknowledged committed",
        "{r:#}"
    );
    assert_eq!(
        n(&r["committed"]["transactions"]),
        n(&r["acknowledged"]["transactions"]),
        "{r:#}"
    );
    assert_eq!(
        r["committed"]["receipts"]["OK"],
        r["committed"]["transactions"]
    );

    // A rate it cannot keep: 2 senders hold at most 2 x 64 transactions in flight, against
    // 50,000 tx/s asked. Sending stops at the deadline all the same, with fewer offered than
    // asked, and the funded senders of the first run are not funded again.
    let (r, hashes, took) = run_load(
        &base,
        dir.path(),
        "bounded",
        &[
            "--rate",
            "50000",
            "--duration",
            "1500ms",
            "--senders",
            "2",
            "--presign",
            "1000",
            "--drain-quiet",
            "1s",
            "--drain-timeout",
            "10s",
        ],
    )
    .await;
    check(&c, &base, &r, &hashes, took, 1.5, 10.0).await;
    assert_eq!(n(&r["setup"]["funded"]), 0, "{r:#}");
    assert_eq!(n(&r["in_flight_bound"]), 128, "{r:#}");
    assert_eq!(r["offered"]["stopped_by"], "deadline", "{r:#}");
    assert!(
        n(&r["offered"]["transactions"]) < 75_000,
        "offered {} of the 75,000 asked",
        r["offered"]["transactions"]
    );
    assert!(f(&r["offered"]["of_asked"]) < 1.0, "{r:#}");
    assert!(f(&r["senders_at_bound_seconds"]) > 0.0, "{r:#}");
    drop(node);
}

//! `aurigraph chaos run` with the real binary, short versions (`--duration 6s`) of each
//! scenario against a cluster of three validator processes started by `aurigraph cluster
//! up`, two or three scenarios per cluster. Each asserts the verdict JSON: every
//! acknowledged transaction committed exactly once on every node, one state root and head,
//! something acknowledged after the fault began, the figures present, and the run's labels
//! (events.json).
//!
//! The kill-leader run covers what the process-level kill -9 test asserted: no client
//! anomaly, every acknowledged or hash-confirmed transaction committed (receipt OK) on every
//! replica, once in the chain, each sender's nonce where its transactions put it, no Raft
//! stopped, progress after the kill.

use std::path::Path;

use serde_json::Value;

use crate::cluster::{Down, aurigraph, text, up_three};

/// `aurigraph chaos run --scenario NAME --duration 6s` (and `extra`) on the cluster in
/// `dir`: its verdict JSON, asserted to pass with every figure present.
fn chaos(dir: &Path, scenario: &str, extra: &[&str]) -> Value {
    let out_file = dir.join(format!("verdict-{scenario}.json"));
    let out_s = out_file.display().to_string();
    let mut args = vec![
        "chaos",
        "run",
        "--scenario",
        scenario,
        "--duration",
        "6s",
        "--quiet",
        "--out",
        &out_s,
    ];
    args.extend_from_slice(extra);
    let out = aurigraph(&args, dir);
    let shown = text(&out);
    println!("{shown}");
    assert!(out.status.success(), "{shown}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verdict: nothing lost"),
        "{shown}"
    );
    let v: Value =
        serde_json::from_slice(&std::fs::read(&out_file).expect("the verdict file")).expect("JSON");
    assert_eq!(v["scenario"], scenario, "{v}");
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["exactly_once"], true, "{v}");
    assert_eq!(v["one_state_root"], true, "{v}");
    assert_eq!(v["one_head"], true, "{v}");
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["not_exactly_once"], 0, "{v}");
    assert!(v["acknowledged"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(
        v["acknowledged_after_fault"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    for figure in [
        "time_without_leader_ms",
        "longest_commit_gap_ms",
        "commit_gap_around_fault_ms",
    ] {
        assert!(v[figure].is_number(), "{figure}: {v}");
    }
    for p in ["p50", "p99"] {
        assert!(v["latency_ms"][p].is_number(), "{v}");
        assert!(v["fault_window_latency_ms"][p].is_number(), "{v}");
    }
    assert!(v["refused"].is_object(), "{v}");
    assert!(v["leader_changes"].is_number(), "{v}");
    let rss = v["max_rss_mb"].as_object().expect("max RSS per node");
    assert_eq!(rss.len(), 3, "{v}");
    // The labels.
    let run_dir = v["run_dir"].as_str().expect("the run's folder");
    let events: Value = serde_json::from_slice(
        &std::fs::read(Path::new(run_dir).join("events.json")).expect("events.json"),
    )
    .expect("events JSON");
    assert_eq!(events["scenario"], scenario, "{events}");
    for k in ["crashes", "faults", "handovers"] {
        assert!(events[k].is_array(), "{k}: {events}");
    }
    v
}

fn crash_kinds(v: &Value) -> Vec<String> {
    v["events"]["crashes"]
        .as_array()
        .expect("crashes")
        .iter()
        .map(|c| c["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn chaos_kill_leader_then_kill_follower_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");
    up_three(&dir);
    let _down = Down(dir.clone());

    let v = chaos(&dir, "kill-leader", &[]);
    assert_eq!(crash_kinds(&v), ["kill"], "{v}");
    assert_eq!(v["events"]["crashes"][0]["node"], v["leader_before"], "{v}");
    assert!(
        v["time_without_leader_ms"].as_f64().unwrap_or(0.0) > 0.0,
        "{v}"
    );
    assert!(v["leader_changes"].as_u64().unwrap_or(0) >= 1, "{v}");

    let v = chaos(&dir, "kill-follower", &[]);
    assert_eq!(crash_kinds(&v), ["kill"], "{v}");
    assert_ne!(v["victim"], v["leader_before"], "{v}");
}

#[test]
fn chaos_rolling_restart_then_overload_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");
    up_three(&dir);
    let _down = Down(dir.clone());

    let v = chaos(&dir, "rolling-restart", &[]);
    assert_eq!(crash_kinds(&v), ["term", "term", "term"], "{v}");
    // Followers first, the leader last.
    assert_eq!(v["events"]["crashes"][2]["node"], v["leader_before"], "{v}");
    assert_eq!(
        v["caught_up_ms"].as_object().map(|o| o.len()),
        Some(3),
        "{v}"
    );

    let v = chaos(&dir, "overload", &[]);
    assert!(v["capacity_tps"].as_f64().unwrap_or(0.0) > 0.0, "{v}");
    assert!(v["overload_refused"].is_object(), "{v}");
    assert!(
        v["acknowledged_by_overload"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
}

#[test]
fn chaos_partition_degrade_and_leak_of_the_leader_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");
    let base = crate::cluster::free_base(3).to_string();
    let up = aurigraph(&["cluster", "up", "--chaos", "--base-port", &base], &dir);
    assert!(up.status.success(), "{}", text(&up));
    let _down = Down(dir.clone());

    let v = chaos(&dir, "partition-leader", &[]);
    let faults = v["events"]["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 1, "{v}");
    assert_eq!(faults[0]["kind"], "partition", "{v}");
    assert!(faults[0]["cleared_at_ms"].is_u64(), "{v}");

    let v = chaos(&dir, "degrade-leader-disk", &["--warning", "1s"]);
    assert_eq!(v["events"]["faults"][0]["kind"], "disk_slow", "{v}");
    assert_eq!(crash_kinds(&v), ["kill"], "{v}");
    assert!(v.get("handover_lead_ms").is_some(), "{v}");

    let v = chaos(&dir, "leak-leader", &[]);
    assert_eq!(v["events"]["faults"][0]["kind"], "mem_leak", "{v}");
    assert_eq!(crash_kinds(&v), ["abort"], "{v}");
}

#[test]
fn chaos_run_needs_a_cluster() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = aurigraph(
        &[
            "chaos",
            "run",
            "--scenario",
            "kill-leader",
            "--duration",
            "3s",
        ],
        &tmp.path().join("none"),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[E_NO_CLUSTER]"),
        "{}",
        text(&out)
    );
}

//! The closed loop on a real node (issue 16): a node started in-process records its `demand`
//! decisions (input windows with `features = "full"`, one every 20 ms) under a seasonal
//! load; `POST /v1/policies/demand/train` runs the real `aurigraph train demand` binary as
//! its child process, which reads the telemetry read-only, trains, validates and writes
//! `demand-autoregression-v1/` into the models folder with its lineage; the node's
//! `[retrain]` policy loads it, shadows it, climbs the canary schedule while the guard holds
//! and promotes it. And a training that fails (too little data) leaves the running version
//! and the models folder untouched, with its code in the slot's status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aurigraph_ledger::tx::{Operation, Transaction};
use aurigraph_node::config::{FeatureRecording, dev_key};
use aurigraph_node::{Node, NodeConfig};
use serde_json::Value;

use crate::common;

fn config(dir: &std::path::Path) -> NodeConfig {
    let mut c = common::config(dir);
    c.block.interval_ms = 5;
    c.storage.sync = false;
    c.telemetry.features = FeatureRecording::Full;
    c.telemetry.demand_interval_ms = 20;
    c.retrain.program = Some(env!("CARGO_BIN_EXE_aurigraph").into());
    c
}

fn transfer(from: u32, nonce: u64) -> Vec<u8> {
    let (key, sender) = dev_key(from);
    Transaction {
        chain_id: 1,
        sender,
        nonce,
        fee: 10,
        op: Operation::Transfer {
            to: dev_key(from + 100).1,
            amount: 1,
        },
    }
    .sign(&key)
    .encoded()
    .to_vec()
}

/// Submits a seasonal load (a sine of period 25 intervals of 20 ms) until `stop`.
fn seasonal_load(node: &Node, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let core = node.core().clone();
    std::thread::spawn(move || {
        let mut nonces = [0u64; 64];
        let mut i = 0u64;
        let t0 = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let phase = (i % 25) as f64 / 25.0 * std::f64::consts::TAU;
            let n = (6.0 + 5.0 * phase.sin()).round() as usize;
            let txs: Vec<Vec<u8>> = (0..n)
                .map(|k| {
                    let from = ((i as usize * 7 + k) % 64) as u32;
                    let tx = transfer(from, nonces[from as usize]);
                    nonces[from as usize] += 1;
                    tx
                })
                .collect();
            let _ = core.submit(&txs);
            i += 1;
            let next = t0 + Duration::from_millis(20 * i);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    })
}

async fn retrain_of(c: &reqwest::Client, base: &str) -> Value {
    let (status, body) = common::get_json(c, &format!("{base}/v1/policies/demand")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_loop_trains_shadows_canaries_and_promotes_demand() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.retrain.enabled = true;
    c.retrain.shadow_decisions = 20;
    c.retrain.schedule = vec![50.0, 100.0];
    c.retrain.min_decisions = 20;
    let models = c.policies.models_dir.clone();
    let node = common::start(c).await;
    let base = common::base(&node);
    let http = common::http();
    let stop = Arc::new(AtomicBool::new(false));
    let load = seasonal_load(&node, stop.clone());

    // About 300 windows of 20 ms recorded.
    tokio::time::sleep(Duration::from_secs(6)).await;
    node.core().flush_telemetry();
    let (status, started) = common::post_raw(
        &http,
        &format!("{base}/v1/policies/demand/train"),
        "",
        Some(common::TOKEN),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["phase"], "training", "{started}");
    // A second call while it runs is refused.
    let (status, again) = common::post_raw(
        &http,
        &format!("{base}/v1/policies/demand/train"),
        "",
        Some(common::TOKEN),
    )
    .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(common::code(&again), "E_RETRAIN_RUNNING");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut phases = Vec::new();
    let last = loop {
        let s = retrain_of(&http, &base).await;
        let phase = s["retrain"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        if matches!(phase.as_str(), "promoted" | "failed" | "rolled_back") {
            break s;
        }
        assert!(Instant::now() < deadline, "stuck in {phase}: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    assert_eq!(last["retrain"]["phase"], "promoted", "{last}");
    assert_eq!(last["baseline"]["backend"], "onnx", "{last}");
    assert_eq!(last["baseline"]["name"], "demand-autoregression");
    assert_eq!(last["baseline"]["version"], "1");
    let steps: Vec<&str> = last["retrain"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["phase"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        steps,
        ["training", "shadow", "canary", "promoted"],
        "{last}"
    );
    let report = &last["retrain"]["report"];
    assert!(
        report["model_mase"].as_f64() < report["holt_mase"].as_f64(),
        "{report}"
    );
    // The version folder, with its metrics and lineage.
    let toml: toml::Table =
        std::fs::read_to_string(models.join("demand-autoregression-v1/model.toml"))
            .expect("model.toml")
            .parse()
            .expect("TOML");
    assert_eq!(toml["version"].as_str(), Some("1"));
    let training = toml["training"].as_table().expect("[training]");
    assert_eq!(training["parent_version"].as_str(), Some("none"));
    assert!(
        training["decisions"].as_integer() > Some(100),
        "{training:?}"
    );
    assert!(training["last_at_ms"].as_integer() > training["first_at_ms"].as_integer());
    assert!(
        training["command"]
            .as_str()
            .unwrap_or_default()
            .starts_with("aurigraph train demand")
    );
    assert!(toml["metrics"]["model_mase"].as_float().is_some());
    // Nothing half-written is left in the models folder.
    let entries: Vec<String> = std::fs::read_dir(&models)
        .expect("models")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["demand-autoregression-v1"]);
    node.shutdown().await;
    eprintln!("closed loop: {phases:?} in {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_training_leaves_the_running_version_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.retrain.enabled = true;
    let models = c.policies.models_dir.clone();
    let node = common::start(c).await;
    let base = common::base(&node);
    let http = common::http();
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.core().flush_telemetry();
    let before = retrain_of(&http, &base).await;
    assert_eq!(before["retrain"]["phase"], "idle");
    let (status, started) = common::post_raw(
        &http,
        &format!("{base}/v1/policies/demand/train"),
        "",
        Some(common::TOKEN),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let s = retrain_of(&http, &base).await;
        if s["retrain"]["phase"] != "training" {
            break s;
        }
        assert!(Instant::now() < deadline, "still training: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(last["retrain"]["phase"], "failed", "{last}");
    assert_eq!(last["retrain"]["code"], "E_TRAIN_TOO_LITTLE_DATA", "{last}");
    assert!(
        last["retrain"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("at least 96"),
        "{last}"
    );
    assert_eq!(
        last["baseline"], before["baseline"],
        "the running version is untouched"
    );
    assert!(last["candidate"].is_null(), "{last}");
    assert_eq!(std::fs::read_dir(&models).expect("models").count(), 0);
    // A slot without labels is refused by the binary with its code.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aurigraph"))
        .args(["train", "anomaly", "--json", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--models")
        .arg(&models)
        .output()
        .expect("aurigraph train");
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["code"], "E_TRAIN_NO_LABELS", "{v}");
    node.shutdown().await;
}

//! The admin flow through the real servers, gRPC and REST: load the shipped ONNX model
//! `ordering-linear` version 1 from the repository's `models/`, canary 25%, status shows the
//! candidate, promote, load again, roll back; and a rollout survives a restart of the node
//! on the same data folder.

use std::time::Duration;

use crate::common::*;
use aurigraph_node::proto;
use serde_json::json;

fn load_req() -> proto::LoadRequest {
    proto::LoadRequest {
        slot: "ordering".into(),
        backend: "onnx".into(),
        name: "ordering-linear".into(),
        version: "1".into(),
    }
}

fn slot(s: &str) -> proto::SlotRequest {
    proto::SlotRequest { slot: s.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_canary_promote_and_rollback_through_grpc_and_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.policies.models_dir = MODELS_DIR.into();
    let node = start(cfg).await;
    let base = base(&node);
    let c = http();
    let ch = channel(&node).await;
    let mut admin = proto::admin_client::AdminClient::new(ch.clone());

    // gRPC: the five slots, all on their static baseline.
    let slots = admin
        .list_slots(authed(proto::ListSlotsRequest {}, TOKEN))
        .await
        .expect("ListSlots answers")
        .into_inner()
        .slots;
    assert_eq!(slots.len(), 5, "{slots:?}");
    let ordering = slots
        .iter()
        .find(|s| s.slot == "ordering")
        .expect("ordering slot");
    assert_eq!(ordering.mode, "off");
    assert!(ordering.candidate.is_empty());

    // gRPC: load, canary 25, status, promote.
    let s = admin
        .load(authed(load_req(), TOKEN))
        .await
        .expect("Load answers")
        .into_inner();
    assert!(s.candidate.contains("ordering-linear"), "{s:?}");
    assert_eq!(s.mode, "off", "a loaded candidate starts off");
    let s = admin
        .set_mode(authed(
            proto::SetModeRequest {
                slot: "ordering".into(),
                mode: "canary".into(),
                percent: 25.0,
            },
            TOKEN,
        ))
        .await
        .expect("SetMode answers")
        .into_inner();
    assert_eq!(s.mode, "canary 25%");
    let s = admin
        .status(authed(slot("ordering"), TOKEN))
        .await
        .expect("Status answers")
        .into_inner();
    assert_eq!(s.mode, "canary 25%");
    assert!(s.candidate.contains("ordering-linear"), "{s:?}");
    let detail: serde_json::Value = serde_json::from_str(&s.detail_json).expect("detail JSON");
    assert_eq!(detail["slot"], "ordering");

    // Decisions flow while the canary runs: blocks still commit.
    let t = transfer(7, 0, 8, 50);
    let (st, v) = post_json(
        &c,
        &format!("{base}/v1/transactions"),
        &json!(hex_of(&t)),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    wait_committed(&c, &base, &t.hash().to_string()).await;
    // Online A/B: the guard saw the block's outcome for the arm that ordered it, and
    // status shows the key metric with its confidence sequence once both arms have one.
    let (st, v) = get_json(&c, &format!("{base}/v1/policies/ordering")).await;
    assert_eq!(st, 200, "{v}");
    let g = &v["guard"];
    assert!(g["decisions"].as_u64().is_some(), "guard figures: {v}");
    let m = &g["metric"];
    if !m.is_null() {
        let (lo, hi) = (m["diff_lower"].as_f64(), m["diff_upper"].as_f64());
        assert!(
            lo.is_some() && hi.is_some() && lo <= hi,
            "confidence sequence: {m}"
        );
        assert!(
            m["baseline_n"].as_u64().unwrap_or(0) + m["candidate_n"].as_u64().unwrap_or(0) >= 1,
            "{m}"
        );
    }

    let s = admin
        .promote(authed(slot("ordering"), TOKEN))
        .await
        .expect("Promote answers")
        .into_inner();
    assert!(
        s.baseline.contains("ordering-linear"),
        "the model is the baseline: {s:?}"
    );
    assert!(s.candidate.is_empty(), "{s:?}");
    assert_eq!(s.mode, "off");

    // REST: the same flow's other half: load again, canary, roll back.
    let url = |action: &str| format!("{base}/v1/policies/ordering/{action}");
    let (st, v) = post_json(
        &c,
        &url("load"),
        &json!({"backend": "onnx", "name": "ordering-linear", "version": "1"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(!v["candidate"].is_null(), "{v}");
    let (st, v) = post_json(&c, &url("canary"), &json!({"percent": 25}), Some(TOKEN)).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = get_json(&c, &format!("{base}/v1/policies/ordering")).await;
    assert_eq!(st, 200, "{v}");
    assert!(!v["candidate"].is_null(), "status shows the candidate: {v}");
    let (st, v) = post_json(
        &c,
        &url("rollback"),
        &json!({"reason": "test"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["candidate"].is_null(), "{v}");
    assert!(
        v["last_rollback"].as_str().unwrap_or("").contains("test"),
        "the reason is kept: {v}"
    );
    // Nothing left to roll back: a refusal in the current state, with its code.
    let (st, v) = post_json(&c, &url("rollback"), &json!({}), Some(TOKEN)).await;
    assert_eq!(st, 409, "{v}");
    assert!(!code(&v).is_empty(), "{v}");
    // gRPC agrees.
    let s = admin
        .status(authed(slot("ordering"), TOKEN))
        .await
        .expect("Status answers")
        .into_inner();
    assert!(s.candidate.is_empty());
    assert!(
        s.baseline.contains("ordering-linear"),
        "the promoted model stays: {s:?}"
    );
    assert!(s.last_rollback.contains("test"), "{s:?}");

    // Unknown model version: not found, with its code.
    let mut bad = load_req();
    bad.version = "999".into();
    let err = admin
        .load(authed(bad, TOKEN))
        .await
        .expect_err("no such version");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert_eq!(status_code(&err), "E_POLICY_NOT_FOUND");

    drop((admin, ch));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_survives_a_restart_on_the_same_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.policies.models_dir = MODELS_DIR.into();

    let node = start(cfg.clone()).await;
    let ch = channel(&node).await;
    let mut admin = proto::admin_client::AdminClient::new(ch.clone());
    admin
        .load(authed(load_req(), TOKEN))
        .await
        .expect("Load answers");
    let s = admin
        .set_mode(authed(
            proto::SetModeRequest {
                slot: "ordering".into(),
                mode: "canary".into(),
                percent: 25.0,
            },
            TOKEN,
        ))
        .await
        .expect("SetMode answers")
        .into_inner();
    assert_eq!(s.mode, "canary 25%");
    drop((admin, ch));
    tokio::time::timeout(Duration::from_secs(10), node.shutdown())
        .await
        .expect("shutdown finishes");

    // Same data folder, a new process-equivalent: the rollout is read back from RocksDB.
    let node = start(cfg).await;
    let ch = channel(&node).await;
    let mut admin = proto::admin_client::AdminClient::new(ch.clone());
    let s = admin
        .status(authed(slot("ordering"), TOKEN))
        .await
        .expect("Status answers")
        .into_inner();
    assert_eq!(s.mode, "canary 25%", "the mode survives the restart: {s:?}");
    assert!(
        s.candidate.contains("ordering-linear"),
        "so does the candidate: {s:?}"
    );
    // The REST view agrees.
    let (st, v) = get_json(&http(), &format!("{}/v1/policies/ordering", base(&node))).await;
    assert_eq!(st, 200, "{v}");
    assert!(!v["candidate"].is_null(), "{v}");
    drop((admin, ch));
    node.shutdown().await;
}

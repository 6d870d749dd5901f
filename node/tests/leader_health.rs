//! The `leader_health` monitor in a live cluster of three in-process nodes with fault
//! injection on: the fault API's refusals; a slow disk injected on the leader shows in the
//! fsync column the leader scores itself with; a leader whose outgoing links slow down scores
//! itself failing and hands leadership over to a follower through openraft, recorded as a
//! hand-over, and nothing acknowledged before or after is lost.

use std::time::Duration;

use crate::cluster::{cluster_of, converged, free_ports, leader, replica_config};
use crate::common::*;
use aurigraph_node::{Node, NodeConfig};
use serde_json::{Value, json};

fn chaos_config(dir: &std::path::Path, id: u64, ports: &[u16]) -> NodeConfig {
    let mut c = replica_config(dir, id, ports);
    c.faults.enabled = true;
    c.leader_health.min_interval_ms = 1_000;
    c
}

async fn fault(c: &reqwest::Client, node: &Node, body: &Value) -> (u16, Value) {
    post_json(
        c,
        &format!("{}/v1/admin/faults", base(node)),
        body,
        Some(TOKEN),
    )
    .await
}

async fn submit_all(c: &reqwest::Client, node: &Node, txs: &[String]) {
    let (s, v) = post_json(
        c,
        &format!("{}/v1/transactions", base(node)),
        &json!(txs),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"].as_u64(), Some(txs.len() as u64), "{v}");
}

#[tokio::test]
async fn the_fault_api_is_off_unless_enabled_and_refuses_bad_faults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alone = Node::start(config(dir.path())).await.expect("starts");
    let c = http();
    let (s, v) = fault(&c, &alone, &json!({"kind": "partition"})).await;
    assert_eq!((s, code(&v)), (409, "E_FAULTS_DISABLED"), "{v}");
    let (s, v) = get_json(&c, &format!("{}/v1/cluster", base(&alone))).await;
    assert_eq!((s, v["enabled"].as_bool()), (200, Some(false)), "{v}");
    alone.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_failing_visibly_hands_over_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(3);
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(
            Node::start(chaos_config(dir.path(), id, &ports))
                .await
                .expect("the node starts"),
        );
    }
    let c = http();
    let all: Vec<&Node> = nodes.iter().collect();
    let l = leader(&c, &all).await;

    // Bad bodies and no token are refused; nothing is active yet.
    let (s, v) = fault(&c, all[l], &json!({"kind": "melt"})).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_FAULT"), "{v}");
    let (s, v) = fault(&c, all[l], &json!({"kind": "net_flaky", "loss": 2.0})).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_FAULT"), "{v}");
    let (s, _) = post_json(
        &c,
        &format!("{}/v1/admin/faults", base(all[l])),
        &json!({"kind": "clear"}),
        None,
    )
    .await;
    assert_eq!(s, 401);

    // Every replica scores the leader; the leader scores itself.
    let scored = poll_until(Duration::from_secs(10), "scores on every node", || async {
        let mut out = Vec::new();
        for n in &all {
            let v = cluster_of(&c, n).await;
            if v["leader_health"]["ticks"].as_u64().unwrap_or(0) < 5 {
                return None;
            }
            out.push(v);
        }
        Some(out)
    })
    .await;
    for (i, v) in scored.iter().enumerate() {
        let h = &v["leader_health"];
        assert_eq!(h["self_scored"].as_bool(), Some(i == l), "{h}");
        assert_eq!(h["answered_by"], "static", "{h}");
        let p = h["probability"].as_f64().expect("a probability");
        assert!(p < 0.5, "a healthy cluster scores low: {h}");
        assert_eq!(h["handovers"].as_u64(), Some(0), "{h}");
    }

    // A slow disk on the leader shows in the fsync column it scores itself with.
    let (s, v) = fault(
        &c,
        all[l],
        &json!({"kind": "disk_slow", "start_ms": 30, "growth_ms_per_s": 0, "max_ms": 30}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["active"][0]["kind"], "disk_slow", "{v}");
    let txs: Vec<String> = (0..20)
        .map(|n| hex_of(&transfer(n % 4, u64::from(n / 4), 9, 1)))
        .collect();
    submit_all(&c, all[l], &txs).await;
    poll_until(
        Duration::from_secs(10),
        "the slow appends in the window",
        || async {
            let v = cluster_of(&c, all[l]).await;
            let fsync = v["leader_health"]["features"]["fsync_ms_mean"].as_f64()?;
            (fsync >= 25.0).then_some(())
        },
    )
    .await;
    let (s, v) = fault(&c, all[l], &json!({"kind": "clear"})).await;
    assert_eq!(
        (s, v["active"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );

    // Links that slow down: the static rule sees the quorum's acknowledgements age and the
    // round trips grow, and the leader hands over before the followers' election timeout.
    let (s, v) = fault(
        &c,
        all[l],
        &json!({"kind": "net_flaky", "delay_ms": 350, "growth_ms_per_s": 0, "max_ms": 350, "loss": 0.0}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let handed = poll_until(Duration::from_secs(20), "a hand-over", || async {
        let v = cluster_of(&c, all[l]).await;
        (v["leader_health"]["handovers"].as_u64()? >= 1).then_some(v)
    })
    .await;
    let h = &handed["leader_health"]["last_handover"];
    assert_eq!(h["from"].as_u64(), Some(l as u64 + 1), "{h}");
    assert_ne!(h["to"].as_u64(), Some(l as u64 + 1), "{h}");
    assert!(h["probability"].as_f64().unwrap_or(0.0) >= 0.8, "{h}");
    assert_eq!(h["answered_by"], "static", "{h}");
    let (s, _) = fault(&c, all[l], &json!({"kind": "clear"})).await;
    assert_eq!(s, 200);
    let metrics = c
        .get(format!("{}/metrics", base(all[l])))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("aurigraph_leader_handovers_total{answered_by=\"static\"} 1"),
        "{metrics}"
    );

    // A new leader (another node) commits what is sent next; all three on one root.
    let l2 = poll_until(Duration::from_secs(10), "another leader", || async {
        let l2 = leader(&c, &all).await;
        (l2 != l).then_some(l2)
    })
    .await;
    let v = cluster_of(&c, all[l]).await;
    assert_eq!(
        v["leader"].as_u64(),
        Some(l2 as u64 + 1),
        "the old leader follows: {v}"
    );
    let more: Vec<String> = (0..20)
        .map(|n| hex_of(&transfer(4 + n % 4, u64::from(n / 4), 9, 1)))
        .collect();
    submit_all(&c, all[l2], &more).await;
    let height = rest_head(&c, &base(all[l2])).await["height"]
        .as_u64()
        .expect("height");
    converged(&c, &all, height).await;
    for tx in txs.iter().chain(&more) {
        let hash = aurigraph_ledger::tx::SignedTransaction::decode(&hex::decode(tx).expect("hex"))
            .expect("decodes")
            .hash();
        for n in &all {
            let (_, t) = get_json(&c, &format!("{}/v1/transactions/{hash}", base(n))).await;
            assert_eq!(t["state"], "committed", "{t}");
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
}

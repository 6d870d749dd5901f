//! `aurigraph demo --cluster 3` with the real binary: three validator processes, load on
//! every node, the leader killed with SIGKILL and started again; the demo's verdict says
//! nothing acknowledged was lost and every node has one state root, and it stops the
//! cluster.

use serde_json::Value;

use crate::cluster::{Down, aurigraph, text};

#[test]
fn demo_cluster_kills_the_leader_and_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");
    let _down = Down(dir.clone());

    let out = aurigraph(
        &["demo", "--cluster", "3", "--duration", "6s", "--quiet"],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: nothing lost"), "{}", text(&out));
    assert!(
        stdout.contains("one state root on every node"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("killed with SIGKILL"), "{}", text(&out));
    assert!(stdout.contains("leader before / after"), "{}", text(&out));

    // The demo stopped its cluster.
    let st = aurigraph(&["cluster", "status", "--json"], &dir);
    assert!(st.status.success(), "{}", text(&st));
    let st: Value = serde_json::from_slice(&st.stdout).expect("status JSON");
    let nodes = st["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{st}");
    assert!(nodes.iter().all(|n| n["state"] == "down"), "{st}");
}

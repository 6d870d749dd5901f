//! `aurigraph cluster up|status|down` with the real binary: three validator processes on
//! 127.0.0.1, a transfer submitted to a follower committed on all three with one state root,
//! then every process stopped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

/// Runs `aurigraph ARGS --dir DIR` to its end.
pub(crate) fn aurigraph(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aurigraph"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("the binary runs")
}

/// A finished command's status and output, for an assertion's message.
pub(crate) fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A base port in 20000..60000 whose next `n - 1` ports bind too.
pub(crate) fn free_base(n: u16) -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (rand::random::<u16>() % 40_000);
        if (base..base + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports in 20000..60000");
}

/// `aurigraph cluster up --nodes 3 --dir DIR` on a free base port; its output. `up` checks
/// the ports before writing anything: another base when one was taken meanwhile.
pub(crate) fn up_three(dir: &Path) -> Output {
    up_with(dir, 3, 0)
}

/// `aurigraph cluster up --nodes N --learners M --dir DIR` on a free base port; its output.
pub(crate) fn up_with(dir: &Path, nodes: u16, learners: u16) -> Output {
    for _ in 0..5 {
        let base = free_base(nodes + learners).to_string();
        let (n, m) = (nodes.to_string(), learners.to_string());
        let out = aurigraph(
            &[
                "cluster",
                "up",
                "--nodes",
                &n,
                "--learners",
                &m,
                "--base-port",
                &base,
            ],
            dir,
        );
        if out.status.success() {
            return out;
        }
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("[E_PORT_IN_USE]"),
            "{}",
            text(&out)
        );
    }
    panic!("cluster up found no free base port in 5 tries");
}

/// Whether `pid` is a running process (not a zombie).
fn running(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X" | "x")
        ),
        Err(_) => false,
    }
}

/// Stops the cluster when dropped, so that a failing test leaves no process behind.
pub(crate) struct Down(pub(crate) PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = aurigraph(&["cluster", "down"], &self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_up_status_down_with_three_processes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");

    let up = up_three(&dir);
    let _down = Down(dir.clone());
    let up_text = String::from_utf8_lossy(&up.stdout);
    assert!(up_text.contains("leader node"), "{}", text(&up));
    for id in 1..=3 {
        let node = dir.join(format!("node-{id}"));
        for f in ["aurigraph.toml", "node.log", "pid"] {
            assert!(
                node.join(f).exists(),
                "{} is missing",
                node.join(f).display()
            );
        }
    }

    // A second `up` on the same folder is refused.
    let again = aurigraph(&["cluster", "up"], &dir);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("error: [E_CLUSTER_RUNNING]"),
        "{}",
        text(&again)
    );

    let out = aurigraph(&["cluster", "status", "--json"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let st: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&st), ["leader", "nodes", "term"], "{st}");
    let nodes = st["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{st}");
    let leader = st["leader"].as_u64().expect("a leader");
    let mut leaders = 0;
    for n in nodes {
        assert_eq!(
            keys(n),
            [
                "height",
                "id",
                "lag",
                "pid",
                "role",
                "state",
                "state_root",
                "url"
            ],
            "{n}"
        );
        assert_eq!(n["role"], "validator");
        assert!(n["pid"].as_u64().is_some_and(running), "{n}");
        assert_eq!(n["height"], nodes[0]["height"], "{st}");
        assert_eq!(n["state_root"], nodes[0]["state_root"], "{st}");
        match n["state"].as_str() {
            Some("leader") => {
                leaders += 1;
                assert_eq!(n["id"].as_u64(), Some(leader), "{st}");
            }
            Some("follower") => {}
            other => panic!("state {other:?}: {st}"),
        }
    }
    assert_eq!(leaders, 1, "{st}");
    let pids: Vec<u64> = nodes
        .iter()
        .map(|n| n["pid"].as_u64().expect("pid"))
        .collect();
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n["url"].as_str().expect("url").to_string())
        .collect();

    // A transfer submitted to a follower is answered once committed, and commits on all.
    let follower = nodes
        .iter()
        .find(|n| n["state"] == "follower")
        .and_then(|n| n["url"].as_str())
        .expect("a follower");
    let c = http();
    let t = transfer(3, 0, 7, 55);
    let (s, v) = post_json(
        &c,
        &format!("{follower}/v1/transactions"),
        &json!(hex_of(&t)),
        None,
    )
    .await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(1)), "{v}");
    let hash = t.hash().to_string();
    let mut blocks = Vec::new();
    for url in &urls {
        let r = wait_committed(&c, url, &hash).await;
        blocks.push(r["block_height"].clone());
    }
    blocks.dedup();
    assert_eq!(blocks.len(), 1, "one block on every node: {blocks:?}");
    // Every node at one height with one root.
    let heads = poll_until(Duration::from_secs(10), "one head on all", || async {
        let mut heads = Vec::new();
        for url in &urls {
            let h = rest_head(&c, url).await;
            heads.push((h["height"].clone(), h["state_root"].clone()));
        }
        heads.dedup();
        (heads.len() == 1).then_some(heads)
    })
    .await;
    assert!(heads[0].0.as_u64() >= blocks[0].as_u64(), "{heads:?}");
    let (_, acc) = get_json(&c, &format!("{}/v1/accounts/{}", urls[2], addr_hex(7))).await;
    assert_eq!(
        acc["balance"].as_u64(),
        Some(1_000_000_000_000 + 55),
        "{acc}"
    );

    let out = aurigraph(&["cluster", "down"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    for pid in &pids {
        assert!(!running(*pid), "pid {pid} still runs");
    }
    for id in 1..=3 {
        assert!(!dir.join(format!("node-{id}/pid")).exists());
    }
    let out = aurigraph(&["cluster", "status", "--json"], &dir);
    let st: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert!(
        st["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .all(|n| n["state"] == "down"),
        "{st}"
    );
    // `down` again does nothing and succeeds.
    let out = aurigraph(&["cluster", "down"], &dir);
    assert!(out.status.success(), "{}", text(&out));
}

/// `aurigraph cluster status --json` on DIR, parsed.
fn status_json(dir: &Path) -> Value {
    let out = aurigraph(&["cluster", "status", "--json"], dir);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_up_with_a_business_learner() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");

    let up = up_with(&dir, 3, 1);
    let _down = Down(dir.clone());
    let up_text = String::from_utf8_lossy(&up.stdout);
    assert!(
        up_text.contains("3 validators and 1 business learner"),
        "{}",
        text(&up)
    );
    let config = std::fs::read_to_string(dir.join("node-4/aurigraph.toml")).expect("config");
    assert!(config.contains("role = \"business\""), "{config}");
    assert!(config.contains("bootstrap = false"), "{config}");

    let st = status_json(&dir);
    let nodes = st["nodes"].as_array().expect("nodes").clone();
    assert_eq!(nodes.len(), 4, "{st}");
    let learner = &nodes[3];
    assert_eq!(learner["id"], 4, "{st}");
    assert_eq!(learner["role"], "business", "{st}");
    assert_eq!(learner["state"], "learner", "{st}");
    for n in &nodes[..3] {
        assert_eq!(n["role"], "validator", "{st}");
    }
    let learner_url = learner["url"].as_str().expect("url").to_string();
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n["url"].as_str().expect("url").to_string())
        .collect();

    // A transfer submitted through the learner is forwarded to the leader and commits on
    // every node, the learner included.
    let c = http();
    let t = transfer(3, 0, 7, 55);
    let (s, v) = post_json(
        &c,
        &format!("{learner_url}/v1/transactions"),
        &json!(hex_of(&t)),
        None,
    )
    .await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(1)), "{v}");
    let hash = t.hash().to_string();
    for url in &urls {
        wait_committed(&c, url, &hash).await;
    }
    // The learner at the leader's height and state root.
    let d = dir.clone();
    let st = poll_until(
        Duration::from_secs(10),
        "the learner at the leader's head",
        || {
            let d = d.clone();
            async move {
                let st = tokio::task::spawn_blocking(move || status_json(&d))
                    .await
                    .expect("join");
                let nodes = st["nodes"].as_array()?;
                let leader = nodes.iter().find(|n| n["state"] == "leader")?;
                let learner = nodes.iter().find(|n| n["id"] == 4)?;
                (learner["state"] == "learner"
                    && learner["height"] == leader["height"]
                    && learner["state_root"] == leader["state_root"]
                    && leader["height"].as_u64() >= Some(1))
                .then_some(st)
            }
        },
    )
    .await;
    assert_eq!(st["nodes"][3]["role"], "business", "{st}");

    // Stopped and started again: the learner comes back as a learner, not added twice.
    let out = aurigraph(&["cluster", "down"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let out = aurigraph(&["cluster", "up"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let st = status_json(&dir);
    let learner = &st["nodes"][3];
    assert_eq!(
        (&learner["role"], &learner["state"]),
        (&json!("business"), &json!("learner")),
        "{st}"
    );
    let (_, view) = get_json(&c, &format!("{learner_url}/v1/cluster")).await;
    let members = view["members"].as_array().expect("members");
    assert_eq!(members.len(), 4, "{view}");
    let (_, t) = get_json(&c, &format!("{learner_url}/v1/transactions/{hash}")).await;
    assert_eq!(t["state"], "committed", "{t}");

    // The membership verbs: a bad one refused with its code, then the learner promoted to
    // voter and handed the leadership.
    let out = aurigraph(&["cluster", "add-learner", "--id", "9"], &dir);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("[E_MISSING_FIELD]"), "{}", text(&out));
    let out = aurigraph(&["cluster", "promote", "--id", "4"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("promote 4: done"),
        "{}",
        text(&out)
    );
    let out = aurigraph(&["cluster", "transfer", "--id", "4"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let d = dir.clone();
    poll_until(Duration::from_secs(15), "node 4 leading", || {
        let d = d.clone();
        async move {
            let st = tokio::task::spawn_blocking(move || status_json(&d))
                .await
                .expect("join");
            (st["leader"] == 4).then_some(())
        }
    })
    .await;
    let (_, view) = get_json(&c, &format!("{learner_url}/v1/cluster")).await;
    assert_eq!(view["state"], "leader", "{view}");
}

//! Three nodes as one validator cluster, in this process, on 127.0.0.1: real openraft, real
//! RocksDB, the Raft RPCs on each node's own address with the cluster secret. Transactions
//! submitted to the leader, or to a follower that forwards them, are answered once committed
//! and commit on every node with one state root per height; one acknowledged just before the
//! leader stops is on the others; the two left elect a new leader and go on; the stopped node,
//! started again from its config and its data, catches up from the log to the same root.
//! Learners added under load after the log was purged catch up by a state snapshot: a
//! `business` one forwards submissions, a `slim` one refuses them and keeps only recent blocks;
//! a linearizable read on a follower sees what the leader acknowledged.

use std::time::Duration;

use crate::common::*;
use aurigraph_node::config::{ClusterConfig, ClusterMember, NodeRole};
use aurigraph_node::proto;
use aurigraph_node::{Node, NodeConfig};
use serde_json::{Value, json};

const SECRET: &str = "cluster-secret-for-the-node-tests";

/// Free ports on 127.0.0.1, picked by binding and releasing.
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

pub(crate) fn replica_config(dir: &std::path::Path, id: u64, ports: &[u16]) -> NodeConfig {
    let mut c = config(&dir.join(format!("node-{id}")));
    c.listen = format!("127.0.0.1:{}", ports[id as usize - 1])
        .parse()
        .expect("address");
    c.storage.sync = false;
    // Small blocks: a request of 40 transfers makes several blocks in flight at once.
    c.block.max_txs = 8;
    c.cluster = ClusterConfig {
        node_id: id,
        members: ports
            .iter()
            .enumerate()
            .map(|(i, p)| ClusterMember {
                id: i as u64 + 1,
                addr: format!("127.0.0.1:{p}"),
            })
            .collect(),
        bootstrap: id == 1,
        secret: Some(SECRET.to_string()),
        heartbeat_ms: 100,
        election_min_ms: 500,
        election_max_ms: 1_000,
        ..ClusterConfig::default()
    };
    c
}

pub(crate) async fn cluster_of(c: &reqwest::Client, node: &Node) -> Value {
    let (s, v) = get_json(c, &format!("{}/v1/cluster", base(node))).await;
    assert_eq!(s, 200, "{v}");
    v
}

pub(crate) async fn leader(c: &reqwest::Client, nodes: &[&Node]) -> usize {
    poll_until(Duration::from_secs(20), "a leader", || async {
        for (i, n) in nodes.iter().enumerate() {
            let v = cluster_of(c, n).await;
            if v["state"] == "leader" {
                return Some(i);
            }
        }
        None
    })
    .await
}

/// Waits until every node is at `height` or above with one state root at the lowest height
/// they share.
pub(crate) async fn converged(c: &reqwest::Client, nodes: &[&Node], height: u64) -> String {
    poll_until(
        Duration::from_secs(20),
        "every node at the height",
        || async {
            let mut roots = Vec::new();
            for n in nodes {
                let h = rest_head(c, &base(n)).await;
                if h["height"].as_u64() != Some(height) {
                    return None;
                }
                roots.push(h["state_root"].as_str().unwrap_or("").to_string());
            }
            roots.dedup();
            assert_eq!(roots.len(), 1, "two roots at height {height}: {roots:?}");
            Some(roots.remove(0))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_validators_commit_the_same_blocks_and_survive_losing_the_leader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(3);
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(Some(
            Node::start(replica_config(dir.path(), id, &ports))
                .await
                .expect("the node starts"),
        ));
    }
    let c = http();
    let all: Vec<&Node> = nodes.iter().flatten().collect();
    let l = leader(&c, &all).await;
    let follower = (l + 1) % 3;

    // A follower forwards a submission to the leader and answers with its answer.
    let via_follower = transfer(5, 0, 1, 5);
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/transactions", base(all[follower])),
        &json!(hex_of(&via_follower)),
        None,
    )
    .await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(1)), "{v}");
    let (_, t) = get_json(
        &c,
        &format!("{}/v1/transactions/{}", base(all[l]), via_follower.hash()),
    )
    .await;
    assert_eq!(t["state"], "committed", "{t}");

    // 40 transfers through the leader commit on all three, one root per height.
    let txs: Vec<String> = (0..40)
        .map(|n| hex_of(&transfer((n % 4) as u32, n / 4, 9, 1)))
        .collect();
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/transactions", base(all[l])),
        &json!(txs),
        None,
    )
    .await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(40)), "{v}");
    // In a cluster "accepted" means committed: the last one is, as soon as the answer came.
    let hash = transfer(3, 9, 9, 1).hash().to_string();
    let (_, t) = get_json(&c, &format!("{}/v1/transactions/{hash}", base(all[l]))).await;
    assert_eq!(t["state"], "committed", "{t}");
    let height = rest_head(&c, &base(all[l])).await["height"]
        .as_u64()
        .expect("height");
    converged(&c, &all, height).await;
    for n in &all {
        let v = wait_committed(&c, &base(n), &hash).await;
        assert_eq!(v["receipt"]["code"], "OK", "{v}");
        let acc = get_json(&c, &format!("{}/v1/accounts/{}", base(n), addr_hex(9)))
            .await
            .1;
        assert_eq!(acc["balance"], all_balance_of_9(&c, all[l]).await);
    }

    // Those blocks were proposed several at once: the next executed over the ones in flight.
    let m = all[l].core().metrics.encode();
    let one = metric(
        all[l],
        r#"aurigraph_raft_blocks_in_flight_bucket{le="1.0"}"#,
    );
    let proposed = metric(all[l], "aurigraph_raft_blocks_in_flight_count");
    assert!(proposed >= 5 && one < proposed, "{m}");
    // (A block refused while the leader's lease lapses on a loaded machine makes the ones
    // after it skipped: allowed, and every transaction still commits once, checked below.)
    for n in &all {
        assert!(metric(n, "aurigraph_raft_append_seconds_count") > 0, "{m}");
    }
    // At scrape time: the leader has a quorum's recent acknowledgement, followers a leader.
    for n in &all {
        n.core().refresh_scrape_metrics();
        assert_eq!(metric(n, "aurigraph_raft_quorum_ok"), 1, "{m}");
    }

    // The leader's metrics: it leads, nothing lags once converged, blocks went through the log.
    let m = poll_until(Duration::from_secs(10), "no replication lag", || async {
        let m = all[l].core().metrics.encode();
        (m.contains("aurigraph_raft_is_leader 1")
            && m.contains(r#"aurigraph_raft_replication_lag_entries{peer=""#)
            && m.lines()
                .filter(|l| l.starts_with("aurigraph_raft_replication_lag_entries{"))
                .all(|l| l.ends_with(" 0")))
        .then_some(m)
    })
    .await;
    assert!(m.contains("aurigraph_raft_stopped 0"), "{m}");
    assert!(!m.contains("aurigraph_raft_commit_seconds_count 0"), "{m}");

    // Acknowledged, then the leader stops at once: the acknowledged transaction is on the
    // others already. The two left elect a new leader and commit from the same state.
    let acked = transfer(1, 10, 9, 1);
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/transactions", base(all[l])),
        &json!(hex_of(&acked)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let height = height + 1;
    let stopped = nodes[l].take().expect("the leader");
    stopped.shutdown().await;
    // Its port may be taken again by the restart below once the listener is gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left: Vec<&Node> = nodes.iter().flatten().collect();
    for n in &left {
        wait_committed(&c, &base(n), &acked.hash().to_string()).await;
    }
    let l2 = leader(&c, &left).await;
    let next = transfer(0, 10, 9, 1);
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/transactions", base(left[l2])),
        &json!(hex_of(&next)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for n in &left {
        wait_committed(&c, &base(n), &next.hash().to_string()).await;
    }
    converged(&c, &left, height + 1).await;

    // The stopped node comes back from its config and data, and catches up from the log.
    let again = Node::start(replica_config(dir.path(), l as u64 + 1, &ports))
        .await
        .expect("the stopped node starts again");
    wait_committed(&c, &base(&again), &next.hash().to_string()).await;
    nodes[l] = Some(again);
    let all: Vec<&Node> = nodes.iter().flatten().collect();
    converged(&c, &all, height + 1).await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

async fn all_balance_of_9(c: &reqwest::Client, node: &Node) -> Value {
    get_json(c, &format!("{}/v1/accounts/{}", base(node), addr_hex(9)))
        .await
        .1["balance"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_joins_catches_up_is_promoted_and_takes_over_the_leadership() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(4);
    let voters = &ports[..3];
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(
            Node::start(replica_config(dir.path(), id, voters))
                .await
                .expect("the node starts"),
        );
    }
    let c = http();
    let all: Vec<&Node> = nodes.iter().collect();
    let l = leader(&c, &all).await;
    let first = transfer(0, 0, 9, 1);
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/transactions", base(all[l])),
        &json!(hex_of(&first)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // Node 4: a replica that is not in the initial membership.
    let mut cfg4 = replica_config(dir.path(), 4, &ports);
    cfg4.cluster.bootstrap = false;
    let learner = Node::start(cfg4).await.expect("node 4 starts");
    let admin = |action: &'static str, body: Value| {
        let (c, url) = (c.clone(), format!("{}/v1/cluster/{action}", base(all[l])));
        async move { post_json(&c, &url, &body, Some(TOKEN)).await }
    };
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/cluster/learner", base(all[l])),
        &json!({"id": 4, "addr": format!("127.0.0.1:{}", ports[3])}),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (401, "E_UNAUTHENTICATED"), "{v}");
    let (s, v) = admin(
        "learner",
        json!({"id": 4, "addr": format!("127.0.0.1:{}", ports[3])}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    wait_committed(&c, &base(&learner), &first.hash().to_string()).await;
    let (_, v4) = get_json(&c, &format!("{}/v1/cluster", base(&learner))).await;
    assert_eq!(v4["state"], "learner", "{v4}");

    // Promoted to voter, then handed the leadership.
    let (s, v) = admin("promote", json!({"id": 4})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = admin("transfer", json!({"id": 4})).await;
    assert_eq!(s, 200, "{v}");
    poll_until(Duration::from_secs(15), "node 4 leading", || async {
        let (_, v) = get_json(&c, &format!("{}/v1/cluster", base(&learner))).await;
        (v["state"] == "leader").then_some(())
    })
    .await;
    let second = transfer(0, 1, 9, 1);
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/transactions", base(&learner)),
        &json!(hex_of(&second)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut four = all.clone();
    four.push(&learner);
    let height = rest_head(&c, &base(&learner)).await["height"]
        .as_u64()
        .expect("height");
    converged(&c, &four, height).await;
    learner.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// One counter or gauge of a node's metrics (0 when absent).
fn metric(node: &Node, name: &str) -> u64 {
    node.core()
        .metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn learners_added_under_load_catch_up_by_snapshot_business_forwards_and_slim_only_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(5);
    let voters = &ports[..3];
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut cfg = replica_config(dir.path(), id, voters);
        // A snapshot every 8 entries, and the log purged right behind it.
        cfg.cluster.snapshot_logs = 8;
        cfg.cluster.snapshot_keep_logs = 0;
        nodes.push(Node::start(cfg).await.expect("the node starts"));
    }
    let c = http();
    let all: Vec<&Node> = nodes.iter().collect();
    let l = leader(&c, &all).await;
    let leader_base = base(all[l]);

    // Load: sender 4's transfers, one per request, each answered once committed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (c, url, stop) = (
            c.clone(),
            format!("{leader_base}/v1/transactions"),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut nonce = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (s, v) =
                    post_json(&c, &url, &json!(hex_of(&transfer(4, nonce, 9, 1))), None).await;
                assert_eq!(s, 200, "load transfer {nonce}: {v}");
                nonce += 1;
            }
            nonce
        })
    };
    poll_until(
        Duration::from_secs(30),
        "the leader to snapshot and purge",
        || async { (metric(all[l], "aurigraph_raft_snapshots_built_total") >= 2).then_some(()) },
    )
    .await;

    // Node 4 (business) and node 5 (slim) join while the load goes on.
    let mut learners = Vec::new();
    for (id, role) in [(4, NodeRole::Business), (5, NodeRole::Slim)] {
        let mut cfg = replica_config(dir.path(), id, &ports);
        cfg.cluster.bootstrap = false;
        cfg.cluster.role = role;
        cfg.cluster.slim_keep_blocks = 4;
        let node = Node::start(cfg).await.expect("the learner starts");
        let (s, v) = post_json(
            &c,
            &format!("{leader_base}/v1/cluster/learner"),
            &json!({"id": id, "addr": format!("127.0.0.1:{}", ports[id as usize - 1])}),
            Some(TOKEN),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        learners.push(node);
    }
    for n in &learners {
        poll_until(
            Duration::from_secs(30),
            "the learner to install a snapshot",
            || async { (metric(n, "aurigraph_raft_snapshots_installed_total") >= 1).then_some(()) },
        )
        .await;
    }
    // More blocks after the snapshot: the slim node prunes what it applied itself.
    let after = rest_head(&c, &base(&learners[1])).await["height"]
        .as_u64()
        .expect("height");
    poll_until(Duration::from_secs(30), "40 more blocks", || async {
        let h = rest_head(&c, &leader_base).await["height"].as_u64()?;
        (h >= after + 40).then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = load.await.expect("the load task");
    assert!(sent > 0);
    let height = rest_head(&c, &leader_base).await["height"]
        .as_u64()
        .expect("height");
    let mut five = all.clone();
    five.extend(learners.iter());
    let root = converged(&c, &five, height).await;
    for n in &learners {
        let (_, acc) = get_json(&c, &format!("{}/v1/accounts/{}", base(n), addr_hex(4))).await;
        assert_eq!(acc["nonce"].as_u64(), Some(sent), "{acc}");
        assert_eq!(rest_head(&c, &base(n)).await["state_root"], root.as_str());
    }

    // The business learner forwards a submission; the answer means committed.
    let (business, slim) = (&learners[0], &learners[1]);
    let (_, v) = get_json(&c, &format!("{}/v1/cluster", base(business))).await;
    assert_eq!(
        (v["role"].as_str(), v["state"].as_str()),
        (Some("business"), Some("learner")),
        "{v}"
    );
    let via_business = transfer(5, 0, 9, 1);
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/transactions", base(business)),
        &json!(hex_of(&via_business)),
        None,
    )
    .await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(1)), "{v}");

    // A linearizable read on the slim learner sees it at once; a local read may lag.
    let (s, acc) = get_json(
        &c,
        &format!(
            "{}/v1/accounts/{}?consistency=linearizable",
            base(slim),
            addr_hex(5)
        ),
    )
    .await;
    assert_eq!((s, acc["nonce"].as_u64()), (200, Some(1)), "{acc}");
    let (s, v) = get_json(
        &c,
        &format!("{}/v1/head?consistency=eventually", base(slim)),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "E_BAD_CONSISTENCY"), "{v}");
    let head = proto::query_client::QueryClient::new(channel(slim).await)
        .get_head(proto::GetHeadRequest {
            consistency: proto::Consistency::Linearizable as i32,
        })
        .await
        .expect("a linearizable GetHead on a learner")
        .into_inner();
    assert!(head.height > height, "{head:?}");

    // The slim learner serves reads and refuses submissions; it keeps only recent blocks.
    let (_, v) = get_json(&c, &format!("{}/v1/cluster", base(slim))).await;
    assert_eq!(v["role"], "slim", "{v}");
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/transactions", base(slim)),
        &json!(hex_of(&transfer(6, 0, 9, 1))),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (409, "E_SLIM_READ_ONLY"), "{v}");
    let top = rest_head(&c, &base(slim)).await["height"]
        .as_u64()
        .expect("height");
    let mut held = 0;
    for h in 1..=top {
        let (s, _) = get_json(&c, &format!("{}/v1/blocks/{h}", base(slim))).await;
        if s == 200 {
            held += 1;
        }
    }
    let (s, _) = get_json(&c, &format!("{}/v1/blocks/{top}", base(slim))).await;
    assert_eq!(s, 200, "the slim node serves its newest block");
    assert!(held <= 4 + 16, "the slim node holds {held} of {top} blocks");
    for n in learners {
        n.shutdown().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_pending_when_the_leader_lost_its_quorum_commits_once_it_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(3);
    let cfg = |id: u64| {
        let mut c = replica_config(dir.path(), id, &ports);
        c.api.request_timeout_ms = 1_000;
        c
    };
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for id in 1..=3 {
        nodes.push(Some(Node::start(cfg(id)).await.expect("the node starts")));
    }
    let c = http();
    let all: Vec<&Node> = nodes.iter().flatten().collect();
    let l = leader(&c, &all).await;
    let leader_base = base(all[l]);

    // Both followers stop: the leader records the transaction but cannot commit it.
    for (i, n) in nodes.iter_mut().enumerate() {
        if i != l {
            n.take().expect("a follower").shutdown().await;
        }
    }
    let stranded = transfer(7, 0, 9, 1);
    let (s, v) = post_json(
        &c,
        &format!("{leader_base}/v1/transactions"),
        &json!(hex_of(&stranded)),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (503, "E_COMMIT_PENDING"), "{v}");
    // Cut off, the leader's quorum contact reads 0 at the next scrape.
    let alone = nodes[l].as_ref().expect("the leader");
    poll_until(
        Duration::from_secs(5),
        "quorum_ok 0 on the cut-off leader",
        || async {
            alone.core().refresh_scrape_metrics();
            (metric(alone, "aurigraph_raft_quorum_ok") == 0).then_some(())
        },
    )
    .await;
    nodes[l].take().expect("the leader").shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The two followers again: they elect a leader and commit a block of their own, which
    // replaces the old leader's uncommitted one in the log.
    for (i, n) in nodes.iter_mut().enumerate() {
        if i != l {
            *n = Some(
                Node::start(cfg(i as u64 + 1))
                    .await
                    .expect("the follower starts"),
            );
        }
    }
    let two: Vec<&Node> = nodes.iter().flatten().collect();
    let l2 = leader(&c, &two).await;
    let other = transfer(8, 0, 9, 1);
    let (s, v) = post_json(
        &c,
        &format!("{}/v1/transactions", base(two[l2])),
        &json!(hex_of(&other)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // The old leader again, now a follower: the transaction it recorded (re-admitted to its
    // mempool on start) is forwarded to the new leader and commits on every node, once.
    nodes[l] = Some(
        Node::start(cfg(l as u64 + 1))
            .await
            .expect("the old leader starts"),
    );
    let all: Vec<&Node> = nodes.iter().flatten().collect();
    let hash = stranded.hash().to_string();
    for n in &all {
        let url = format!("{}/v1/transactions/{hash}", base(n));
        poll_until(
            Duration::from_secs(20),
            "the stranded transaction to commit",
            || async {
                let (s, v) = get_json(&c, &url).await;
                (s == 200 && v["state"] == "committed").then_some(())
            },
        )
        .await;
    }
    for n in &all {
        let (_, acc) = get_json(&c, &format!("{}/v1/accounts/{}", base(n), addr_hex(7))).await;
        assert_eq!(acc["nonce"], 1, "{acc}");
    }
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

//! Three replicas in one process, each with the real parts: openraft, its log in a RocksDB
//! (`RaftLogStore`), a `LedgerApplier` executing blocks with the ledger's executor, and the
//! tonic network on 127.0.0.1 with a cluster secret. Blocks proposed by the leader commit and
//! reach the same state root on every replica; when the leader stops, the two left elect a
//! new one and go on; a replica holding another secret never receives the log; a learner added
//! after the log was purged catches up by a snapshot streamed over the network; a block whose
//! root is not the one its transactions reach stops every replica's apply, state unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aurigraph_consensus::ledger_applier::LedgerApplier;
use aurigraph_consensus::log_store::RaftLogStore;
use aurigraph_consensus::network::{RaftNetwork, RaftService};
use aurigraph_consensus::state_machine::BlockStateMachine;
use aurigraph_consensus::types::{NodeId, NodeInfo, TypeConfig};
use aurigraph_ledger::executor::ExecutorConfig;
use aurigraph_storage::Storage;
use openraft::async_runtime::WatchReceiver;

use crate::common::*;

type Raft = openraft::Raft<TypeConfig, BlockStateMachine<Arc<LedgerApplier>>>;

struct Replica {
    id: NodeId,
    raft: Raft,
    applier: Arc<LedgerApplier>,
    addr: String,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn replica(id: NodeId, secret: &str) -> Replica {
    replica_with(id, secret, raft_config()).await
}

async fn replica_with(id: NodeId, secret: &str, config: openraft::Config) -> Replica {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), true).expect("RocksDB opens"));
    let log = RaftLogStore::new(storage).expect("the log store opens");
    let applier =
        Arc::new(LedgerApplier::new(&genesis(), 4, ExecutorConfig::default()).expect("applier"));
    let sm = BlockStateMachine::new(applier.clone()).expect("state machine");
    let raft = Raft::new(
        id,
        Arc::new(config.validate().expect("a valid Raft config")),
        RaftNetwork::new(SECRET.to_string()),
        log,
        sm,
    )
    .await
    .expect("Raft starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("address").to_string();
    let app = RaftService::new(raft.clone(), secret.to_string()).into_router();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Replica {
        id,
        raft,
        applier,
        addr,
        server,
        _dir: dir,
    }
}

async fn leader_of(replicas: &[&Replica], not: Option<NodeId>) -> NodeId {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        for r in replicas {
            let m = r.raft.metrics().borrow_watched().clone();
            if let Some(l) = m.current_leader
                && Some(l) != not
                && replicas.iter().any(|x| x.id == l)
                && m.current_leader == Some(r.id)
            {
                return l;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader elected within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Proposes the next block on `leader` and waits until every replica in `all` applied it;
/// returns the root.
async fn commit_next(leader: &Replica, all: &[&Replica], nonce: u64) -> [u8; 32] {
    let height = leader.applier.height() + 1;
    // The applier does not check the parent hash; the node's producer will chain it.
    let entry = leader
        .applier
        .propose(
            height,
            [0; 32],
            1_700_000_000_000 + height,
            transfers(nonce, 4, 1),
        )
        .expect("the leader executes its proposal");
    let root = entry.state_root;
    let resp = leader
        .raft
        .client_write(entry)
        .await
        .expect("the block commits");
    assert_eq!(resp.data.height, height);
    assert_eq!(resp.data.state_root, root, "the leader's own apply");
    for r in all {
        r.raft
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(resp.log_id.index), "the block applied")
            .await
            .expect("every replica applies the block");
        assert_eq!(r.applier.height(), height, "replica {}", r.id);
        assert_eq!(r.applier.root().0, root, "replica {}: the same root", r.id);
    }
    root
}

/// Starts replicas 1..=3 with `config` and initializes the cluster from the first.
async fn three(config: openraft::Config) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for id in 1..=3 {
        replicas.push(replica_with(id, SECRET, config.clone()).await);
    }
    let members: BTreeMap<NodeId, NodeInfo> = replicas
        .iter()
        .map(|r| {
            (
                r.id,
                NodeInfo {
                    addr: r.addr.clone(),
                },
            )
        })
        .collect();
    replicas[0]
        .raft
        .initialize(members)
        .await
        .expect("the cluster initializes");
    replicas
}

async fn stop(replicas: Vec<Replica>) {
    for r in replicas {
        r.server.abort();
        let _ = r.raft.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_agree_on_every_block_and_survive_losing_the_leader() {
    let mut replicas = three(raft_config()).await;
    let all: Vec<&Replica> = replicas.iter().collect();
    let first = leader_of(&all, None).await;
    let leader = all.iter().find(|r| r.id == first).expect("leader");
    let mut roots = Vec::new();
    for nonce in 0..3 {
        roots.push(commit_next(leader, &all, nonce).await);
    }
    assert_eq!(leader.applier.height(), 3);
    let mut unique = roots.clone();
    unique.dedup();
    assert_eq!(unique.len(), 3, "each block moved the state");

    // A replica with another secret is added as a learner: the leader's appends are refused,
    // it never applies a block, and the cluster keeps committing.
    let outsider = replica(9, "not-this-clusters-secret").await;
    leader
        .raft
        .add_learner(
            9,
            NodeInfo {
                addr: outsider.addr.clone(),
            },
            false,
        )
        .await
        .expect("the learner is added to the membership");
    commit_next(leader, &all, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        outsider.applier.height(),
        0,
        "a replica without the secret receives nothing"
    );
    outsider.server.abort();
    let _ = outsider.raft.shutdown().await;

    // The leader stops; the two left elect a new one and go on from the same state.
    let old = replicas
        .iter()
        .position(|r| r.id == first)
        .expect("position");
    let stopped = replicas.remove(old);
    stopped.server.abort();
    stopped.raft.shutdown().await.expect("the old leader stops");
    let left: Vec<&Replica> = replicas.iter().collect();
    let second = leader_of(&left, Some(first)).await;
    assert_ne!(second, first);
    let new_leader = left.iter().find(|r| r.id == second).expect("leader");
    assert_eq!(new_leader.applier.height(), 4, "nothing committed was lost");
    commit_next(new_leader, &left, 4).await;
    assert_eq!(left[0].applier.root(), left[1].applier.root());
    stop(replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_added_after_the_log_was_purged_catches_up_by_snapshot() {
    let config = openraft::Config {
        max_in_snapshot_log_to_keep: 0,
        ..raft_config()
    };
    let replicas = three(config.clone()).await;
    let all: Vec<&Replica> = replicas.iter().collect();
    let id = leader_of(&all, None).await;
    let leader = all.iter().find(|r| r.id == id).expect("leader");
    for nonce in 0..5 {
        commit_next(leader, &all, nonce).await;
    }
    // Every replica snapshots its state and purges its log up to it.
    for r in &all {
        let applied = r
            .raft
            .metrics()
            .borrow_watched()
            .last_applied
            .expect("applied");
        r.raft.trigger().snapshot().await.expect("snapshot");
        r.raft
            .wait(Some(Duration::from_secs(10)))
            .snapshot(applied, "the snapshot")
            .await
            .expect("the snapshot is built");
        r.raft
            .trigger()
            .purge_log(applied.index)
            .await
            .expect("purge");
        r.raft
            .wait(Some(Duration::from_secs(10)))
            .purged(Some(applied), "the purge")
            .await
            .expect("the log is purged");
    }
    // A new learner cannot be sent the purged entries: it gets the snapshot.
    let learner = replica_with(4, SECRET, config).await;
    leader
        .raft
        .add_learner(
            4,
            NodeInfo {
                addr: learner.addr.clone(),
            },
            true,
        )
        .await
        .expect("the learner is added");
    let applied = leader.raft.metrics().borrow_watched().last_applied;
    learner
        .raft
        .wait(Some(Duration::from_secs(15)))
        .applied_index_at_least(applied.map(|l| l.index), "the learner catches up")
        .await
        .expect("the learner catches up");
    assert_eq!(learner.applier.height(), 5);
    assert_eq!(learner.applier.root(), leader.applier.root());
    let m = learner.raft.metrics().borrow_watched().clone();
    assert!(m.snapshot.is_some(), "it installed a snapshot: {m:?}");
    // And it follows the log from there.
    let mut with_learner = all.clone();
    with_learner.push(&learner);
    commit_next(leader, &with_learner, 5).await;
    stop(replicas).await;
    stop(vec![learner]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_whose_root_does_not_match_stops_every_replicas_apply_with_its_code() {
    let replicas = three(raft_config()).await;
    let all: Vec<&Replica> = replicas.iter().collect();
    let id = leader_of(&all, None).await;
    let leader = all.iter().find(|r| r.id == id).expect("leader");
    let good = commit_next(leader, &all, 0).await;
    let mut entry = leader
        .applier
        .propose(2, [0; 32], 1_700_000_000_002, transfers(1, 4, 1))
        .expect("proposal");
    entry.state_root = [9; 32];
    let err = leader
        .raft
        .client_write(entry)
        .await
        .expect_err("a block with a wrong root does not apply");
    let text = err.to_string();
    assert!(text.contains("E_ROOT_MISMATCH"), "{text}");
    // The leader applied it first and stopped. The entry is in the others' logs: the next
    // leader commits it and stops the same way. A replica left without a quorum never learns
    // it committed and applies nothing more. No replica applies the block.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let stopped: Vec<String> = all
            .iter()
            .filter_map(|r| {
                r.raft
                    .metrics()
                    .borrow_watched()
                    .running_state
                    .clone()
                    .err()
            })
            .map(|fatal| fatal.to_string())
            .collect();
        for f in &stopped {
            assert!(f.contains("E_ROOT_MISMATCH"), "{f}");
        }
        if stopped.len() >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a majority did not stop: {stopped:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in &all {
        assert_eq!(r.applier.height(), 1, "replica {}: nothing applied", r.id);
        assert_eq!(
            r.applier.root().0,
            good,
            "replica {}: state unchanged",
            r.id
        );
    }
    stop(replicas).await;
}

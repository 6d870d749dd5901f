//! Network partitions of a three-replica cluster, made with the fault injector
//! (`faults::FaultyLinks`, wired in by `RaftNetwork::with_faults`: a cut link fails the RPC as
//! unreachable without sending it). Everything else is real: openraft, each replica's log in
//! its own RocksDB (`RaftLogStore`), a `LedgerApplier` executing blocks, tonic on 127.0.0.1.
//!
//! - On the wire: a cut link fails an RPC as unreachable without a connection to the peer; a
//!   lossy link does the same; a delayed link holds the RPC; a healed link carries it.
//! - A follower partitioned away (both directions): the leader and the other follower keep
//!   committing blocks; the isolated follower commits and applies nothing; after healing it
//!   catches up and every replica holds the same state root at every height.
//! - The leader partitioned away: the other two elect a new leader (another id, a higher term)
//!   and commit; the block proposed to the old leader is appended to its log but never
//!   commits, and a later proposal is refused; after healing the old leader follows the new
//!   one, its uncommitted entry is replaced by the majority's block, and every replica holds
//!   the same state root at every height.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aurigraph_consensus::faults::FaultyLinks;
use aurigraph_consensus::ledger_applier::LedgerApplier;
use aurigraph_consensus::log_store::RaftLogStore;
use aurigraph_consensus::network::{RaftNetwork, RaftService};
use aurigraph_consensus::state_machine::{ApplyError, BlockApplier, BlockStateMachine};
use aurigraph_consensus::types::{BlockApplied, BlockEntry, NodeId, NodeInfo, TypeConfig, Vote};
use aurigraph_ledger::executor::ExecutorConfig;
use aurigraph_storage::Storage;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, ForwardReason, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, VoteRequest};

use crate::common::*;

/// How long a wait-for loop waits before the test fails (a loaded 2-core machine).
const PATIENCE: Duration = Duration::from_secs(15);

type Raft = openraft::Raft<TypeConfig, BlockStateMachine<Arc<Recording>>>;

/// A `LedgerApplier` that also records the root it reached at each height it applied (or
/// installed), in order, so replicas can be compared height by height.
struct Recording {
    ledger: LedgerApplier,
    roots: Mutex<Vec<(u64, [u8; 32])>>,
}

impl Recording {
    fn height(&self) -> u64 {
        self.ledger.height()
    }

    fn root(&self) -> [u8; 32] {
        self.ledger.root().0
    }

    fn roots(&self) -> Vec<(u64, [u8; 32])> {
        self.roots.lock().expect("roots").clone()
    }

    fn record(&self, height: u64, root: [u8; 32]) {
        self.roots.lock().expect("roots").push((height, root));
    }
}

impl BlockApplier for Recording {
    fn apply(&self, entry: &BlockEntry, raft_state: &[u8]) -> Result<BlockApplied, ApplyError> {
        let applied = self.ledger.apply(entry, raft_state)?;
        self.record(applied.height, applied.state_root);
        Ok(applied)
    }

    fn save_raft_state(&self, raft_state: &[u8]) -> Result<(), ApplyError> {
        self.ledger.save_raft_state(raft_state)
    }

    fn raft_state(&self) -> Result<Option<Vec<u8>>, ApplyError> {
        self.ledger.raft_state()
    }

    fn snapshot(&self) -> Result<(u64, Vec<u8>), ApplyError> {
        self.ledger.snapshot()
    }

    fn install(&self, height: u64, data: &[u8], raft_state: &[u8]) -> Result<(), ApplyError> {
        self.ledger.install(height, data, raft_state)?;
        self.record(height, self.ledger.root().0);
        Ok(())
    }
}

struct Replica {
    id: NodeId,
    raft: Raft,
    applier: Arc<Recording>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }
}

/// The block after `replica`'s applied height, as its leader proposes it. Block `h` spends
/// nonce `h - 1` of every account.
fn next_block(replica: &Replica) -> BlockEntry {
    let height = replica.applier.height() + 1;
    replica
        .applier
        .ledger
        .propose(
            height,
            [0; 32],
            1_700_000_000_000 + height,
            transfers(height - 1, 4, 1),
        )
        .expect("the leader executes its proposal")
}

async fn replica(id: NodeId, faults: Arc<FaultyLinks>) -> (Replica, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), true).expect("RocksDB opens"));
    let log = RaftLogStore::new(storage).expect("the log store opens");
    let applier = Arc::new(Recording {
        ledger: LedgerApplier::new(&genesis(), 4, ExecutorConfig::default()).expect("applier"),
        roots: Mutex::new(Vec::new()),
    });
    let sm = BlockStateMachine::new(applier.clone()).expect("state machine");
    let raft = Raft::new(
        id,
        Arc::new(raft_config().validate().expect("a valid Raft config")),
        RaftNetwork::with_faults(SECRET.to_string(), id, faults),
        log,
        sm,
    )
    .await
    .expect("Raft starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("address").to_string();
    let app = RaftService::new(raft.clone(), SECRET.to_string()).into_router();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let replica = Replica {
        id,
        raft,
        applier,
        server,
        _dir: dir,
    };
    (replica, addr)
}

/// Replicas 1..=3, every link through `faults`, the cluster initialized from the first.
async fn three(faults: &Arc<FaultyLinks>) -> Vec<Replica> {
    let mut replicas = Vec::new();
    let mut members = BTreeMap::new();
    for id in 1..=3 {
        let (r, addr) = replica(id, faults.clone()).await;
        members.insert(id, NodeInfo { addr });
        replicas.push(r);
    }
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

/// Waits until `cond` holds, polling every 20 ms; fails the test with `what` after
/// [`PATIENCE`].
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The replica of `among` that is the leader, other than `not`; waits for one.
async fn leader_of<'a>(among: &[&'a Replica], not: Option<NodeId>) -> &'a Replica {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(r) = among.iter().find(|r| {
            let m = r.metrics();
            Some(r.id) != not && m.current_leader == Some(r.id) && m.state == ServerState::Leader
        }) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader among {:?} (other than {not:?}) within {PATIENCE:?}",
            among.iter().map(|r| r.id).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Proposes the next block on `leader`, waits until every replica of `with` applied it and
/// checks they reached the leader's root; returns the height.
async fn commit_next(leader: &Replica, with: &[&Replica]) -> u64 {
    let entry = next_block(leader);
    let (height, root) = (entry.height, entry.state_root);
    // A leader just elected accepts writes once a quorum acknowledged it (its lease); until
    // then it refuses them (nothing appended), and a client tries again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let resp = loop {
        let written = tokio::time::timeout(PATIENCE, leader.raft.client_write(entry.clone()))
            .await
            .expect("the block commits in time");
        match written {
            Err(e)
                if e.forward_to_leader()
                    .is_some_and(|f| f.reason == ForwardReason::LeaseExpired)
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            written => break written.expect("the block commits"),
        }
    };
    assert_eq!(resp.data.height, height);
    assert_eq!(resp.data.state_root, root, "the leader's own apply");
    for r in with {
        r.raft
            .wait(Some(PATIENCE))
            .applied_index_at_least(Some(resp.log_id.index), "the block applied")
            .await
            .expect("every replica of the quorum applies the block");
        assert_eq!(r.applier.height(), height, "replica {}", r.id);
        assert_eq!(r.applier.root(), root, "replica {}: the same root", r.id);
    }
    height
}

/// Every replica is at `height`, applied each height once, and holds the same root as the
/// others at every height (and now).
fn assert_converged(all: &[&Replica], height: u64) {
    let reference = all[0].applier.roots();
    assert_eq!(
        reference.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        (1..=height).collect::<Vec<_>>(),
        "replica {} applied each height once, in order",
        all[0].id
    );
    for r in all {
        assert_eq!(r.applier.height(), height, "replica {}", r.id);
        assert_eq!(
            r.applier.roots(),
            reference,
            "replica {}: the same root at every height as replica {}",
            r.id,
            all[0].id
        );
        assert_eq!(r.applier.root(), all[0].applier.root(), "replica {}", r.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_follower_commits_nothing_while_the_majority_goes_on_and_catches_up_on_heal() {
    let faults = Arc::new(FaultyLinks::with_seed(1));
    let replicas = three(&faults).await;
    let all: Vec<&Replica> = replicas.iter().collect();
    let leader = leader_of(&all, None).await;
    for _ in 0..2 {
        commit_next(leader, &all).await;
    }
    let follower = *all.iter().find(|r| r.id != leader.id).expect("a follower");
    let other = *all
        .iter()
        .find(|r| r.id != leader.id && r.id != follower.id)
        .expect("the other follower");

    // The follower is cut off both ways; the leader and the other follower are a quorum.
    faults.isolate(follower.id, all.iter().map(|r| r.id));
    let cut_off = follower.metrics();
    let majority = [leader, other];
    for _ in 0..3 {
        commit_next(leader, &majority).await;
    }
    assert_eq!(leader.applier.height(), 5);
    assert_eq!(other.applier.height(), 5);
    assert_eq!(
        leader.metrics().current_leader,
        Some(leader.id),
        "the leader kept its quorum"
    );
    let isolated = follower.metrics();
    assert_eq!(
        follower.applier.height(),
        2,
        "the isolated follower applied nothing"
    );
    assert_eq!(isolated.last_applied, cut_off.last_applied);
    assert_eq!(
        isolated.local_committed, cut_off.local_committed,
        "the isolated follower committed nothing"
    );
    assert_ne!(
        isolated.state,
        ServerState::Leader,
        "alone, it cannot win an election"
    );
    assert!(faults.refused_by_cuts() > 0, "the cut links refused RPCs");

    // Healed, it catches up; a leader (the same or one elected after the follower's own
    // election attempts reached the others) commits with all three.
    faults.heal();
    wait_for("the follower catches up to height 5", || {
        follower.applier.height() == 5
    })
    .await;
    let leader = leader_of(&all, None).await;
    let height = commit_next(leader, &all).await;
    assert_eq!(height, 6);
    assert_converged(&all, height);
    stop(replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_leader_is_replaced_commits_nothing_and_converges_on_heal() {
    let faults = Arc::new(FaultyLinks::with_seed(2));
    let replicas = three(&faults).await;
    let all: Vec<&Replica> = replicas.iter().collect();
    let old = leader_of(&all, None).await;
    for _ in 0..2 {
        commit_next(old, &all).await;
    }
    let before = old.metrics();
    let old_term = before.current_term;

    // The leader is cut off both ways. A block proposed to it at once (its leader lease still
    // runs) is appended to its log but can never reach a quorum.
    faults.isolate(old.id, all.iter().map(|r| r.id));
    // Block 3 as only the old leader proposes it: one transfer of 7, its own timestamp.
    let orphan = old
        .applier
        .ledger
        .propose(3, [0; 32], 1_700_000_000_999, transfers(2, 1, 7))
        .expect("the old leader executes its proposal");
    let orphan_root = orphan.state_root;
    let orphan_write = tokio::spawn({
        let raft = old.raft.clone();
        async move { raft.client_write(orphan).await }
    });
    let appended_at = before.last_log_index.map_or(0, |i| i + 1);
    wait_for("the old leader appends the proposal to its log", || {
        old.metrics().last_log_index == Some(appended_at)
    })
    .await;

    // The two others elect a new leader, at a higher term, and commit.
    let majority: Vec<&Replica> = all.iter().copied().filter(|r| r.id != old.id).collect();
    let new = leader_of(&majority, Some(old.id)).await;
    assert_ne!(new.id, old.id);
    assert!(
        new.metrics().current_term > old_term,
        "the new leader's term {} is above the old one's {old_term}",
        new.metrics().current_term
    );
    for _ in 0..2 {
        commit_next(new, &majority).await;
    }
    assert_eq!(new.applier.height(), 4);

    // The old leader committed and applied nothing of it.
    assert!(
        !orphan_write.is_finished(),
        "the orphan block never commits"
    );
    let stranded = old.metrics();
    assert_eq!(
        old.applier.height(),
        2,
        "the old leader applied nothing more"
    );
    assert_eq!(
        stranded.local_committed, before.local_committed,
        "nor committed anything"
    );
    assert_eq!(stranded.last_applied, before.last_applied);
    assert_eq!(stranded.last_log_index, Some(appended_at));
    // No replica can be elected before the old leader's lease (the election timeout after the
    // last quorum acknowledgement) runs out: a further proposal is refused, nothing appended.
    let late = tokio::time::timeout(PATIENCE, old.raft.client_write(next_block(old)))
        .await
        .expect("the cut-off leader answers")
        .expect_err("a proposal to the cut-off leader is refused");
    assert_eq!(
        late.forward_to_leader().map(|f| f.reason),
        Some(ForwardReason::LeaseExpired),
        "{late}"
    );
    assert_eq!(old.metrics().last_log_index, Some(appended_at));
    assert_eq!(old.applier.height(), 2);

    // Healed: the old leader learns of the higher term and follows; its uncommitted entry is
    // replaced by the majority's block at that index.
    faults.heal();
    wait_for(
        "the old leader steps down and catches up to height 4",
        || {
            let m = old.metrics();
            m.state != ServerState::Leader && old.applier.height() == 4
        },
    )
    .await;
    // The proposal's caller learns its entry was discarded (not committed).
    let discarded = tokio::time::timeout(PATIENCE, orphan_write)
        .await
        .expect("the orphan write ends")
        .expect("the orphan write's task");
    assert!(
        matches!(
            discarded,
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)))
        ),
        "the orphan block's write: {discarded:?}"
    );
    let leader = leader_of(&all, None).await;
    let height = commit_next(leader, &all).await;
    assert_eq!(height, 5);
    assert_converged(&all, height);
    let replaced = old
        .applier
        .roots()
        .into_iter()
        .find(|(h, _)| *h == 3)
        .expect("height 3 applied");
    assert_ne!(
        replaced.1, orphan_root,
        "the old leader applied the majority's block 3, not its own"
    );
    assert!(
        all.iter().all(|r| r
            .applier
            .roots()
            .iter()
            .all(|(_, root)| *root != orphan_root)),
        "no replica applied the orphan block"
    );
    assert!(
        old.metrics().current_term > old_term,
        "the old leader moved to the new term"
    );
    stop(replicas).await;
}

/// A `RaftPeer` from replica 1 to replica 2 at `addr`, through `faults`.
async fn faulty_peer(
    faults: &Arc<FaultyLinks>,
    addr: std::net::SocketAddr,
) -> impl RaftNetworkV2<TypeConfig> {
    let mut network: RaftNetwork = RaftNetwork::with_faults(SECRET.to_string(), 1, faults.clone());
    network
        .new_client(
            2,
            &NodeInfo {
                addr: addr.to_string(),
            },
        )
        .await
}

fn vote_request() -> VoteRequest<TypeConfig> {
    VoteRequest::new(Vote::new(1, 1), None)
}

#[tokio::test]
async fn a_cut_or_lossy_link_fails_as_unreachable_without_reaching_the_peer() {
    let faults = Arc::new(FaultyLinks::with_seed(3));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("address");
    let option = || RPCOption::new(Duration::from_secs(5));

    faults.cut(1, 2);
    let mut client = faulty_peer(&faults, addr).await;
    let err = client
        .vote(vote_request(), option())
        .await
        .expect_err("the link is cut");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("E_FAULT_INJECTED"), "{err}");
    let err = client
        .append_entries(
            AppendEntriesRequest {
                vote: Vote::new(1, 1),
                prev_log_id: None,
                entries: Vec::new(),
                leader_commit: None,
            },
            option(),
        )
        .await
        .expect_err("the link is cut");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    faults.restore(1, 2);
    faults.set_loss(1, 2, 1.0);
    let err = client
        .vote(vote_request(), option())
        .await
        .expect_err("the link drops everything");
    assert!(err.to_string().contains("E_FAULT_INJECTED"), "{err}");
    assert_eq!((faults.refused_by_cuts(), faults.lost()), (2, 1));
    let nothing = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(nothing.is_err(), "nothing reached the peer");

    // Healed but delayed: the RPC reaches the peer after the delay (it then fails: the peer
    // is a bare socket that closes).
    faults.heal();
    faults.set_delay(1, 2, Duration::from_millis(300));
    let started = tokio::time::Instant::now();
    let call = tokio::spawn(async move { client.vote(vote_request(), option()).await });
    let (socket, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .expect("the delayed RPC reaches the peer")
        .expect("accept");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "held for the delay: {:?}",
        started.elapsed()
    );
    drop(socket);
    drop(listener);
    let err = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the call ends")
        .expect("the call's task")
        .expect_err("the bare socket closed");
    assert!(!err.to_string().contains("E_FAULT_INJECTED"), "{err}");
}

//! The node as a replica of a validator cluster (`[cluster]` with a `node_id`): block
//! production goes through the replicated log instead of executing at once.
//!
//! - The leader's producer proposes a block from its mempool, executes it, reads the state
//!   root it reaches (its writes put back at once), and proposes the [`BlockEntry`] (its
//!   header: height, parent, timestamp, root; its transactions) to openraft. Up to
//!   `cluster.max_blocks_in_flight` blocks are in flight at once: the next block is selected
//!   without the transactions of those in flight, executed on the committed state with their
//!   writes read first, and chained to the last one's hash, while openraft replicates the
//!   earlier ones (it batches what is queued into one append). Applying a block on the leader
//!   reuses the execution it proposed it from when height, parent and root match.
//! - A block whose height or parent does not follow this replica's head (a block proposed
//!   before a leader change or a failed round, after another block took its height) is
//!   skipped by every replica alike: nothing of it applies, its transactions stay in the
//!   leader's mempool and are proposed again. Every replica applies the same log from the
//!   same head, so all skip the same entries.
//! - Every replica, the leader included, applies committed blocks through [`NodeApplier`]:
//!   the block's transactions are executed with the ledger's executor, the root must be the
//!   entry's (`E_ROOT_MISMATCH` stops this replica's Raft, nothing of the block applied), and
//!   the block is written to RocksDB in one batch with the Raft state (last applied log id,
//!   membership), under the committed view, then published to subscribers.
//! - A follower forwards submissions to the leader over gRPC and answers with the leader's
//!   answer (so "accepted" means committed there too); with no leader known it refuses with
//!   `E_NOT_LEADER`.
//! - Every `cluster.snapshot_logs` applied entries a replica snapshots its state
//!   ([`NodeApplier::snapshot`]: the head and every account, read from one RocksDB snapshot)
//!   and purges its log up to `cluster.snapshot_keep_logs` entries before it. A replica
//!   behind the purge point, or a learner that joins, receives the leader's snapshot and
//!   installs it ([`NodeApplier::install`]: checked against the chain, the genesis and the
//!   state root, written in one synced batch, the pipeline's state replaced). It then holds
//!   no blocks below the snapshot it did not apply itself: their transactions are answered
//!   by the replicas that applied them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use aurigraph_consensus::replica::{self, Replica, ReplicaConfig, ReplicaError};
use aurigraph_consensus::state_machine::{
    ApplyError, BlockApplier, check_snapshot, snapshot_state,
};
use aurigraph_consensus::types::{BlockApplied, BlockEntry};
use aurigraph_ledger::state::{Account, StateRoot};
use aurigraph_ledger::tx::Address;
use aurigraph_ledger::tx::SignedTransaction;

use super::NodeCore;
use super::producer::{now_ms, persist, published};
use crate::config::NodeRole;
use crate::error::{NodeError, NodeResult};
use crate::service::dropped_event;

/// How long the leader's producer waits for a proposed block to commit before it counts a
/// failure (and retries with backoff).
const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// This node's replica.
pub(crate) struct Cluster {
    pub(crate) raft: Replica<NodeApplier>,
    pub(crate) rt: tokio::runtime::Handle,
    /// The gRPC channel to the leader submissions are forwarded to, and its address.
    pub(crate) leader_channel: parking_lot::Mutex<Option<(String, tonic::transport::Channel)>>,
    proposed: ProposedSlot,
    core: Weak<NodeCore>,
    /// When a follower last forwarded its leftover transactions, and whether it is doing so.
    resubmitted: parking_lot::Mutex<std::time::Instant>,
    resubmitting: Arc<std::sync::atomic::AtomicBool>,
    /// What the `leader_health` monitor reads and publishes.
    pub(crate) health: Arc<crate::health::Health>,
}

/// On the leader: a block it proposed, executed, with its height, parent and root, so applying
/// it when it commits does not execute it again.
type Proposed = (
    u64,
    [u8; 32],
    [u8; 32],
    aurigraph_ledger::pipeline::Executed,
);

/// The leader's blocks in flight, oldest first (see [`Proposed`]), shared by its producer and
/// its applier.
type ProposedSlot = Arc<parking_lot::Mutex<std::collections::VecDeque<Proposed>>>;

/// Applies committed blocks to the node: its pipeline, its RocksDB, its subscribers.
pub struct NodeApplier {
    core: Weak<NodeCore>,
    proposed: ProposedSlot,
}

impl NodeApplier {
    fn core(&self) -> Result<Arc<NodeCore>, ApplyError> {
        self.core
            .upgrade()
            .ok_or_else(|| ApplyError::Storage("the node is stopping".into()))
    }
}

impl BlockApplier for NodeApplier {
    fn apply(&self, entry: &BlockEntry, raft_state: &[u8]) -> Result<BlockApplied, ApplyError> {
        let core = self.core()?;
        let started = std::time::Instant::now();
        let height = entry.height;
        let head = core.head();
        if height != head.height + 1 || entry.parent != head.hash {
            // Proposed before another block took its place: skipped here as on every replica.
            self.proposed.lock().clear();
            self.save_raft_state(raft_state)?;
            core.metrics.raft_block_skipped();
            tracing::warn!(
                height,
                head = head.height,
                "block skipped: it does not follow this replica's head (proposed before a leader change or a failed round)"
            );
            return Ok(BlockApplied {
                height: head.height,
                state_root: head.state_root.0,
            });
        }
        let mut txs = Vec::with_capacity(entry.txs.len());
        for (index, bytes) in entry.txs.iter().enumerate() {
            let tx = SignedTransaction::decode(bytes).map_err(|e| ApplyError::BlockDecode {
                height,
                index,
                tx_code: e.code(),
                reason: e.to_string(),
            })?;
            txs.push(tx);
        }
        // The leader's own block, executed when it proposed it: used as is (its root is the
        // entry's, checked again below); any other block is executed here.
        let mine = {
            let mut q = self.proposed.lock();
            while q.front().is_some_and(|p| p.0 < height) {
                q.pop_front();
            }
            match q.front() {
                Some((h, parent, root, _))
                    if *h == height && *parent == entry.parent && *root == entry.state_root =>
                {
                    q.pop_front()
                }
                // Another block at this height: what the leader built on its own is void.
                Some(_) => {
                    q.clear();
                    None
                }
                None => None,
            }
        };
        let admitted_here = mine.is_some();
        let executed = match mine {
            Some((_, _, _, executed)) => executed,
            None => {
                let proposal = core
                    .pipeline
                    .proposal_of(height, txs.iter().cloned().map(Arc::new).collect());
                core.pipeline
                    .execute(proposal)
                    .map_err(|e| ApplyError::Execution {
                        height,
                        exec_code: e.code(),
                        reason: e.to_string(),
                    })?
            }
        };
        let view = core.view.write();
        let (produced, (head, block)) = core.pipeline.commit_with(executed, |produced| {
            if produced.outcome.state_root.0 != entry.state_root {
                return Err(ApplyError::RootMismatch {
                    height,
                    expected: StateRoot(entry.state_root),
                    got: produced.outcome.state_root,
                });
            }
            persist(
                &core,
                produced,
                &txs,
                entry.parent,
                entry.timestamp_ms,
                Some(raft_state),
                super::producer::Sync::Now,
            )
            .map_err(|e| ApplyError::Storage(e.to_string()))
        })?;
        *core.head.write() = head;
        drop(view);
        published(&core, produced, block, head, admitted_here);
        prune_slim(&core, height);
        core.metrics.raft_apply(started.elapsed());
        if let Some(c) = core.cluster.get() {
            c.health.record_apply(started.elapsed());
        }
        Ok(BlockApplied {
            height,
            state_root: head.state_root.0,
        })
    }

    fn save_raft_state(&self, raft_state: &[u8]) -> Result<(), ApplyError> {
        self.core()?
            .storage
            .save_raft_state(raft_state)
            .map_err(|e| ApplyError::Storage(e.to_string()))
    }

    fn raft_state(&self) -> Result<Option<Vec<u8>>, ApplyError> {
        self.core()?
            .storage
            .raft_state()
            .map_err(|e| ApplyError::Storage(e.to_string()))
    }

    fn snapshot(&self) -> Result<(u64, Vec<u8>), ApplyError> {
        let core = self.core()?;
        let storage_err = |e: aurigraph_storage::StorageError| ApplyError::Snapshot(e.to_string());
        let (genesis, chain_id) = core
            .storage
            .genesis()
            .map_err(storage_err)?
            .ok_or_else(|| ApplyError::Snapshot("the database has no genesis".into()))?;
        let (head, accounts) = core.storage.state_snapshot().map_err(storage_err)?;
        let snapshot = NodeSnapshot {
            version: SNAPSHOT_VERSION,
            chain_id,
            genesis,
            height: head.height,
            hash: head.hash,
            root: head.state_root.0,
            accounts,
        };
        let bytes = postcard::to_stdvec(&snapshot)
            .map_err(|e| ApplyError::Snapshot(format!("encode: {e}")))?;
        core.metrics.raft_snapshot_built(bytes.len());
        tracing::info!(
            height = head.height,
            bytes = bytes.len(),
            accounts = snapshot.accounts.len(),
            "state snapshot built"
        );
        Ok((head.height, bytes))
    }

    fn install(&self, height: u64, data: &[u8], raft_state: &[u8]) -> Result<(), ApplyError> {
        let core = self.core()?;
        let snapshot: NodeSnapshot =
            postcard::from_bytes(data).map_err(|e| ApplyError::Snapshot(format!("decode: {e}")))?;
        check_snapshot(snapshot.version, SNAPSHOT_VERSION, snapshot.height, height)?;
        let (genesis, chain_id) = core
            .storage
            .genesis()
            .map_err(|e| ApplyError::Snapshot(e.to_string()))?
            .ok_or_else(|| ApplyError::Snapshot("the database has no genesis".into()))?;
        if snapshot.chain_id != chain_id || snapshot.genesis != genesis {
            return Err(ApplyError::Snapshot(format!(
                "the snapshot is of chain {} with another genesis (this replica: chain {chain_id})",
                snapshot.chain_id
            )));
        }
        let shards = core.pipeline.state().shard_count();
        let state = snapshot_state(chain_id, shards, &snapshot.accounts, snapshot.root)?;
        let root = StateRoot(snapshot.root);
        let head = aurigraph_storage::Head {
            height,
            hash: snapshot.hash,
            state_root: root,
        };
        let view = core.view.write();
        let ((), removed) = core
            .pipeline
            .install_state(state, height, || {
                core.storage
                    .install_state(&head, &snapshot.accounts, raft_state)
            })
            .map_err(|e| ApplyError::Storage(e.to_string()))?;
        *core.head.write() = head;
        let stale: Vec<_> = removed
            .iter()
            .filter_map(|r| dropped_event(r, height))
            .collect();
        if let Err(e) = core.settle(&[], stale) {
            // They stay in the `mempool` family: re-admission on restart records them then.
            tracing::error!(code = e.code(), error = %e, "stale transactions not recorded as dropped");
        }
        drop(view);
        core.metrics.raft_snapshot_installed(data.len());
        tracing::info!(
            height,
            bytes = data.len(),
            accounts = snapshot.accounts.len(),
            "state snapshot installed"
        );
        Ok(())
    }
}

/// How often (in blocks) a slim replica deletes the blocks older than it keeps.
const SLIM_PRUNE_EVERY: u64 = 16;

/// On a slim replica, every [`SLIM_PRUNE_EVERY`] blocks: the blocks older than
/// `cluster.slim_keep_blocks` below `height` deleted (a failure is logged, and the next round
/// tries again).
fn prune_slim(core: &NodeCore, height: u64) {
    let c = &core.config.cluster;
    if c.role != NodeRole::Slim || !height.is_multiple_of(SLIM_PRUNE_EVERY) {
        return;
    }
    let below = height.saturating_sub(c.slim_keep_blocks).saturating_add(1);
    match core.storage.prune_blocks(below) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(blocks = n, below, "slim replica: old blocks pruned"),
        Err(e) => tracing::warn!(code = e.code(), error = %e, "slim replica: pruning failed"),
    }
}

/// Version of the node's snapshot format.
const SNAPSHOT_VERSION: u8 = 1;

/// A replica's state snapshot: the chain it belongs to, the head it was taken at, and every
/// account of the committed state (postcard-encoded). Blocks are not in it.
#[derive(serde::Serialize, serde::Deserialize)]
struct NodeSnapshot {
    version: u8,
    chain_id: u32,
    genesis: [u8; 32],
    height: u64,
    hash: [u8; 32],
    root: [u8; 32],
    accounts: Vec<(Address, Account)>,
}

/// Starts this node's replica when `[cluster]` is on: Raft over the node's RocksDB,
/// initialized from the configured members by the bootstrap replica. Returns the Raft RPC
/// routes to serve on the node's address. Call inside the tokio runtime.
pub(crate) async fn start(core: &Arc<NodeCore>) -> NodeResult<Option<axum::Router>> {
    let c = &core.config.cluster;
    if !c.enabled() {
        return Ok(None);
    }
    let secret = c.secret.clone().unwrap_or_default();
    let or = |v: u64, d: u64| if v == 0 { d } else { v };
    let health = Arc::new(crate::health::Health::default());
    let mut config = ReplicaConfig {
        heartbeat_ms: or(c.heartbeat_ms, 100),
        election_min_ms: or(c.election_min_ms, 500),
        election_max_ms: or(c.election_max_ms, 1_000),
        snapshot_logs: c.snapshot_logs,
        snapshot_keep_logs: c.snapshot_keep_logs,
    };
    if core.config.leader_health.adaptive_timing
        && let Some(t) = crate::health::stored_timing(&core.config.data_dir)
        && t.heartbeat_ms == config.heartbeat_ms
    {
        // Within the configured bounds again: the file may come from another configuration.
        let lh = &core.config.leader_health;
        let min = t
            .election_min_ms
            .clamp(lh.election_floor_ms, lh.election_ceiling_ms)
            .max(config.heartbeat_ms.saturating_mul(3));
        config.election_min_ms = min;
        config.election_max_ms = min.saturating_mul(2);
        tracing::info!(
            election_min_ms = config.election_min_ms,
            election_max_ms = config.election_max_ms,
            "election timing derived from the round trips measured in an earlier run"
        );
    }
    health.set_timing(crate::health::Timing {
        heartbeat_ms: config.heartbeat_ms,
        election_min_ms: config.election_min_ms,
        election_max_ms: config.election_max_ms,
    });
    let proposed: ProposedSlot = Arc::default();
    let applier = NodeApplier {
        core: Arc::downgrade(core),
        proposed: proposed.clone(),
    };
    let metrics = core.metrics.clone();
    let on_append_health = health.clone();
    let on_append: aurigraph_consensus::log_store::AppendObserver =
        Arc::new(move |took, _entries| {
            metrics.raft_append(took);
            on_append_health.record_append(took);
        });
    let mut hooks = replica::ReplicaHooks {
        on_append: Some(on_append),
        stats: Some(health.stats.clone()),
        ..Default::default()
    };
    if let Some(f) = &core.faults {
        let f2 = f.clone();
        hooks.faults = Some(f.links());
        hooks.write_delay = Some(Arc::new(move || f2.disk_delay()));
    }
    let raft = replica::start(
        c.node_id,
        &config,
        core.storage.clone(),
        applier,
        &secret,
        &hooks,
    )
    .await?;
    if c.bootstrap {
        let members: Vec<(u64, String)> =
            c.members.iter().map(|m| (m.id, m.addr.clone())).collect();
        replica::initialize(&raft, &members).await?;
    }
    let routes = replica::router(&raft, &secret, &hooks);
    let metrics = core.metrics.clone();
    tokio::spawn(replica::watch(raft.clone(), move |s| {
        metrics.raft_status(s)
    }));
    let cluster = Cluster {
        raft,
        rt: tokio::runtime::Handle::current(),
        leader_channel: parking_lot::Mutex::new(None),
        proposed,
        core: Arc::downgrade(core),
        resubmitted: parking_lot::Mutex::new(std::time::Instant::now()),
        resubmitting: Arc::default(),
        health: health.clone(),
    };
    if core.cluster.set(cluster).is_err() {
        return Err(NodeError::Startup("the replica was started twice".into()));
    }
    if core.config.leader_health.enabled {
        tokio::spawn(crate::health::run(Arc::downgrade(core), health));
    }
    tracing::info!(
        node_id = c.node_id,
        bootstrap = c.bootstrap,
        "replica started"
    );
    Ok(Some(routes))
}

/// A block the leader proposed that has not committed yet.
struct Flight {
    height: u64,
    /// Its hash: the next block's parent.
    hash: [u8; 32],
    /// Its writes (the accounts' values after it).
    writes: Vec<(Address, Account)>,
    /// Its transactions.
    hashes: Vec<aurigraph_ledger::tx::TxHash>,
    started: std::time::Instant,
    commit: tokio::task::JoinHandle<
        Result<Result<BlockApplied, ReplicaError>, tokio::time::error::Elapsed>,
    >,
}

/// One production round of a replica: nothing unless it is the leader; the leader proposes
/// blocks from its mempool through the replicated log, up to `cluster.max_blocks_in_flight`
/// at once (see the module docs), and returns once the last of them committed, or at the
/// first that did not (the rest may still commit, or be skipped).
pub(crate) fn produce(core: &NodeCore, cluster: &Cluster, max_blocks: usize) -> NodeResult<usize> {
    if !replica::is_leader(&cluster.raft) {
        resubmit_leftovers(core, cluster);
        return Ok(0);
    }
    let depth = core.config.cluster.max_blocks_in_flight.max(1);
    let mut flights: std::collections::VecDeque<Flight> = std::collections::VecDeque::new();
    let mut n = 0;
    let outcome = loop {
        if let Err(e) = fill(core, cluster, &mut flights, depth.min(max_blocks - n)) {
            break Err(e);
        }
        let Some(f) = flights.pop_front() else {
            break Ok(n);
        };
        match cluster.rt.block_on(f.commit) {
            Ok(Ok(Ok(applied))) if applied.height == f.height => {
                core.metrics.raft_commit(f.started.elapsed());
                n += 1;
                if n >= max_blocks {
                    break Ok(n);
                }
            }
            // Skipped: another block took its height first.
            Ok(Ok(Ok(_))) => break Ok(n),
            Ok(Ok(Err(ReplicaError::NotLeader { .. }))) => break Ok(n),
            Ok(Ok(Err(e))) => break Err(e.into()),
            Ok(Err(_)) => {
                break Err(ReplicaError::Raft(format!(
                    "block {} not committed within {COMMIT_WAIT:?}",
                    f.height
                ))
                .into());
            }
            Err(e) => {
                break Err(ReplicaError::Raft(format!(
                    "block {}: the proposal failed: {e}",
                    f.height
                ))
                .into());
            }
        }
    };
    if !flights.is_empty() {
        // Left in the log: each commits (applied by executing it, like any other block) or is
        // skipped; their transactions stay in the mempool until one of the two.
        cluster.proposed.lock().clear();
    }
    outcome
}

/// How often a follower forwards the transactions left in its mempool to the leader.
const RESUBMIT_EVERY: Duration = Duration::from_secs(2);

/// Transactions a follower forwards to the leader at once.
const RESUBMIT_MAX: usize = 1_000;

/// On a follower whose mempool holds transactions (accepted while it led and not committed,
/// or re-admitted on a restart): every [`RESUBMIT_EVERY`], its ready ones are forwarded to
/// the leader on a thread of their own, as a client's submission would be. What the leader
/// commits leaves this mempool when the block applies here; what it refuses because its
/// nonce was used leaves as stale the same way. Nothing is removed here on the leader's word.
fn resubmit_leftovers(core: &NodeCore, cluster: &Cluster) {
    use std::sync::atomic::Ordering;
    if core.pipeline.mempool().ready_len() == 0
        || cluster.resubmitted.lock().elapsed() < RESUBMIT_EVERY
        || cluster.resubmitting.swap(true, Ordering::AcqRel)
    {
        return;
    }
    *cluster.resubmitted.lock() = std::time::Instant::now();
    let txs: Vec<Vec<u8>> = core
        .pipeline
        .mempool()
        .select_ready(RESUBMIT_MAX)
        .into_iter()
        .map(|r| r.tx.tx.encoded().to_vec())
        .collect();
    let (weak, busy, rt) = (
        cluster.core.clone(),
        cluster.resubmitting.clone(),
        cluster.rt.clone(),
    );
    let spawned = std::thread::Builder::new()
        .name("aurigraph-resubmit".into())
        .spawn(move || {
            // The gRPC channel to the leader is made inside the node's runtime.
            let _runtime = rt.enter();
            if let Some(core) = weak.upgrade() {
                match core.forward_to_leader(&txs) {
                    Ok(Some(items)) => {
                        let accepted = items.iter().filter(|i| i.accepted).count();
                        tracing::info!(
                            forwarded = txs.len(),
                            accepted,
                            "leftover transactions forwarded to the leader"
                        );
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(code = %e.code, error = %e, "leftover transactions not forwarded: retrying later"),
                }
            }
            busy.store(false, Ordering::Release);
        });
    if let Err(e) = spawned {
        cluster.resubmitting.store(false, Ordering::Release);
        tracing::warn!(error = %e, "cannot start the thread forwarding leftover transactions");
    }
}

/// Proposes blocks until `depth` are in flight or nothing else is ready.
fn fill(
    core: &NodeCore,
    cluster: &Cluster,
    flights: &mut std::collections::VecDeque<Flight>,
    depth: usize,
) -> NodeResult<()> {
    while flights.len() < depth {
        let in_flight: std::collections::HashSet<_> = flights
            .iter()
            .flat_map(|f| f.hashes.iter().copied())
            .collect();
        if core.pipeline.mempool().ready_len() <= in_flight.len() {
            return Ok(());
        }
        // The head, or the last block in flight: what the next block follows.
        let (after, parent) = match flights.back() {
            Some(f) => (f.height, f.hash),
            None => {
                let head = core.head();
                (head.height, head.hash)
            }
        };
        let Some(proposal) = core.pipeline.propose_at(after + 1, &in_flight) else {
            return Ok(());
        };
        let height = proposal.height;
        let txs: Vec<Vec<u8>> = proposal
            .batch
            .txs
            .iter()
            .map(|t| t.tx.encoded().to_vec())
            .collect();
        let hashes: Vec<_> = proposal.batch.txs.iter().map(|t| t.tx.hash()).collect();
        // Each account's value after the last block in flight.
        let pending: std::collections::HashMap<Address, Account> = flights
            .iter()
            .flat_map(|f| f.writes.iter().copied())
            .collect();
        let executed = core.pipeline.execute_over(proposal, &pending)?;
        let root = core.pipeline.root_over(&pending, &executed);
        let timestamp_ms = now_ms();
        let hash = aurigraph_storage::block::BlockHeader {
            height,
            parent,
            state_root: root,
            timestamp_ms,
            tx_root: aurigraph_storage::block::tx_root(hashes.iter().copied()),
        }
        .hash();
        let entry = BlockEntry {
            height,
            parent,
            timestamp_ms,
            state_root: root.0,
            txs,
        };
        let writes = executed.write_set().to_vec();
        cluster
            .proposed
            .lock()
            .push_back((height, parent, root.0, executed));
        let raft = cluster.raft.clone();
        let commit = cluster.rt.spawn(async move {
            tokio::time::timeout(COMMIT_WAIT, replica::propose(&raft, entry)).await
        });
        core.metrics.raft_proposed(flights.len() + 1);
        flights.push_back(Flight {
            height,
            hash,
            writes,
            hashes,
            started: std::time::Instant::now(),
            commit,
        });
    }
    Ok(())
}

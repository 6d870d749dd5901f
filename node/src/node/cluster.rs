//! The node as a replica of a validator cluster (`[cluster]` with a `node_id`): block
//! production goes through the replicated log instead of executing at once.
//!
//! - The leader's producer proposes a block from its mempool, executes it, reads the state
//!   root it reaches (its writes put back at once), and proposes the [`BlockEntry`] (its
//!   header: height, parent, timestamp, root; its transactions) to openraft. It returns once
//!   the block is committed and applied here; applying it on the leader reuses that
//!   execution.
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
use aurigraph_consensus::state_machine::{ApplyError, BlockApplier};
use aurigraph_consensus::types::{BlockApplied, BlockEntry};
use aurigraph_ledger::state::{Account, ShardedState, StateRoot};
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
}

/// On the leader: the block it proposed, executed, with its height and root, so applying it
/// when it commits does not execute it again.
type Proposed = (u64, [u8; 32], aurigraph_ledger::pipeline::Executed);

/// The leader's block in flight (see [`Proposed`]), shared by its producer and its applier.
type ProposedSlot = Arc<parking_lot::Mutex<Option<Proposed>>>;

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
        let applied = core.head().height;
        if height != applied + 1 {
            return Err(ApplyError::BlockHeight {
                applied,
                got: height,
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
        let mine = self
            .proposed
            .lock()
            .take()
            .filter(|(h, root, _)| *h == height && *root == entry.state_root);
        let executed = match mine {
            Some((_, _, executed)) => executed,
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
            )
            .map_err(|e| ApplyError::Storage(e.to_string()))
        })?;
        *core.head.write() = head;
        drop(view);
        published(&core, produced, block, head);
        prune_slim(&core, height);
        core.metrics.raft_apply(started.elapsed());
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
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(ApplyError::Snapshot(format!(
                "format version {} (expected {SNAPSHOT_VERSION})",
                snapshot.version
            )));
        }
        if snapshot.height != height {
            return Err(ApplyError::Snapshot(format!(
                "the data is at height {}, the snapshot says {height}",
                snapshot.height
            )));
        }
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
        let mut state = ShardedState::new(chain_id, shards)
            .map_err(|e| ApplyError::Snapshot(format!("state: [{}] {e}", e.code())))?;
        let root = state.apply(&snapshot.accounts);
        if root.0 != snapshot.root {
            return Err(ApplyError::Snapshot(format!(
                "the accounts' root {root} differs from the snapshot's {}",
                StateRoot(snapshot.root)
            )));
        }
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
    let config = ReplicaConfig {
        heartbeat_ms: or(c.heartbeat_ms, 100),
        election_min_ms: or(c.election_min_ms, 500),
        election_max_ms: or(c.election_max_ms, 1_000),
        snapshot_logs: c.snapshot_logs,
        snapshot_keep_logs: c.snapshot_keep_logs,
    };
    let proposed: ProposedSlot = Arc::default();
    let applier = NodeApplier {
        core: Arc::downgrade(core),
        proposed: proposed.clone(),
    };
    let raft = replica::start(c.node_id, &config, core.storage.clone(), applier, &secret).await?;
    if c.bootstrap {
        let members: Vec<(u64, String)> =
            c.members.iter().map(|m| (m.id, m.addr.clone())).collect();
        replica::initialize(&raft, &members).await?;
    }
    let routes = replica::router(&raft, &secret);
    let metrics = core.metrics.clone();
    tokio::spawn(replica::watch(raft.clone(), move |s| {
        metrics.raft_status(s)
    }));
    let cluster = Cluster {
        raft,
        rt: tokio::runtime::Handle::current(),
        leader_channel: parking_lot::Mutex::new(None),
        proposed,
    };
    if core.cluster.set(cluster).is_err() {
        return Err(NodeError::Startup("the replica was started twice".into()));
    }
    tracing::info!(
        node_id = c.node_id,
        bootstrap = c.bootstrap,
        "replica started"
    );
    Ok(Some(routes))
}

/// One production round of a replica: nothing unless it is the leader; the leader proposes
/// blocks from its mempool through the replicated log (see the module docs).
pub(crate) fn produce(core: &NodeCore, cluster: &Cluster, max_blocks: usize) -> NodeResult<usize> {
    if !replica::is_leader(&cluster.raft) {
        return Ok(0);
    }
    let mut n = 0;
    while n < max_blocks && core.pipeline.mempool().ready_len() > 0 {
        let Some(proposal) = core.pipeline.propose() else {
            break;
        };
        let height = proposal.height;
        let txs: Vec<Vec<u8>> = proposal
            .batch
            .txs
            .iter()
            .map(|t| t.tx.encoded().to_vec())
            .collect();
        let executed = core.pipeline.execute(proposal)?;
        let root = core.pipeline.root_of(&executed);
        let entry = BlockEntry {
            height,
            parent: core.head().hash,
            timestamp_ms: now_ms(),
            state_root: root.0,
            txs,
        };
        *cluster.proposed.lock() = Some((height, root.0, executed));
        let started = std::time::Instant::now();
        let proposed = cluster.rt.block_on(async {
            tokio::time::timeout(COMMIT_WAIT, replica::propose(&cluster.raft, entry)).await
        });
        match proposed {
            Ok(Ok(_)) => {
                core.metrics.raft_commit(started.elapsed());
                n += 1;
            }
            Ok(Err(ReplicaError::NotLeader { .. })) => break,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(ReplicaError::Raft(format!(
                    "block {height} not committed within {COMMIT_WAIT:?}"
                ))
                .into());
            }
        }
    }
    Ok(n)
}

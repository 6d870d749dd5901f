//! A replica of the replicated block log, as the node runs it: openraft over the node's
//! RocksDB ([`RaftLogStore`]), a [`BlockStateMachine`] over the node's [`BlockApplier`], and
//! the tonic network ([`RaftNetwork`], [`RaftService`]) with the cluster secret. The node
//! reaches openraft through this module only.

use std::collections::BTreeMap;
use std::sync::Arc;

use aurigraph_storage::Storage;
use serde::Serialize;

use crate::faults::FaultyLinks;
use crate::leadership::LinkStats;
use crate::log_store::RaftLogStore;
use crate::network::{RaftNetwork, RaftService};
use crate::state_machine::{BlockApplier, BlockStateMachine};
use crate::types::{BlockApplied, BlockEntry, NodeId, NodeInfo, TypeConfig};
use openraft::async_runtime::WatchReceiver;

/// A replica's Raft handle.
pub type Replica<A> = openraft::Raft<TypeConfig, BlockStateMachine<A>>;

/// Timing of a replica.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// Leader heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Election timeout range, ms.
    pub election_min_ms: u64,
    /// Upper end of the election timeout range, ms.
    pub election_max_ms: u64,
    /// Build a state snapshot once this many entries were applied since the last one
    /// (0: never; then a replica that falls behind catches up from the log, never purged).
    pub snapshot_logs: u64,
    /// Entries a snapshot covers that stay in the log (the rest are purged): a replica
    /// behind by fewer catches up from the log, one behind by more gets the snapshot.
    pub snapshot_keep_logs: u64,
}

/// Why a replica could not start or a block could not be proposed. Codes: `E_RAFT_START`,
/// `E_NOT_LEADER`, `E_RAFT`.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The replica did not start (configuration, storage).
    #[error("[E_RAFT_START] {0}")]
    Start(String),
    /// This replica is not the leader; the leader is the one named, when known.
    #[error("[E_NOT_LEADER] this replica is not the leader (leader: {})", leader.as_ref().map_or("unknown".to_string(), |l| format!("{} at {}", l.0, l.1)))]
    NotLeader {
        /// The leader's id and address, when known.
        leader: Option<(NodeId, String)>,
    },
    /// Raft refused or failed the write (a stopped replica, a lost quorum, a failed apply).
    #[error("[E_RAFT] {0}")]
    Raft(String),
}

impl ReplicaError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReplicaError::Start(_) => "E_RAFT_START",
            ReplicaError::NotLeader { .. } => "E_NOT_LEADER",
            ReplicaError::Raft(_) => "E_RAFT",
        }
    }
}

/// What a replica reports to, and the faults injected into it, all optional.
#[derive(Clone, Default)]
pub struct ReplicaHooks {
    /// Called after each append of the log (see [`crate::log_store::AppendObserver`]).
    pub on_append: Option<crate::log_store::AppendObserver>,
    /// Round trips of the AppendEntries it sends, arrivals of those it receives (its
    /// network client and, through [`router`], its server).
    pub stats: Option<Arc<LinkStats>>,
    /// **Fault injection, for tests and chaos runs; never in a production config.** Its
    /// outgoing links consult this table (as replica `id`), and, through [`router`], its
    /// server refuses every call while the table blocks its inbound links.
    pub faults: Option<Arc<FaultyLinks>>,
    /// **Fault injection, for tests and chaos runs.** Holds each log append (a slow disk).
    pub write_delay: Option<crate::log_store::WriteDelay>,
}

/// Starts replica `id`: its log in `storage`'s Raft families, its state machine over
/// `applier`, with `hooks`. It builds a snapshot every `config.snapshot_logs` applied entries
/// and then purges the log up to `config.snapshot_keep_logs` entries before it; a replica
/// behind the purge point (or a new learner) receives the snapshot.
pub async fn start<A: BlockApplier>(
    id: NodeId,
    config: &ReplicaConfig,
    storage: Arc<Storage>,
    applier: A,
    secret: &str,
    hooks: &ReplicaHooks,
) -> Result<Replica<A>, ReplicaError> {
    let raft_config = openraft::Config {
        cluster_name: "aurigraph".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_min_ms,
        election_timeout_max: config.election_max_ms,
        snapshot_policy: if config.snapshot_logs == 0 {
            openraft::SnapshotPolicy::Never
        } else {
            openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_logs)
        },
        max_in_snapshot_log_to_keep: config.snapshot_keep_logs,
        ..Default::default()
    }
    .validate()
    .map_err(|e| ReplicaError::Start(format!("raft configuration: {e}")))?;
    let mut log = RaftLogStore::new(storage).map_err(|e| ReplicaError::Start(e.to_string()))?;
    if let Some(f) = &hooks.on_append {
        log = log.with_append_observer(f.clone());
    }
    if let Some(d) = &hooks.write_delay {
        log = log.with_write_delay(d.clone());
    }
    let sm = BlockStateMachine::new(applier).map_err(|e| ReplicaError::Start(e.to_string()))?;
    let mut network = match &hooks.faults {
        Some(f) => RaftNetwork::with_faults(secret.to_string(), id, f.clone()),
        None => RaftNetwork::new(secret.to_string()),
    };
    if let Some(stats) = &hooks.stats {
        network = network.with_stats(stats.clone());
    }
    openraft::Raft::new(id, Arc::new(raft_config), network, log, sm)
        .await
        .map_err(|e| ReplicaError::Start(e.to_string()))
}

/// The Raft RPC routes (`/aurigraph.raft.v1.Raft/*`) of `raft`, to merge into the node's
/// router, with the stats and faults of `hooks` (see [`ReplicaHooks`]).
pub fn router<A: BlockApplier>(
    raft: &Replica<A>,
    secret: &str,
    hooks: &ReplicaHooks,
) -> axum::Router {
    let mut service = RaftService::new(raft.clone(), secret.to_string());
    if let Some(stats) = &hooks.stats {
        service = service.with_stats(stats.clone());
    }
    if let Some(faults) = &hooks.faults {
        let me = raft.metrics().borrow_watched().id;
        service = service.with_faults(me, faults.clone());
    }
    service.into_router()
}

/// Initializes a new cluster with `members` as voters; nothing when this replica already
/// holds a log or a vote (a restart).
pub async fn initialize<A: BlockApplier>(
    raft: &Replica<A>,
    members: &[(NodeId, String)],
) -> Result<(), ReplicaError> {
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| ReplicaError::Raft(e.to_string()))?;
    if initialized {
        return Ok(());
    }
    let nodes: BTreeMap<NodeId, NodeInfo> = members
        .iter()
        .map(|(id, addr)| (*id, NodeInfo { addr: addr.clone() }))
        .collect();
    raft.initialize(nodes)
        .await
        .map_err(|e| ReplicaError::Raft(e.to_string()))
}

/// Proposes a block and waits until it is committed and applied here.
pub async fn propose<A: BlockApplier>(
    raft: &Replica<A>,
    entry: BlockEntry,
) -> Result<BlockApplied, ReplicaError> {
    match raft.client_write(entry).await {
        Ok(resp) => Ok(resp.data),
        Err(e) => Err(write_error(&e)),
    }
}

/// A refused write: `E_NOT_LEADER` (with the leader, when known) or `E_RAFT`.
fn write_error<E>(e: &openraft::error::RaftError<TypeConfig, E>) -> ReplicaError
where
    E: openraft::TryAsRef<openraft::error::ForwardToLeader<TypeConfig>> + std::error::Error,
{
    match e.forward_to_leader() {
        Some(f) => ReplicaError::NotLeader {
            leader: f
                .leader_id
                .zip(f.leader_node.clone())
                .map(|(id, n)| (id, n.addr)),
        },
        None => ReplicaError::Raft(e.to_string()),
    }
}

/// On the leader: confirms with a quorum that it still leads (the ReadIndex protocol) and
/// waits until this replica applied everything committed before the call, so a read of its
/// state afterwards is linearizable. Elsewhere `E_NOT_LEADER` (with the leader when known);
/// `E_RAFT` when no quorum answers.
pub async fn ensure_linearizable<A: BlockApplier>(raft: &Replica<A>) -> Result<(), ReplicaError> {
    raft.ensure_linearizable(openraft::raft::ReadPolicy::ReadIndex)
        .await
        .map(|_| ())
        .map_err(|e| write_error(&e))
}

/// Where a replica stands, as `GET /v1/cluster` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaStatus {
    /// This replica's id.
    pub id: NodeId,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its term.
    pub term: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: String,
    /// Index of the last applied log entry.
    pub last_applied: Option<u64>,
    /// Index of the last log entry.
    pub last_log: Option<u64>,
    /// The members (voters and learners) with their addresses.
    pub members: Vec<(NodeId, String)>,
    /// The voters among them.
    pub voters: Vec<NodeId>,
    /// The error that stopped this replica's Raft, if it stopped.
    pub stopped: Option<String>,
    /// On the leader: how many log entries each other replica is behind its last log entry.
    pub lags: Vec<(NodeId, u64)>,
    /// On the leader: milliseconds since a quorum last acknowledged it (`None` elsewhere, or
    /// before the first acknowledgement). Computed when the status is read, so it grows while
    /// the leader is cut off even though its metrics no longer change.
    pub quorum_acked_ms_ago: Option<u64>,
}

/// This replica's status from its metrics.
pub fn status<A: BlockApplier>(raft: &Replica<A>) -> ReplicaStatus {
    let m = raft.metrics().borrow_watched().clone();
    status_of(&m)
}

/// Calls `f` with the replica's status now and at every change of its metrics, until the
/// replica stops.
pub async fn watch<A: BlockApplier>(raft: Replica<A>, mut f: impl FnMut(&ReplicaStatus)) {
    let mut rx = raft.metrics();
    loop {
        let m = rx.borrow_watched().clone();
        f(&status_of(&m));
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn status_of(m: &openraft::RaftMetrics<TypeConfig>) -> ReplicaStatus {
    let last_log = m.last_log_index.unwrap_or(0);
    let lags = m
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .filter(|(id, _)| **id != m.id)
                .map(|(id, matched)| {
                    let at = matched.as_ref().map_or(0, |l| l.index);
                    (*id, last_log.saturating_sub(at))
                })
                .collect()
        })
        .unwrap_or_default();
    ReplicaStatus {
        id: m.id,
        leader: m.current_leader,
        term: m.current_term,
        state: format!("{:?}", m.state).to_lowercase(),
        last_applied: m.last_applied.map(|l| l.index),
        last_log: m.last_log_index,
        members: m
            .membership_config
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect(),
        voters: m.membership_config.membership().voter_ids().collect(),
        stopped: m.running_state.as_ref().err().map(|e| e.to_string()),
        lags,
        quorum_acked_ms_ago: m.last_quorum_acked.as_ref().map(|t| {
            use openraft::Instant as _;
            u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
        }),
    }
}

/// Whether this replica is the leader now, confirmed by a quorum in its term: a replica that
/// restarts with the vote of a term it led believes it leads until it hears of a newer term,
/// and is not counted as the leader before a quorum acknowledged it.
pub fn is_leader<A: BlockApplier>(raft: &Replica<A>) -> bool {
    let m = raft.metrics();
    let m = m.borrow_watched();
    m.current_leader == Some(m.id) && m.last_quorum_acked.is_some()
}

/// A change of the cluster's membership, as an operator asks for it.
#[derive(Clone, Debug)]
pub enum MembershipChange {
    /// Add a learner (a replica that applies blocks and serves the API, without a vote).
    AddLearner {
        /// Its id.
        id: NodeId,
        /// `host:port` of its API.
        addr: String,
    },
    /// Make a learner a voter.
    Promote(NodeId),
    /// Remove a replica from the membership (voter or learner).
    Remove(NodeId),
}

/// Applies a membership change through the leader (`E_NOT_LEADER` elsewhere). An added
/// learner is being caught up when this returns (not waited for).
pub async fn change_membership<A: BlockApplier>(
    raft: &Replica<A>,
    change: MembershipChange,
) -> Result<(), ReplicaError> {
    use std::collections::BTreeSet;
    let result = match change {
        MembershipChange::AddLearner { id, addr } => {
            raft.add_learner(id, NodeInfo { addr }, false).await
        }
        MembershipChange::Promote(id) => {
            raft.change_membership(
                openraft::ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                true,
            )
            .await
        }
        MembershipChange::Remove(id) => {
            let m = raft.metrics().borrow_watched().clone();
            let is_voter = m
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == id);
            let change = if is_voter {
                openraft::ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else {
                openraft::ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            };
            raft.change_membership(change, false).await
        }
    };
    match result {
        Ok(_) => Ok(()),
        Err(e) => Err(write_error(&e)),
    }
}

/// Asks the leader to hand leadership over to `to` (a voter that is up to date).
pub async fn transfer_leader<A: BlockApplier>(
    raft: &Replica<A>,
    to: NodeId,
) -> Result<(), ReplicaError> {
    if !is_leader(raft) {
        return Err(ReplicaError::NotLeader { leader: None });
    }
    raft.trigger()
        .transfer_leader(to)
        .await
        .map_err(|e| ReplicaError::Raft(e.to_string()))
}

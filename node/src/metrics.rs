//! The node's Prometheus registry: the engine's `aurigraph_policy_*` families and the node's
//! own `aurigraph_node_*` families, served as text at `GET /metrics`.

use std::sync::Arc;
use std::time::Duration;

use aurigraph_decision::metrics::EngineMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use aurigraph_storage::block::StoredBlock;

/// Labels of a submission outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `accepted` or the refusal's stable code.
    pub outcome: String,
}

/// The node's metrics.
#[derive(Clone)]
pub struct NodeMetrics {
    engine: EngineMetrics,
    registry: Arc<Registry>,
    blocks: Counter,
    committed_txs: Counter,
    submissions: Family<OutcomeLabels, Counter>,
    height: Gauge,
    mempool: Gauge,
    block_latency: Histogram,
    dropped: Family<CodeLabels, Counter>,
    block_failures: Family<CodeLabels, Counter>,
    production_stalled: Gauge,
    subscribers: Gauge,
    raft: RaftMetrics,
}

/// The replicated log's families (`aurigraph_raft_*`), set by a cluster replica only.
#[derive(Clone)]
struct RaftMetrics {
    term: Gauge,
    leader: Gauge,
    is_leader: Gauge,
    leader_changes: Counter,
    last_log_index: Gauge,
    applied_index: Gauge,
    stopped: Gauge,
    replication_lag: Family<PeerLabels, Gauge>,
    commit_seconds: Histogram,
    apply_seconds: Histogram,
    snapshots_built: Counter,
    blocks_skipped: Counter,
    append_seconds: Histogram,
    in_flight: Histogram,
    snapshots_installed: Counter,
    snapshot_bytes: Gauge,
    last_leader: Arc<std::sync::atomic::AtomicU64>,
}

/// Labels of a per-replica figure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The other replica's id.
    pub peer: String,
}

/// Labels of a counter by stable code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// The stable code.
    pub code: String,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeMetrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let engine = EngineMetrics::default();
        let mut registry = Registry::default();
        engine.register(&mut registry);
        let blocks = Counter::default();
        let committed_txs = Counter::default();
        let submissions = Family::<OutcomeLabels, Counter>::default();
        let height = Gauge::default();
        let mempool = Gauge::default();
        let block_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let dropped = Family::<CodeLabels, Counter>::default();
        let block_failures = Family::<CodeLabels, Counter>::default();
        let production_stalled = Gauge::default();
        let subscribers = Gauge::default();
        let raft = RaftMetrics {
            term: Gauge::default(),
            leader: Gauge::default(),
            is_leader: Gauge::default(),
            leader_changes: Counter::default(),
            last_log_index: Gauge::default(),
            applied_index: Gauge::default(),
            stopped: Gauge::default(),
            replication_lag: Family::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            apply_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            snapshots_built: Counter::default(),
            blocks_skipped: Counter::default(),
            append_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            in_flight: Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0]),
            snapshots_installed: Counter::default(),
            snapshot_bytes: Gauge::default(),
            last_leader: Arc::default(),
        };
        {
            let r = registry.sub_registry_with_prefix("aurigraph_raft");
            r.register("term", "This replica's Raft term", raft.term.clone());
            r.register(
                "leader",
                "Id of the leader this replica knows (0: none)",
                raft.leader.clone(),
            );
            r.register(
                "is_leader",
                "1 while this replica is the leader",
                raft.is_leader.clone(),
            );
            r.register(
                "leader_changes",
                "Times the leader this replica knows changed",
                raft.leader_changes.clone(),
            );
            r.register(
                "last_log_index",
                "Index of this replica's last log entry",
                raft.last_log_index.clone(),
            );
            r.register(
                "applied_index",
                "Index of the last entry applied here",
                raft.applied_index.clone(),
            );
            r.register(
                "stopped",
                "1 when this replica's Raft stopped (e.g. E_ROOT_MISMATCH)",
                raft.stopped.clone(),
            );
            r.register(
                "replication_lag_entries",
                "On the leader: entries each other replica is behind its last log entry",
                raft.replication_lag.clone(),
            );
            r.register(
                "commit_seconds",
                "On the leader: a block's proposal through the log to its apply here",
                raft.commit_seconds.clone(),
            );
            r.register(
                "apply_seconds",
                "A committed block's execution and write on this replica",
                raft.apply_seconds.clone(),
            );
            r.register(
                "blocks_in_flight",
                "On the leader: blocks in flight (proposed, not committed) as each block is proposed, itself included",
                raft.in_flight.clone(),
            );
            r.register(
                "append_seconds",
                "An append of log entries to this replica's Raft log, written and synced",
                raft.append_seconds.clone(),
            );
            r.register(
                "blocks_skipped",
                "Committed log entries skipped because their block did not follow the head",
                raft.blocks_skipped.clone(),
            );
            r.register(
                "snapshots_built",
                "State snapshots this replica built",
                raft.snapshots_built.clone(),
            );
            r.register(
                "snapshots_installed",
                "State snapshots this replica installed from the leader",
                raft.snapshots_installed.clone(),
            );
            r.register(
                "snapshot_bytes",
                "Size of the last state snapshot built or installed here",
                raft.snapshot_bytes.clone(),
            );
        }
        {
            let r = registry.sub_registry_with_prefix("aurigraph_node");
            r.register("blocks", "Blocks committed", blocks.clone());
            r.register(
                "committed_transactions",
                "Transactions committed in blocks (executed or skipped)",
                committed_txs.clone(),
            );
            r.register(
                "submissions",
                "Submitted transactions by outcome (accepted or the refusal code)",
                submissions.clone(),
            );
            r.register("height", "Height of the head", height.clone());
            r.register(
                "mempool_transactions",
                "Transactions in the mempool",
                mempool.clone(),
            );
            r.register(
                "block_latency_seconds",
                "Proposal to commit of a block",
                block_latency.clone(),
            );
            r.register(
                "dropped_transactions",
                "Acknowledged transactions that left the mempool without committing, by code",
                dropped.clone(),
            );
            r.register(
                "block_failures",
                "Failed tries of a block (append, execution or storage), by code",
                block_failures.clone(),
            );
            r.register(
                "production_stalled",
                "1 while block production is retrying a failed block or has halted",
                production_stalled.clone(),
            );
            r.register(
                "subscribers",
                "Open subscriptions (WebSocket and gRPC)",
                subscribers.clone(),
            );
        }
        Self {
            engine,
            registry: Arc::new(registry),
            blocks,
            committed_txs,
            submissions,
            height,
            mempool,
            block_latency,
            dropped,
            block_failures,
            production_stalled,
            subscribers,
            raft,
        }
    }

    /// The engine's metrics (give them to the slot hosts).
    pub fn engine(&self) -> &EngineMetrics {
        &self.engine
    }

    /// The text exposition of everything.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn block_committed(&self, block: &StoredBlock, latency: Duration) {
        self.blocks.inc();
        self.committed_txs.inc_by(block.txs.len() as u64);
        self.height.set(block.header.height as i64);
        self.block_latency.observe(latency.as_secs_f64());
    }

    pub(crate) fn set_head(&self, height: u64) {
        self.height.set(height as i64);
    }

    pub(crate) fn set_mempool(&self, n: usize) {
        self.mempool.set(n as i64);
    }

    pub(crate) fn dropped(&self, code: &str) {
        self.dropped
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
    }

    pub(crate) fn block_failure(&self, code: &str) {
        self.block_failures
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
    }

    pub(crate) fn set_production_stalled(&self, stalled: bool) {
        self.production_stalled.set(i64::from(stalled));
    }

    pub(crate) fn raft_status(&self, s: &aurigraph_consensus::replica::ReplicaStatus) {
        let r = &self.raft;
        r.term.set(s.term as i64);
        let leader = s.leader.unwrap_or(0);
        r.leader.set(leader as i64);
        r.is_leader.set(i64::from(s.leader == Some(s.id)));
        let before = r
            .last_leader
            .swap(leader, std::sync::atomic::Ordering::Relaxed);
        if leader != 0 && before != leader {
            r.leader_changes.inc();
        }
        r.last_log_index.set(s.last_log.unwrap_or(0) as i64);
        r.applied_index.set(s.last_applied.unwrap_or(0) as i64);
        r.stopped.set(i64::from(s.stopped.is_some()));
        r.replication_lag.clear();
        for (peer, lag) in &s.lags {
            r.replication_lag
                .get_or_create(&PeerLabels {
                    peer: peer.to_string(),
                })
                .set(*lag as i64);
        }
    }

    pub(crate) fn raft_commit(&self, d: Duration) {
        self.raft.commit_seconds.observe(d.as_secs_f64());
    }

    pub(crate) fn raft_apply(&self, d: Duration) {
        self.raft.apply_seconds.observe(d.as_secs_f64());
    }

    pub(crate) fn raft_proposed(&self, in_flight: usize) {
        self.raft.in_flight.observe(in_flight as f64);
    }

    pub(crate) fn raft_append(&self, d: Duration) {
        self.raft.append_seconds.observe(d.as_secs_f64());
    }

    pub(crate) fn raft_block_skipped(&self) {
        self.raft.blocks_skipped.inc();
    }

    pub(crate) fn raft_snapshot_built(&self, bytes: usize) {
        self.raft.snapshots_built.inc();
        self.raft.snapshot_bytes.set(bytes as i64);
    }

    pub(crate) fn raft_snapshot_installed(&self, bytes: usize) {
        self.raft.snapshots_installed.inc();
        self.raft.snapshot_bytes.set(bytes as i64);
    }

    pub(crate) fn subscribers(&self, delta: i64) {
        self.subscribers.inc_by(delta);
    }

    pub(crate) fn submission(&self, outcome: &str, n: u64) {
        self.submissions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }
}

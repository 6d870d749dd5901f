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

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The HTTP method (`POST` for gRPC calls).
    pub method: String,
    /// The matched route (`/v1/accounts/{address}`, `/aurigraph.v1.Query/GetHead`, ...), or
    /// `unmatched`.
    pub route: String,
    /// The HTTP status code.
    pub status: String,
}

/// What operators alert on besides the node's own families: the process's CPU and memory
/// (`process_*`, the names Prometheus client libraries use), API request latency, the
/// leader's contact with a quorum, and telemetry retention.
#[derive(Clone)]
struct OpsMetrics {
    cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    resident_bytes: Gauge,
    http: Family<HttpLabels, Histogram, fn() -> Histogram>,
    quorum_ok: Gauge,
    quorum_ack_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    telemetry_pruned: Counter,
    /// The CPU seconds last read from `/proc`, to add the difference to the counter.
    cpu_seen: Arc<parking_lot::Mutex<f64>>,
    /// The telemetry recorder's pruned total last read.
    telemetry_seen: Arc<parking_lot::Mutex<u64>>,
    mempool_class: Family<ClassLabels, Gauge>,
    rocksdb: Family<RocksLabels, Gauge>,
    commit_latency: Histogram,
    leader_health: Gauge<f64, std::sync::atomic::AtomicU64>,
    handovers: Family<AnsweredLabels, Counter>,
}

/// Labels of a `leader_health` hand-over.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnsweredLabels {
    /// What answered the decision: `static`, `onnx` or `wasm`.
    pub answered_by: String,
}

/// Labels of a mempool priority class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    /// `normal`, `suspicious` or `anomalous`.
    pub class: String,
}

/// Labels of a RocksDB figure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RocksLabels {
    /// `sst`, `live_data`, `memtable` or `pending_compaction`.
    pub kind: String,
}

fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl OpsMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            cpu_seconds: Counter::default(),
            resident_bytes: Gauge::default(),
            http: Family::new_with_constructor(http_histogram),
            quorum_ok: Gauge::default(),
            quorum_ack_age: Gauge::default(),
            telemetry_pruned: Counter::default(),
            cpu_seen: Arc::default(),
            telemetry_seen: Arc::default(),
            mempool_class: Family::default(),
            rocksdb: Family::default(),
            // 1 ms to about 36 s in steps of 25 %: fine enough to read a p99 against a 100 ms goal.
            commit_latency: Histogram::new(exponential_buckets(0.001, 1.25, 48)),
            leader_health: Gauge::default(),
            handovers: Family::default(),
        };
        registry.register(
            "aurigraph_leader_health_probability",
            "The leader_health slot's last failure probability for the leader, as this replica scores it",
            m.leader_health.clone(),
        );
        registry.register(
            "aurigraph_leader_handovers",
            "Leadership hand-overs this replica made on its leader_health score, by what answered",
            m.handovers.clone(),
        );
        registry.register(
            "aurigraph_node_mempool_class_transactions",
            "Transactions held in the mempool by priority class (read at each scrape)",
            m.mempool_class.clone(),
        );
        registry.register(
            "aurigraph_rocksdb_bytes",
            "RocksDB figures summed over column families, by kind: sst, live_data, memtable, pending_compaction (read at each scrape)",
            m.rocksdb.clone(),
        );
        registry.register(
            "aurigraph_node_commit_latency_seconds",
            "Admission to commit of each transaction, on the node that admitted it (a node alone, or the leader for what it proposed)",
            m.commit_latency.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time of the node's process (read from /proc at each scrape)",
            m.cpu_seconds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the node's process (VmRSS, read from /proc at each scrape)",
            m.resident_bytes.clone(),
        );
        registry.register(
            "aurigraph_http_request_duration_seconds",
            "API requests (REST and gRPC) from arrival to the response's head, by method, route and status",
            m.http.clone(),
        );
        registry.register(
            "aurigraph_raft_quorum_ok",
            "1 while this replica leads with a quorum's acknowledgement within the election timeout, or follows a known leader, or runs alone; 0 otherwise (a cut-off leader reads 0)",
            m.quorum_ok.clone(),
        );
        registry.register(
            "aurigraph_raft_quorum_ack_age_seconds",
            "On the leader: time since a quorum last acknowledged it (-1 elsewhere)",
            m.quorum_ack_age.clone(),
        );
        registry.register(
            "aurigraph_telemetry_pruned_records",
            "Telemetry records deleted by the retention bound",
            m.telemetry_pruned.clone(),
        );
        m
    }
}

/// `utime + stime` of this process in seconds, from `/proc/self/stat` (USER_HZ is 100 on
/// Linux for the values `/proc` exports); `None` elsewhere or when unreadable.
pub(crate) fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (in parentheses, possibly with spaces): state is field 3,
    // utime field 14 and stime field 15 of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// `VmRSS` of this process in bytes, from `/proc/self/status`.
pub(crate) fn process_resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb.saturating_mul(1024))
}

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
    ops: OpsMetrics,
    raft: RaftMetrics,
    archive: ArchiveMetrics,
    scaling: ScalingGauges,
}

/// The scaling advice's gauges (see [`crate::scaling`]).
#[derive(Clone)]
struct ScalingGauges {
    forecast_tps: Gauge<f64, std::sync::atomic::AtomicU64>,
    desired_replicas: Gauge,
}

impl ScalingGauges {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            forecast_tps: Gauge::default(),
            desired_replicas: Gauge::default(),
        };
        registry.register(
            "aurigraph_demand_forecast_tps",
            "The demand slot's forecast arrival rate, the largest over its horizon, tx/s",
            m.forecast_tps.clone(),
        );
        registry.register(
            "aurigraph_scaling_desired_replicas",
            "Replicas the scaling advice asks for (after headroom, steps, cooldowns and bounds)",
            m.desired_replicas.clone(),
        );
        m
    }
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
        let ops = OpsMetrics::register(&mut registry);
        let archive = ArchiveMetrics::register(&mut registry);
        let scaling = ScalingGauges::register(&mut registry);
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
            ops,
            raft,
            archive,
            scaling,
        }
    }

    /// The engine's metrics (give them to the slot hosts).
    pub fn engine(&self) -> &EngineMetrics {
        &self.engine
    }

    /// Reads the process's CPU time and resident memory into `process_*` (called before each
    /// scrape's encoding).
    pub(crate) fn refresh_process(&self) {
        if let Some(cpu) = process_cpu_seconds() {
            let mut seen = self.ops.cpu_seen.lock();
            if cpu > *seen {
                self.ops.cpu_seconds.inc_by(cpu - *seen);
                *seen = cpu;
            }
        }
        if let Some(rss) = process_resident_bytes() {
            self.ops.resident_bytes.set(rss);
        }
    }

    /// One API request's duration.
    pub(crate) fn http_request(&self, labels: HttpLabels, d: Duration) {
        self.ops
            .http
            .get_or_create(&labels)
            .observe(d.as_secs_f64());
    }

    /// The replica's contact with its cluster, read at scrape time: `quorum_ok` and the age
    /// of the leader's last quorum acknowledgement (`election_max_ms` bounds a healthy age).
    pub(crate) fn raft_quorum(
        &self,
        s: &aurigraph_consensus::replica::ReplicaStatus,
        election_max_ms: u64,
    ) {
        let leading = s.leader == Some(s.id);
        let ok = if leading {
            s.quorum_acked_ms_ago
                .is_some_and(|ms| ms <= election_max_ms)
        } else {
            s.leader.is_some() && s.stopped.is_none()
        };
        self.ops.quorum_ok.set(i64::from(ok));
        self.ops
            .quorum_ack_age
            .set(match (leading, s.quorum_acked_ms_ago) {
                (true, Some(ms)) => ms as f64 / 1e3,
                _ => -1.0,
            });
    }

    /// The mempool's occupancy per class and RocksDB's figures, read at scrape time.
    pub(crate) fn refresh_storage(
        &self,
        stats: &aurigraph_ledger::mempool::MempoolStats,
        rocks: aurigraph_storage::RocksDbFigures,
    ) {
        for c in &stats.classes {
            self.ops
                .mempool_class
                .get_or_create(&ClassLabels {
                    class: c.class.as_str().to_string(),
                })
                .set(c.count as i64);
        }
        for (kind, v) in [
            ("sst", rocks.sst_bytes),
            ("live_data", rocks.live_data_bytes),
            ("memtable", rocks.memtable_bytes),
            ("pending_compaction", rocks.pending_compaction_bytes),
        ] {
            self.ops
                .rocksdb
                .get_or_create(&RocksLabels {
                    kind: kind.to_string(),
                })
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Admission to commit of transactions this node admitted.
    pub(crate) fn commit_latencies(&self, latencies: impl IntoIterator<Item = Duration>) {
        for d in latencies {
            self.ops.commit_latency.observe(d.as_secs_f64());
        }
    }

    /// A node alone is its own quorum: `quorum_ok` 1, no acknowledgement age (-1).
    pub(crate) fn raft_alone(&self) {
        self.ops.quorum_ok.set(1);
        self.ops.quorum_ack_age.set(-1.0);
    }

    /// Telemetry records deleted by the retention bound, as a running total (the counter
    /// moves by the difference).
    pub(crate) fn telemetry_pruned_total(&self, total: u64) {
        let mut seen = self.ops.telemetry_seen.lock();
        if total > *seen {
            self.ops.telemetry_pruned.inc_by(total - *seen);
            *seen = total;
        }
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

    pub(crate) fn leader_health_probability(&self, p: f64) {
        self.ops.leader_health.set(p);
    }

    pub(crate) fn leader_handover(&self, answered_by: &str) {
        self.ops
            .handovers
            .get_or_create(&AnsweredLabels {
                answered_by: answered_by.to_string(),
            })
            .inc();
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

    pub(crate) fn scaling_advice(&self, forecast_tps: f64, desired_replicas: u32) {
        self.scaling.forecast_tps.set(forecast_tps);
        self.scaling
            .desired_replicas
            .set(i64::from(desired_replicas));
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

/// Storage tiers (`aurigraph_storage_archive*`): archive runs and the cold tier's size.
#[derive(Clone)]
struct ArchiveMetrics {
    blocks: Counter,
    runs: Counter,
    failures: Family<CodeLabels, Counter>,
    seconds: Histogram,
    height: Gauge,
    bytes: Gauge,
    segments: Gauge,
}

impl ArchiveMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            blocks: Counter::default(),
            runs: Counter::default(),
            failures: Family::default(),
            seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            height: Gauge::default(),
            bytes: Gauge::default(),
            segments: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("aurigraph_storage");
        r.register(
            "archived_blocks",
            "Blocks moved from RocksDB to archive segments",
            m.blocks.clone(),
        );
        r.register(
            "archive_runs",
            "Archive steps that wrote a segment",
            m.runs.clone(),
        );
        r.register(
            "archive_failures",
            "Archive steps that failed, by code (retried next round)",
            m.failures.clone(),
        );
        r.register(
            "archive_run_seconds",
            "One archive step: segment written and synced, RocksDB batch written",
            m.seconds.clone(),
        );
        r.register(
            "archived_height",
            "Last height moved to the archive (0: none); blocks above it are hot",
            m.height.clone(),
        );
        r.register(
            "archive_bytes",
            "Bytes of the archive's recorded segments (the cold tier)",
            m.bytes.clone(),
        );
        r.register(
            "archive_segments",
            "Recorded archive segments",
            m.segments.clone(),
        );
        m
    }
}

impl NodeMetrics {
    /// An archive step that wrote a segment of `blocks` blocks.
    pub fn archive_run(&self, blocks: u64, took: Duration) {
        self.archive.runs.inc();
        self.archive.blocks.inc_by(blocks);
        self.archive.seconds.observe(took.as_secs_f64());
    }

    /// An archive step that failed with `code`.
    pub fn archive_failure(&self, code: &str) {
        self.archive
            .failures
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
    }

    /// The cold tier: archived height, segments and their bytes.
    pub fn set_archive(&self, archived_height: u64, segments: usize, bytes: u64) {
        self.archive.height.set(archived_height as i64);
        self.archive.segments.set(segments as i64);
        self.archive.bytes.set(bytes as i64);
    }
}

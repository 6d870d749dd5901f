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

//! The running node, in three parts:
//!
//! - [`NodeCore`] (here): one node's parts wired together: storage, the ledger's pipeline
//!   and the slot hosts, the model and plugin registries, metrics, telemetry and the block
//!   log. Its operations (what the APIs and the CLI ask of a node, and the accessors the
//!   producer and the server use) are its one `impl`, in [`crate::service`].
//! - [`startup`]: opening a node. Open RocksDB; on a new database write the genesis,
//!   otherwise read the state back and check its root against the head; poll the models and
//!   plugins folders; build the five slot hosts on the RocksDB rollout store (a rollout
//!   survives a restart); resume the pipeline at the head; admit again the accepted
//!   submissions that had not committed.
//! - [`producer`]: block production (one thread): every `block.interval_ms`, or at once when
//!   a full block is waiting, propose a block (`batch_size` and `ordering` slots), hand it to
//!   the block log, execute it, commit it to RocksDB in one batch, then publish it to
//!   subscribers. A failed block is retried with backoff (the node answers `/readyz` 503
//!   meanwhile); a fatal failure halts the node (see [`producer`]). The block log ([`BlockLog`]) is the seam where consensus goes; a single
//!   node uses [`SingleNodeLog`](aurigraph_consensus::SingleNodeLog), which passes every
//!   block straight through. Side loops run in the same thread: `demand` forecasts the
//!   arrival rate each second (the forecast feeds the scaling advice, [`crate::scaling`])
//!   and, on a node alone, `leader_health` scores stand-ins each round (recorded, not acted
//!   on; a cluster replica's monitor, [`crate::health`], scores the leader). Each round also drops, with
//!   `E_DROPPED_EXPIRED`, the transactions that stayed behind a nonce gap past
//!   `block.mempool_gapped_ttl_ms`.
//! - [`Node`] ([`server`]): a started node: the producer thread, the folder watchers and the
//!   API server.

pub(crate) mod cluster;
pub mod producer;
pub mod server;
pub mod startup;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Duration;

use aurigraph_consensus::BlockLog;
use aurigraph_decision::SlotHost;
use aurigraph_decision::SlotKind;
use aurigraph_ledger::pipeline::Pipeline;
use aurigraph_storage::{Head, Storage};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::broadcast;

use crate::config::NodeConfig;
use crate::metrics::NodeMetrics;
use crate::registries::Registries;
use crate::telemetry::Recorder;

pub use server::Node;

/// A committed block as subscribers see it.
#[derive(Clone, Debug)]
pub struct BlockEvent {
    /// The block's header fields and hash.
    pub height: u64,
    /// Block hash.
    pub hash: [u8; 32],
    /// State root after it.
    pub state_root: aurigraph_ledger::state::StateRoot,
    /// Its transactions' receipts, in block order.
    pub receipts: Vec<aurigraph_ledger::executor::Receipt>,
    /// The executor's conflicts in this block (see `ExecStats::conflicts`).
    pub conflicts: u64,
    /// Executions beyond one per transaction (Block-STM only).
    pub re_executions: u64,
    /// Transactions executed (fee charged), successful or not; the rest were skipped.
    pub executed: usize,
    /// Proposal to commit, as the pipeline measured it.
    pub latency: Duration,
}

/// An acknowledged transaction that left the mempool without committing, as subscribers see
/// it (and as `GET /v1/transactions/{hash}` answers it afterwards: state `dropped`).
#[derive(Clone, Debug)]
pub struct DroppedEvent {
    /// Its hash.
    pub hash: aurigraph_ledger::tx::TxHash,
    /// Stable code: `E_DROPPED_EVICTED`, `E_DROPPED_REPLACED`, `E_DROPPED_STALE` or
    /// `E_DROPPED_EXPIRED` (or the refusal's code when re-admission on restart refused it).
    pub code: String,
    /// Why, in words.
    pub reason: String,
    /// The head's height when it was dropped.
    pub height: u64,
}

/// The node's parts, shared by the block producer and the APIs.
pub struct NodeCore {
    /// The configuration it started with.
    pub config: NodeConfig,
    /// RocksDB.
    pub storage: Arc<Storage>,
    /// The transaction path (admission, mempool, batcher, executor, state).
    pub pipeline: Arc<Pipeline>,
    /// The five slot hosts.
    pub hosts: BTreeMap<SlotKind, Arc<SlotHost>>,
    /// The watched models and plugins folders.
    pub registries: Registries,
    /// Prometheus metrics (engine and node).
    pub metrics: NodeMetrics,
    /// The admin bearer token.
    pub admin_token: String,
    /// Decision telemetry (`None` when `telemetry.enabled = false`).
    pub telemetry: Option<Arc<Recorder>>,
    pub(crate) events: broadcast::Sender<Arc<BlockEvent>>,
    pub(crate) drops: broadcast::Sender<Arc<Vec<DroppedEvent>>>,
    /// The committed view: the producer holds it for writing from a block's state commit to
    /// its head update; reads (transactions, accounts, head, blocks) hold it for reading, so
    /// they never see a state ahead of the head or a transaction between the mempool and
    /// the index.
    pub(crate) view: RwLock<()>,
    pub(crate) head: RwLock<Head>,
    /// Arrival sequence of the next recorded submission (the `mempool` family's order).
    pub(crate) pending_seq: AtomicU64,
    /// Open subscriptions (`api.max_subscribers` permits).
    pub(crate) subscribers: Arc<tokio::sync::Semaphore>,
    /// Set once when block production halts for good: `[CODE] message`.
    pub(crate) halt: tokio::sync::watch::Sender<Option<String>>,
    pub(crate) ready: AtomicBool,
    pub(crate) inflight_txs: AtomicUsize,
    pub(crate) accepted_total: AtomicU64,
    pub(crate) stop: AtomicBool,
    pub(crate) wake: (Mutex<()>, Condvar),
    pub(crate) log: Box<dyn BlockLog>,
    /// This node's replica of the replicated log, when `[cluster]` is on (set at start).
    pub(crate) cluster: std::sync::OnceLock<cluster::Cluster>,
    /// Scaling advice from the `demand` forecast (fed by the producer each second, served
    /// at `GET /v1/scaling`).
    pub(crate) scaling: Mutex<crate::scaling::ScalingAdvisor>,
    /// Injected faults, with `[faults] enabled` on a cluster replica (tests and chaos only).
    pub(crate) faults: Option<Arc<crate::faults::FaultInjector>>,
    /// The closed loop's retrain states (see [`crate::retrain`]).
    pub(crate) retrain: crate::retrain::Retrainer,
}

impl std::fmt::Debug for NodeCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCore")
            .field("data_dir", &self.config.data_dir)
            .field("head", &*self.head.read())
            .finish_non_exhaustive()
    }
}

//! [`Pipeline`]: the path of a transaction on one node, wired from the engine's parts.
//!
//! submit: admission (decode, field checks, batched parallel signature verification,
//! nonce, balance and duplicate checks, the `anomaly` slot) → mempool (priority classes,
//! per-sender nonce queues, bounds, back-pressure).
//!
//! produce_block: batcher (`batch_size` slot for the size, `ordering` slot for the order,
//! per-sender nonce order kept) → executor (parallel, equal to sequential) → commit (the
//! write set and the state root) → the mempool drops what committed and what went stale,
//! admission learns the new nonces.
//!
//! It is plain synchronous code, free of tokio and storage, so the node, the benchmarks,
//! the A/B harness and the demo drive the same path. The node puts consensus between
//! [`Pipeline::propose`] and [`Pipeline::apply`] (the log entry is the block) and persists
//! what `apply` returns; a single node calls [`Pipeline::produce_block`], which does both.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::admission::{Admission, AdmissionConfig, PendingView};
use crate::batcher::{Batch, BatchLoad, Batcher, BatcherConfig};
use crate::error::{EngineError, Result};
use crate::executor::{BlockExecutor, BlockOutcome, ExecutorConfig, commit};
use crate::host::{HostConfig, SlotHost};
use crate::mempool::{Mempool, MempoolConfig, Removal};
use crate::metrics::EngineMetrics;
use crate::slot::SlotKind;
use crate::state::{Genesis, ShardedState, StateView};
use crate::tx::{AdmittedTx, TxHash};

/// Settings of a [`Pipeline`].
#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    /// Admission.
    pub admission: AdmissionConfig,
    /// Mempool bounds.
    pub mempool: MempoolConfig,
    /// Batch size bounds and latency goal.
    pub batcher: BatcherConfig,
    /// Which executor and how many threads.
    pub executor: ExecutorConfig,
    /// Storage shards of the state.
    pub state_shards: Option<usize>,
}

/// The slot hosts the pipeline consults.
#[derive(Clone, Debug)]
pub struct PipelineSlots {
    /// `anomaly`, at admission.
    pub anomaly: Arc<SlotHost>,
    /// `batch_size`, per proposal.
    pub batch_size: Arc<SlotHost>,
    /// `ordering`, per batch.
    pub ordering: Arc<SlotHost>,
}

impl PipelineSlots {
    /// Hosts with the static policies, sharing `metrics`.
    pub fn new(config: &HostConfig, metrics: &EngineMetrics) -> Result<Self> {
        let host = |slot| -> Result<Arc<SlotHost>> {
            Ok(Arc::new(
                SlotHost::builder(slot)
                    .config(config.clone())
                    .metrics(metrics.clone())
                    .build()?,
            ))
        };
        Ok(Self {
            anomaly: host(SlotKind::Anomaly)?,
            batch_size: host(SlotKind::BatchSize)?,
            ordering: host(SlotKind::Ordering)?,
        })
    }
}

/// Why a submitted transaction was not accepted: a stable code and a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Stable code (`E_TX_*`, `E_BAD_SIGNATURE`, `E_STALE_NONCE`, `E_MEMPOOL_FULL`, ...).
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// The result of one submitted transaction.
pub type Submitted = std::result::Result<TxHash, Refused>;

/// A block proposed from the mempool, not yet executed.
#[derive(Debug)]
pub struct Proposal {
    /// Height it is proposed at.
    pub height: u64,
    /// The batch: transactions in order and the slot decisions that shaped it.
    pub batch: Batch,
    /// When the proposal was made.
    pub proposed_at: Instant,
}

/// A block executed and committed.
#[derive(Debug)]
pub struct ProducedBlock {
    /// Height.
    pub height: u64,
    /// The transactions, in block order, with their admission data.
    pub txs: Vec<AdmittedTx>,
    /// Receipts, write set, stats and the new state root.
    pub outcome: BlockOutcome,
    /// The batch decisions (for telemetry).
    pub batch: Batch,
    /// Proposal to commit.
    pub latency: Duration,
}

/// One node's transaction path. Safe to share: `submit` may run from many threads while
/// one thread produces blocks.
pub struct Pipeline {
    slots: PipelineSlots,
    admission: Admission,
    mempool: Arc<Mempool>,
    batcher: Batcher,
    executor: Box<dyn BlockExecutor>,
    state: RwLock<ShardedState>,
    height: AtomicU64,
    load: Mutex<BatchLoad>,
    arrivals: Mutex<(Instant, u64)>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("height", &self.height())
            .field("mempool", &self.mempool.len())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline from genesis.
    pub fn new(config: PipelineConfig, slots: PipelineSlots, genesis: &Genesis) -> Result<Self> {
        let shards = config.state_shards.unwrap_or(crate::state::DEFAULT_SHARDS);
        let state = ShardedState::from_genesis(genesis, shards)
            .map_err(|e| EngineError::InvalidConfig(format!("genesis: [{}] {e}", e.code())))?;
        let mut admission_config = config.admission;
        admission_config.chain_id = genesis.chain_id;
        let mempool = Arc::new(Mempool::new(config.mempool)?);
        let admission = Admission::new(admission_config, slots.anomaly.clone())?
            .with_pending(mempool.clone() as Arc<dyn PendingView>);
        let batcher = Batcher::new(
            config.batcher,
            slots.batch_size.clone(),
            slots.ordering.clone(),
        )?;
        let executor = config
            .executor
            .build()
            .map_err(|e| EngineError::InvalidConfig(format!("executor: [{}] {e}", e.code())))?;
        Ok(Self {
            slots,
            admission,
            mempool,
            batcher,
            executor,
            state: RwLock::new(state),
            height: AtomicU64::new(0),
            load: Mutex::new(BatchLoad::default()),
            arrivals: Mutex::new((Instant::now(), 0)),
        })
    }

    /// The slot hosts.
    pub fn slots(&self) -> &PipelineSlots {
        &self.slots
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Admission (counters, configuration).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The committed state (read lock: do not hold it across a block).
    pub fn state(&self) -> RwLockReadGuard<'_, ShardedState> {
        self.state.read()
    }

    /// Height of the last committed block (0 before the first).
    pub fn height(&self) -> u64 {
        self.height.load(Ordering::Acquire)
    }

    /// Submits encoded transactions; one result per input, in input order.
    pub fn submit<B: AsRef<[u8]> + Sync>(&self, txs: &[B]) -> Vec<Submitted> {
        let outcome = {
            let state = self.state.read();
            self.admission.admit(&*state as &dyn StateView, txs)
        };
        let mut out = Vec::with_capacity(outcome.results.len());
        let mut accepted = 0u64;
        for r in outcome.results {
            match r {
                Err(refusal) => out.push(Err(Refused {
                    code: refusal.code(),
                    reason: refusal.to_string(),
                })),
                Ok(admitted) => {
                    let sender = admitted.tx.tx().sender;
                    let account_nonce = self.state.read().account(&sender).nonce;
                    let tx = admitted.tx.clone();
                    match self.mempool.insert(admitted, account_nonce) {
                        Ok(ins) => {
                            accepted += 1;
                            for removed in &ins.removed {
                                if removed.reason == Removal::Evicted {
                                    tracing::debug!(hash = %removed.hash, "evicted from the mempool");
                                }
                            }
                            out.push(Ok(ins.hash));
                        }
                        Err(e) => {
                            self.admission.release(&tx);
                            out.push(Err(Refused {
                                code: e.code(),
                                reason: e.to_string(),
                            }));
                        }
                    }
                }
            }
        }
        self.arrivals.lock().1 += accepted;
        out
    }

    /// Proposes the next block from the mempool, or `None` when nothing is ready.
    pub fn propose(&self) -> Option<Proposal> {
        let height = self.height() + 1;
        let load = self.current_load();
        let batch = self.batcher.build(&self.mempool, &load, height);
        if batch.txs.is_empty() {
            return None;
        }
        self.load.lock().current_batch_size = batch.target_size;
        Some(Proposal {
            height,
            batch,
            proposed_at: Instant::now(),
        })
    }

    /// Executes and commits a proposed block, then cleans the mempool.
    pub fn apply(&self, proposal: Proposal) -> Result<ProducedBlock> {
        let block: Vec<_> = proposal.batch.txs.iter().map(|t| t.tx.clone()).collect();
        let execution = {
            let state = self.state.read();
            let chain_id = state.chain_id();
            self.executor
                .execute(&*state as &dyn StateView, chain_id, &block)
                .map_err(|e| EngineError::InvalidInput {
                    slot: SlotKind::Ordering,
                    reason: format!("block refused by the executor: [{}] {e}", e.code()),
                })?
        };
        let outcome = {
            let mut state = self.state.write();
            commit(&mut state, execution)
        };
        self.height.store(proposal.height, Ordering::Release);
        let hashes = proposal.batch.hashes();
        self.mempool.remove_committed(&hashes);
        let nonces: Vec<_> = {
            let state = self.state.read();
            let mut senders: Vec<_> = block.iter().map(|t| t.tx().sender).collect();
            senders.sort_unstable();
            senders.dedup();
            senders
                .into_iter()
                .map(|s| (s, state.account(&s).nonce))
                .collect()
        };
        self.mempool.advance_nonces(&nonces);
        for (sender, next) in &nonces {
            self.admission.committed(sender, *next);
        }
        let latency = proposal.proposed_at.elapsed();
        {
            let mut load = self.load.lock();
            load.last_block_latency_ms = latency.as_secs_f32() * 1e3;
            let stats = &outcome.execution.stats;
            load.conflict_rate = if stats.executed == 0 {
                0.0
            } else {
                (stats.re_executions as f32 / stats.executed as f32).min(1.0)
            };
        }
        Ok(ProducedBlock {
            height: proposal.height,
            txs: proposal.batch.txs.clone(),
            outcome,
            batch: proposal.batch,
            latency,
        })
    }

    /// Proposes, executes and commits one block (a single node); `None` when idle.
    pub fn produce_block(&self) -> Result<Option<ProducedBlock>> {
        match self.propose() {
            Some(p) => self.apply(p).map(Some),
            None => Ok(None),
        }
    }

    fn current_load(&self) -> BatchLoad {
        let mut load = *self.load.lock();
        let mut arrivals = self.arrivals.lock();
        let elapsed = arrivals.0.elapsed().as_secs_f32();
        if elapsed > 0.0 {
            load.arrival_rate = arrivals.1 as f32 / elapsed;
        }
        if elapsed > 1.0 {
            *arrivals = (Instant::now(), 0);
        }
        load
    }
}

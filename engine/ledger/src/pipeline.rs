//! [`Pipeline`]: the path of a transaction on one node, wired from the engine's parts.
//!
//! submit: admission (decode, field checks, batched parallel signature verification,
//! nonce, balance and duplicate checks, the `anomaly` slot) → mempool (priority classes,
//! per-sender nonce queues, bounds, back-pressure).
//!
//! produce_block: batcher (`batch_size` slot for the size, `ordering` slot for the order,
//! per-sender nonce order kept) → executor (parallel, equal to sequential) → commit (the
//! write set and the state root) → the mempool drops what committed, what the executor
//! skipped and what went stale, admission learns the new nonces.
//!
//! ## What leaves the mempool with a block
//!
//! - A transaction that *executed* (any status below 16: the fee was charged and the nonce
//!   advanced, whether or not its operation applied) is removed as committed, and its
//!   sender's next nonce in the mempool moves past it.
//! - A transaction the executor *skipped* ([`TxStatus::is_skip`]: e.g. a fee the balance
//!   cannot pay, or a nonce behind a skipped predecessor) changed nothing, not even its
//!   nonce. It is removed as [`Removal::Skipped`] and released from admission, so the
//!   sender may submit that nonce again (the same bytes too); the sender's next nonce in
//!   the mempool is not moved past it.
//! - Then every sender of the block gets its committed account nonce
//!   ([`Mempool::advance_nonces`]), which drops what became stale.
//!
//! The mempool's next nonce thus always equals the committed account nonce of every sender
//! it holds transactions of. Everything removed uncommitted (skipped, stale, evicted or
//! replaced at insertion, expired behind a nonce gap by [`Pipeline::expire`], refused by the
//! mempool) is released from admission's duplicate set, so a resubmission is judged afresh
//! rather than refused as `E_DUPLICATE`.
//!
//! [`TxStatus::is_skip`]: crate::executor::TxStatus::is_skip
//! [`Removal::Skipped`]: crate::mempool::Removal::Skipped
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
use aurigraph_decision::error::EngineError;

use crate::error::{LedgerError, Result};
use crate::executor::{BlockExecutor, BlockOutcome, ExecStats, ExecutorConfig, commit};
use crate::mempool::{Mempool, MempoolConfig, Removed};
use crate::state::{Genesis, ShardedState, StateView};
use crate::tx::{AdmittedTx, TxHash};
use aurigraph_decision::host::{HostConfig, SlotHost};
use aurigraph_decision::metrics::EngineMetrics;
use aurigraph_decision::slot::SlotKind;

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
    /// What left the mempool with this block: the transactions removed as committed, those
    /// the executor skipped and those that went stale (see the [module docs](self)).
    pub removed: Vec<Removed>,
}

/// What [`Pipeline::submit_with`] did.
#[derive(Debug)]
pub struct SubmitOutcome {
    /// One result per input, in input order.
    pub results: Vec<Submitted>,
    /// Transactions the insertions removed from the mempool (evicted, replaced, or found
    /// stale), in the order they left.
    pub removed: Vec<Removed>,
    /// Transactions passed to `record` that the mempool then refused (their refusal is in
    /// `results`).
    pub refused_after_record: Vec<TxHash>,
}

/// A block executed by [`Pipeline::execute`], not yet committed.
#[derive(Debug)]
pub struct Executed {
    proposal: Proposal,
    block: Vec<Arc<crate::tx::SignedTransaction>>,
    execution: crate::executor::Execution,
    /// The accounts of the write set as they were before the block, to put back when the
    /// block cannot be persisted.
    before: Vec<(crate::tx::Address, crate::state::Account)>,
}

impl Executed {
    /// The height it was proposed at.
    pub fn height(&self) -> u64 {
        self.proposal.height
    }

    /// The accounts it writes, with their values after it.
    pub fn write_set(&self) -> &[(crate::tx::Address, crate::state::Account)] {
        &self.execution.write_set
    }
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
    /// A forecast arrival rate (tx/s) the `batch_size` decision reads instead of the
    /// measured one while it is fresh ([`Pipeline::set_arrival_forecast`]).
    forecast: ArrivalForecast,
    /// Held exclusively from a block's state commit to the end of its mempool clean-up, and
    /// shared by submissions' mempool insertions (several request handlers insert at once):
    /// an insertion sees the state and the mempool either both before a block or both after
    /// it, never one of each.
    commit_section: RwLock<()>,
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
        Self::from_state(config, slots, state, 0)
    }

    /// A pipeline resuming from committed `state` at `height` (a node restarting from its
    /// storage). The chain id is the state's; `config.state_shards` is ignored (the state
    /// keeps its own shard count).
    pub fn from_state(
        config: PipelineConfig,
        slots: PipelineSlots,
        state: ShardedState,
        height: u64,
    ) -> Result<Self> {
        let mut admission_config = config.admission;
        admission_config.chain_id = state.chain_id();
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
            height: AtomicU64::new(height),
            load: Mutex::new(BatchLoad::default()),
            arrivals: Mutex::new((Instant::now(), 0)),
            forecast: ArrivalForecast::new(),
            commit_section: RwLock::new(()),
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
        match self.submit_with(txs, |_| Ok::<(), std::convert::Infallible>(())) {
            Ok(outcome) => outcome.results,
            Err(never) => match never {},
        }
    }

    /// Submits encoded transactions, calling `record` with what admission accepted before
    /// any of it enters the mempool (the node writes them to disk there, so a transaction
    /// is never in the mempool, nor committed, before it is durable).
    ///
    /// When `record` fails nothing enters the mempool, admission forgets the transactions
    /// (they may be submitted again) and the error is returned. Otherwise the outcome holds
    /// one result per input, what the insertions removed from the mempool (evicted,
    /// replaced, stale) and the recorded transactions the mempool then refused.
    pub fn submit_with<B, E>(
        &self,
        txs: &[B],
        record: impl FnOnce(&[AdmittedTx]) -> std::result::Result<(), E>,
    ) -> std::result::Result<SubmitOutcome, E>
    where
        B: AsRef<[u8]> + Sync,
    {
        // Decoding and signature checks first, without the state lock, so a commit never
        // waits for them; then the stateful checks under a read lock, then the anomaly slot.
        let prepared = self.admission.prepare(txs);
        let checked = {
            let state = self.state.read();
            self.admission.check(&*state as &dyn StateView, prepared)
        };
        let outcome = self.admission.score(checked);
        let admitted: Vec<AdmittedTx> = outcome.admitted().cloned().collect();
        if let Err(e) = record(&admitted) {
            for a in &admitted {
                self.admission.release(&a.tx);
            }
            return Err(e);
        }
        let mut removed = Vec::new();
        let mut refused_after_record = Vec::new();
        // Shared with other submitters, exclusive of commits: a block's state and mempool
        // changes are either both seen or neither, while several request handlers insert
        // at once (the mempool orders their insertions under its own lock).
        let _section = self.commit_section.read();
        let state = self.state.read();
        // Each admitted sender's committed nonce, read in one overlapped batch.
        let admitted_senders: Vec<_> = outcome
            .results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|a| a.tx.tx().sender))
            .collect();
        let account_nonces = state.accounts(&admitted_senders);
        let mut senders: Vec<_> = admitted_senders
            .into_iter()
            .zip(account_nonces.iter().map(|a| a.nonce))
            .collect();
        let mut results: Vec<Option<Submitted>> = Vec::with_capacity(outcome.results.len());
        let mut to_insert = Vec::with_capacity(senders.len());
        let mut at = Vec::with_capacity(senders.len());
        let mut next = 0usize;
        for r in outcome.results {
            match r {
                Err(refusal) => results.push(Some(Err(Refused {
                    code: refusal.code(),
                    reason: refusal.to_string(),
                }))),
                Ok(admitted) => {
                    // The admitted ones come in the order their senders were read.
                    let account_nonce = senders.get(next).map_or(0, |s| s.1);
                    next += 1;
                    at.push(results.len());
                    results.push(None);
                    to_insert.push((admitted, account_nonce));
                }
            }
        }
        let txs: Vec<_> = to_insert.iter().map(|(a, _)| a.tx.clone()).collect();
        // One lock of the mempool per chunk of insertions, in input order.
        for ((i, inserted), tx) in at
            .into_iter()
            .zip(self.mempool.insert_batch(to_insert))
            .zip(txs)
        {
            results[i] = Some(match inserted {
                Ok(ins) => {
                    for removed in &ins.removed {
                        tracing::debug!(
                            hash = %removed.hash,
                            reason = removed.reason.as_str(),
                            "left the mempool"
                        );
                    }
                    // Evicted and replaced transactions may be submitted again.
                    self.admission.release_removed(&ins.removed);
                    removed.extend(ins.removed);
                    Ok(ins.hash)
                }
                Err(e) => {
                    self.admission.release(&tx);
                    refused_after_record.push(tx.hash());
                    Err(Refused {
                        code: e.code(),
                        reason: e.to_string(),
                    })
                }
            });
        }
        // Every position was filled: a refusal at once, an admitted one by its insertion.
        let results: Vec<Submitted> = results.into_iter().flatten().collect();
        // A sender's queue starts at the committed nonce read above; raising every sender
        // to it again is a no-op inside the commit section, kept as a check that drops
        // (and reports) anything below the committed nonce.
        senders.sort_unstable();
        senders.dedup();
        let stale = self.mempool.advance_nonces(&senders);
        drop(state);
        drop(_section);
        if !stale.is_empty() {
            tracing::warn!(
                removed = stale.len(),
                "stale transactions found at insertion"
            );
            self.admission.release_removed(&stale);
            removed.extend(stale);
        }
        let accepted = results.iter().filter(|r| r.is_ok()).count() as u64;
        self.arrivals.lock().1 += accepted;
        Ok(SubmitOutcome {
            results,
            removed,
            refused_after_record,
        })
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

    /// Proposes the block at `height` after blocks proposed but not yet committed (a leader
    /// with several blocks in flight): the transactions `in_flight` in them are skipped
    /// (their successors are taken). `None` when nothing else is ready.
    pub fn propose_at(
        &self,
        height: u64,
        in_flight: &std::collections::HashSet<TxHash>,
    ) -> Option<Proposal> {
        let load = self.current_load();
        let batch = self.batcher.build_at(
            &self.mempool,
            &load,
            height,
            Instant::now(),
            Some(in_flight),
        );
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

    /// A proposal of a block decided elsewhere (a replica applying a block of the replicated
    /// log): `txs` in the given order, no slot consulted (their answers are `NotAsked`).
    pub fn proposal_of(
        &self,
        height: u64,
        txs: Vec<Arc<crate::tx::SignedTransaction>>,
    ) -> Proposal {
        let now = Instant::now();
        let txs: Vec<AdmittedTx> = txs
            .into_iter()
            .map(|tx| AdmittedTx {
                tx,
                anomaly_score: 0.0,
                class: aurigraph_decision::slot::anomaly::AnomalyClass::Normal,
                seq: 0,
                admitted_at: now,
            })
            .collect();
        Proposal {
            height,
            batch: Batch {
                target_size: txs.len(),
                queue_depth: 0,
                txs,
                batch_size: crate::batcher::SlotAnswer::NotAsked,
                ordering: crate::batcher::SlotAnswer::NotAsked,
            },
            proposed_at: now,
        }
    }

    /// Executes and commits a proposed block, then cleans the mempool (see the
    /// [module docs](self) for what leaves it).
    ///
    /// Fails with [`LedgerError::Execution`] (`E_EXECUTION`) when the executor cannot
    /// execute the block; nothing is committed then and the mempool is untouched.
    pub fn apply(&self, proposal: Proposal) -> Result<ProducedBlock> {
        let executed = self.execute(proposal)?;
        match self.commit_with(executed, |_| Ok::<(), std::convert::Infallible>(())) {
            Ok((produced, ())) => Ok(produced),
            Err(never) => match never {},
        }
    }

    /// Executes a proposed block against the committed state without changing anything.
    ///
    /// Fails with [`LedgerError::Execution`] (`E_EXECUTION`) when the executor cannot
    /// execute the block.
    pub fn execute(&self, proposal: Proposal) -> Result<Executed> {
        let state = self.state.read();
        self.execute_on(proposal, &*state, state.chain_id())
    }

    /// Executes `proposal` reading `view`; `before` holds the accounts of its write set as
    /// `view` had them.
    fn execute_on(
        &self,
        proposal: Proposal,
        view: &dyn StateView,
        chain_id: u32,
    ) -> Result<Executed> {
        let block: Vec<_> = proposal.batch.txs.iter().map(|t| t.tx.clone()).collect();
        let execution = self
            .executor
            .execute(view, chain_id, &block)
            .map_err(|source| LedgerError::Execution {
                height: proposal.height,
                source,
            })?;
        let before = execution
            .write_set
            .iter()
            .map(|(a, _)| (*a, view.account(a)))
            .collect();
        Ok(Executed {
            proposal,
            block,
            execution,
            before,
        })
    }

    /// Executes a proposal on the committed state as the blocks in flight leave it:
    /// `pending` holds their writes (each account's value after the last of them), read
    /// before the committed state. The result commits with [`Pipeline::commit_with`] once
    /// those blocks are committed (its writes are absolute values).
    pub fn execute_over(
        &self,
        proposal: Proposal,
        pending: &std::collections::HashMap<crate::tx::Address, crate::state::Account>,
    ) -> Result<Executed> {
        let state = self.state.read();
        let view = InFlightView {
            base: &state,
            pending,
        };
        self.execute_on(proposal, &view, state.chain_id())
    }

    /// The state root `executed` reaches on top of the blocks in flight (`pending`, as for
    /// [`Pipeline::execute_over`]), without committing anything: their writes and its own are
    /// applied and put back inside the commit section, so no reader or submitter sees them.
    pub fn root_over(
        &self,
        pending: &std::collections::HashMap<crate::tx::Address, crate::state::Account>,
        executed: &Executed,
    ) -> crate::state::StateRoot {
        let _section = self.commit_section.write();
        let mut state = self.state.write();
        let pending: Vec<_> = pending.iter().map(|(a, acc)| (*a, *acc)).collect();
        let saved: Vec<_> = pending
            .iter()
            .map(|(a, _)| a)
            .chain(executed.execution.write_set.iter().map(|(a, _)| a))
            .map(|a| (*a, state.account(a)))
            .collect();
        state.apply(&pending);
        let root = state.apply(&executed.execution.write_set);
        // Every value saved is the committed one (read before any write).
        state.apply(&saved);
        root
    }

    /// The state root an executed block reaches, without committing it: its writes are applied
    /// and put back inside the commit section, so no reader or submitter sees them.
    pub fn root_of(&self, executed: &Executed) -> crate::state::StateRoot {
        let _section = self.commit_section.write();
        let mut state = self.state.write();
        let root = state.apply(&executed.execution.write_set);
        state.apply(&executed.before);
        root
    }

    /// Commits an executed block: applies its writes to the state, calls `persist` with the
    /// result (the node writes the block to disk there), then cleans the mempool. Submitters
    /// never see the state and the mempool out of step (see `commit_section`).
    ///
    /// When `persist` fails the state is put back as it was (same root), the height does not
    /// move, the mempool is untouched and the error is returned: the block's transactions
    /// are proposed again later.
    pub fn commit_with<T, E>(
        &self,
        executed: Executed,
        persist: impl FnOnce(&ProducedBlock) -> std::result::Result<T, E>,
    ) -> std::result::Result<(ProducedBlock, T), E> {
        let Executed {
            proposal,
            block,
            execution,
            before,
        } = executed;
        let _section = self.commit_section.write();
        let outcome = {
            let mut state = self.state.write();
            commit(&mut state, execution)
        };
        let latency = proposal.proposed_at.elapsed();
        let mut produced = ProducedBlock {
            height: proposal.height,
            txs: proposal.batch.txs.clone(),
            outcome,
            batch: proposal.batch,
            latency,
            removed: Vec::new(),
        };
        let persisted = match persist(&produced) {
            Ok(t) => t,
            Err(e) => {
                let mut state = self.state.write();
                state.apply(&before);
                return Err(e);
            }
        };
        self.height.store(proposal.height, Ordering::Release);

        // Only what used its nonce is committed; skipped transactions changed nothing.
        let receipts = &produced.outcome.execution.receipts;
        let mut executed: Vec<TxHash> = Vec::with_capacity(receipts.len());
        let mut skipped: Vec<TxHash> = Vec::new();
        for r in receipts {
            if r.status.is_skip() {
                skipped.push(r.tx_hash);
            } else {
                executed.push(r.tx_hash);
            }
        }
        let mut removed = self.mempool.remove_committed(&executed);
        removed.extend(self.mempool.remove_skipped(&skipped));
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
        removed.extend(self.mempool.advance_nonces(&nonces));
        drop(_section);
        self.admission.release_removed(&removed);
        for (sender, next) in &nonces {
            self.admission.committed(sender, *next);
        }
        {
            let mut load = self.load.lock();
            load.last_block_latency_ms = latency.as_secs_f32() * 1e3;
            load.conflict_rate = conflict_rate(&produced.outcome.execution.stats, block.len());
        }
        produced.removed = removed;
        Ok((produced, persisted))
    }

    /// Replaces the committed state with `state` at `height` (a replica installing another
    /// replica's snapshot) and calls `persist` to store it, inside the commit section. Then
    /// every sender's mempool transactions whose nonces the new state already used leave as
    /// stale, and admission learns the senders' committed nonces. Returns `persist`'s value
    /// and what left the mempool.
    ///
    /// When `persist` fails the state and height are put back and the mempool is untouched.
    pub fn install_state<T, E>(
        &self,
        state: ShardedState,
        height: u64,
        persist: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, Vec<Removed>), E> {
        let section = self.commit_section.write();
        let old = std::mem::replace(&mut *self.state.write(), state);
        let persisted = match persist() {
            Ok(t) => t,
            Err(e) => {
                *self.state.write() = old;
                return Err(e);
            }
        };
        drop(old);
        self.height.store(height, Ordering::Release);
        let nonces: Vec<_> = {
            let state = self.state.read();
            self.mempool
                .senders()
                .into_iter()
                .map(|s| (s, state.account(&s).nonce))
                .collect()
        };
        let removed = self.mempool.advance_nonces(&nonces);
        drop(section);
        self.admission.release_removed(&removed);
        for (sender, next) in &nonces {
            self.admission.committed(sender, *next);
        }
        Ok((persisted, removed))
    }

    /// Removes the transactions that expired behind a nonce gap
    /// ([`Mempool::expire`]) and releases them from admission, so their nonces and bytes
    /// may be submitted again. Returns what was removed.
    pub fn expire(&self, now: Instant) -> Vec<Removed> {
        let removed = self.mempool.expire(now);
        if !removed.is_empty() {
            self.admission.release_removed(&removed);
        }
        removed
    }

    /// Proposes, executes and commits one block (a single node); `None` when idle.
    pub fn produce_block(&self) -> Result<Option<ProducedBlock>> {
        match self.propose() {
            Some(p) => self.apply(p).map(Some),
            None => Ok(None),
        }
    }

    /// The load the next proposal's `batch_size` decision will see (the last block's
    /// latency and conflict rate, the recent arrival rate).
    pub fn load(&self) -> BatchLoad {
        *self.load.lock()
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
        drop(arrivals);
        if let Some(rate) = self.forecast.fresh() {
            load.arrival_rate = rate;
        }
        load
    }

    /// Sets the arrival rate (tx/s) the next `batch_size` decisions see as their
    /// `arrival_rate` feature, in place of the measured rate, for `valid_for` from now
    /// (the node's `[block] batch_size_reads_forecast`: the `demand` forecast of the next
    /// interval, valid for 3 intervals). After that, or when `rate` is not finite or is
    /// negative, the measured rate is used again. Lock-free: an `f32` in an atomic.
    pub fn set_arrival_forecast(&self, rate: f32, valid_for: Duration) {
        self.forecast.set(rate, valid_for);
    }

    /// Forgets the forecast set by [`Pipeline::set_arrival_forecast`]: the measured
    /// arrival rate is used again.
    pub fn clear_arrival_forecast(&self) {
        self.forecast.clear();
    }
}

/// A forecast arrival rate with a deadline: the rate's bits in an `AtomicU32`, the
/// deadline as nanoseconds after `epoch` in an `AtomicU64` (0: none).
#[derive(Debug)]
struct ArrivalForecast {
    epoch: Instant,
    bits: std::sync::atomic::AtomicU32,
    until_ns: AtomicU64,
}

impl ArrivalForecast {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            bits: std::sync::atomic::AtomicU32::new(0f32.to_bits()),
            until_ns: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn set(&self, rate: f32, valid_for: Duration) {
        if !rate.is_finite() || rate < 0.0 {
            self.clear();
            return;
        }
        self.bits.store(rate.to_bits(), Ordering::Release);
        let valid = u64::try_from(valid_for.as_nanos()).unwrap_or(u64::MAX);
        // At least 1 so that a zero deadline still means "none".
        let until = self.now_ns().saturating_add(valid).max(1);
        self.until_ns.store(until, Ordering::Release);
    }

    fn clear(&self) {
        self.until_ns.store(0, Ordering::Release);
    }

    fn fresh(&self) -> Option<f32> {
        let until = self.until_ns.load(Ordering::Acquire);
        if until == 0 || self.now_ns() >= until {
            return None;
        }
        Some(f32::from_bits(self.bits.load(Ordering::Acquire)))
    }
}

/// The `batch_size` slot's `conflict_rate` of a block of `txs` transactions: the
/// executor's conflict count per transaction, capped at 1. For the scheduled executor (the
/// default) a conflict is a declared account a transaction had to wait for an earlier
/// transaction of the block to release; for Block-STM a failed validation or a read of an
/// estimate (each leads to a re-execution); the sequential executor reports none.
pub fn conflict_rate(stats: &ExecStats, txs: usize) -> f32 {
    if txs == 0 {
        return 0.0;
    }
    (stats.conflicts as f64 / txs as f64).min(1.0) as f32
}

/// The committed state with the writes of blocks in flight read first.
struct InFlightView<'a> {
    base: &'a ShardedState,
    pending: &'a std::collections::HashMap<crate::tx::Address, crate::state::Account>,
}

impl StateView for InFlightView<'_> {
    fn account(&self, address: &crate::tx::Address) -> crate::state::Account {
        match self.pending.get(address) {
            Some(a) => *a,
            None => self.base.account(address),
        }
    }
}

#[cfg(test)]
mod forecast_tests;

//! [`BlockStmExecutor`]: optimistic parallel execution (Block-STM), which needs no declared
//! accesses.
//!
//! Workers execute transactions speculatively against a multi-version memory
//! ([`memory`]): a read of account `a` by transaction `i` sees the write of the highest
//! transaction `j < i` that wrote `a`, or the committed state. Each incarnation records its
//! read set (where each value came from) and its writes. A collaborative scheduler
//! ([`scheduler`]) hands out execution and validation tasks in block order from two shared
//! counters; validation re-reads the read set against the memory, and a changed read aborts
//! the incarnation: its writes become *estimates*, and a later reader of an estimate
//! suspends on that transaction (a dependency: the reader is resumed, as a new
//! incarnation, when the writer's execution finishes) instead of reading a value that will
//! probably change or re-executing in a loop. When neither task remains and no worker is
//! busy, the last write of every account is the sequential result (Block-STM's correctness
//! theorem; the property tests check it against the oracle at 1, 2, 8 and 16 threads).
//!
//! Hot path without allocation: each worker keeps its read-set buffer across tasks; a
//! transaction's read set is stored inline (two entries, a spill vector beyond: a transfer
//! reads two accounts) and its writes as a bit mask over its reads (the execution rules
//! read every account before writing it), so writes, validation, estimates and removals
//! address the memory by location without hashing. Counters of executions and conflicts
//! are per worker, summed at the end; the accounts touched are collected by every worker
//! over its share of the memory's shards as soon as the scheduler is done.
//!
//! **Abort-rate guard.** With cheap transactions (a transfer costs about a microsecond,
//! close to the bookkeeping of one task), a block in which most transactions conflict
//! wastes about one execution per transaction and runs its chain at the speed of the
//! scheduler's hand-offs, slower than one thread alone. Each worker counts its conflicts
//! (failed validations and reads that hit an estimate) over windows of
//! [`AbortGuard::window`] executions; when one window holds more than
//! [`AbortGuard::max_conflicts`], it stops speculation ([`scheduler`]'s stop flag). Every
//! worker then finishes the task in its hands and leaves, and once all have left (the memory
//! no longer changes) the caller:
//!
//! 1. takes the longest prefix of the block whose transactions are all *executed* (their
//!    last incarnation finished and was not aborted or suspended since, so they own no
//!    estimate) and whose recorded reads all still validate against the memory, checked in
//!    block order. By induction this prefix is the sequential result: transaction 0's reads
//!    validate only against the committed state; if every transaction below `i` left in the
//!    memory exactly its sequential writes, `i`'s reads, still found where they were read,
//!    are the sequential values, so its recorded effect (a deterministic function of them)
//!    and its writes in the memory are the sequential ones;
//! 2. seeds a sequential overlay with the prefix's writes (each account's value before the
//!    block, from the memory's cache, and its last write in the prefix), drops every
//!    speculative result beyond the prefix, and executes the rest of the block in order on
//!    the caller exactly as the [`SequentialExecutor`] does: the overlay holds the state
//!    after the prefix, so the tail, the receipts and the write set are the sequential ones.
//!
//! [`ExecStats::sequential_tail`] counts the transactions of step 2.
//! Before speculating, a cheap **chain pre-check** ([`AbortGuard::chain_precheck`]) samples
//! [`CHAIN_SAMPLE`] transactions spread evenly over the block; if one account (a sender or
//! a recipient of the first) is touched by every one of them, the block is one chain and
//! runs on the [`SequentialExecutor`] from the start (always sound: that is the definition;
//! only the speed is at stake, and a block that fools the sample is caught by the guard).
//!
//! **One thread** runs the [`SequentialExecutor`] itself (the result is identical by
//! definition; only [`ExecStats::executor`] says `block-stm`): speculation cannot win
//! without a second worker.
//!
//! See the measurements in [`crate::executor`] and `docs/PERFORMANCE.md` (*Scaling with
//! cores*).

mod memory;
mod scheduler;

use std::sync::Arc;

use crossbeam_utils::Backoff;
use parking_lot::Mutex;

use self::memory::{Loc, MvMemory, Origin, Read};
use self::scheduler::{Claims, Scheduler, Task, Version};
use super::receipt::{Receipt, TxStatus};
use super::semantics::{MAX_TOUCHED, Overlay, Touched, TxEffect, execute_tx, finish_block};
use super::sequential::{SequentialExecutor, execute_in_order};
use super::workers::Workers;
use super::{BlockExecutor, ExecStats, Execution, ExecutorError, ExecutorKind, check_block};
use crate::state::StateView;
use crate::tx::{Address, Operation, SignedTransaction, Transaction};

/// Transactions the chain pre-check samples (blocks shorter than this are not checked).
pub const CHAIN_SAMPLE: usize = 32;

/// When Block-STM stops speculating and finishes a block sequentially (see the module
/// docs). The default stops when a worker saw more than 16 conflicts in 64 executions, and
/// runs the chain pre-check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortGuard {
    /// Executions of one worker between two checks of its conflict count (at least 1).
    pub window: u32,
    /// Conflicts (failed validations and reads that hit an estimate) of one worker in one
    /// window above which speculation stops; `u32::MAX` never stops.
    pub max_conflicts: u32,
    /// Whether a block that the sample shows to be one chain runs sequentially from the
    /// start.
    pub chain_precheck: bool,
    /// For tests and measurements: stop speculation as soon as one worker has run this many
    /// executions (`Some(0)`: before any).
    pub force_after: Option<u64>,
}

impl Default for AbortGuard {
    fn default() -> Self {
        Self {
            window: 64,
            max_conflicts: 16,
            chain_precheck: true,
            force_after: None,
        }
    }
}

impl AbortGuard {
    /// A guard that never stops speculation and never pre-checks (the paper's algorithm).
    pub fn off() -> Self {
        Self {
            window: u32::MAX,
            max_conflicts: u32::MAX,
            chain_precheck: false,
            force_after: None,
        }
    }
}

/// The Block-STM executor (see the module docs).
#[derive(Debug)]
pub struct BlockStmExecutor {
    workers: Workers,
    guard: AbortGuard,
}

impl BlockStmExecutor {
    /// A Block-STM executor running on `threads` threads (1 runs the sequential executor on
    /// the caller), with the default [`AbortGuard`].
    pub fn new(threads: usize) -> Result<Self, ExecutorError> {
        Self::with_guard(threads, AbortGuard::default())
    }

    /// A Block-STM executor with its abort-rate guard set.
    pub fn with_guard(threads: usize, guard: AbortGuard) -> Result<Self, ExecutorError> {
        Ok(Self {
            workers: Workers::new(threads, "exec-stm")?,
            guard: AbortGuard {
                window: guard.window.max(1),
                ..guard
            },
        })
    }

    /// Its abort-rate guard.
    pub fn guard(&self) -> AbortGuard {
        self.guard
    }
}

/// Whether every transaction of an even sample of the block touches one account that the
/// first one touches (its sender or a recipient): then the block is one chain.
fn one_chain(block: &[Arc<SignedTransaction>]) -> bool {
    if block.len() < CHAIN_SAMPLE {
        return false;
    }
    let step = block.len() / CHAIN_SAMPLE;
    let touches = |tx: &Transaction, a: &Address| {
        tx.sender == *a
            || match &tx.op {
                Operation::Transfer { to, .. } => to == a,
                Operation::MultiTransfer { outputs } => outputs.iter().any(|(to, _)| to == a),
            }
    };
    let first = block[0].tx();
    let on_all = |a: &Address| (1..CHAIN_SAMPLE).all(|s| touches(block[s * step].tx(), a));
    on_all(&first.sender)
        || match &first.op {
            Operation::Transfer { to, .. } => on_all(to),
            Operation::MultiTransfer { outputs } => outputs.iter().any(|(to, _)| on_all(to)),
        }
}

/// One read of an incarnation: where the account lives in the memory and where the value
/// came from.
#[derive(Clone, Copy, Debug, Default)]
struct ReadRec {
    loc: Loc,
    origin: Origin,
}

/// Read-set entries stored inline per transaction (a transfer reads two accounts).
const INLINE: usize = 2;

/// What the last finished incarnation of a transaction read, wrote and returned.
struct TxRec {
    status: TxStatus,
    fee: u64,
    len: usize,
    inline: [ReadRec; INLINE],
    spill: Vec<ReadRec>,
    /// Bit `i`: read `i` was also written.
    written: u32,
    /// Accounts written without being read (the execution rules never do; kept for safety).
    extra: Vec<Loc>,
}

impl TxRec {
    fn new() -> Self {
        Self {
            status: TxStatus::Invalid,
            fee: 0,
            len: 0,
            inline: [ReadRec::default(); INLINE],
            spill: Vec::new(),
            written: 0,
            extra: Vec::new(),
        }
    }

    fn reads(&self) -> impl Iterator<Item = &ReadRec> {
        self.inline[..self.len.min(INLINE)]
            .iter()
            .chain(self.spill.iter())
    }

    fn written_locs(&self) -> impl Iterator<Item = Loc> + '_ {
        self.reads()
            .enumerate()
            .filter(|(i, _)| self.written & (1 << i) != 0)
            .map(|(_, r)| r.loc)
            .chain(self.extra.iter().copied())
    }

    fn store(&mut self, buf: &Buffers, written: u32) {
        self.len = buf.reads.len();
        self.spill.clear();
        for (i, (_, r)) in buf.reads.iter().enumerate() {
            match self.inline.get_mut(i) {
                Some(slot) => *slot = *r,
                None => self.spill.push(*r),
            }
        }
        self.written = written;
        self.extra.clear();
        self.extra.extend_from_slice(&buf.extra);
    }
}

/// A worker's scratch space, reused across its tasks.
struct Buffers {
    reads: Vec<(Address, ReadRec)>,
    extra: Vec<Loc>,
    new_locs: Vec<Loc>,
}

/// What a worker counted.
#[derive(Default)]
struct WorkerStats {
    executions: u64,
    conflicts: u64,
}

/// Stops speculation when dropped during a panic.
struct StopOnPanic<'a>(&'a Scheduler);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

struct Run<'a> {
    guard: AbortGuard,
    block: &'a [Arc<SignedTransaction>],
    base: &'a dyn StateView,
    chain_id: u32,
    memory: MvMemory,
    scheduler: Scheduler,
    txs: Box<[Mutex<TxRec>]>,
}

impl Run<'_> {
    fn work(&self) -> WorkerStats {
        let mut stats = WorkerStats::default();
        let mut buf = Buffers {
            reads: Vec::with_capacity(MAX_TOUCHED),
            extra: Vec::new(),
            new_locs: Vec::with_capacity(MAX_TOUCHED),
        };
        // A panic in this worker stops the others (they would wait for its tasks forever);
        // the panic then reaches the caller through the pool's scope.
        let _stop_on_panic = StopOnPanic(&self.scheduler);
        let mut claims = Claims::default();
        let mut task: Option<Task> = None;
        let backoff = Backoff::new();
        // The guard: a check every `window` executions (and at `force_after`).
        let window = u64::from(self.guard.window);
        let force = self.guard.force_after.unwrap_or(u64::MAX);
        let mut window_conflicts = 0u64;
        let mut check_at = force.min(window);
        while !self.scheduler.finished_or_stopped() {
            if stats.executions >= check_at {
                if stats.executions >= force
                    || stats.conflicts - window_conflicts > u64::from(self.guard.max_conflicts)
                {
                    // The task in hand, if any, is dropped: the caller takes over.
                    self.scheduler.stop();
                    break;
                }
                window_conflicts = stats.conflicts;
                check_at = stats.executions.saturating_add(window).min(force);
            }
            task = match task {
                Some(Task::Execute(v)) => self.try_execute(v, &mut buf, &mut stats, &mut claims),
                Some(Task::Validate(v)) => self.needs_reexecution(v, &mut stats, &mut claims),
                None => {
                    let t = self.scheduler.next_task(&mut claims);
                    if let Some(fresh) = claims.take_fresh() {
                        self.warm_senders(fresh);
                    }
                    if t.is_none() {
                        backoff.snooze();
                    } else {
                        backoff.reset();
                    }
                    t
                }
            };
        }
        stats
    }

    /// Reads the senders of a freshly claimed run of transactions from the committed state
    /// in one overlapped batch ([`StateView::accounts`]) and drops the values: the lookups'
    /// cache misses overlap here instead of waiting one after the other inside the
    /// executions (under a shard lock). Only the sender, which every operation reads (it
    /// pays the fee), is known before execution; nothing else about the accesses is used.
    fn warm_senders(&self, run: std::ops::Range<usize>) {
        let mut senders = [Address([0; 32]); scheduler::MAX_CHUNK];
        let mut n = 0;
        for (slot, stx) in senders
            .iter_mut()
            .zip(self.block.get(run).unwrap_or_default())
        {
            *slot = stx.tx().sender;
            n += 1;
        }
        if n > 1 {
            std::hint::black_box(self.base.accounts(&senders[..n]));
        }
    }

    fn try_execute(
        &self,
        v: Version,
        buf: &mut Buffers,
        stats: &mut WorkerStats,
        claims: &mut Claims,
    ) -> Option<Task> {
        let stx = &self.block[v.idx];
        loop {
            stats.executions += 1;
            buf.reads.clear();
            let reads = &mut buf.reads;
            let result = execute_tx(stx.tx(), self.chain_id, |address| {
                let (loc, read) = self.memory.read(self.base, address, v.idx);
                match read {
                    Read::Value(origin, account) => {
                        reads.push((*address, ReadRec { loc, origin }));
                        Ok(account)
                    }
                    Read::Estimate(j) => Err(j),
                }
            });
            match result {
                Err(blocking) => {
                    stats.conflicts += 1;
                    if self.scheduler.add_dependency(v.idx, blocking, claims) {
                        return None;
                    }
                    // The blocking transaction finished meanwhile: read again at once.
                }
                Ok(effect) => {
                    let wrote_new = self.record(v, &effect, buf);
                    return self.scheduler.finish_execution(v, wrote_new, claims);
                }
            }
        }
    }

    /// Stores an incarnation's writes in the memory and its read set and output in its
    /// record; removes the writes of the previous incarnation that this one did not repeat.
    /// True if it wrote an account that the previous incarnation did not.
    fn record(&self, v: Version, effect: &TxEffect, buf: &mut Buffers) -> bool {
        let mut written = 0u32;
        buf.extra.clear();
        buf.new_locs.clear();
        for (address, value) in effect.writes() {
            let loc = match buf.reads.iter().position(|(a, _)| a == address) {
                Some(i) => {
                    written |= 1 << i;
                    buf.reads[i].1.loc
                }
                None => {
                    let loc = self.memory.locate(self.base, address);
                    buf.extra.push(loc);
                    loc
                }
            };
            buf.new_locs.push(loc);
            self.memory.write(loc, v.idx, v.incarnation, *value);
        }
        let mut rec = self.txs[v.idx].lock();
        let mut wrote_new = false;
        for &loc in &buf.new_locs {
            if !rec.written_locs().any(|old| old == loc) {
                wrote_new = true;
            }
        }
        for old in rec.written_locs() {
            if !buf.new_locs.contains(&old) {
                self.memory.remove(old, v.idx);
            }
        }
        rec.store(buf, written);
        rec.status = effect.status;
        rec.fee = effect.fee;
        wrote_new
    }

    fn needs_reexecution(
        &self,
        v: Version,
        stats: &mut WorkerStats,
        claims: &mut Claims,
    ) -> Option<Task> {
        let valid = {
            let rec = self.txs[v.idx].lock();
            rec.reads()
                .all(|r| self.memory.validate(r.loc, v.idx, r.origin))
        };
        let aborted = !valid && self.scheduler.try_validation_abort(v);
        if aborted {
            stats.conflicts += 1;
            let rec = self.txs[v.idx].lock();
            for loc in rec.written_locs() {
                self.memory.mark_estimate(loc, v.idx);
            }
        }
        self.scheduler.finish_validation(v.idx, aborted, claims)
    }

    /// The receipts of the transactions in `range`, from their last incarnation. Only once
    /// no worker executes (each worker builds its share of the block's receipts after the
    /// scheduler is done; the caller builds the prefix's after a stop).
    fn receipts(&self, range: std::ops::Range<usize>) -> Vec<Receipt> {
        self.block[range.clone()]
            .iter()
            .zip(&self.txs[range])
            .map(|(stx, rec)| {
                let rec = rec.lock();
                Receipt {
                    tx_hash: stx.hash(),
                    status: rec.status,
                    fee_charged: rec.fee,
                }
            })
            .collect()
    }

    /// The length of the longest prefix of the block whose transactions are executed (not
    /// aborted, not suspended) and whose reads all validate against the memory, in block
    /// order: the sequential result so far (see the module docs). Only once no worker runs.
    fn settled_prefix(&self) -> usize {
        (0..self.block.len())
            .find(|&i| {
                !(self.scheduler.is_executed(i) && {
                    let rec = self.txs[i].lock();
                    rec.reads()
                        .all(|r| self.memory.validate(r.loc, i, r.origin))
                })
            })
            .unwrap_or(self.block.len())
    }

    /// The sequential state after the first `prefix` transactions, as an overlay of the
    /// committed state: each prefix transaction's writes, in block order (the later write
    /// of an account replaces the earlier). Only once no worker runs.
    fn prefix_overlay(&self, prefix: usize) -> Result<Overlay<'_>, ExecutorError> {
        let mut overlay = Overlay::new(self.base, self.block.len() * 2);
        for (i, rec) in self.txs[..prefix].iter().enumerate() {
            let rec = rec.lock();
            for loc in rec.written_locs() {
                let t = self
                    .memory
                    .written(loc, i)
                    .ok_or(ExecutorError::Invariant("a settled write is missing"))?;
                overlay.seed(t);
            }
        }
        Ok(overlay)
    }
}

impl BlockExecutor for BlockStmExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::BlockStm
    }

    fn threads(&self) -> usize {
        self.workers.threads()
    }

    fn execute(
        &self,
        state: &dyn StateView,
        chain_id: u32,
        block: &[Arc<SignedTransaction>],
    ) -> Result<Execution, ExecutorError> {
        check_block(block)?;
        let threads = self.workers.threads();
        let chain = threads > 1 && self.guard.chain_precheck && one_chain(block);
        if threads == 1 || block.is_empty() || chain {
            let mut execution = SequentialExecutor::new().execute(state, chain_id, block)?;
            execution.stats.executor = ExecutorKind::BlockStm;
            execution.stats.threads = threads;
            if chain {
                execution.stats.sequential_tail = block.len() as u64;
            }
            return Ok(execution);
        }
        let run = Run {
            guard: self.guard,
            block,
            base: state,
            chain_id,
            memory: MvMemory::new(block.len()),
            scheduler: Scheduler::new(block.len(), threads),
            txs: (0..block.len()).map(|_| Mutex::new(TxRec::new())).collect(),
        };
        // Each worker, once the scheduler is done (the memory no longer changes), collects
        // the accounts of its share of the shards (shard `s` is worker `s % threads`'s).
        // After a stop, the caller finishes the block once every worker has left.
        let parts = self.workers.broadcast(|w| {
            let stats = run.work();
            let part = if run.scheduler.done() {
                let share = block.len() * w / threads..block.len() * (w + 1) / threads;
                Some((run.memory.touched(w, threads), run.receipts(share)))
            } else {
                None
            };
            (stats, part)
        });
        let mut total = WorkerStats::default();
        let mut touched: Vec<Touched> = Vec::new();
        let mut receipts: Vec<Receipt> = Vec::new();
        let mut complete = true;
        for (s, part) in parts {
            total.executions += s.executions;
            total.conflicts += s.conflicts;
            match part {
                Some((part, share)) if complete => {
                    let part =
                        part.ok_or(ExecutorError::Invariant("an estimate outlived the block"))?;
                    if touched.is_empty() {
                        touched = part;
                    } else {
                        touched.extend(part);
                    }
                    if receipts.is_empty() {
                        receipts = share;
                    } else {
                        receipts.extend(share);
                    }
                }
                _ => complete = false,
            }
        }
        let prefix = if complete {
            block.len()
        } else {
            // Speculation stopped (or a worker left on the stop flag while another found the
            // scheduler done): every worker has left, so the memory is still.
            run.settled_prefix()
        };
        if !complete {
            receipts = run.receipts(0..prefix);
            // The rest of the block in order on the caller, on top of the prefix; the
            // speculative work beyond the prefix is dropped.
            let mut overlay = run.prefix_overlay(prefix)?;
            execute_in_order(&mut overlay, chain_id, &block[prefix..], &mut receipts);
            total.executions += (block.len() - prefix) as u64;
            touched = overlay.into_touched();
        }
        let mut stats = ExecStats::new(ExecutorKind::BlockStm, threads, true, &receipts);
        stats.conflicts = total.conflicts;
        stats.re_executions = total.executions.saturating_sub(block.len() as u64);
        stats.sequential_tail = (block.len() - prefix) as u64;
        Ok(finish_block(state, receipts, touched, stats, |v| {
            self.workers.sort(v)
        }))
    }
}

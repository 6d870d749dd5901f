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
use self::scheduler::{Scheduler, Task, Version};
use super::receipt::{Receipt, TxStatus};
use super::semantics::{MAX_TOUCHED, Touched, TxEffect, execute_tx, finish_block};
use super::sequential::SequentialExecutor;
use super::workers::Workers;
use super::{BlockExecutor, ExecStats, Execution, ExecutorError, ExecutorKind, check_block};
use crate::state::StateView;
use crate::tx::{Address, SignedTransaction};

/// The Block-STM executor (see the module docs).
#[derive(Debug)]
pub struct BlockStmExecutor {
    workers: Workers,
}

impl BlockStmExecutor {
    /// A Block-STM executor running on `threads` threads (1 runs the sequential executor on
    /// the caller).
    pub fn new(threads: usize) -> Result<Self, ExecutorError> {
        Ok(Self {
            workers: Workers::new(threads, "exec-stm")?,
        })
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

struct Run<'a> {
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
        let mut task: Option<Task> = None;
        let backoff = Backoff::new();
        while !self.scheduler.done() {
            task = match task {
                Some(Task::Execute(v)) => self.try_execute(v, &mut buf, &mut stats),
                Some(Task::Validate(v)) => self.needs_reexecution(v, &mut stats),
                None => {
                    let t = self.scheduler.next_task();
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

    fn try_execute(&self, v: Version, buf: &mut Buffers, stats: &mut WorkerStats) -> Option<Task> {
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
                    if self.scheduler.add_dependency(v.idx, blocking) {
                        return None;
                    }
                    // The blocking transaction finished meanwhile: read again at once.
                }
                Ok(effect) => {
                    let wrote_new = self.record(v, &effect, buf);
                    return self.scheduler.finish_execution(v, wrote_new);
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

    fn needs_reexecution(&self, v: Version, stats: &mut WorkerStats) -> Option<Task> {
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
        self.scheduler.finish_validation(v.idx, aborted)
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
        if threads == 1 || block.is_empty() {
            let mut execution = SequentialExecutor::new().execute(state, chain_id, block)?;
            execution.stats.executor = ExecutorKind::BlockStm;
            execution.stats.threads = threads;
            return Ok(execution);
        }
        let run = Run {
            block,
            base: state,
            chain_id,
            memory: MvMemory::new(block.len()),
            scheduler: Scheduler::new(block.len()),
            txs: (0..block.len()).map(|_| Mutex::new(TxRec::new())).collect(),
        };
        // Each worker, once the scheduler is done (the memory no longer changes), collects
        // the accounts of its share of the shards (shard `s` is worker `s % threads`'s).
        let parts = self.workers.broadcast(|w| {
            let stats = run.work();
            (stats, run.memory.touched(w, threads))
        });
        let receipts: Vec<Receipt> = block
            .iter()
            .zip(run.txs.iter())
            .map(|(stx, rec)| {
                let rec = rec.lock();
                Receipt {
                    tx_hash: stx.hash(),
                    status: rec.status,
                    fee_charged: rec.fee,
                }
            })
            .collect();
        let mut executions = 0u64;
        let mut conflicts = 0u64;
        let mut touched: Vec<Touched> = Vec::new();
        for (s, part) in parts {
            executions += s.executions;
            conflicts += s.conflicts;
            let part = part.ok_or(ExecutorError::Invariant("an estimate outlived the block"))?;
            if touched.is_empty() {
                touched = part;
            } else {
                touched.extend(part);
            }
        }
        let mut stats = ExecStats::new(ExecutorKind::BlockStm, threads, true, &receipts);
        stats.conflicts = conflicts;
        stats.re_executions = executions.saturating_sub(block.len() as u64);
        Ok(finish_block(state, receipts, touched, stats, |v| {
            self.workers.sort(v)
        }))
    }
}

//! [`BlockStmExecutor`]: optimistic parallel execution (Block-STM), which needs no declared
//! accesses.
//!
//! Workers execute transactions speculatively against a multi-version memory
//! ([`memory`]): a read of account `a` by transaction `i` sees the write of the highest
//! transaction `j < i` that wrote `a`, or the committed state. Each incarnation records its
//! read set (where each value came from) and its writes. A collaborative scheduler
//! ([`scheduler`]) hands out execution and validation tasks in block order; validation
//! re-reads the read set, and a changed read aborts the incarnation: its writes become
//! *estimates*, and a later reader of an estimate waits for that transaction
//! (a dependency) instead of reading a value that will probably change. When neither task
//! remains and no worker is busy, the last write of every account is the sequential result
//! (Block-STM's correctness theorem; our property tests check it against the oracle).
//!
//! Bookkeeping (locks, version maps, read sets) costs about as much as a cheap transfer, so
//! this executor is not the default: see the measurements in [`crate::executor`].

mod memory;
mod scheduler;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::Backoff;
use parking_lot::Mutex;

use self::memory::{MvMemory, Origin, Read};
use self::scheduler::{Scheduler, Task, Version};
use super::receipt::{Receipt, TxStatus};
use super::semantics::{Touched, execute_tx, finish_block};
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
    /// A Block-STM executor running on `threads` threads (1 runs on the caller).
    pub fn new(threads: usize) -> Result<Self, ExecutorError> {
        Ok(Self {
            workers: Workers::new(threads, "exec-stm")?,
        })
    }
}

struct Run<'a> {
    block: &'a [Arc<SignedTransaction>],
    base: &'a dyn StateView,
    chain_id: u32,
    memory: MvMemory,
    scheduler: Scheduler,
    outputs: Vec<Mutex<(TxStatus, u64)>>,
    executions: AtomicU64,
    conflicts: AtomicU64,
}

impl Run<'_> {
    fn work(&self) {
        let mut task: Option<Task> = None;
        let backoff = Backoff::new();
        while !self.scheduler.done() {
            task = match task {
                Some(Task::Execute(v)) => self.try_execute(v),
                Some(Task::Validate(v)) => self.needs_reexecution(v),
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
    }

    fn try_execute(&self, v: Version) -> Option<Task> {
        let stx = &self.block[v.idx];
        loop {
            self.executions.fetch_add(1, Ordering::Relaxed);
            let mut reads: Vec<(Address, Origin)> = Vec::with_capacity(2);
            let result = execute_tx(stx.tx(), self.chain_id, |address| {
                match self.memory.read(address, v.idx) {
                    Read::Storage => {
                        reads.push((*address, Origin::Storage));
                        Ok(self.base.account(address))
                    }
                    Read::Value(origin, account) => {
                        reads.push((*address, origin));
                        Ok(account)
                    }
                    Read::Blocked(j) => Err(j),
                }
            });
            match result {
                Err(blocking) => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    if self.scheduler.add_dependency(v.idx, blocking) {
                        return None;
                    }
                }
                Ok(effect) => {
                    *self.outputs[v.idx].lock() = (effect.status, effect.fee);
                    let wrote_new =
                        self.memory
                            .record(v.idx, v.incarnation, reads, effect.writes());
                    return self.scheduler.finish_execution(v, wrote_new);
                }
            }
        }
    }

    fn needs_reexecution(&self, v: Version) -> Option<Task> {
        let valid = self.memory.validate_read_set(v.idx);
        let aborted = !valid && self.scheduler.try_validation_abort(v);
        if aborted {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            self.memory.convert_writes_to_estimates(v.idx);
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
        let run = Run {
            block,
            base: state,
            chain_id,
            memory: MvMemory::new(block.len()),
            scheduler: Scheduler::new(block.len()),
            outputs: (0..block.len())
                .map(|_| Mutex::new((TxStatus::Invalid, 0)))
                .collect(),
            executions: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
        };
        if !block.is_empty() {
            self.workers.broadcast(|_| run.work());
        }
        let receipts: Vec<Receipt> = block
            .iter()
            .zip(&run.outputs)
            .map(|(stx, out)| {
                let (status, fee) = *out.lock();
                Receipt {
                    tx_hash: stx.hash(),
                    status,
                    fee_charged: fee,
                }
            })
            .collect();
        let executions = run.executions.load(Ordering::Relaxed);
        let conflicts = run.conflicts.load(Ordering::Relaxed);
        let finals = run
            .memory
            .snapshot()
            .ok_or(ExecutorError::Invariant("an estimate outlived the block"))?;
        let touched = finals
            .into_iter()
            .map(|(address, after)| Touched {
                address,
                before: state.account(&address),
                after,
            })
            .collect::<Vec<_>>();
        let mut stats = ExecStats::new(
            ExecutorKind::BlockStm,
            self.workers.threads(),
            self.workers.threads() > 1,
            &receipts,
        );
        stats.conflicts = conflicts;
        stats.re_executions = executions.saturating_sub(block.len() as u64);
        Ok(finish_block(state, receipts, touched, stats, |v| {
            self.workers.sort(v)
        }))
    }
}

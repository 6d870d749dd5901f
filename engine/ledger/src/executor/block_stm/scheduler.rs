//! The collaborative scheduler of Block-STM (Gelashvili et al., 2022, algorithm 4-5), kept
//! close to the paper's pseudo-code so that it can be checked against it.
//!
//! Two shared counters hand out tasks in block order (`execution_idx`, `validation_idx`);
//! `decrease_cnt` and `num_active_tasks` detect completion. Each counter sits on its own
//! cache line (they are written by every task, and sharing a line made every increment of
//! one invalidate the others for all workers). A transaction's status, incarnation and the
//! transactions waiting for it (its dependencies) share one small lock, so that recording
//! a dependency and finishing the execution it waits for cannot cross.
//!
//! Beyond the paper: a *stop* flag (the abort-rate guard, see the parent module). Once it is
//! set, workers finish the task in their hands, drop whatever task it hands on, and leave;
//! the scheduler is then never done (a dropped task keeps `num_active_tasks` above zero),
//! and the caller finishes the block sequentially from [`Scheduler::is_executed`] and the
//! memory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

/// A transaction's incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Version {
    pub(super) idx: usize,
    pub(super) incarnation: u32,
}

/// What a worker does next.
#[derive(Clone, Copy, Debug)]
pub(super) enum Task {
    Execute(Version),
    Validate(Version),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    ReadyToExecute,
    Executing,
    Executed,
    Aborting,
}

struct TxState {
    incarnation: u32,
    status: Status,
    /// Transactions suspended until this one finishes executing.
    dependencies: Vec<u32>,
}

struct Flags {
    done_marker: AtomicBool,
    stop: AtomicBool,
}

pub(super) struct Scheduler {
    size: usize,
    execution_idx: CachePadded<AtomicUsize>,
    validation_idx: CachePadded<AtomicUsize>,
    decrease_cnt: CachePadded<AtomicUsize>,
    num_active_tasks: CachePadded<AtomicUsize>,
    /// `done_marker` and the stop flag, polled by every worker at every step: one line.
    flags: CachePadded<Flags>,
    txs: Box<[Mutex<TxState>]>,
}

impl Scheduler {
    pub(super) fn new(size: usize) -> Self {
        Self {
            size,
            execution_idx: CachePadded::new(AtomicUsize::new(0)),
            validation_idx: CachePadded::new(AtomicUsize::new(0)),
            decrease_cnt: CachePadded::new(AtomicUsize::new(0)),
            num_active_tasks: CachePadded::new(AtomicUsize::new(0)),
            flags: CachePadded::new(Flags {
                done_marker: AtomicBool::new(false),
                stop: AtomicBool::new(false),
            }),
            txs: (0..size)
                .map(|_| {
                    Mutex::new(TxState {
                        incarnation: 0,
                        status: Status::ReadyToExecute,
                        dependencies: Vec::new(),
                    })
                })
                .collect(),
        }
    }

    pub(super) fn done(&self) -> bool {
        self.flags.done_marker.load(SeqCst)
    }

    /// Whether a worker should leave its loop: the block is done or speculation stopped.
    pub(super) fn finished_or_stopped(&self) -> bool {
        self.flags.done_marker.load(SeqCst) || self.flags.stop.load(SeqCst)
    }

    /// Stops speculation: every worker leaves after its current task.
    pub(super) fn stop(&self) {
        self.flags.stop.store(true, SeqCst);
    }

    /// Whether the last incarnation of `idx` finished executing and was not aborted since.
    /// Meaningful once no worker runs.
    pub(super) fn is_executed(&self, idx: usize) -> bool {
        self.txs[idx].lock().status == Status::Executed
    }

    fn decrease_execution_idx(&self, target: usize) {
        self.execution_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn decrease_validation_idx(&self, target: usize) {
        self.validation_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn check_done(&self) {
        let observed = self.decrease_cnt.load(SeqCst);
        if self
            .execution_idx
            .load(SeqCst)
            .min(self.validation_idx.load(SeqCst))
            >= self.size
            && self.num_active_tasks.load(SeqCst) == 0
            && observed == self.decrease_cnt.load(SeqCst)
        {
            self.flags.done_marker.store(true, SeqCst);
        }
    }

    fn try_incarnate(&self, idx: usize) -> Option<Version> {
        if idx < self.size {
            let mut s = self.txs[idx].lock();
            if s.status == Status::ReadyToExecute {
                s.status = Status::Executing;
                return Some(Version {
                    idx,
                    incarnation: s.incarnation,
                });
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }

    fn next_version_to_execute(&self) -> Option<Version> {
        if self.execution_idx.load(SeqCst) >= self.size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, SeqCst);
        let idx = self.execution_idx.fetch_add(1, SeqCst);
        self.try_incarnate(idx)
    }

    fn next_version_to_validate(&self) -> Option<Version> {
        if self.validation_idx.load(SeqCst) >= self.size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, SeqCst);
        let idx = self.validation_idx.fetch_add(1, SeqCst);
        if idx < self.size {
            let s = self.txs[idx].lock();
            if s.status == Status::Executed {
                return Some(Version {
                    idx,
                    incarnation: s.incarnation,
                });
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }

    pub(super) fn next_task(&self) -> Option<Task> {
        if self.validation_idx.load(SeqCst) < self.execution_idx.load(SeqCst) {
            self.next_version_to_validate().map(Task::Validate)
        } else {
            self.next_version_to_execute().map(Task::Execute)
        }
    }

    /// Records that `idx` must wait for `blocking`. False if `blocking` already finished
    /// (the caller re-executes at once).
    pub(super) fn add_dependency(&self, idx: usize, blocking: usize) -> bool {
        {
            let mut b = self.txs[blocking].lock();
            if b.status == Status::Executed {
                return false;
            }
            // Locks nest only from a lower index (`blocking`) to a higher one (`idx`).
            self.txs[idx].lock().status = Status::Aborting;
            b.dependencies.push(idx as u32);
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        true
    }

    fn set_ready_status(&self, idx: usize) {
        let mut s = self.txs[idx].lock();
        s.incarnation += 1;
        s.status = Status::ReadyToExecute;
    }

    fn resume_dependencies(&self, deps: &[u32]) {
        for &d in deps {
            self.set_ready_status(d as usize);
        }
        if let Some(&min) = deps.iter().min() {
            self.decrease_execution_idx(min as usize);
        }
    }

    pub(super) fn finish_execution(&self, v: Version, wrote_new_location: bool) -> Option<Task> {
        let deps = {
            let mut s = self.txs[v.idx].lock();
            s.status = Status::Executed;
            std::mem::take(&mut s.dependencies)
        };
        if !deps.is_empty() {
            self.resume_dependencies(&deps);
        }
        if self.validation_idx.load(SeqCst) > v.idx {
            if wrote_new_location {
                self.decrease_validation_idx(v.idx);
            } else {
                return Some(Task::Validate(v));
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }

    pub(super) fn try_validation_abort(&self, v: Version) -> bool {
        let mut s = self.txs[v.idx].lock();
        if s.incarnation == v.incarnation && s.status == Status::Executed {
            s.status = Status::Aborting;
            return true;
        }
        false
    }

    pub(super) fn finish_validation(&self, idx: usize, aborted: bool) -> Option<Task> {
        if aborted {
            self.set_ready_status(idx);
            self.decrease_validation_idx(idx + 1);
            if self.execution_idx.load(SeqCst) > idx {
                if let Some(v) = self.try_incarnate(idx) {
                    return Some(Task::Execute(v));
                }
                // try_incarnate already released the task.
                return None;
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }
}

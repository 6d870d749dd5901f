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
//! Beyond the paper, **claims in chunks**: a worker takes up to [`Scheduler::chunk`]
//! consecutive indices from a counter with one `fetch_add` and works through them in order
//! ([`Claims`]), and it publishes the tasks it finished to `num_active_tasks` in one
//! `fetch_sub` when its claims run out. With transactions of about a microsecond, one shared
//! read-modify-write per task (a cache line moving between cores, 100-200 ns) was most of
//! the cost of a task on two threads. It changes no rule of the algorithm: a claimed index
//! is handled as the paper handles a freshly fetched one, only later (its status is read
//! when it is reached, so a claimed execution another worker has started meanwhile is
//! skipped, and a claimed validation of a transaction not yet executed is left to that
//! execution's end, which sees `validation_idx` past it); a lowered counter hands the
//! indices out again; and claimed or finished tasks stay counted in `num_active_tasks`
//! until published, which only delays the completion check.
//!
//! Beyond the paper: a *stop* flag (the abort-rate guard, see the parent module). Once it is
//! set, workers finish the task in their hands, drop whatever task it hands on, and leave;
//! the scheduler is then never done (a dropped task keeps `num_active_tasks` above zero),
//! and the caller finishes the block sequentially from [`Scheduler::is_executed`] and the
//! memory.

use std::ops::Range;
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

/// Most indices one claim takes.
pub(super) const MAX_CHUNK: usize = 16;

/// A worker's claimed, not yet handled indices, and the tasks it finished but has not yet
/// published to `num_active_tasks`.
#[derive(Debug, Default)]
pub(super) struct Claims {
    execute: Range<usize>,
    validate: Range<usize>,
    released: usize,
    /// The execution indices of the last claim, until the worker takes them
    /// ([`Claims::take_fresh`]) to warm the cache for their reads.
    fresh: Option<Range<usize>>,
}

impl Claims {
    /// The execution indices claimed since the last call, if any.
    pub(super) fn take_fresh(&mut self) -> Option<Range<usize>> {
        self.fresh.take()
    }
}

pub(super) struct Scheduler {
    size: usize,
    chunk: usize,
    execution_idx: CachePadded<AtomicUsize>,
    validation_idx: CachePadded<AtomicUsize>,
    decrease_cnt: CachePadded<AtomicUsize>,
    num_active_tasks: CachePadded<AtomicUsize>,
    /// `done_marker` and the stop flag, polled by every worker at every step: one line.
    flags: CachePadded<Flags>,
    txs: Box<[Mutex<TxState>]>,
}

impl Scheduler {
    /// A scheduler for a block of `size` transactions run by `threads` workers.
    pub(super) fn new(size: usize, threads: usize) -> Self {
        Self {
            size,
            chunk: Self::chunk(size, threads),
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

    /// Indices a worker claims at once: up to [`MAX_CHUNK`], fewer when the block is short for the
    /// threads (at least 32 claims per worker), 1 (the paper) for short blocks.
    pub(super) fn chunk(size: usize, threads: usize) -> usize {
        (size / (threads.max(1) * 32)).clamp(1, MAX_CHUNK)
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

    fn try_incarnate(&self, idx: usize, claims: &mut Claims) -> Option<Version> {
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
        claims.released += 1;
        None
    }

    /// The paper's `next_version_to_execute` / `next_version_to_validate` for up to
    /// `chunk` indices: counts them active, then takes them from `counter`. False if none.
    fn claim(&self, counter: &AtomicUsize, claims: &mut Claims, validation: bool) -> bool {
        if counter.load(SeqCst) >= self.size {
            self.check_done();
            return false;
        }
        let n = self.chunk;
        self.num_active_tasks.fetch_add(n, SeqCst);
        let start = counter.fetch_add(n, SeqCst);
        let range = start.min(self.size)..start.saturating_add(n).min(self.size);
        let got = range.len();
        claims.released += n - got;
        if validation {
            claims.validate = range;
        } else {
            claims.fresh = Some(range.clone());
            claims.execute = range;
        }
        got > 0
    }

    /// Publishes the tasks this worker finished (see the module docs).
    fn publish(&self, claims: &mut Claims) {
        if claims.released > 0 {
            self.num_active_tasks.fetch_sub(claims.released, SeqCst);
            claims.released = 0;
        }
    }

    /// The next task: from this worker's claims, lowest index first, else from a new claim
    /// (validation while `validation_idx` is behind `execution_idx`, as in the paper).
    pub(super) fn next_task(&self, claims: &mut Claims) -> Option<Task> {
        loop {
            let validate_next = !claims.validate.is_empty()
                && (claims.execute.is_empty() || claims.validate.start <= claims.execute.start);
            if validate_next {
                let idx = claims.validate.start;
                claims.validate.start += 1;
                let s = self.txs[idx].lock();
                if s.status == Status::Executed {
                    return Some(Task::Validate(Version {
                        idx,
                        incarnation: s.incarnation,
                    }));
                }
                claims.released += 1;
                continue;
            }
            if let Some(idx) = claims.execute.next() {
                match self.try_incarnate(idx, claims) {
                    Some(v) => return Some(Task::Execute(v)),
                    None => continue,
                }
            }
            self.publish(claims);
            let claimed = if self.validation_idx.load(SeqCst) < self.execution_idx.load(SeqCst) {
                self.claim(&self.validation_idx, claims, true)
            } else {
                self.claim(&self.execution_idx, claims, false)
            };
            if !claimed {
                return None;
            }
        }
    }

    /// Records that `idx` must wait for `blocking`. False if `blocking` already finished
    /// (the caller re-executes at once).
    pub(super) fn add_dependency(&self, idx: usize, blocking: usize, claims: &mut Claims) -> bool {
        {
            let mut b = self.txs[blocking].lock();
            if b.status == Status::Executed {
                return false;
            }
            // Locks nest only from a lower index (`blocking`) to a higher one (`idx`).
            self.txs[idx].lock().status = Status::Aborting;
            b.dependencies.push(idx as u32);
        }
        claims.released += 1;
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

    pub(super) fn finish_execution(
        &self,
        v: Version,
        wrote_new_location: bool,
        claims: &mut Claims,
    ) -> Option<Task> {
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
        claims.released += 1;
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

    pub(super) fn finish_validation(
        &self,
        idx: usize,
        aborted: bool,
        claims: &mut Claims,
    ) -> Option<Task> {
        if aborted {
            self.set_ready_status(idx);
            self.decrease_validation_idx(idx + 1);
            if self.execution_idx.load(SeqCst) > idx {
                if let Some(v) = self.try_incarnate(idx, claims) {
                    return Some(Task::Execute(v));
                }
                // try_incarnate already released the task.
                return None;
            }
        }
        claims.released += 1;
        None
    }
}

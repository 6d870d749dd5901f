//! The collaborative scheduler of Block-STM (Gelashvili et al., 2022, algorithm 4-5), kept
//! close to the paper's pseudo-code so that it can be checked against it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

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

pub(super) struct Scheduler {
    size: usize,
    execution_idx: AtomicUsize,
    validation_idx: AtomicUsize,
    decrease_cnt: AtomicUsize,
    num_active_tasks: AtomicUsize,
    done_marker: AtomicBool,
    dependencies: Vec<Mutex<Vec<usize>>>,
    status: Vec<Mutex<(u32, Status)>>,
}

impl Scheduler {
    pub(super) fn new(size: usize) -> Self {
        Self {
            size,
            execution_idx: AtomicUsize::new(0),
            validation_idx: AtomicUsize::new(0),
            decrease_cnt: AtomicUsize::new(0),
            num_active_tasks: AtomicUsize::new(0),
            done_marker: AtomicBool::new(false),
            dependencies: (0..size).map(|_| Mutex::new(Vec::new())).collect(),
            status: (0..size)
                .map(|_| Mutex::new((0, Status::ReadyToExecute)))
                .collect(),
        }
    }

    pub(super) fn done(&self) -> bool {
        self.done_marker.load(SeqCst)
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
            self.done_marker.store(true, SeqCst);
        }
    }

    fn try_incarnate(&self, idx: usize) -> Option<Version> {
        if idx < self.size {
            let mut s = self.status[idx].lock();
            if s.1 == Status::ReadyToExecute {
                s.1 = Status::Executing;
                return Some(Version {
                    idx,
                    incarnation: s.0,
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
            let s = self.status[idx].lock();
            if s.1 == Status::Executed {
                return Some(Version {
                    idx,
                    incarnation: s.0,
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
            let mut deps = self.dependencies[blocking].lock();
            if self.status[blocking].lock().1 == Status::Executed {
                return false;
            }
            self.status[idx].lock().1 = Status::Aborting;
            deps.push(idx);
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        true
    }

    fn set_ready_status(&self, idx: usize) {
        let mut s = self.status[idx].lock();
        *s = (s.0 + 1, Status::ReadyToExecute);
    }

    fn resume_dependencies(&self, deps: Vec<usize>) {
        for &d in &deps {
            self.set_ready_status(d);
        }
        if let Some(&min) = deps.iter().min() {
            self.decrease_execution_idx(min);
        }
    }

    pub(super) fn finish_execution(&self, v: Version, wrote_new_location: bool) -> Option<Task> {
        self.status[v.idx].lock().1 = Status::Executed;
        let deps = std::mem::take(&mut *self.dependencies[v.idx].lock());
        self.resume_dependencies(deps);
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
        let mut s = self.status[v.idx].lock();
        if *s == (v.incarnation, Status::Executed) {
            s.1 = Status::Aborting;
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

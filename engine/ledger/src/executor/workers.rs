//! [`Workers`]: the threads a parallel executor runs on (a rayon pool, or the caller alone).

use std::sync::{Mutex, PoisonError};

use rayon::slice::ParallelSliceMut;

use super::ExecutorError;
use crate::state::{Account, address_order};
use crate::tx::Address;

/// A fixed set of worker threads. With one thread, work runs on the caller.
pub(crate) struct Workers {
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Workers {
    pub(crate) fn new(threads: usize, name: &'static str) -> Result<Self, ExecutorError> {
        if threads == 0 || threads > super::MAX_THREADS {
            return Err(ExecutorError::Threads(threads));
        }
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(move |i| format!("{name}-{i}"))
                    .build()
                    .map_err(|e| ExecutorError::ThreadPool(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Self { threads, pool })
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(i)` once for every worker index `i` in `0..threads` and returns the results in
    /// worker order. The calling thread runs `f(0)` itself while pool threads run the others:
    /// a block's phases are a millisecond or two each, and handing all of them to sleeping
    /// pool threads (the caller blocked) measured a wake-up of 0.1 ms for the first and up to
    /// 2-4 ms for the second on a 2-core machine, which cost more than the phase saved.
    pub(crate) fn broadcast<R: Send>(&self, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
        let Some(pool) = &self.pool else {
            return vec![f(0)];
        };
        let rest: Vec<Mutex<Option<R>>> = (1..self.threads).map(|_| Mutex::new(None)).collect();
        let mut first = None;
        pool.in_place_scope(|scope| {
            for (i, out) in rest.iter().enumerate() {
                let f = &f;
                scope.spawn(move |_| {
                    let r = f(i + 1);
                    *out.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
                });
            }
            first = Some(f(0));
        });
        // The scope returns once every spawned job has run (a panic in one resumes here), so
        // every entry is filled.
        first
            .into_iter()
            .chain(
                rest.into_iter()
                    .filter_map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner)),
            )
            .collect()
    }

    /// Sorts a write set by address, in parallel when there are threads.
    pub(crate) fn sort(&self, v: &mut [(Address, Account)]) {
        match &self.pool {
            Some(pool) if v.len() > 4096 => {
                pool.install(|| v.par_sort_unstable_by(|a, b| address_order(&a.0, &b.0)))
            }
            _ => v.sort_unstable_by(|a, b| address_order(&a.0, &b.0)),
        }
    }
}

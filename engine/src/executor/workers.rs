//! [`Workers`]: the threads a parallel executor runs on (a rayon pool, or the caller alone).

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

    /// Runs `f(worker_index)` once on every worker thread and returns the results in worker
    /// order.
    pub(crate) fn broadcast<R: Send>(&self, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
        match &self.pool {
            Some(pool) => pool.broadcast(|ctx| f(ctx.index())),
            None => vec![f(0)],
        }
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

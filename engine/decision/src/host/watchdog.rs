//! The watchdog: a small pool of worker threads that run untrusted policy calls so the
//! decision thread can stop waiting at the deadline.
//!
//! A job is handed over a rendezvous channel, so a hand-over succeeds only when a worker is
//! idle; if every worker is still busy with calls that overran their deadlines, the decision
//! does not queue behind them, it falls back ([`FallbackReason::Busy`]). A late result is
//! dropped with its one-shot channel. Panics are caught on the worker, which keeps serving.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError, bounded,
};

use super::FallbackReason;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool. Dropping it lets the workers finish their current job and exit.
pub(crate) struct Watchdog {
    jobs: Sender<Job>,
}

/// How a watched call ended.
pub(crate) enum Watched<T> {
    Done(T),
    Panicked(String),
    Failed(FallbackReason),
}

impl Watchdog {
    pub(crate) fn new(name: &str, workers: usize) -> Self {
        let (jobs, rx) = bounded::<Job>(0);
        for i in 0..workers.max(1) {
            let rx: Receiver<Job> = rx.clone();
            let spawned = thread::Builder::new()
                .name(format!("policy-{name}-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                });
            if let Err(e) = spawned {
                // Fewer workers is degraded, not broken: decisions fall back as Busy.
                tracing::error!(error = %e, "cannot spawn a policy watchdog worker");
            }
        }
        Self { jobs }
    }

    /// Runs `f` on a worker and waits for it until `deadline`.
    pub(crate) fn run<T, F>(&self, deadline: Instant, f: F) -> Watched<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = bounded::<Result<T, String>>(1);
        let job: Job = Box::new(move || {
            let r = catch_unwind(AssertUnwindSafe(f)).map_err(panic_message);
            // The decision may have given up already; then nobody listens.
            let _ = tx.send(r);
        });
        match self.jobs.send_deadline(job, deadline) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) | Err(SendTimeoutError::Disconnected(_)) => {
                return Watched::Failed(FallbackReason::Busy);
            }
        }
        match rx.recv_deadline(deadline) {
            Ok(Ok(v)) => Watched::Done(v),
            Ok(Err(msg)) => Watched::Panicked(msg),
            Err(RecvTimeoutError::Timeout) => Watched::Failed(FallbackReason::Timeout),
            // The job was dropped without sending: only if the worker died mid-job.
            Err(RecvTimeoutError::Disconnected) => Watched::Failed(FallbackReason::Error),
        }
    }

    /// Runs `f` on a worker if one is idle right now, without waiting for it.
    /// Returns false when every worker was busy.
    pub(crate) fn spawn_if_idle<F>(&self, f: F) -> bool
    where
        F: FnOnce() + Send + 'static,
    {
        let job: Job = Box::new(move || {
            let _ = catch_unwind(AssertUnwindSafe(f));
        });
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn returns_results_panics_and_timeouts() {
        let w = Watchdog::new("t", 2);
        // Generous: with RUST_BACKTRACE set, the panic hook symbolises a backtrace first.
        let dl = || Instant::now() + Duration::from_secs(10);
        assert!(matches!(w.run(dl(), || 7), Watched::Done(7)));
        match w.run(dl(), || -> u32 { panic!("boom") }) {
            Watched::Panicked(m) => assert!(m.contains("boom")),
            _ => panic!("expected a caught panic"),
        }
        // The worker that caught the panic still serves.
        assert!(matches!(w.run(dl(), || 8), Watched::Done(8)));
        let start = Instant::now();
        let short = start + Duration::from_millis(20);
        let r = w.run(short, || thread::sleep(Duration::from_millis(300)));
        assert!(matches!(r, Watched::Failed(FallbackReason::Timeout)));
        assert!(start.elapsed() < Duration::from_millis(150));
    }

    #[test]
    fn busy_when_all_workers_are_stuck() {
        let w = Watchdog::new("t", 1);
        let start = Instant::now();
        let r = w.run(start + Duration::from_millis(10), || {
            thread::sleep(Duration::from_millis(400))
        });
        assert!(matches!(r, Watched::Failed(FallbackReason::Timeout)));
        let r = w.run(Instant::now() + Duration::from_millis(10), || 1);
        assert!(matches!(r, Watched::Failed(FallbackReason::Busy)));
        assert!(!w.spawn_if_idle(|| {}));
    }
}

//! The slot's circuit breaker.
//!
//! Closed: decisions go to the routed policy. After `failure_threshold` consecutive
//! failures of one arm it opens: every decision of the slot goes to the static policy for
//! `cooldown`. Then it is half-open: exactly one decision probes the routed policy; success
//! closes the breaker, failure opens it for another cooldown.
//!
//! The breaker is reset with every change of candidate (load, rollback) and of baseline
//! (promote, reset), so a new policy starts closed. While the candidate's failures hold it
//! open, each decision routed to the candidate counts as a candidate failure for the guard
//! (see `decide.rs`): the breaker hides failures from the slot, not from the guard.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Arm;
use crate::clock::Clock;

/// Breaker settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerConfig {
    /// Consecutive failures of one arm that open the breaker.
    pub failure_threshold: u32,
    /// How long the slot stays on static once open.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown: Duration::from_secs(10),
        }
    }
}

/// Permission for one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Closed: go ahead.
    Closed,
    /// Half-open: this decision is the probe.
    Probe,
    /// Open: use static.
    Denied,
}

/// The breaker of one slot. Lock-free.
pub(crate) struct Breaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    /// 0 when closed, else the monotonic nanosecond at which the cooldown ends (+1).
    open_until: AtomicU64,
    probing: AtomicBool,
    consecutive: [AtomicU32; 2],
    /// The arm whose failures opened the breaker last (`Arm as u8`), or [`NO_ARM`].
    opened_by: AtomicU8,
    trips: AtomicU64,
}

const NO_ARM: u8 = u8::MAX;

impl Breaker {
    pub(crate) fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            consecutive: [AtomicU32::new(0), AtomicU32::new(0)],
            opened_by: AtomicU8::new(NO_ARM),
            trips: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.clock.monotonic().as_nanos() as u64
    }

    #[inline]
    pub(crate) fn permit(&self) -> Permit {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Permit::Closed;
        }
        if self.now() < until {
            return Permit::Denied;
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Permit::Probe
        } else {
            Permit::Denied
        }
    }

    /// Records the outcome of a permitted call. Returns true when this call opened the breaker.
    pub(crate) fn record(&self, arm: Arm, permit: Permit, ok: bool) -> bool {
        let c = &self.consecutive[arm as usize];
        if ok {
            c.store(0, Ordering::Relaxed);
            if permit == Permit::Probe {
                self.open_until.store(0, Ordering::Release);
                self.probing.store(false, Ordering::Release);
            }
            return false;
        }
        let n = c.fetch_add(1, Ordering::Relaxed) + 1;
        if permit == Permit::Probe
            || (permit == Permit::Closed && n >= self.config.failure_threshold)
        {
            let until = self.now() + self.config.cooldown.as_nanos() as u64 + 1;
            self.opened_by.store(arm as u8, Ordering::Relaxed);
            self.open_until.store(until, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            c.store(0, Ordering::Relaxed);
            self.trips.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Closes the breaker (after a swap: the new policy starts with a clean slate).
    pub(crate) fn reset(&self) {
        self.open_until.store(0, Ordering::Release);
        self.probing.store(false, Ordering::Release);
        self.opened_by.store(NO_ARM, Ordering::Relaxed);
        for c in &self.consecutive {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the candidate's failures opened the breaker (it may be open, half-open or
    /// closed again since).
    pub(crate) fn opened_by_candidate(&self) -> bool {
        self.opened_by.load(Ordering::Relaxed) == Arm::Candidate as u8
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    pub(crate) fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn opens_after_threshold_then_probes_after_cooldown() {
        let clock = ManualClock::new();
        let b = Breaker::new(
            BreakerConfig {
                failure_threshold: 3,
                cooldown: Duration::from_secs(5),
            },
            clock.clone(),
        );
        for _ in 0..2 {
            assert_eq!(b.permit(), Permit::Closed);
            assert!(!b.record(Arm::Candidate, Permit::Closed, false));
        }
        // A success in between resets the count.
        assert!(!b.record(Arm::Candidate, Permit::Closed, true));
        for i in 0..3 {
            assert_eq!(b.permit(), Permit::Closed);
            assert_eq!(b.record(Arm::Candidate, Permit::Closed, false), i == 2);
        }
        assert_eq!(b.permit(), Permit::Denied);
        clock.advance(Duration::from_secs(4));
        assert_eq!(b.permit(), Permit::Denied);
        clock.advance(Duration::from_secs(2));
        assert_eq!(b.permit(), Permit::Probe);
        // Only one probe at a time.
        assert_eq!(b.permit(), Permit::Denied);
        // A failed probe reopens for a full cooldown.
        assert!(b.record(Arm::Candidate, Permit::Probe, false));
        assert_eq!(b.permit(), Permit::Denied);
        clock.advance(Duration::from_secs(6));
        assert_eq!(b.permit(), Permit::Probe);
        b.record(Arm::Candidate, Permit::Probe, true);
        assert_eq!(b.permit(), Permit::Closed);
        assert_eq!(b.trips(), 2);
    }

    #[test]
    fn arms_count_separately() {
        let b = Breaker::new(
            BreakerConfig {
                failure_threshold: 2,
                cooldown: Duration::from_secs(1),
            },
            ManualClock::new(),
        );
        b.record(Arm::Candidate, Permit::Closed, false);
        b.record(Arm::Baseline, Permit::Closed, true);
        assert!(b.record(Arm::Candidate, Permit::Closed, false));
        assert!(b.is_open());
    }
}

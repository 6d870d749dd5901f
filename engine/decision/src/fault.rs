//! Fault injection: [`FaultyPolicy`], a deliberately misbehaving policy.
//!
//! It exists for tests, the conformance suite and the demo's auto-rollback scene. It wraps
//! a real policy and, on a configurable share of calls, misbehaves in one chosen way:
//! returns an error, sleeps past the deadline, panics, answers NaN, the wrong length or an
//! out-of-range value. It reports [`BackendKind::Fault`] so it can never be mistaken for a
//! production backend in a decision tag or a metric.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::features::FeatureMatrix;
use crate::policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};

/// The way a [`FaultyPolicy`] misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Behaves like the wrapped policy.
    None,
    /// Returns [`PolicyError::Failed`].
    Error,
    /// Sleeps for the given time, then answers as the wrapped policy: too late when the
    /// time passes the deadline, a slow but valid answer when it does not.
    Sleep(Duration),
    /// Panics.
    Panic,
    /// Answers NaN in the first position.
    NonFinite,
    /// Answers one value too many.
    WrongLength,
    /// Answers a value far outside the slot's range.
    OutOfRange,
}

/// A policy that wraps a real one and injects a [`Fault`] on a share of calls.
pub struct FaultyPolicy {
    info: PolicyInfo,
    inner: Arc<dyn Policy>,
    fault: Fault,
    /// Injection probability in parts per million.
    rate_ppm: u64,
    isolation: Isolation,
    healthy_calls: u64,
    calls: AtomicU64,
}

impl FaultyPolicy {
    /// Wraps `inner` and injects `fault` on every call.
    pub fn new(inner: Arc<dyn Policy>, fault: Fault) -> Self {
        let base = inner.info().clone();
        Self {
            info: PolicyInfo {
                name: format!("faulty-{}", base.name),
                version: base.version,
                backend: BackendKind::Fault,
                slot: base.slot,
                schema_version: base.schema_version,
            },
            inner,
            fault,
            rate_ppm: 1_000_000,
            isolation: Isolation::Watchdog,
            healthy_calls: 0,
            calls: AtomicU64::new(0),
        }
    }

    /// Injects the fault on a share `rate` (0..=1) of calls, chosen by a fixed
    /// pseudo-random sequence of the call number (repeatable run to run).
    pub fn with_rate(mut self, rate: f64) -> Self {
        self.rate_ppm = (rate.clamp(0.0, 1.0) * 1e6).round() as u64;
        self
    }

    /// Behaves for the first `n` calls (so it passes the warm-up at load), then misbehaves:
    /// a policy that goes bad in production.
    pub fn after_calls(mut self, n: u64) -> Self {
        self.healthy_calls = n;
        self
    }

    /// Overrides the name and version reported in [`PolicyInfo`].
    pub fn named(mut self, name: &str, version: &str) -> Self {
        self.info.name = name.to_string();
        self.info.version = version.to_string();
        self
    }

    /// Overrides the declared schema version (to test refusals at load).
    pub fn with_schema_version(mut self, v: u32) -> Self {
        self.info.schema_version = v;
        self
    }

    /// Asks to be run inline instead of on the watchdog (to test late inline answers).
    pub fn inline(mut self) -> Self {
        self.isolation = Isolation::Inline;
        self
    }

    /// How many calls it has received.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn inject_now(&self) -> bool {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n < self.healthy_calls {
            return false;
        }
        if self.rate_ppm >= 1_000_000 {
            return true;
        }
        xxhash_rust::xxh3::xxh3_64_with_seed(&n.to_le_bytes(), 0xFA_17) % 1_000_000 < self.rate_ppm
    }
}

impl Policy for FaultyPolicy {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> Isolation {
        self.isolation
    }

    fn evaluate(&self, input: &FeatureMatrix, deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        if self.fault == Fault::None || !self.inject_now() {
            return self.inner.evaluate(input, deadline);
        }
        match self.fault {
            Fault::None => self.inner.evaluate(input, deadline),
            Fault::Error => Err(PolicyError::Failed("injected error".into())),
            Fault::Sleep(d) => {
                std::thread::sleep(d);
                self.inner.evaluate(input, deadline)
            }
            Fault::Panic => panic!("injected panic in {}", self.info.label()),
            Fault::NonFinite => {
                let mut out = self.inner.evaluate(input, deadline)?;
                if let Some(v) = out.first_mut() {
                    *v = f32::NAN;
                }
                Ok(out)
            }
            Fault::WrongLength => {
                let mut out = self.inner.evaluate(input, deadline)?;
                out.push(0.0);
                Ok(out)
            }
            Fault::OutOfRange => {
                let mut out = self.inner.evaluate(input, deadline)?;
                if let Some(v) = out.first_mut() {
                    *v = -1.0e30;
                }
                Ok(out)
            }
        }
    }
}

//! What a decision returns: the values and the tag of what answered.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::features::FeatureMatrix;
use crate::policy::{BackendKind, PolicyInfo};
use crate::slot::SlotKind;

/// The arm a decision was routed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// The baseline (the static policy or a promoted model or plugin).
    Baseline = 0,
    /// The candidate under canary.
    Candidate = 1,
}

impl Arm {
    /// Both arms.
    pub const ALL: [Arm; 2] = [Arm::Baseline, Arm::Candidate];

    /// `baseline` or `candidate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Baseline => "baseline",
            Arm::Candidate => "candidate",
        }
    }
}

impl fmt::Display for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the static policy answered instead of the routed policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// The policy returned an error.
    Error = 0,
    /// No answer before the deadline.
    Timeout = 1,
    /// The policy panicked.
    Panic = 2,
    /// A WASM trap.
    Trap = 3,
    /// NaN or infinity in the answer.
    NonFinite = 4,
    /// The answer had the wrong number of values.
    WrongLength = 5,
    /// A value outside the slot's range.
    OutOfRange = 6,
    /// The slot's circuit breaker is open.
    CircuitOpen = 7,
    /// Every watchdog worker was busy (previous calls still running past their deadline).
    Busy = 8,
}

impl FallbackReason {
    /// Every reason, in code order.
    pub const ALL: [FallbackReason; 9] = [
        FallbackReason::Error,
        FallbackReason::Timeout,
        FallbackReason::Panic,
        FallbackReason::Trap,
        FallbackReason::NonFinite,
        FallbackReason::WrongLength,
        FallbackReason::OutOfRange,
        FallbackReason::CircuitOpen,
        FallbackReason::Busy,
    ];

    /// Stable snake_case code of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::Error => "error",
            FallbackReason::Timeout => "timeout",
            FallbackReason::Panic => "panic",
            FallbackReason::Trap => "trap",
            FallbackReason::NonFinite => "non_finite",
            FallbackReason::WrongLength => "wrong_length",
            FallbackReason::OutOfRange => "out_of_range",
            FallbackReason::CircuitOpen => "circuit_open",
            FallbackReason::Busy => "busy",
        }
    }

    /// Whether this reason counts as a failure of the policy (for the breaker and the
    /// guard). An open circuit is not the policy's failure on this decision.
    pub fn is_policy_failure(self) -> bool {
        !matches!(self, FallbackReason::CircuitOpen)
    }
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of the policy that answered, shared between decisions (no allocation per tag).
#[derive(Clone, Debug, Serialize)]
pub struct Answerer {
    /// Backend kind.
    pub backend: BackendKind,
    /// Name.
    pub name: Arc<str>,
    /// Version.
    pub version: Arc<str>,
}

impl Answerer {
    pub(crate) fn of(info: &PolicyInfo) -> Self {
        Self {
            backend: info.backend,
            name: info.name.as_str().into(),
            version: info.version.as_str().into(),
        }
    }
}

impl fmt::Display for Answerer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}@{}", self.backend, self.name, self.version)
    }
}

/// What answered a decision.
#[derive(Clone, Debug, Serialize)]
pub struct DecisionTag {
    /// The arm the decision key was routed to.
    pub arm: Arm,
    /// The policy whose values were used.
    pub answered_by: Answerer,
    /// Set when the static policy answered in place of the routed policy.
    pub fallback: Option<FallbackReason>,
    /// Generation of the routing the decision started on (changes on every swap).
    pub generation: u64,
}

/// A decision: the values, what answered, how long it took.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// Output values, in the slot's layout, valid against its contract.
    pub values: Vec<f32>,
    /// What answered.
    pub tag: DecisionTag,
    /// Wall time inside the host.
    pub latency: Duration,
}

/// One decision as a [`DecisionObserver`] sees it: borrowed, so a host with an observer
/// allocates nothing for it; the observer copies what it keeps.
#[derive(Clone, Copy, Debug)]
pub struct DecisionRecord<'a> {
    /// The slot that decided.
    pub slot: SlotKind,
    /// The decision key the caller passed (it routed the arm).
    pub key: u64,
    /// The input features, in the slot's schema order.
    pub input: &'a FeatureMatrix,
    /// The values used, what answered and the latency.
    pub decision: &'a Decision,
}

/// A callback that sees every decision a [`SlotHost`](super::SlotHost) takes (see
/// [`SlotHost::set_observer`](super::SlotHost::set_observer)). It runs on the deciding
/// thread after the answer is final, so it must be quick (e.g. sample and copy into a
/// buffer); a panic in it is caught and never changes the decision.
pub type DecisionObserver = Arc<dyn Fn(&DecisionRecord<'_>) + Send + Sync>;

/// The leading columns of a per-slot telemetry export (`aurigraph telemetry export --slot`),
/// before the slot's feature names: what a decision record becomes as one training row. The
/// node's exporter writes them and the training crate's reader checks them, from this one
/// list.
pub const SLOT_EXPORT_COLUMNS: [&str; 12] = [
    "height",
    "seq",
    "key",
    "at_ms",
    "arm",
    "backend",
    "name",
    "version",
    "fallback",
    "latency_us",
    "features_digest",
    "row",
];

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rand::SeedableRng;

    use super::*;
    use crate::host::{HostConfig, SlotHost};

    #[test]
    fn the_observer_sees_each_decision_until_removed() {
        let host = SlotHost::new(SlotKind::Ordering, HostConfig::default()).unwrap();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let input = SlotKind::Ordering.sample_input(5, &mut rng);
        // No observer: decisions work as before.
        host.decide(1, &input).unwrap();
        type Seen = Vec<(SlotKind, u64, usize, usize)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let sink = seen.clone();
        host.set_observer(Some(Arc::new(move |r: &DecisionRecord<'_>| {
            sink.lock()
                .unwrap()
                .push((r.slot, r.key, r.input.rows(), r.decision.values.len()));
        })));
        let d = host.decide(2, &input).unwrap();
        assert_eq!(d.values.len(), 5);
        assert_eq!(*seen.lock().unwrap(), vec![(SlotKind::Ordering, 2, 5, 5)]);
        // A panicking observer never fails a decision.
        host.set_observer(Some(Arc::new(|_: &DecisionRecord<'_>| {
            panic!("observer bug")
        })));
        assert!(host.decide(3, &input).is_ok());
        host.set_observer(None);
        host.decide(4, &input).unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}

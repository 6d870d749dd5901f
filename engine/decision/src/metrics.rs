//! Decision metrics, per slot and arm, in a `prometheus-client` registry.
//!
//! [`EngineMetrics`] owns the metric families; the node registers them in the registry it
//! serves at `/metrics` ([`EngineMetrics::register`]). Each [`SlotHost`](crate::SlotHost)
//! resolves its label sets once, at construction, into pre-resolved handles, so the hot path only
//! increments atomics and never hashes a label set.
//!
//! | metric | labels |
//! |---|---|
//! | `aurigraph_policy_decisions_total` | slot, arm, backend (what answered) |
//! | `aurigraph_policy_fallbacks_total` | slot, arm, reason |
//! | `aurigraph_policy_decision_latency_seconds` | slot, arm |
//! | `aurigraph_policy_shadow_runs_total` | slot, outcome (`ok`, `failed`, `skipped`) |
//! | `aurigraph_policy_shadow_divergence` | slot |
//! | `aurigraph_policy_rollbacks_total` | slot |
//! | `aurigraph_policy_canary_share_percent` | slot |
//! | `aurigraph_policy_circuit_open` | slot |

use prometheus_client::encoding::EncodeLabelSet;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::host::{Arm, FallbackReason};
use crate::policy::BackendKind;
use crate::slot::SlotKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    slot: &'static str,
    arm: &'static str,
    backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    slot: &'static str,
    arm: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArmLabels {
    slot: &'static str,
    arm: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    slot: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabels {
    slot: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 us .. ~1 s.
    Histogram::new(exponential_buckets(1e-6, 2.0, 21))
}

fn divergence_histogram() -> Histogram {
    Histogram::new([0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0])
}

/// The engine's metric families. Cheap to clone (the families are shared).
#[derive(Clone, Debug)]
pub struct EngineMetrics {
    decisions: Family<DecisionLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    latency: HistogramFamily<ArmLabels>,
    /// The latency histogram's sum, kept beside it for typed reads ([`SlotHost::status`]):
    /// prometheus-client does not expose a histogram's sum outside its test builds. Not
    /// registered (the histogram's `_sum` exports the same figure).
    ///
    /// [`SlotHost::status`]: crate::SlotHost::status
    decision_seconds: Family<ArmLabels, Counter<f64, AtomicU64>>,
    shadow_runs: Family<ShadowLabels, Counter>,
    shadow_divergence: HistogramFamily<SlotLabels>,
    rollbacks: Family<SlotLabels, Counter>,
    canary_share: Family<SlotLabels, Gauge>,
    circuit_open: Family<SlotLabels, Gauge>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            decisions: Family::default(),
            fallbacks: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            decision_seconds: Family::default(),
            shadow_runs: Family::default(),
            shadow_divergence: Family::new_with_constructor(divergence_histogram),
            rollbacks: Family::default(),
            canary_share: Family::default(),
            circuit_open: Family::default(),
        }
    }
}

impl EngineMetrics {
    /// Registers every family in `registry` (names start with `aurigraph_policy_`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("aurigraph_policy");
        r.register(
            "decisions",
            "Decisions by slot, routed arm and the backend that answered",
            self.decisions.clone(),
        );
        r.register(
            "fallbacks",
            "Decisions answered by the static fallback, by reason",
            self.fallbacks.clone(),
        );
        r.register(
            "decision_latency_seconds",
            "Wall time of a decision inside the host, fallback included",
            self.latency.clone(),
        );
        r.register(
            "shadow_runs",
            "Shadow evaluations of the candidate, by outcome",
            self.shadow_runs.clone(),
        );
        r.register(
            "shadow_divergence",
            "Divergence between the shadow candidate's answer and the answer used",
            self.shadow_divergence.clone(),
        );
        r.register(
            "rollbacks",
            "Automatic and operator rollbacks",
            self.rollbacks.clone(),
        );
        r.register(
            "canary_share_percent",
            "Current canary share in percent (0 when off)",
            self.canary_share.clone(),
        );
        r.register(
            "circuit_open",
            "1 while the slot's circuit breaker holds it on static",
            self.circuit_open.clone(),
        );
    }

    /// The text exposition of these metrics alone (the node serves its whole registry).
    pub fn encode_text(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Resolves the handles of one slot.
    pub(crate) fn slot(&self, slot: SlotKind) -> SlotMetrics {
        let s = slot.as_str();
        let decisions = Arm::ALL.map(|arm| {
            BACKENDS.map(|b| {
                self.decisions
                    .get_or_create(&DecisionLabels {
                        slot: s,
                        arm: arm.as_str(),
                        backend: b.as_str(),
                    })
                    .clone()
            })
        });
        let fallbacks = Arm::ALL.map(|arm| {
            FallbackReason::ALL.map(|r| {
                self.fallbacks
                    .get_or_create(&FallbackLabels {
                        slot: s,
                        arm: arm.as_str(),
                        reason: r.as_str(),
                    })
                    .clone()
            })
        });
        let latency = Arm::ALL.map(|arm| {
            self.latency
                .get_or_create(&ArmLabels {
                    slot: s,
                    arm: arm.as_str(),
                })
                .clone()
        });
        let decision_seconds = Arm::ALL.map(|arm| {
            self.decision_seconds
                .get_or_create(&ArmLabels {
                    slot: s,
                    arm: arm.as_str(),
                })
                .clone()
        });
        let shadow = ["ok", "failed", "skipped"].map(|o| {
            self.shadow_runs
                .get_or_create(&ShadowLabels {
                    slot: s,
                    outcome: o,
                })
                .clone()
        });
        let sl = SlotLabels { slot: s };
        SlotMetrics {
            decisions,
            fallbacks,
            latency,
            decision_seconds,
            shadow,
            shadow_divergence: self.shadow_divergence.get_or_create(&sl).clone(),
            rollbacks: self.rollbacks.get_or_create(&sl).clone(),
            canary_share: self.canary_share.get_or_create(&sl).clone(),
            circuit_open: self.circuit_open.get_or_create(&sl).clone(),
        }
    }
}

const BACKENDS: [BackendKind; 4] = [
    BackendKind::Static,
    BackendKind::Onnx,
    BackendKind::Wasm,
    BackendKind::Fault,
];

fn backend_index(b: BackendKind) -> usize {
    match b {
        BackendKind::Static => 0,
        BackendKind::Onnx => 1,
        BackendKind::Wasm => 2,
        BackendKind::Fault => 3,
    }
}

/// Pre-resolved metric handles of one slot.
#[derive(Clone, Debug)]
pub(crate) struct SlotMetrics {
    decisions: [[Counter; 4]; 2],
    fallbacks: [[Counter; FallbackReason::ALL.len()]; 2],
    latency: [Histogram; 2],
    decision_seconds: [Counter<f64, AtomicU64>; 2],
    shadow: [Counter; 3],
    pub(crate) shadow_divergence: Histogram,
    pub(crate) rollbacks: Counter,
    pub(crate) canary_share: Gauge,
    pub(crate) circuit_open: Gauge,
}

/// Outcome of a shadow evaluation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ShadowOutcome {
    Ok = 0,
    Failed = 1,
    Skipped = 2,
}

impl SlotMetrics {
    #[inline]
    pub(crate) fn decision(&self, arm: Arm, backend: BackendKind, seconds: f64) {
        self.decisions[arm as usize][backend_index(backend)].inc();
        self.latency[arm as usize].observe(seconds);
        self.decision_seconds[arm as usize].inc_by(seconds);
    }

    #[inline]
    pub(crate) fn fallback(&self, arm: Arm, reason: FallbackReason) {
        self.fallbacks[arm as usize][reason as usize].inc();
    }

    pub(crate) fn shadow(&self, outcome: ShadowOutcome) {
        self.shadow[outcome as usize].inc();
    }

    /// `(decisions, fallbacks, decision seconds)` of an arm since the metrics were created.
    pub(crate) fn arm_totals(&self, arm: Arm) -> (u64, u64, f64) {
        let a = arm as usize;
        (
            self.decisions[a].iter().map(Counter::get).sum(),
            self.fallbacks[a].iter().map(Counter::get).sum(),
            self.decision_seconds[a].get(),
        )
    }

    /// `(ok, failed, skipped)` shadow runs.
    pub(crate) fn shadow_totals(&self) -> (u64, u64, u64) {
        (
            self.shadow[0].get(),
            self.shadow[1].get(),
            self.shadow[2].get(),
        )
    }
}

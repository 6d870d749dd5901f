//! What a [`SlotHost`](super::SlotHost) reports to operators: [`SlotStatus`] and its parts.

use serde::Serialize;

use super::{Answerer, Arm};
use crate::rollout::{GuardSnapshot, Mode};
use crate::slot::SlotKind;

/// Shadow-mode figures for [`SlotStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct ShadowSummary {
    /// Shadow runs that answered validly.
    pub ok: u64,
    /// Shadow runs that failed (error, timeout, panic, invalid output).
    pub failed: u64,
    /// Decisions whose shadow run was skipped because no worker was idle.
    pub skipped: u64,
    /// Mean divergence between the candidate's answer and the answer used.
    pub mean_divergence: f64,
}

/// Per-arm totals for [`SlotStatus`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct ArmTotals {
    /// Decisions routed to the arm.
    pub decisions: u64,
    /// Of which answered by the static fallback.
    pub fallbacks: u64,
    /// Total time of those decisions inside the host, seconds (the sum of the arm's
    /// `aurigraph_policy_decision_latency_seconds` histogram).
    pub decision_seconds: f64,
}

/// The step schedule's progress, for [`SlotStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleStatus {
    /// Steps in percent.
    pub steps_percent: Vec<f64>,
    /// Current step index.
    pub step: usize,
    /// Candidate decisions required per step.
    pub min_decisions: u64,
}

/// A slot's state for operators and the admin API.
#[derive(Clone, Debug, Serialize)]
pub struct SlotStatus {
    /// The slot.
    pub slot: SlotKind,
    /// Rollout mode.
    pub mode: Mode,
    /// The baseline.
    pub baseline: Answerer,
    /// The candidate, if loaded.
    pub candidate: Option<Answerer>,
    /// The schedule, if the canary climbs one.
    pub schedule: Option<ScheduleStatus>,
    /// Routing generation (increments on every change).
    pub generation: u64,
    /// Whether the breaker holds the slot on static.
    pub circuit_open: bool,
    /// How many times the breaker opened.
    pub circuit_trips: u64,
    /// The guard's view of the candidate.
    pub guard: Option<GuardSnapshot>,
    /// Reason of the last rollback.
    pub last_rollback: Option<String>,
    /// Per-decision deadline in microseconds.
    pub deadline_us: u64,
    /// Baseline totals.
    pub baseline_totals: ArmTotals,
    /// Candidate totals.
    pub candidate_totals: ArmTotals,
    /// Shadow figures.
    pub shadow: ShadowSummary,
}

impl super::SlotHost {
    /// The slot's state for operators.
    pub fn status(&self) -> SlotStatus {
        self.apply_pending_rollback();
        let r = self.routing.load();
        let guard = r
            .candidate
            .as_ref()
            .map(|_| self.guard.lock().guard.snapshot());
        let totals = |arm| {
            let (decisions, fallbacks, decision_seconds) = self.metrics.arm_totals(arm);
            ArmTotals {
                decisions,
                fallbacks,
                decision_seconds,
            }
        };
        let (ok, failed, skipped) = self.metrics.shadow_totals();
        SlotStatus {
            slot: self.slot,
            mode: r.mode,
            baseline: r
                .baseline
                .as_ref()
                .map_or_else(|| self.static_answerer.clone(), |a| a.answerer.clone()),
            candidate: r.candidate.as_ref().map(|a| a.answerer.clone()),
            schedule: r.schedule.as_ref().map(|s| ScheduleStatus {
                steps_percent: s.steps_bp().iter().map(|&b| f64::from(b) / 100.0).collect(),
                step: r.step,
                min_decisions: s.min_decisions(),
            }),
            generation: r.generation,
            circuit_open: self.breaker.is_open(),
            circuit_trips: self.breaker.trips(),
            guard,
            last_rollback: r.last_rollback.clone(),
            deadline_us: self.deadline.as_micros().try_into().unwrap_or(u64::MAX),
            baseline_totals: totals(Arm::Baseline),
            candidate_totals: totals(Arm::Candidate),
            shadow: ShadowSummary {
                ok,
                failed,
                skipped,
                mean_divergence: self.shadow.lock().divergence.mean(),
            },
        }
    }
}

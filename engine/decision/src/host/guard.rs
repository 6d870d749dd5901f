//! The candidate's [`Guard`] and step schedule: the guard's state ([`GuardCell`]), the
//! outcomes fed to it ([`SlotHost::observe_outcome`] and each candidate decision), the
//! canary step advance, and the guard's automatic rollback (including alarms raised by
//! shadow runs).

use std::sync::atomic::Ordering;

use super::routing::{Routing, rolled_back};
use super::{Arm, SlotHost};
use crate::rollout::{Guard, Mode};

/// The candidate's guard and step progress.
pub(super) struct GuardCell {
    pub(super) candidate_id: u64,
    pub(super) guard: Guard,
    pub(super) step_decisions: u64,
    /// An alarm raised by a shadow run on a worker, applied by the next decision.
    pub(super) pending_alarm: Option<String>,
}

impl SlotHost {
    /// Reports one observation of the slot's key metric (e.g. block latency of a batch
    /// ordered by an arm) for the guard's regression test. May roll the candidate back.
    pub fn observe_outcome(&self, arm: Arm, value: f64) {
        let routing = self.routing.load();
        if routing.candidate.is_none() {
            return;
        }
        let alarm = {
            let mut g = self.guard.lock();
            if g.candidate_id != routing.candidate_id {
                return;
            }
            g.guard.record_metric(arm == Arm::Candidate, value)
        };
        if let Some(alarm) = alarm {
            self.auto_rollback(routing.candidate_id, alarm.to_string());
        }
    }

    pub(super) fn record_candidate(&self, routing: &Routing, failed: bool) {
        let mut g = self.guard.lock();
        if g.candidate_id != routing.candidate_id {
            return;
        }
        if let Some(alarm) = g.guard.record_decision(failed) {
            drop(g);
            self.auto_rollback(routing.candidate_id, alarm.to_string());
            return;
        }
        let (Mode::Canary { .. }, Some(schedule)) = (routing.mode, &routing.schedule) else {
            return;
        };
        g.step_decisions += 1;
        if g.step_decisions < schedule.min_decisions() || schedule.is_last(routing.step) {
            return;
        }
        // Hold the step while the observed failure rate is above the bound, even before
        // the guard can call it significant.
        let snap_rate = g.guard.snapshot().failure_rate;
        if snap_rate > self.guard_config.max_failure_rate {
            return;
        }
        g.step_decisions = 0;
        drop(g);
        self.advance_step(routing.generation);
    }

    fn advance_step(&self, seen_generation: u64) {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if cur.generation != seen_generation {
            return;
        }
        let Some(schedule) = &cur.schedule else {
            return;
        };
        let Some(bp) = schedule.step(cur.step + 1) else {
            return;
        };
        let mut next = cur.next();
        next.step += 1;
        next.mode = Mode::Canary { basis_points: bp };
        tracing::info!(slot = %self.slot, share = %next.mode, "canary step advanced");
        self.commit(next, false).ok();
    }

    fn auto_rollback(&self, candidate_id: u64, reason: String) {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if cur.candidate_id != candidate_id || cur.candidate.is_none() {
            return;
        }
        let what = cur
            .candidate
            .as_ref()
            .map(|c| c.answerer.to_string())
            .unwrap_or_default();
        tracing::warn!(slot = %self.slot, candidate = %what, %reason, "guard rolled the candidate back");
        let next = rolled_back(&cur, format!("guard: {reason} ({what})"));
        self.metrics.rollbacks.inc();
        self.commit(next, false).ok();
        self.breaker.reset();
        self.metrics.circuit_open.set(0);
    }

    /// Applies an alarm that a shadow run raised on a worker thread.
    pub(super) fn apply_pending_rollback(&self) {
        if !self.rollback_pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let (id, alarm) = {
            let mut g = self.guard.lock();
            (g.candidate_id, g.pending_alarm.take())
        };
        if let Some(alarm) = alarm {
            self.auto_rollback(id, format!("{alarm} in shadow"));
        }
    }
}

//! Operator commands: load a candidate, set the mode, start a step schedule, promote,
//! roll back, reset the baseline.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::SlotHost;
use super::builder::check_fits;
use super::routing::{Armed, rolled_back};
use crate::error::{EngineError, Result};
use crate::policy::Policy;
use crate::rollout::{FULL_SHARE_BP, Mode, StepSchedule};

impl SlotHost {
    /// Loads `policy` as the candidate, replacing any previous candidate; the mode goes
    /// to `off` until the operator chooses shadow or canary. The policy must fit the slot
    /// and answer the golden inputs validly within the deadline (warm-up, off the hot
    /// path); otherwise it is refused and the running routing is untouched.
    pub fn load_candidate(&self, policy: Arc<dyn Policy>) -> Result<()> {
        check_fits(self.contract, policy.as_ref())?;
        let armed = Arc::new(Armed::new(policy));
        self.warm_up(&armed)?;
        let _c = self.control.lock();
        let cur = self.routing.load();
        let mut next = cur.next();
        next.candidate = Some(armed);
        next.candidate_id = self.next_candidate_id.fetch_add(1, Ordering::Relaxed) + 1;
        next.mode = Mode::Off;
        next.schedule = None;
        next.step = 0;
        next.salt = rand::random();
        self.commit(next, true)?;
        // The new candidate starts with a closed breaker, not the previous one's cooldown.
        self.breaker.reset();
        self.metrics.circuit_open.set(0);
        Ok(())
    }

    /// Sets the mode. `shadow` and `canary` need a candidate. A manual mode change stops
    /// any step schedule. Raising the canary share keeps every key already on the
    /// candidate there (same salt).
    pub fn set_mode(&self, mode: Mode) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if mode != Mode::Off && cur.candidate.is_none() {
            return Err(self.refused("no candidate is loaded"));
        }
        if let Mode::Canary { basis_points } = mode
            && basis_points > FULL_SHARE_BP
        {
            return Err(self.refused("a canary share must be between 0 and 100%"));
        }
        let mut next = cur.next();
        next.mode = mode;
        next.schedule = None;
        next.step = 0;
        self.commit(next, true)
    }

    /// Starts a canary that climbs `schedule` while the guard holds.
    pub fn start_schedule(&self, schedule: StepSchedule) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if cur.candidate.is_none() {
            return Err(self.refused("no candidate is loaded"));
        }
        let first = schedule.step(0).unwrap_or(FULL_SHARE_BP);
        let mut next = cur.next();
        next.mode = Mode::Canary {
            basis_points: first,
        };
        next.schedule = Some(schedule);
        next.step = 0;
        self.guard.lock().step_decisions = 0;
        self.commit(next, true)
    }

    /// Makes the candidate the baseline; the rollout ends.
    pub fn promote(&self) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        let Some(candidate) = cur.candidate.clone() else {
            return Err(self.refused("no candidate to promote"));
        };
        let mut next = cur.next();
        next.baseline = Some(candidate);
        next.candidate = None;
        next.mode = Mode::Off;
        next.schedule = None;
        next.step = 0;
        self.commit(next, true)?;
        self.breaker.reset();
        self.metrics.circuit_open.set(0);
        Ok(())
    }

    /// Removes the candidate at once; the baseline answers every new decision.
    pub fn rollback(&self, reason: &str) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if cur.candidate.is_none() {
            return Err(self.refused("no candidate to roll back"));
        }
        let next = rolled_back(&cur, format!("operator: {reason}"));
        self.metrics.rollbacks.inc();
        self.commit(next, true)?;
        self.breaker.reset();
        self.metrics.circuit_open.set(0);
        Ok(())
    }

    /// Puts the static policy back as the baseline (after a promoted model misbehaves).
    pub fn reset_baseline(&self) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        let mut next = cur.next();
        next.baseline = None;
        self.commit(next, true)?;
        self.breaker.reset();
        self.metrics.circuit_open.set(0);
        Ok(())
    }

    fn refused(&self, reason: &str) -> EngineError {
        EngineError::RolloutRefused {
            slot: self.slot,
            reason: reason.to_string(),
        }
    }
}

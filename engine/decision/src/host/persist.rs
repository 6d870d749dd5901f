//! Persistence of the routing: every change is saved to the [`RolloutStore`] (when the
//! host has one) and then published; the [`RolloutRecord`] written; and the restore of a
//! persisted record into the routing at build.
//!
//! [`RolloutStore`]: crate::rollout::RolloutStore

use std::sync::Arc;

use super::SlotHost;
use super::builder::check_fits;
use super::guard::GuardCell;
use super::routing::{Armed, Routing};
use super::shadow::ShadowStats;
use crate::error::Result;
use crate::rollout::{Guard, PolicyRef, PolicyResolver, RolloutRecord};
use crate::slot::SlotKind;

/// Format version of the [`RolloutRecord`]s this host writes.
const RECORD_FORMAT: u32 = 1;

impl SlotHost {
    /// Persists and publishes `next`. Called with the control lock held. When `strict`,
    /// a store failure refuses the change (operator commands); otherwise the change is
    /// applied anyway and the failure logged (the guard's rollbacks must never wait).
    pub(super) fn commit(&self, next: Routing, strict: bool) -> Result<()> {
        if let Some(store) = &self.store
            && let Err(e) = store.save(&self.record(&next))
        {
            if strict {
                return Err(e);
            }
            tracing::error!(slot = %self.slot, error = %e, "cannot persist rollout state");
        }
        if next.candidate_id != self.routing.load().candidate_id {
            *self.guard.lock() = GuardCell {
                candidate_id: next.candidate_id,
                guard: Guard::new(self.guard_config.clone()),
                step_decisions: 0,
                pending_alarm: None,
            };
            *self.shadow.lock() = ShadowStats::default();
        }
        self.metrics
            .canary_share
            .set(next.mode.percent().map_or(0, |p| p.round() as i64));
        self.routing.store(Arc::new(next));
        Ok(())
    }

    fn record(&self, r: &Routing) -> RolloutRecord {
        RolloutRecord {
            format: RECORD_FORMAT,
            slot: self.slot,
            baseline: r.baseline.as_ref().map(|a| a.to_ref()),
            candidate: r.candidate.as_ref().map(|a| a.to_ref()),
            mode: r.mode,
            salt: r.salt,
            schedule: r.schedule.clone(),
            step: r.step,
            last_rollback: r.last_rollback.clone(),
            updated_at_ms: self.clock.unix_millis(),
        }
    }
}

pub(super) fn restore(
    slot: SlotKind,
    routing: &mut Routing,
    rec: RolloutRecord,
    resolver: &dyn PolicyResolver,
) {
    let resolve = |r: &PolicyRef, what: &str| match resolver.resolve(slot, r) {
        Ok(p) if check_fits(slot.contract(), p.as_ref()).is_ok() => Some(Arc::new(Armed::new(p))),
        Ok(p) => {
            tracing::warn!(%slot, policy = %p.info().label(), "persisted {what} no longer fits the slot; dropped");
            None
        }
        Err(e) => {
            tracing::warn!(%slot, name = %r.name, version = %r.version, error = %e, "persisted {what} cannot be resolved; dropped");
            None
        }
    };
    routing.salt = rec.salt;
    routing.last_rollback = rec.last_rollback;
    routing.baseline = rec.baseline.as_ref().and_then(|r| resolve(r, "baseline"));
    routing.candidate = rec.candidate.as_ref().and_then(|r| resolve(r, "candidate"));
    if routing.candidate.is_some() {
        routing.candidate_id = 1;
        routing.mode = rec.mode;
        routing.schedule = rec.schedule;
        routing.step = rec.step;
    }
}

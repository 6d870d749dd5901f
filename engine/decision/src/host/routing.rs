//! The routing of a slot: the policies on its arms ([`Armed`]), the immutable [`Routing`]
//! value that a decision loads once, the arm choice for a key, and the routing after a
//! rollback.

use std::sync::Arc;

use super::{Answerer, Arm};
use crate::policy::{Isolation, Policy};
use crate::rollout::{Mode, PolicyRef, StepSchedule, routes_to_candidate};

/// A policy placed on an arm, with what the hot path needs resolved up front.
pub(super) struct Armed {
    pub(super) policy: Arc<dyn Policy>,
    pub(super) answerer: Answerer,
    pub(super) isolation: Isolation,
}

impl Armed {
    pub(super) fn new(policy: Arc<dyn Policy>) -> Self {
        Self {
            answerer: Answerer::of(policy.info()),
            isolation: policy.isolation(),
            policy,
        }
    }

    pub(super) fn to_ref(&self) -> PolicyRef {
        let info = self.policy.info();
        PolicyRef {
            backend: info.backend,
            name: info.name.clone(),
            version: info.version.clone(),
        }
    }
}

/// The immutable routing of a slot; replaced whole on every change.
pub(super) struct Routing {
    pub(super) generation: u64,
    /// `None`: the static policy is the baseline.
    pub(super) baseline: Option<Arc<Armed>>,
    pub(super) candidate: Option<Arc<Armed>>,
    /// Identifies the candidate for the guard (changes when the candidate changes).
    pub(super) candidate_id: u64,
    pub(super) mode: Mode,
    pub(super) salt: u64,
    pub(super) schedule: Option<StepSchedule>,
    pub(super) step: usize,
    pub(super) last_rollback: Option<String>,
}

impl Routing {
    #[inline]
    pub(super) fn route(&self, key: u64) -> Arm {
        match self.mode {
            Mode::Canary { basis_points }
                if self.candidate.is_some()
                    && routes_to_candidate(key, self.salt, basis_points) =>
            {
                Arm::Candidate
            }
            _ => Arm::Baseline,
        }
    }

    /// A copy with a new generation, for modification.
    pub(super) fn next(&self) -> Routing {
        Routing {
            generation: self.generation + 1,
            baseline: self.baseline.clone(),
            candidate: self.candidate.clone(),
            candidate_id: self.candidate_id,
            mode: self.mode,
            salt: self.salt,
            schedule: self.schedule.clone(),
            step: self.step,
            last_rollback: self.last_rollback.clone(),
        }
    }
}

pub(super) fn rolled_back(cur: &Routing, reason: String) -> Routing {
    let mut next = cur.next();
    next.candidate = None;
    next.mode = Mode::Off;
    next.schedule = None;
    next.step = 0;
    next.last_rollback = Some(reason);
    next
}

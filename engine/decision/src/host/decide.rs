//! [`SlotHost::decide`]: one decision end to end (shape check, arm choice, circuit
//! breaker, the policy call, static fallback, the guard, shadow, metrics, observer), with
//! the shape check and the static policy's answer.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::breaker::Permit;
use super::{Arm, Decision, DecisionTag, FallbackReason, SlotHost};
use crate::error::{EngineError, Result};
use crate::features::FeatureMatrix;
use crate::rollout::Mode;
use crate::slot::Rows;

impl SlotHost {
    /// Takes one decision. `key` routes it (e.g. a batch id, a sender, a block height):
    /// the same key always lands on the same arm for a given canary share.
    ///
    /// Errors only when `input` does not have the slot's shape; any failure of a model or
    /// plugin is answered by the static policy and reported in the [`DecisionTag`].
    pub fn decide(&self, key: u64, input: &FeatureMatrix) -> Result<Decision> {
        let start = Instant::now();
        self.check_shape(input)?;
        let routing = self.routing.load_full();
        let arm = routing.route(key);
        let armed = match arm {
            Arm::Baseline => routing.baseline.as_ref(),
            Arm::Candidate => routing.candidate.as_ref(),
        };
        let deadline = start + self.deadline;
        let (values, answered_by, fallback) = match armed {
            None => (
                self.static_answer(input, deadline)?,
                self.static_answerer.clone(),
                None,
            ),
            Some(armed) => match self.breaker.permit() {
                Permit::Denied => {
                    // The candidate's own failures opened the circuit: a decision routed
                    // to it and answered by static is its failure, for the guard too.
                    if arm == Arm::Candidate && self.breaker.opened_by_candidate() {
                        self.record_candidate(&routing, true);
                    }
                    (
                        self.static_answer(input, deadline)?,
                        self.static_answerer.clone(),
                        Some(FallbackReason::CircuitOpen),
                    )
                }
                permit => {
                    let outcome = self.call(armed, input, deadline - self.reserve);
                    if self.breaker.record(arm, permit, outcome.is_ok()) {
                        self.metrics.circuit_open.set(1);
                        tracing::warn!(slot = %self.slot, %arm, policy = %armed.answerer, "circuit breaker opened: slot on static for a cooldown");
                    } else if permit == Permit::Probe && outcome.is_ok() {
                        self.metrics.circuit_open.set(0);
                        tracing::info!(slot = %self.slot, "circuit breaker closed after a successful probe");
                    }
                    if arm == Arm::Candidate {
                        self.record_candidate(&routing, outcome.is_err());
                    }
                    match outcome {
                        Ok(v) => (v, armed.answerer.clone(), None),
                        Err(reason) => {
                            tracing::debug!(slot = %self.slot, %arm, policy = %armed.answerer, %reason, "fallback to static");
                            (
                                self.static_answer(input, deadline)?,
                                self.static_answerer.clone(),
                                Some(reason),
                            )
                        }
                    }
                }
            },
        };
        if routing.mode == Mode::Shadow {
            self.apply_pending_rollback();
            self.shadow_run(&routing, input, &values);
        }
        let latency = start.elapsed();
        self.metrics
            .decision(arm, answered_by.backend, latency.as_secs_f64());
        if let Some(reason) = fallback {
            self.metrics.fallback(arm, reason);
        }
        let decision = Decision {
            values,
            tag: DecisionTag {
                arm,
                answered_by,
                fallback,
                generation: routing.generation,
            },
            latency,
        };
        if self.observed.load(Ordering::Relaxed) {
            self.notify(key, input, &decision);
        }
        Ok(decision)
    }

    fn check_shape(&self, input: &FeatureMatrix) -> Result<()> {
        let c = self.contract;
        let rows_ok = match c.rows {
            Rows::Batch => input.rows() > 0,
            Rows::Single => input.rows() == 1,
        };
        if input.cols() != c.feature_count() || !rows_ok {
            return Err(EngineError::InvalidInput {
                slot: self.slot,
                reason: format!(
                    "shape [{}, {}] does not fit {:?}",
                    input.rows(),
                    input.cols(),
                    c.input_shape()
                ),
            });
        }
        Ok(())
    }

    #[inline]
    fn static_answer(&self, input: &FeatureMatrix, deadline: Instant) -> Result<Vec<f32>> {
        let values =
            self.fallback
                .evaluate(input, deadline)
                .map_err(|e| EngineError::StaticPolicy {
                    slot: self.slot,
                    reason: e.to_string(),
                })?;
        debug_assert!(self.contract.validate_output(input.rows(), &values).is_ok());
        Ok(values)
    }
}

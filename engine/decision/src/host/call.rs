//! The call of a non-static policy under the deadline: inline or on the watchdog workers,
//! its panic caught, its answer validated against the contract, each failure mapped to a
//! [`FallbackReason`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use super::routing::Armed;
use super::watchdog::{Watched, panic_message};
use super::{FallbackReason, SlotHost};
use crate::features::FeatureMatrix;
use crate::policy::{Isolation, PolicyError};
use crate::slot::OutputFault;

impl SlotHost {
    /// Runs a non-static policy under the deadline and validates its answer.
    pub(super) fn call(
        &self,
        armed: &Armed,
        input: &FeatureMatrix,
        deadline: Instant,
    ) -> Result<Vec<f32>, FallbackReason> {
        let raw = match armed.isolation {
            Isolation::Inline => {
                let r = catch_unwind(AssertUnwindSafe(|| armed.policy.evaluate(input, deadline)));
                if Instant::now() > deadline {
                    return Err(FallbackReason::Timeout);
                }
                match r {
                    Ok(r) => r,
                    Err(p) => {
                        tracing::debug!(slot = %self.slot, msg = %panic_message(p), "policy panicked");
                        return Err(FallbackReason::Panic);
                    }
                }
            }
            Isolation::Watchdog => {
                let policy = armed.policy.clone();
                let input = input.clone();
                match self
                    .watchdog
                    .run(deadline, move || policy.evaluate(&input, deadline))
                {
                    Watched::Done(r) => r,
                    Watched::Panicked(msg) => {
                        tracing::debug!(slot = %self.slot, %msg, "policy panicked");
                        return Err(FallbackReason::Panic);
                    }
                    Watched::Failed(reason) => return Err(reason),
                }
            }
        };
        let values = raw.map_err(|e| match e {
            PolicyError::Failed(_) => FallbackReason::Error,
            PolicyError::DeadlineExceeded => FallbackReason::Timeout,
            PolicyError::Trapped(_) => FallbackReason::Trap,
        })?;
        self.contract
            .validate_output(input.rows(), &values)
            .map_err(fault_reason)?;
        Ok(values)
    }
}

fn fault_reason(f: OutputFault) -> FallbackReason {
    match f {
        OutputFault::NonFinite { .. } => FallbackReason::NonFinite,
        OutputFault::WrongLength { .. } => FallbackReason::WrongLength,
        OutputFault::OutOfRange { .. } => FallbackReason::OutOfRange,
    }
}

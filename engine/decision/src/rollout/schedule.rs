//! [`StepSchedule`]: the ladder a canary climbs while the guard holds.

use serde::{Deserialize, Serialize};

use super::FULL_SHARE_BP;
use crate::error::EngineError;

/// A canary ladder: shares in basis points, strictly increasing, and the minimum number of
/// candidate decisions at each step before the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSchedule {
    steps_bp: Vec<u32>,
    min_decisions: u64,
}

impl StepSchedule {
    /// A schedule from percents (e.g. `[5.0, 25.0, 50.0, 100.0]`).
    pub fn from_percents(percents: &[f64], min_decisions: u64) -> Result<Self, EngineError> {
        let mut steps_bp = Vec::with_capacity(percents.len());
        for &p in percents {
            if !(p > 0.0 && p <= 100.0) {
                return Err(EngineError::InvalidConfig(format!(
                    "a canary step must be in (0, 100]%, got {p}"
                )));
            }
            steps_bp.push((p * 100.0).round() as u32);
        }
        Self::new(steps_bp, min_decisions)
    }

    /// A schedule from basis points.
    pub fn new(steps_bp: Vec<u32>, min_decisions: u64) -> Result<Self, EngineError> {
        if steps_bp.is_empty() {
            return Err(EngineError::InvalidConfig(
                "a step schedule needs at least one step".into(),
            ));
        }
        if steps_bp.iter().any(|&s| s == 0 || s > FULL_SHARE_BP) {
            return Err(EngineError::InvalidConfig(
                "canary steps must be in (0, 100]%".into(),
            ));
        }
        if steps_bp.windows(2).any(|w| w[0] >= w[1]) {
            return Err(EngineError::InvalidConfig(
                "canary steps must strictly increase".into(),
            ));
        }
        if min_decisions == 0 {
            return Err(EngineError::InvalidConfig(
                "a step schedule needs at least one decision per step".into(),
            ));
        }
        Ok(Self {
            steps_bp,
            min_decisions,
        })
    }

    /// The steps in basis points.
    pub fn steps_bp(&self) -> &[u32] {
        &self.steps_bp
    }

    /// Candidate decisions required at a step before advancing.
    pub fn min_decisions(&self) -> u64 {
        self.min_decisions
    }

    /// The share at step `i`, if there is one.
    pub fn step(&self, i: usize) -> Option<u32> {
        self.steps_bp.get(i).copied()
    }

    /// Whether `i` is the last step.
    pub fn is_last(&self, i: usize) -> bool {
        i + 1 >= self.steps_bp.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_ladder() {
        let s = StepSchedule::from_percents(&[5.0, 25.0, 50.0, 100.0], 100).unwrap();
        assert_eq!(s.steps_bp(), &[500, 2500, 5000, 10_000]);
        assert!(s.is_last(3));
        assert!(!s.is_last(2));
    }

    #[test]
    fn refuses_bad_ladders() {
        assert!(StepSchedule::from_percents(&[], 10).is_err());
        assert!(StepSchedule::from_percents(&[25.0, 5.0], 10).is_err());
        assert!(StepSchedule::from_percents(&[5.0, 5.0], 10).is_err());
        assert!(StepSchedule::from_percents(&[0.0, 5.0], 10).is_err());
        assert!(StepSchedule::from_percents(&[5.0, 101.0], 10).is_err());
        assert!(StepSchedule::from_percents(&[f64::NAN], 10).is_err());
        assert!(StepSchedule::from_percents(&[5.0], 0).is_err());
    }
}

//! [`Variant`]: a policy under another name and version.
//!
//! Operators use it to roll out a re-parameterised static rule (say, Holt smoothing with a
//! slower alpha) through the same canary, guard and metrics as a model: the decision tags
//! and metrics then tell the two rules apart.

use std::sync::Arc;
use std::time::Instant;

use super::{Isolation, Policy, PolicyError, PolicyInfo};
use crate::features::FeatureMatrix;

/// Wraps a policy and reports another name and version; behaviour is unchanged.
pub struct Variant {
    info: PolicyInfo,
    inner: Arc<dyn Policy>,
}

impl Variant {
    /// `inner` reported as `name@version`.
    pub fn new(inner: Arc<dyn Policy>, name: &str, version: &str) -> Self {
        let mut info = inner.info().clone();
        info.name = name.to_string();
        info.version = version.to_string();
        Self { info, inner }
    }
}

impl Policy for Variant {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> Isolation {
        self.inner.isolation()
    }

    fn evaluate(&self, input: &FeatureMatrix, deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        self.inner.evaluate(input, deadline)
    }
}

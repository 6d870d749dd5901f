//! Warm-up: the golden inputs a policy must answer validly within the deadline before it
//! is accepted as a candidate.

use std::time::Instant;

use super::SlotHost;
use super::routing::Armed;
use crate::error::{EngineError, Result};

/// Golden inputs a policy must answer correctly before it is accepted.
const WARMUP_ROWS: [usize; WARMUP_INPUTS] = [1, 7, 64];

/// How many golden inputs a policy answers at load (its first calls).
pub const WARMUP_INPUTS: usize = 3;

impl SlotHost {
    pub(super) fn warm_up(&self, armed: &Armed) -> Result<()> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5EED);
        for rows in WARMUP_ROWS {
            let input = self.slot.sample_input(rows, &mut rng);
            let deadline = Instant::now() + self.deadline;
            if let Err(reason) = self.call(armed, &input, deadline) {
                return Err(EngineError::WarmupFailed {
                    slot: self.slot,
                    policy: armed.answerer.to_string(),
                    reason: format!("{reason} on a golden input of {} rows", input.rows()),
                });
            }
        }
        Ok(())
    }
}

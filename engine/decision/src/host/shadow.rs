//! Shadow mode: the candidate's run on an idle worker, never waited for, its answer
//! validated and compared with the one used ([`divergence`]), the outcome counted and fed
//! to the guard; and the shadow statistics.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::SlotHost;
use super::routing::Routing;
use crate::features::FeatureMatrix;
use crate::metrics::ShadowOutcome;
use crate::rollout::guard::Moments;
use crate::slot::{SlotContract, SlotKind};

/// Shadow statistics.
#[derive(Default)]
pub(super) struct ShadowStats {
    pub(super) divergence: Moments,
}

impl SlotHost {
    pub(super) fn shadow_run(&self, routing: &Routing, input: &FeatureMatrix, used: &[f32]) {
        let Some(candidate) = routing.candidate.clone() else {
            return;
        };
        let input = input.clone();
        let used = used.to_vec();
        let contract = self.contract;
        let metrics = self.metrics.clone();
        let stats = self.shadow.clone();
        let guard = self.guard.clone();
        let pending = self.rollback_pending.clone();
        let candidate_id = routing.candidate_id;
        let deadline = Instant::now() + self.deadline;
        let spawned = self.watchdog.spawn_if_idle(move || {
            let r = catch_unwind(AssertUnwindSafe(|| {
                candidate.policy.evaluate(&input, deadline)
            }));
            let ok = match r {
                Ok(Ok(v))
                    if Instant::now() <= deadline
                        && contract.validate_output(input.rows(), &v).is_ok() =>
                {
                    let d = divergence(contract, &used, &v);
                    metrics.shadow_divergence.observe(d);
                    stats.lock().divergence.push(d);
                    true
                }
                _ => false,
            };
            metrics.shadow(if ok {
                ShadowOutcome::Ok
            } else {
                ShadowOutcome::Failed
            });
            let mut g = guard.lock();
            if g.candidate_id == candidate_id
                && let Some(alarm) = g.guard.record_decision(!ok)
            {
                g.pending_alarm = Some(alarm.to_string());
                pending.store(true, Ordering::Release);
            }
        });
        if !spawned {
            self.metrics.shadow(ShadowOutcome::Skipped);
        }
    }
}

/// How far a shadow answer is from the answer used, per slot:
/// `ordering`: the share of sampled pairs the two orders rank differently (0..1);
/// `anomaly`, `leader_health`: mean absolute difference of probabilities (0..1);
/// `batch_size`, `demand`: mean symmetric relative difference `|a-b| / max(|a|, |b|, 1)` (0..1).
pub fn divergence(contract: &SlotContract, used: &[f32], other: &[f32]) -> f64 {
    let n = used.len().min(other.len());
    if n == 0 {
        return 0.0;
    }
    match contract.slot {
        SlotKind::Ordering => {
            if n < 2 {
                return 0.0;
            }
            let pairs = n.min(4096);
            let mut discordant = 0usize;
            for k in 0..pairs {
                let i = k % n;
                let j = (k.wrapping_mul(7919).wrapping_add(1)) % n;
                if i == j {
                    continue;
                }
                let a = used[i].total_cmp(&used[j]);
                let b = other[i].total_cmp(&other[j]);
                if a != b {
                    discordant += 1;
                }
            }
            discordant as f64 / pairs as f64
        }
        SlotKind::Anomaly | SlotKind::LeaderHealth => {
            used.iter()
                .zip(other)
                .map(|(a, b)| f64::from((a - b).abs()))
                .sum::<f64>()
                / n as f64
        }
        SlotKind::BatchSize | SlotKind::Demand => {
            used.iter()
                .zip(other)
                .map(|(a, b)| f64::from((a - b).abs()) / f64::from(a.abs().max(b.abs()).max(1.0)))
                .sum::<f64>()
                / n as f64
        }
    }
}

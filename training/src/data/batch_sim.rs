//! A simple, documented simulation of block latency against batch size and contention, for
//! the `batch_size` slot.
//!
//! # The latency model
//!
//! A block of `b` transactions takes
//!
//! ```text
//! latency(b) = round_ms + b * exec_ms * (1 + REEXEC_COST * conflict_rate)
//! ```
//!
//! `round_ms` (5..40 ms, the consensus round) and `exec_ms` (0.01..0.2 ms per transaction,
//! the machine's speed) are hidden from the model; `conflict_rate` (0..0.6) is observed:
//! every re-executed transaction costs another execution ([`REEXEC_COST`]). The model only
//! sees, as the node does, the last block's size and latency (with 5% measurement noise) and
//! must infer the rest.
//!
//! # The label
//!
//! The best size is the largest batch that still meets the latency goal, no larger than the
//! queue (a bigger target only waits for transactions that are not there), inside the
//! configured range:
//!
//! ```text
//! fits   = (target_latency_ms - round_ms) / (exec_ms * (1 + REEXEC_COST * conflict_rate))
//!          (max_batch_size when there is no goal, min_batch_size when the goal is below a round)
//! label  = clamp(min(fits, queue_depth), min_batch_size, max_batch_size)
//! ```
//!
//! # The observed row
//!
//! `target_latency_ms` 50..500 (no goal, 0, in 10% of rows); `min_batch_size` one of 1, 16,
//! 64; `max_batch_size` one of 1,024, 4,096, 10,000; `current_batch_size` log-uniform in the
//! range; `arrival_rate` from a random workload arrival pattern at a random time;
//! `queue_depth` the arrivals of 0.02..1 s of backlog.

use aurigraph_decision::slot::batch_size::BatchSizeFeatures;
use rand::Rng;

use super::arrivals::random_pattern;
use super::{log_uniform, normal, poisson, rng};

/// Extra execution per unit of conflict rate (a re-executed transaction runs twice).
pub const REEXEC_COST: f64 = 1.0;

/// One simulated decision: the features the node sees and the best size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchCase {
    /// What the `batch_size` slot sees.
    pub features: BatchSizeFeatures,
    /// The best batch size (see the module docs).
    pub label: f64,
}

/// `rows` simulated decisions from `seed`.
pub fn cases(seed: u64, rows: usize) -> Vec<BatchCase> {
    let mut r = rng(seed, "batch size simulation");
    (0..rows)
        .map(|_| {
            let round_ms = r.random_range(5.0..40.0);
            let exec_ms = log_uniform(&mut r, 0.01, 0.2);
            let conflict = r.random_range(0.0..0.6);
            let target = if r.random_bool(0.1) {
                0.0
            } else {
                r.random_range(50.0..500.0)
            };
            let min = [1.0, 16.0, 64.0][r.random_range(0..3)];
            let max = [1_024.0, 4_096.0, 10_000.0][r.random_range(0..3)];
            let current = log_uniform(&mut r, min, max).round();
            let per_tx = exec_ms * (1.0 + REEXEC_COST * conflict);
            let last = (round_ms + current * per_tx) * (1.0 + 0.05 * normal(&mut r)).max(0.5);
            let pattern = random_pattern(&mut r);
            let rate = pattern.rate_at(r.random_range(0.0..1_000.0));
            let backlog_s = r.random_range(0.02..1.0);
            let queue = poisson(&mut r, rate * backlog_s);
            let fits = if target <= 0.0 {
                max
            } else if target <= round_ms {
                min
            } else {
                (target - round_ms) / per_tx
            };
            let label = fits.min(queue).max(min).min(max);
            BatchCase {
                features: BatchSizeFeatures {
                    queue_depth: queue as f32,
                    current_batch_size: current as f32,
                    last_block_latency_ms: last as f32,
                    target_latency_ms: target as f32,
                    arrival_rate: rate as f32,
                    min_batch_size: min as f32,
                    max_batch_size: max as f32,
                    conflict_rate: conflict as f32,
                },
                label,
            }
        })
        .collect()
}

//! The `batch_size` slot: chooses how many transactions the next proposal should carry.
//!
//! Input is one row of queue and load features (`f32[1, F]`, see [`BatchSizeFeatures`]),
//! output one value (`f32[1]`): the target batch size in transactions. The caller rounds it
//! and clamps it to the configured `min_batch_size..=max_batch_size`, so a policy cannot push
//! the node outside its configuration; the contract only refuses values outside
//! `0..=1e7` ([`TARGET_MAX`]).
//!
//! # Static policy: queue-depth rule
//!
//! [`QueueDepthRule`] is stateless: the current size is one of its inputs. With
//! `cur = clamp(current_batch_size, min, max)` (or `min` when the current size is unknown, 0):
//!
//! 1. **Shrink** (multiplicative decrease) when the last block was too slow or conflicted
//!    too much: if `last_block_latency_ms > target_latency_ms * (1 + latency_slack)` (only
//!    when a positive target is given) or `conflict_rate > conflict_limit`, the answer is
//!    `cur * shrink_factor`.
//! 2. **Grow** otherwise, when the queue is deep: if `queue_depth >= cur * deep_ratio`, the
//!    answer is `cur + max(grow_step, cur * grow_fraction)` (additive increase, scaled with
//!    the size so large batches do not take hundreds of blocks to adapt).
//! 3. **Hold** otherwise: the answer is `cur`.
//!
//! The answer is rounded to a whole number of transactions (down when shrinking, up when
//! growing, so every step moves) and clamped to the row's
//! `min_batch_size..=max_batch_size` (a missing or inverted range is repaired, see
//! [`QueueDepthRule::target`]), so it already respects the configuration. Shrinking wins over
//! growing: a deep queue does not justify making a slow block slower. `arrival_rate` is
//! context for learned policies and is not used by the rule.

use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Feature, OutputLen, OutputSpec, Rows, SlotContract, SlotKind};
use crate::error::EngineError;
use crate::features::FeatureMatrix;
use crate::policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};

/// Number of features in the row.
pub const FEATURE_COUNT: usize = 8;

/// Largest target a policy may answer.
pub const TARGET_MAX: f32 = 1e7;

/// `(name, unit, description)` of every column, in order.
const FEATURES: [(&str, &str, &str); FEATURE_COUNT] = [
    (
        "queue_depth",
        "tx",
        "Executable transactions waiting in the mempool when the proposal is built.",
    ),
    (
        "current_batch_size",
        "tx",
        "Target size used for the previous proposal (0 if none yet).",
    ),
    (
        "last_block_latency_ms",
        "ms",
        "Time from proposing the last block to its commit (0 if none yet).",
    ),
    (
        "target_latency_ms",
        "ms",
        "Configured latency goal per block (0 = no latency goal).",
    ),
    (
        "arrival_rate",
        "tx/s",
        "Transactions admitted per second over the recent window.",
    ),
    ("min_batch_size", "tx", "Configured smallest batch size."),
    ("max_batch_size", "tx", "Configured largest batch size."),
    (
        "conflict_rate",
        "ratio",
        "Share (0..1) of the last block's transactions the parallel executor had to \
         re-execute because of read/write conflicts.",
    ),
];

/// The `batch_size` slot's contract, schema version 1.
pub(crate) fn contract() -> SlotContract {
    SlotContract {
        slot: SlotKind::BatchSize,
        schema_version: 1,
        description: "Chooses the number of transactions in the next proposal.",
        called: "once per proposal, by the batcher",
        rows: Rows::Single,
        features: FEATURES
            .iter()
            .map(|&(name, unit, description)| Feature::new(name, unit, description))
            .collect(),
        output: OutputSpec {
            name: "target_batch_size",
            len: OutputLen::Fixed(1),
            min: 0.0,
            max: TARGET_MAX,
            unit: "tx",
            meaning: "Target number of transactions for the next batch; the node rounds it \
                      and clamps it to the configured min..max batch size.",
        },
        default_deadline: Duration::from_millis(5),
    }
}

/// The `batch_size` features, by name. [`BatchSizeFeatures::to_row`] lays them out in the
/// contract's column order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchSizeFeatures {
    /// Executable transactions waiting in the mempool.
    pub queue_depth: f32,
    /// Target size of the previous proposal (0 if none yet).
    pub current_batch_size: f32,
    /// Proposal-to-commit time of the last block, in ms (0 if none yet).
    pub last_block_latency_ms: f32,
    /// Latency goal per block, in ms (0 = none).
    pub target_latency_ms: f32,
    /// Admissions per second over the recent window.
    pub arrival_rate: f32,
    /// Configured smallest batch size.
    pub min_batch_size: f32,
    /// Configured largest batch size.
    pub max_batch_size: f32,
    /// Share (0..1) of the last block's transactions that were re-executed.
    pub conflict_rate: f32,
}

impl BatchSizeFeatures {
    /// The row in the contract's column order.
    pub fn to_row(&self) -> [f32; FEATURE_COUNT] {
        [
            self.queue_depth,
            self.current_batch_size,
            self.last_block_latency_ms,
            self.target_latency_ms,
            self.arrival_rate,
            self.min_batch_size,
            self.max_batch_size,
            self.conflict_rate,
        ]
    }

    /// Reads a row laid out in the contract's column order; `None` unless it has exactly
    /// [`FEATURE_COUNT`] values.
    pub fn from_row(row: &[f32]) -> Option<Self> {
        let r: &[f32; FEATURE_COUNT] = row.try_into().ok()?;
        Some(Self {
            queue_depth: r[0],
            current_batch_size: r[1],
            last_block_latency_ms: r[2],
            target_latency_ms: r[3],
            arrival_rate: r[4],
            min_batch_size: r[5],
            max_batch_size: r[6],
            conflict_rate: r[7],
        })
    }

    /// The slot's `f32[1, F]` input.
    pub fn matrix(&self) -> FeatureMatrix {
        FeatureMatrix::new(1, FEATURE_COUNT, self.to_row().to_vec())
            .expect("1 x FEATURE_COUNT values by construction")
    }
}

/// Parameters of [`QueueDepthRule`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueDepthParams {
    /// The queue is "deep" when it holds at least `deep_ratio` times the current size.
    /// Default 2.0 (two full batches waiting). Must be > 0.
    pub deep_ratio: f32,
    /// Growth per step as a share of the current size. Default 0.25. Must be >= 0.
    pub grow_fraction: f32,
    /// Smallest growth per step, in transactions. Default 16. Must be >= 0.
    pub grow_step: f32,
    /// Multiplier applied when shrinking. Default 0.75. Must be in `0..=1`.
    pub shrink_factor: f32,
    /// Latency may exceed the target by this share before the rule shrinks. Default 0.1.
    /// Must be >= 0.
    pub latency_slack: f32,
    /// Shrink when the last block's conflict rate exceeds this. Must be >= 0; values >= 1
    /// disable the conflict condition, and the default is 1.0 (off): conflicts that slow a
    /// block already show in its latency, and most conflicts do not shrink with the block (a
    /// sender's consecutive nonces, a hot account), so shrinking on them only made blocks
    /// smaller. Measured with the earlier default of 0.5: 100,000 transfers of the
    /// `uniform` workload went through 3,479 blocks of about 29 transactions under a queue
    /// of thousands (each sender's chain counted as conflicts), against 67 blocks with the
    /// condition off. Set it below 1 for an executor whose conflicts cost re-executions.
    pub conflict_limit: f32,
}

impl Default for QueueDepthParams {
    fn default() -> Self {
        Self {
            deep_ratio: 2.0,
            grow_fraction: 0.25,
            grow_step: 16.0,
            shrink_factor: 0.75,
            latency_slack: 0.1,
            conflict_limit: 1.0,
        }
    }
}

impl QueueDepthParams {
    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), EngineError> {
        let finite = [
            self.deep_ratio,
            self.grow_fraction,
            self.grow_step,
            self.shrink_factor,
            self.latency_slack,
            self.conflict_limit,
        ]
        .iter()
        .all(|v| v.is_finite());
        let bad = |what: &str| {
            Err(EngineError::InvalidConfig(format!(
                "queue-depth rule: {what}"
            )))
        };
        if !finite {
            return bad("parameters must be finite");
        }
        if self.deep_ratio <= 0.0 {
            return bad("deep_ratio must be > 0");
        }
        if self.grow_fraction < 0.0 || self.grow_step < 0.0 {
            return bad("grow_fraction and grow_step must be >= 0");
        }
        if !(0.0..=1.0).contains(&self.shrink_factor) {
            return bad("shrink_factor must be in 0..=1");
        }
        if self.latency_slack < 0.0 || self.conflict_limit < 0.0 {
            return bad("latency_slack and conflict_limit must be >= 0");
        }
        Ok(())
    }
}

/// Static `batch_size` policy: grow when the queue is deep, shrink when latency or conflicts
/// rise. See the [module docs](self) for the exact rule.
#[derive(Clone, Debug)]
pub struct QueueDepthRule {
    info: PolicyInfo,
    params: QueueDepthParams,
}

impl Default for QueueDepthRule {
    fn default() -> Self {
        Self::build(QueueDepthParams::default())
    }
}

impl QueueDepthRule {
    /// The rule with the given parameters, refused with [`EngineError::InvalidConfig`] when
    /// one is out of its documented range.
    pub fn with_params(params: QueueDepthParams) -> Result<Self, EngineError> {
        params.validate()?;
        Ok(Self::build(params))
    }

    fn build(params: QueueDepthParams) -> Self {
        Self {
            info: PolicyInfo {
                name: "queue-depth".to_string(),
                version: "1".to_string(),
                backend: BackendKind::Static,
                slot: SlotKind::BatchSize,
                schema_version: 1,
            },
            params,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &QueueDepthParams {
        &self.params
    }

    /// The target batch size for `f`: in `min..=max` and in `0..=TARGET_MAX`, and a whole
    /// number unless it sits on a fractional bound.
    ///
    /// The range is repaired before use: a missing (non-finite or negative) `min_batch_size`
    /// reads as 1, a missing or zero `max_batch_size` as [`TARGET_MAX`], both are clamped to
    /// `0..=TARGET_MAX`, and a `max` below `min` is raised to `min`. Non-finite load features
    /// read as 0 (no queue, no latency, no conflicts).
    pub fn target(&self, f: &BatchSizeFeatures) -> f32 {
        let p = &self.params;
        let min = if f.min_batch_size.is_finite() && f.min_batch_size >= 0.0 {
            f.min_batch_size.min(TARGET_MAX)
        } else {
            1.0
        };
        let max = if f.max_batch_size.is_finite() && f.max_batch_size > 0.0 {
            f.max_batch_size.min(TARGET_MAX)
        } else {
            TARGET_MAX
        };
        let max = max.max(min);
        let clamp = |v: f32| v.max(min).min(max);

        let cur = finite_or_zero(f.current_batch_size);
        let cur = if cur > 0.0 { clamp(cur) } else { min };
        let latency = finite_or_zero(f.last_block_latency_ms);
        let target = finite_or_zero(f.target_latency_ms);
        let conflicts = finite_or_zero(f.conflict_rate);
        let queue = finite_or_zero(f.queue_depth);

        let too_slow = target > 0.0 && latency > target * (1.0 + p.latency_slack);
        // Shrinking rounds down and growing rounds up, so a step always moves by at least
        // one transaction (a small batch cannot get stuck above `min`). Clamp last: the
        // bounds themselves may be fractional.
        let next = if too_slow || conflicts > p.conflict_limit {
            (cur * p.shrink_factor).floor()
        } else if queue >= cur * p.deep_ratio && queue > 0.0 {
            (cur + p.grow_step.max(cur * p.grow_fraction)).ceil()
        } else {
            cur.round()
        };
        clamp(next)
    }
}

impl Policy for QueueDepthRule {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> Isolation {
        Isolation::Inline
    }

    fn evaluate(&self, input: &FeatureMatrix, _deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        if input.rows() != 1 || input.cols() != FEATURE_COUNT {
            return Err(PolicyError::Failed(format!(
                "batch_size expects 1 x {FEATURE_COUNT} features, got {} x {}",
                input.rows(),
                input.cols()
            )));
        }
        let f = input
            .row(0)
            .and_then(BatchSizeFeatures::from_row)
            .ok_or_else(|| PolicyError::Failed("batch_size: missing row".to_string()))?;
        Ok(vec![self.target(&f)])
    }
}

fn finite_or_zero(v: f32) -> f32 {
    if v.is_finite() { v } else { 0.0 }
}

/// A realistic `batch_size` input: a configured range, a current size within it, a queue
/// from empty to many batches deep, and a latency around the target.
pub fn sample<R: Rng + ?Sized>(rng: &mut R) -> FeatureMatrix {
    let min = [1.0f32, 16.0, 64.0, 128.0][rng.random_range(0..4)];
    let max = [1_000.0f32, 2_000.0, 5_000.0, 10_000.0, 50_000.0][rng.random_range(0..5)];
    let current = if rng.random_bool(0.05) {
        0.0
    } else {
        rng.random_range(min..=max).round()
    };
    let queue_batches: f32 = if rng.random_bool(0.2) {
        rng.random_range(0.0..0.5)
    } else {
        rng.random_range(0.0..6.0)
    };
    let target = [100.0f32, 250.0, 500.0, 1_000.0][rng.random_range(0..4)];
    let f = BatchSizeFeatures {
        queue_depth: (queue_batches * current.max(min)).round(),
        current_batch_size: current,
        last_block_latency_ms: if current == 0.0 {
            0.0
        } else {
            target * rng.random_range(0.3..2.0)
        },
        target_latency_ms: target,
        arrival_rate: rng.random_range(10.0..50_000.0),
        min_batch_size: min,
        max_batch_size: max,
        conflict_rate: rng.random::<f32>() * rng.random::<f32>() * 0.8,
    };
    f.matrix()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn base() -> BatchSizeFeatures {
        BatchSizeFeatures {
            queue_depth: 500.0,
            current_batch_size: 1000.0,
            last_block_latency_ms: 200.0,
            target_latency_ms: 250.0,
            arrival_rate: 2000.0,
            min_batch_size: 10.0,
            max_batch_size: 5000.0,
            conflict_rate: 0.05,
        }
    }

    fn eval(f: &BatchSizeFeatures) -> f32 {
        let out = QueueDepthRule::default()
            .evaluate(&f.matrix(), far())
            .unwrap();
        contract().validate_output(1, &out).unwrap();
        out[0]
    }

    #[test]
    fn struct_columns_match_contract_names() {
        let c = contract();
        assert_eq!(c.feature_count(), FEATURE_COUNT);
        let f = BatchSizeFeatures {
            queue_depth: 1.0,
            current_batch_size: 2.0,
            last_block_latency_ms: 3.0,
            target_latency_ms: 4.0,
            arrival_rate: 5.0,
            min_batch_size: 6.0,
            max_batch_size: 7.0,
            conflict_rate: 8.0,
        };
        let r = f.to_row();
        let by_name = [
            ("queue_depth", f.queue_depth),
            ("current_batch_size", f.current_batch_size),
            ("last_block_latency_ms", f.last_block_latency_ms),
            ("target_latency_ms", f.target_latency_ms),
            ("arrival_rate", f.arrival_rate),
            ("min_batch_size", f.min_batch_size),
            ("max_batch_size", f.max_batch_size),
            ("conflict_rate", f.conflict_rate),
        ];
        assert_eq!(by_name.len(), c.feature_count());
        for (name, v) in by_name {
            assert_eq!(r[c.feature_index(name).unwrap()], v, "column of `{name}`");
        }
        assert_eq!(BatchSizeFeatures::from_row(&r), Some(f));
        assert_eq!(f.matrix().row(0).unwrap(), &r);
    }

    #[test]
    fn contract_and_info() {
        let c = contract();
        assert_eq!(c.schema_version, 1);
        assert_eq!(c.input_shape(), [1, FEATURE_COUNT as i64]);
        assert_eq!(c.output_shape(), vec![1]);
        let p = QueueDepthRule::default();
        assert_eq!(p.info().name, "queue-depth");
        assert_eq!(p.info().version, "1");
        assert_eq!(p.info().backend, BackendKind::Static);
        assert_eq!(p.info().slot, SlotKind::BatchSize);
        assert_eq!(p.info().schema_version, 1);
        assert_eq!(p.isolation(), Isolation::Inline);
    }

    #[test]
    fn holds_when_nothing_calls_for_change() {
        assert_eq!(eval(&base()), 1000.0);
    }

    #[test]
    fn grows_when_the_queue_is_deep() {
        let f = BatchSizeFeatures {
            queue_depth: 5000.0,
            ..base()
        };
        assert_eq!(eval(&f), 1250.0);
        // Small sizes grow by at least `grow_step`.
        let f = BatchSizeFeatures {
            queue_depth: 5000.0,
            current_batch_size: 20.0,
            ..base()
        };
        assert_eq!(eval(&f), 36.0);
        // Repeated application climbs to max and stays there.
        let mut f = BatchSizeFeatures {
            queue_depth: 1e6,
            ..base()
        };
        for _ in 0..50 {
            f.current_batch_size = eval(&f);
        }
        assert_eq!(f.current_batch_size, 5000.0);
    }

    #[test]
    fn shrinks_when_latency_exceeds_target() {
        let f = BatchSizeFeatures {
            queue_depth: 1e6, // even with a deep queue
            last_block_latency_ms: 400.0,
            ..base()
        };
        assert_eq!(eval(&f), 750.0);
        // Within the slack: hold.
        let f = BatchSizeFeatures {
            last_block_latency_ms: 270.0,
            ..base()
        };
        assert_eq!(eval(&f), 1000.0);
        // Repeated application falls to min and stays there.
        let mut f = BatchSizeFeatures {
            last_block_latency_ms: 10_000.0,
            ..base()
        };
        for _ in 0..100 {
            f.current_batch_size = eval(&f);
        }
        assert_eq!(f.current_batch_size, 10.0);
    }

    #[test]
    fn small_batches_still_shrink_to_min() {
        let f = BatchSizeFeatures {
            current_batch_size: 2.0,
            min_batch_size: 1.0,
            last_block_latency_ms: 1000.0,
            ..base()
        };
        assert_eq!(eval(&f), 1.0);
    }

    #[test]
    fn shrinks_on_conflicts_only_with_a_limit() {
        let f = BatchSizeFeatures {
            conflict_rate: 0.9,
            ..base()
        };
        // Off by default: the batch holds whatever the conflicts.
        assert_eq!(eval(&f), 1000.0);
        let rule = QueueDepthRule::with_params(QueueDepthParams {
            conflict_limit: 0.5,
            ..QueueDepthParams::default()
        })
        .unwrap();
        assert_eq!(rule.evaluate(&f.matrix(), far()).unwrap(), vec![750.0]);
        let calm = BatchSizeFeatures {
            conflict_rate: 0.4,
            ..f
        };
        assert_eq!(rule.evaluate(&calm.matrix(), far()).unwrap(), vec![1000.0]);
    }

    #[test]
    fn respects_min_and_max() {
        let f = BatchSizeFeatures {
            current_batch_size: 1e6,
            ..base()
        };
        assert_eq!(eval(&f), 5000.0);
        // No current size yet: start from min (and grow at once, the queue being deep).
        let f = BatchSizeFeatures {
            current_batch_size: 0.0,
            queue_depth: 0.0,
            ..base()
        };
        assert_eq!(eval(&f), 10.0);
        let f = BatchSizeFeatures {
            current_batch_size: 0.0,
            ..base()
        };
        assert_eq!(eval(&f), 26.0);
        let f = BatchSizeFeatures {
            current_batch_size: 4900.0,
            queue_depth: 1e6,
            ..base()
        };
        assert_eq!(eval(&f), 5000.0);
        // Inverted range: max is raised to min.
        let f = BatchSizeFeatures {
            min_batch_size: 300.0,
            max_batch_size: 100.0,
            ..base()
        };
        assert_eq!(eval(&f), 300.0);
    }

    #[test]
    fn odd_values_do_not_panic_and_stay_in_range() {
        let odd = [
            0.0,
            -0.0,
            -1.0,
            1e-30,
            1e30,
            f32::MAX,
            f32::MIN,
            f32::NAN,
            f32::INFINITY,
        ];
        let rule = QueueDepthRule::default();
        let c = contract();
        for &a in &odd {
            for &b in &odd {
                let f = BatchSizeFeatures {
                    queue_depth: a,
                    current_batch_size: b,
                    last_block_latency_ms: a,
                    target_latency_ms: b,
                    arrival_rate: a,
                    min_batch_size: a,
                    max_batch_size: b,
                    conflict_rate: b,
                };
                let v = rule.target(&f);
                c.validate_output(1, &[v]).unwrap();
            }
        }
    }

    #[test]
    fn samples_fit_and_answers_respect_their_range() {
        let mut rng = SmallRng::seed_from_u64(1);
        let c = contract();
        let rule = QueueDepthRule::default();
        for _ in 0..2000 {
            let m = sample(&mut rng);
            c.validate_input(&m).unwrap();
            let out = rule.evaluate(&m, far()).unwrap();
            c.validate_output(1, &out).unwrap();
            let f = BatchSizeFeatures::from_row(m.row(0).unwrap()).unwrap();
            assert!(out[0] >= f.min_batch_size && out[0] <= f.max_batch_size);
            assert_eq!(out[0], out[0].round());
        }
    }

    #[test]
    fn params_are_validated() {
        let ok = QueueDepthRule::with_params(QueueDepthParams {
            shrink_factor: 0.5,
            ..Default::default()
        })
        .unwrap();
        let f = BatchSizeFeatures {
            last_block_latency_ms: 1000.0,
            ..base()
        };
        assert_eq!(ok.target(&f), 500.0);
        for bad in [
            QueueDepthParams {
                shrink_factor: 1.5,
                ..Default::default()
            },
            QueueDepthParams {
                deep_ratio: 0.0,
                ..Default::default()
            },
            QueueDepthParams {
                grow_step: f32::NAN,
                ..Default::default()
            },
        ] {
            assert!(QueueDepthRule::with_params(bad).is_err());
        }
    }

    #[test]
    fn wrong_shape_is_an_error() {
        let m = FeatureMatrix::new(2, FEATURE_COUNT, vec![1.0; 2 * FEATURE_COUNT]).unwrap();
        assert!(QueueDepthRule::default().evaluate(&m, far()).is_err());
        let m = FeatureMatrix::new(1, 3, vec![1.0; 3]).unwrap();
        assert!(QueueDepthRule::default().evaluate(&m, far()).is_err());
    }
}

//! The `anomaly` slot: scores each transaction at admission; the mempool files it as normal,
//! suspicious or anomalous (priority classes normal > suspicious > anomalous).
//!
//! Input is one row per transaction (`f32[N, F]`, see [`AnomalyFeatures`]), output one score
//! per row (`f32[N]`) in `0..=1`. The node maps scores to classes with [`Thresholds`]:
//! below [`SUSPICIOUS_THRESHOLD`] (0.5) normal, from it suspicious, from
//! [`ANOMALOUS_THRESHOLD`] (0.8) anomalous.
//!
//! # Features and z-scores
//!
//! Next to the raw values the row carries z-scores (`(x - mean) / std`) that the admission
//! feature extractor computes against running population statistics, with
//! [`PopulationStats`] (exponentially weighted mean and variance, see [`RunningStats`]). A
//! z-score is computed *before* the value is folded into the statistics, so a burst does not
//! hide itself, and is 0 while the statistics are warming up.
//!
//! # Static policy: per-sender rate and size z-score rule
//!
//! [`ZScoreRule`] takes the largest relevant z-score and maps it through a logistic curve:
//!
//! ```text
//! z     = max(sender_rate_z, size_z)          (fee_z, nonce_gap and sender_age_s are not used)
//! score = 1 / (1 + exp(-steepness * (z - midpoint)))
//! ```
//!
//! With the defaults (`midpoint` 3, `steepness` 1.5) a row at the population mean scores
//! about 0.011, 2 sigma 0.18, 3 sigma exactly 0.5 (suspicious) and 4 sigma 0.82 (anomalous).
//! Only unusually *high* rates and sizes raise the score: a z-score below the mean lowers it.
//! The score is non-decreasing in both z-scores, always in `0..=1`, and a NaN z-score reads
//! as 0 (the mean).

use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Feature, OutputLen, OutputSpec, Rows, SlotContract, SlotKind};
use crate::error::EngineError;
use crate::features::FeatureMatrix;
use crate::policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};

/// Number of features per transaction row.
pub const FEATURE_COUNT: usize = 8;

/// Default score from which a transaction is suspicious.
pub const SUSPICIOUS_THRESHOLD: f32 = 0.5;
/// Default score from which a transaction is anomalous.
pub const ANOMALOUS_THRESHOLD: f32 = 0.8;

/// Column of `sender_rate_z`.
pub const COL_SENDER_RATE_Z: usize = 2;
/// Column of `size_z`.
pub const COL_SIZE_Z: usize = 3;

/// `(name, unit, description)` of every column, in order.
const FEATURES: [(&str, &str, &str); FEATURE_COUNT] = [
    (
        "size_bytes",
        "bytes",
        "Encoded size of the signed transaction.",
    ),
    (
        "sender_rate",
        "tx/s",
        "Transactions the sender submitted per second over the recent window, this one \
         included.",
    ),
    (
        "sender_rate_z",
        "sigma",
        "z-score of sender_rate against the running population statistics (0 while they \
         warm up).",
    ),
    (
        "size_z",
        "sigma",
        "z-score of size_bytes against the running population statistics (0 while they \
         warm up).",
    ),
    (
        "fee_per_byte",
        "base_units/byte",
        "Fee offered divided by size_bytes.",
    ),
    (
        "fee_z",
        "sigma",
        "z-score of fee_per_byte against the running population statistics (0 while they \
         warm up).",
    ),
    (
        "nonce_gap",
        "count",
        "Nonce minus the sender's next executable nonce (0 = executable now).",
    ),
    (
        "sender_age_s",
        "s",
        "Time since the sender's first transaction was seen by this node (0 = new sender).",
    ),
];

/// The `anomaly` slot's contract, schema version 1.
pub(crate) fn contract() -> SlotContract {
    SlotContract {
        slot: SlotKind::Anomaly,
        schema_version: 1,
        description: "Scores transactions at admission; thresholds map the score to normal, \
                      suspicious or anomalous.",
        called: "per transaction at admission, in batches",
        rows: Rows::Batch,
        features: FEATURES
            .iter()
            .map(|&(name, unit, description)| Feature::new(name, unit, description))
            .collect(),
        output: OutputSpec {
            name: "score",
            len: OutputLen::PerRow,
            min: 0.0,
            max: 1.0,
            unit: "score",
            meaning: "Anomaly score in 0..1 per transaction; by default below 0.5 is normal, \
                      from 0.5 suspicious, from 0.8 anomalous (mempool priority classes).",
        },
        default_deadline: Duration::from_millis(10),
    }
}

/// The features of one transaction, by name. [`AnomalyFeatures::to_row`] lays them out in the
/// contract's column order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnomalyFeatures {
    /// Encoded size, in bytes.
    pub size_bytes: f32,
    /// The sender's recent submission rate, in tx/s.
    pub sender_rate: f32,
    /// z-score of `sender_rate`.
    pub sender_rate_z: f32,
    /// z-score of `size_bytes`.
    pub size_z: f32,
    /// Fee per byte, in base units.
    pub fee_per_byte: f32,
    /// z-score of `fee_per_byte`.
    pub fee_z: f32,
    /// Nonce minus the sender's next executable nonce.
    pub nonce_gap: f32,
    /// Seconds since the sender was first seen.
    pub sender_age_s: f32,
}

impl AnomalyFeatures {
    /// The row in the contract's column order.
    pub fn to_row(&self) -> [f32; FEATURE_COUNT] {
        [
            self.size_bytes,
            self.sender_rate,
            self.sender_rate_z,
            self.size_z,
            self.fee_per_byte,
            self.fee_z,
            self.nonce_gap,
            self.sender_age_s,
        ]
    }

    /// Reads a row laid out in the contract's column order; `None` unless it has exactly
    /// [`FEATURE_COUNT`] values.
    pub fn from_row(row: &[f32]) -> Option<Self> {
        let r: &[f32; FEATURE_COUNT] = row.try_into().ok()?;
        Some(Self {
            size_bytes: r[0],
            sender_rate: r[1],
            sender_rate_z: r[2],
            size_z: r[3],
            fee_per_byte: r[4],
            fee_z: r[5],
            nonce_gap: r[6],
            sender_age_s: r[7],
        })
    }

    /// The feature matrix of a batch, one row per transaction, in the given order.
    pub fn matrix(rows: &[Self]) -> FeatureMatrix {
        let mut data = Vec::with_capacity(rows.len() * FEATURE_COUNT);
        for r in rows {
            data.extend_from_slice(&r.to_row());
        }
        FeatureMatrix::new(rows.len(), FEATURE_COUNT, data)
            .expect("rows x FEATURE_COUNT values by construction")
    }
}

/// The mempool class of a transaction, from its anomaly score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyClass {
    /// Below the suspicious threshold: highest mempool priority.
    Normal,
    /// From the suspicious threshold.
    Suspicious,
    /// From the anomalous threshold: lowest mempool priority.
    Anomalous,
}

impl AnomalyClass {
    /// Lower-case name for logs, metrics and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyClass::Normal => "normal",
            AnomalyClass::Suspicious => "suspicious",
            AnomalyClass::Anomalous => "anomalous",
        }
    }
}

/// Score thresholds that map an anomaly score to an [`AnomalyClass`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Scores from this value are suspicious. Default [`SUSPICIOUS_THRESHOLD`].
    pub suspicious: f32,
    /// Scores from this value are anomalous. Default [`ANOMALOUS_THRESHOLD`].
    pub anomalous: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            suspicious: SUSPICIOUS_THRESHOLD,
            anomalous: ANOMALOUS_THRESHOLD,
        }
    }
}

impl Thresholds {
    /// Checks `0 <= suspicious <= anomalous <= 1`.
    pub fn validate(&self) -> Result<(), EngineError> {
        let ok = (0.0..=1.0).contains(&self.suspicious)
            && (0.0..=1.0).contains(&self.anomalous)
            && self.suspicious <= self.anomalous;
        if ok {
            Ok(())
        } else {
            Err(EngineError::InvalidConfig(format!(
                "anomaly thresholds must satisfy 0 <= suspicious ({}) <= anomalous ({}) <= 1",
                self.suspicious, self.anomalous
            )))
        }
    }

    /// The class of `score`. A NaN score (which the host never hands on) is suspicious.
    pub fn classify(&self, score: f32) -> AnomalyClass {
        if score.is_nan() {
            AnomalyClass::Suspicious
        } else if score >= self.anomalous {
            AnomalyClass::Anomalous
        } else if score >= self.suspicious {
            AnomalyClass::Suspicious
        } else {
            AnomalyClass::Normal
        }
    }
}

/// Parameters of [`ZScoreRule`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZScoreParams {
    /// z-score at which the score is 0.5. Default 3.0. Must be finite.
    pub midpoint: f32,
    /// Slope of the logistic curve per sigma. Default 1.5. Must be finite and > 0.
    pub steepness: f32,
}

impl Default for ZScoreParams {
    fn default() -> Self {
        Self {
            midpoint: 3.0,
            steepness: 1.5,
        }
    }
}

impl ZScoreParams {
    /// Checks the documented ranges.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.midpoint.is_finite() && self.steepness.is_finite() && self.steepness > 0.0 {
            Ok(())
        } else {
            Err(EngineError::InvalidConfig(
                "z-score rule: midpoint must be finite and steepness finite and > 0".to_string(),
            ))
        }
    }
}

/// Static `anomaly` policy: a logistic map of the largest of the sender-rate and size
/// z-scores. See the [module docs](self) for the exact rule.
#[derive(Clone, Debug)]
pub struct ZScoreRule {
    info: PolicyInfo,
    params: ZScoreParams,
}

impl Default for ZScoreRule {
    fn default() -> Self {
        Self::build(ZScoreParams::default())
    }
}

impl ZScoreRule {
    /// The rule with the given parameters, refused with [`EngineError::InvalidConfig`] when
    /// [`ZScoreParams::validate`] fails.
    pub fn with_params(params: ZScoreParams) -> Result<Self, EngineError> {
        params.validate()?;
        Ok(Self::build(params))
    }

    fn build(params: ZScoreParams) -> Self {
        Self {
            info: PolicyInfo {
                name: "zscore-rule".to_string(),
                version: "1".to_string(),
                backend: BackendKind::Static,
                slot: SlotKind::Anomaly,
                schema_version: 1,
            },
            params,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &ZScoreParams {
        &self.params
    }

    /// The score of one row from its sender-rate and size z-scores, in `0..=1`.
    pub fn score_z(&self, sender_rate_z: f32, size_z: f32) -> f32 {
        let z_or_mean = |z: f32| if z.is_nan() { 0.0 } else { z };
        let z = z_or_mean(sender_rate_z).max(z_or_mean(size_z));
        let x = self.params.steepness * (z - self.params.midpoint);
        // x is never NaN here: z is not NaN and both parameters are finite.
        (1.0 / (1.0 + (-x).exp())).clamp(0.0, 1.0)
    }

    /// The score of one transaction, in `0..=1`.
    pub fn score(&self, f: &AnomalyFeatures) -> f32 {
        self.score_z(f.sender_rate_z, f.size_z)
    }
}

impl Policy for ZScoreRule {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> Isolation {
        Isolation::Inline
    }

    fn evaluate(&self, input: &FeatureMatrix, _deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        if input.cols() != FEATURE_COUNT {
            return Err(PolicyError::Failed(format!(
                "anomaly expects {FEATURE_COUNT} features per row, got {}",
                input.cols()
            )));
        }
        Ok(input
            .iter_rows()
            .map(|row| self.score_z(row[COL_SENDER_RATE_Z], row[COL_SIZE_Z]))
            .collect())
    }
}

/// Exponentially weighted mean and variance of one quantity, updated one value at a time
/// (West's weighted form of Welford's algorithm), in `f64`.
///
/// Each update moves the mean by `a * (x - mean)` with `a = max(alpha, 1 / count)`: while
/// fewer than `1 / alpha` values have been seen the statistics are the exact (population)
/// mean and variance of all of them, afterwards older values fade with weight `1 - alpha`
/// per update. Non-finite values are ignored.
///
/// [`RunningStats::z_score`] divides by the standard deviation floored at
/// `max(min_std, min_rel_std * |mean|)` (so a population with almost no spread does not turn
/// every small difference into a huge z-score), returns 0 until `min_samples` values have
/// been seen, and clamps the result to `-Z_LIMIT..=Z_LIMIT`, so it always fits a finite
/// `f32` feature.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningStats {
    alpha: f64,
    min_samples: u64,
    min_std: f64,
    min_rel_std: f64,
    count: u64,
    mean: f64,
    var: f64,
}

impl RunningStats {
    /// Largest magnitude [`RunningStats::z_score`] returns.
    pub const Z_LIMIT: f64 = 1e6;

    /// Default smoothing factor: a half-life of about 693 values.
    pub const DEFAULT_ALPHA: f64 = 0.001;
    /// Default number of values before z-scores are reported.
    pub const DEFAULT_MIN_SAMPLES: u64 = 30;
    /// Default relative floor of the standard deviation (a quarter of the mean). It keeps a
    /// population with little spread from flagging small differences (with no spread at
    /// all, a value must be twice the mean to reach z = 4), and makes z-scores conservative
    /// for quantities whose coefficient of variation is below 0.25; lower it with
    /// [`RunningStats::std_floor`] for those.
    pub const DEFAULT_MIN_REL_STD: f64 = 0.25;

    /// Empty statistics with smoothing factor `alpha` (clamped to `1e-9..=1`; NaN reads as
    /// [`Self::DEFAULT_ALPHA`]), [`Self::DEFAULT_MIN_SAMPLES`], an absolute std floor of
    /// `1e-9` and [`Self::DEFAULT_MIN_REL_STD`].
    pub fn new(alpha: f64) -> Self {
        let alpha = if alpha.is_nan() {
            Self::DEFAULT_ALPHA
        } else {
            alpha.clamp(1e-9, 1.0)
        };
        Self {
            alpha,
            min_samples: Self::DEFAULT_MIN_SAMPLES,
            min_std: 1e-9,
            min_rel_std: Self::DEFAULT_MIN_REL_STD,
            count: 0,
            mean: 0.0,
            var: 0.0,
        }
    }

    /// Empty statistics whose old values lose half their weight every `half_life` updates.
    pub fn with_half_life(half_life: f64) -> Self {
        let alpha = if half_life.is_finite() && half_life > 0.0 {
            1.0 - 0.5f64.powf(1.0 / half_life)
        } else {
            Self::DEFAULT_ALPHA
        };
        Self::new(alpha)
    }

    /// Sets how many values must be seen before [`Self::z_score`] reports anything but 0.
    pub fn min_samples(mut self, n: u64) -> Self {
        self.min_samples = n;
        self
    }

    /// Sets the standard-deviation floor: `max(abs, rel * |mean|)` (negative or NaN read as 0).
    pub fn std_floor(mut self, abs: f64, rel: f64) -> Self {
        let nonneg = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        self.min_std = nonneg(abs);
        self.min_rel_std = nonneg(rel);
        self
    }

    /// Folds `x` into the statistics; non-finite values are ignored.
    pub fn update(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.count = self.count.saturating_add(1);
        let a = self.alpha.max(1.0 / self.count as f64);
        let diff = x - self.mean;
        let incr = a * diff;
        let mean = self.mean + incr;
        let var = (1.0 - a) * (self.var + diff * incr);
        // Overflow (values near f64::MAX) would poison the statistics: keep the old ones.
        if mean.is_finite() && var.is_finite() {
            self.mean = mean;
            self.var = var.max(0.0);
        }
    }

    /// Values seen (ignored non-finite ones excluded).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Weighted mean (0 before any value).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Weighted population variance (0 before two values).
    pub fn variance(&self) -> f64 {
        self.var
    }

    /// Weighted standard deviation.
    pub fn std_dev(&self) -> f64 {
        self.var.sqrt()
    }

    /// `(x - mean) / max(std, floor)`, clamped to `±Z_LIMIT`; 0 while fewer than
    /// `min_samples` values have been seen, when `x` is NaN, or when the floor is 0 and there
    /// is no spread.
    pub fn z_score(&self, x: f64) -> f64 {
        if self.count < self.min_samples || x.is_nan() {
            return 0.0;
        }
        let denom = self
            .std_dev()
            .max(self.min_std)
            .max(self.min_rel_std * self.mean.abs());
        if denom <= 0.0 || !denom.is_finite() {
            return 0.0;
        }
        let z = (x - self.mean) / denom;
        if z.is_nan() {
            0.0
        } else {
            z.clamp(-Self::Z_LIMIT, Self::Z_LIMIT)
        }
    }

    /// The z-score of `x` against the statistics *before* `x`, then folds `x` in.
    pub fn observe(&mut self, x: f64) -> f64 {
        let z = self.z_score(x);
        self.update(x);
        z
    }
}

impl Default for RunningStats {
    fn default() -> Self {
        Self::new(Self::DEFAULT_ALPHA)
    }
}

/// z-scores of one transaction, as [`PopulationStats::observe`] returns them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ZScores {
    /// z-score of `size_bytes`.
    pub size_z: f32,
    /// z-score of `sender_rate`.
    pub sender_rate_z: f32,
    /// z-score of `fee_per_byte`.
    pub fee_z: f32,
}

/// Running population statistics of the three quantities the `anomaly` features carry
/// z-scores of. The admission feature extractor owns one (behind a lock or per shard) and
/// calls [`PopulationStats::observe`] once per admitted transaction.
///
/// `sender_rate` is observed once per transaction, so the population is transaction-weighted:
/// a sender flooding the node shifts the statistics, but slowly (by `alpha` per transaction)
/// and only after its own transactions were scored against the old ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PopulationStats {
    /// Statistics of `size_bytes`.
    pub size: RunningStats,
    /// Statistics of `sender_rate`.
    pub sender_rate: RunningStats,
    /// Statistics of `fee_per_byte`.
    pub fee_per_byte: RunningStats,
}

impl PopulationStats {
    /// Three [`RunningStats`] that share the given settings.
    pub fn with_stats(stats: RunningStats) -> Self {
        Self {
            size: stats,
            sender_rate: stats,
            fee_per_byte: stats,
        }
    }

    /// The z-scores of one transaction against the statistics so far, then folds its values
    /// in.
    pub fn observe(&mut self, size_bytes: f64, sender_rate: f64, fee_per_byte: f64) -> ZScores {
        ZScores {
            size_z: self.size.observe(size_bytes) as f32,
            sender_rate_z: self.sender_rate.observe(sender_rate) as f32,
            fee_z: self.fee_per_byte.observe(fee_per_byte) as f32,
        }
    }

    /// The z-scores of one transaction without updating the statistics.
    pub fn z_scores(&self, size_bytes: f64, sender_rate: f64, fee_per_byte: f64) -> ZScores {
        ZScores {
            size_z: self.size.z_score(size_bytes) as f32,
            sender_rate_z: self.sender_rate.z_score(sender_rate) as f32,
            fee_z: self.fee_per_byte.z_score(fee_per_byte) as f32,
        }
    }
}

/// A standard normal draw (Box-Muller).
fn normal<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    let u1 = 1.0 - rng.random::<f32>(); // (0, 1]: ln never sees 0
    let u2 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// A realistic admission batch of `rows` transactions (at least one): mostly ordinary
/// traffic, with a few flooding senders (high rate) and oversized transactions. The z-scores
/// are consistent with the raw values against a fixed population (size 400 ± 200 bytes,
/// rate 2 ± 1.5 tx/s, fee density 20 ± 8).
pub fn sample<R: Rng + ?Sized>(rows: usize, rng: &mut R) -> FeatureMatrix {
    const SIZE: (f32, f32) = (400.0, 200.0);
    const RATE: (f32, f32) = (2.0, 1.5);
    const FEE: (f32, f32) = (20.0, 8.0);
    let rows = rows.max(1);
    let mut data = Vec::with_capacity(rows * FEATURE_COUNT);
    for _ in 0..rows {
        let kind: f32 = rng.random();
        let (size, rate) = if kind < 0.05 {
            // Flooding sender: small transactions at a high rate.
            (
                rng.random_range(100.0..300.0),
                rng.random_range(10.0..200.0),
            )
        } else if kind < 0.08 {
            // Oversized transaction.
            (
                rng.random_range(1_500.0..64_000.0),
                (RATE.0 + RATE.1 * normal(rng)).max(0.05),
            )
        } else {
            (
                (SIZE.0 + SIZE.1 * normal(rng)).clamp(100.0, 1_500.0),
                (RATE.0 + RATE.1 * normal(rng)).max(0.05),
            )
        };
        let fee_per_byte = (FEE.0 + FEE.1 * normal(rng)).max(1.0);
        let f = AnomalyFeatures {
            size_bytes: size.round(),
            sender_rate: rate,
            sender_rate_z: (rate - RATE.0) / RATE.1,
            size_z: (size.round() - SIZE.0) / SIZE.1,
            fee_per_byte,
            fee_z: (fee_per_byte - FEE.0) / FEE.1,
            nonce_gap: if rng.random_bool(0.95) {
                0.0
            } else {
                rng.random_range(1..10) as f32
            },
            sender_age_s: if kind < 0.05 {
                rng.random_range(0.0..60.0)
            } else {
                rng.random_range(0.0..3e7)
            },
        };
        data.extend_from_slice(&f.to_row());
    }
    FeatureMatrix::new(rows, FEATURE_COUNT, data)
        .expect("rows x FEATURE_COUNT values by construction")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn typical() -> AnomalyFeatures {
        AnomalyFeatures {
            size_bytes: 420.0,
            sender_rate: 2.2,
            sender_rate_z: 0.1,
            size_z: 0.1,
            fee_per_byte: 20.0,
            fee_z: 0.0,
            nonce_gap: 0.0,
            sender_age_s: 86_400.0,
        }
    }

    #[test]
    fn struct_columns_match_contract_names() {
        let c = contract();
        assert_eq!(c.feature_count(), FEATURE_COUNT);
        let f = AnomalyFeatures {
            size_bytes: 1.0,
            sender_rate: 2.0,
            sender_rate_z: 3.0,
            size_z: 4.0,
            fee_per_byte: 5.0,
            fee_z: 6.0,
            nonce_gap: 7.0,
            sender_age_s: 8.0,
        };
        let r = f.to_row();
        let by_name = [
            ("size_bytes", f.size_bytes),
            ("sender_rate", f.sender_rate),
            ("sender_rate_z", f.sender_rate_z),
            ("size_z", f.size_z),
            ("fee_per_byte", f.fee_per_byte),
            ("fee_z", f.fee_z),
            ("nonce_gap", f.nonce_gap),
            ("sender_age_s", f.sender_age_s),
        ];
        assert_eq!(by_name.len(), c.feature_count());
        for (name, v) in by_name {
            assert_eq!(r[c.feature_index(name).unwrap()], v, "column of `{name}`");
        }
        assert_eq!(c.feature_index("sender_rate_z"), Some(COL_SENDER_RATE_Z));
        assert_eq!(c.feature_index("size_z"), Some(COL_SIZE_Z));
        assert_eq!(AnomalyFeatures::from_row(&r), Some(f));
        let m = AnomalyFeatures::matrix(&[f]);
        assert_eq!(m.row(0).unwrap(), &r);
    }

    #[test]
    fn contract_and_info() {
        let c = contract();
        assert_eq!(c.schema_version, 1);
        assert_eq!(c.input_shape(), [-1, FEATURE_COUNT as i64]);
        assert_eq!(c.output_shape(), vec![-1]);
        let p = ZScoreRule::default();
        assert_eq!(p.info().name, "zscore-rule");
        assert_eq!(p.info().version, "1");
        assert_eq!(p.info().backend, BackendKind::Static);
        assert_eq!(p.info().slot, SlotKind::Anomaly);
        assert_eq!(p.info().schema_version, 1);
        assert_eq!(p.isolation(), Isolation::Inline);
    }

    #[test]
    fn typical_rows_are_normal_and_spam_is_anomalous() {
        let rule = ZScoreRule::default();
        let t = Thresholds::default();
        let spam = AnomalyFeatures {
            sender_rate: 150.0,
            sender_rate_z: 98.0,
            sender_age_s: 3.0,
            ..typical()
        };
        let huge = AnomalyFeatures {
            size_bytes: 60_000.0,
            size_z: 298.0,
            ..typical()
        };
        let m = AnomalyFeatures::matrix(&[typical(), spam, huge]);
        let s = rule.evaluate(&m, far()).unwrap();
        contract().validate_output(3, &s).unwrap();
        assert_eq!(t.classify(s[0]), AnomalyClass::Normal, "{}", s[0]);
        assert_eq!(t.classify(s[1]), AnomalyClass::Anomalous, "{}", s[1]);
        assert_eq!(t.classify(s[2]), AnomalyClass::Anomalous, "{}", s[2]);
        assert!(s[0] < 0.05);
        assert_eq!(rule.score_z(3.0, -1.0), 0.5);
        assert_eq!(t.classify(rule.score_z(3.0, 0.0)), AnomalyClass::Suspicious);
        assert_eq!(t.classify(rule.score_z(0.0, 4.0)), AnomalyClass::Anomalous);
    }

    #[test]
    fn monotone_in_both_z_scores_and_bounded() {
        let rule = ZScoreRule::default();
        let zs: Vec<f32> = (-100..=200).map(|v| v as f32 / 10.0).collect();
        for &other in &[-5.0, 0.0, 2.5, 4.0] {
            let mut prev_rate = -1.0f32;
            let mut prev_size = -1.0f32;
            for &z in &zs {
                let a = rule.score_z(z, other);
                let b = rule.score_z(other, z);
                assert!((0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b));
                assert!(a >= prev_rate && b >= prev_size, "not monotone at {z}");
                assert_eq!(a, b, "rate and size weigh the same");
                prev_rate = a;
                prev_size = b;
            }
        }
        for z in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            0.0,
            -0.0,
        ] {
            for w in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0] {
                let s = rule.score_z(z, w);
                assert!((0.0..=1.0).contains(&s), "{z} {w} -> {s}");
            }
        }
        assert_eq!(rule.score_z(f32::NAN, f32::NAN), rule.score_z(0.0, 0.0));
    }

    #[test]
    fn thresholds_classify_and_validate() {
        let t = Thresholds::default();
        assert_eq!(t.classify(0.0), AnomalyClass::Normal);
        assert_eq!(t.classify(0.4999), AnomalyClass::Normal);
        assert_eq!(t.classify(SUSPICIOUS_THRESHOLD), AnomalyClass::Suspicious);
        assert_eq!(t.classify(0.79), AnomalyClass::Suspicious);
        assert_eq!(t.classify(ANOMALOUS_THRESHOLD), AnomalyClass::Anomalous);
        assert_eq!(t.classify(1.0), AnomalyClass::Anomalous);
        assert_eq!(t.classify(f32::NAN), AnomalyClass::Suspicious);
        assert!(t.validate().is_ok());
        assert!(
            Thresholds {
                suspicious: 0.9,
                anomalous: 0.8
            }
            .validate()
            .is_err()
        );
        assert!(AnomalyClass::Normal < AnomalyClass::Suspicious);
        assert_eq!(AnomalyClass::Anomalous.as_str(), "anomalous");
    }

    #[test]
    fn params_are_validated() {
        assert!(
            ZScoreRule::with_params(ZScoreParams {
                steepness: 0.0,
                ..Default::default()
            })
            .is_err()
        );
        let lenient = ZScoreRule::with_params(ZScoreParams {
            midpoint: 5.0,
            steepness: 1.0,
        })
        .unwrap();
        assert!(lenient.score_z(4.0, 0.0) < ZScoreRule::default().score_z(4.0, 0.0));
    }

    #[test]
    fn samples_fit_the_contract_and_flag_a_minority() {
        let mut rng = SmallRng::seed_from_u64(13);
        let c = contract();
        let rule = ZScoreRule::default();
        for rows in [0, 1, 5] {
            let m = sample(rows, &mut rng);
            c.validate_input(&m).unwrap();
        }
        let m = sample(20_000, &mut rng);
        c.validate_input(&m).unwrap();
        let s = rule.evaluate(&m, far()).unwrap();
        c.validate_output(m.rows(), &s).unwrap();
        let flagged =
            s.iter().filter(|&&v| v >= SUSPICIOUS_THRESHOLD).count() as f32 / s.len() as f32;
        assert!(flagged > 0.05 && flagged < 0.15, "{flagged}");
    }

    #[test]
    fn wrong_width_is_an_error() {
        let m = FeatureMatrix::new(1, 2, vec![0.0; 2]).unwrap();
        assert!(ZScoreRule::default().evaluate(&m, far()).is_err());
    }

    #[test]
    fn running_stats_match_plain_mean_and_variance_while_warming_up() {
        let xs = [3.0, 7.0, 7.0, 19.0, -4.0, 0.5, 11.0, 2.0];
        let mut s = RunningStats::new(0.01);
        for &x in &xs {
            s.update(x);
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert_eq!(s.count(), xs.len() as u64);
        assert!((s.mean() - mean).abs() < 1e-12);
        assert!((s.variance() - var).abs() < 1e-9);
    }

    #[test]
    fn running_stats_follow_a_shift_and_forget() {
        let mut s = RunningStats::with_half_life(50.0);
        for _ in 0..1000 {
            s.update(10.0);
        }
        assert!((s.mean() - 10.0).abs() < 1e-9);
        assert!(s.variance() < 1e-9);
        for _ in 0..50 {
            s.update(20.0);
        }
        assert!(
            (s.mean() - 15.0).abs() < 0.1,
            "one half-life halfway: {}",
            s.mean()
        );
        for _ in 0..2000 {
            s.update(20.0);
        }
        assert!((s.mean() - 20.0).abs() < 1e-6);
    }

    #[test]
    fn z_scores_warm_up_floor_and_stay_finite() {
        let mut s = RunningStats::default().min_samples(10);
        for _ in 0..9 {
            assert_eq!(s.observe(5.0), 0.0, "warming up");
        }
        s.update(5.0);
        // No spread: the relative floor (0.25 * 5) applies.
        assert!((s.z_score(10.0) - 4.0).abs() < 1e-9);
        assert!((s.z_score(0.0) + 4.0).abs() < 1e-9);
        // Zero mean, zero spread, no floor: 0 rather than a division by zero.
        let mut flat = RunningStats::default().min_samples(0).std_floor(0.0, 0.0);
        flat.update(0.0);
        assert_eq!(flat.z_score(1.0), 0.0);
        // Huge values clamp.
        let mut tiny = RunningStats::default()
            .min_samples(0)
            .std_floor(1e-300, 0.0);
        tiny.update(0.0);
        assert_eq!(tiny.z_score(1e300), RunningStats::Z_LIMIT);
        assert!((tiny.z_score(-1e300) as f32).is_finite());
        // Non-finite values are ignored.
        let before = s;
        s.update(f64::NAN);
        s.update(f64::INFINITY);
        assert_eq!(s, before);
        assert_eq!(s.z_score(f64::NAN), 0.0);
        assert_eq!(s.z_score(f64::INFINITY), RunningStats::Z_LIMIT);
    }

    #[test]
    fn z_scores_are_monotone_and_standardised() {
        let mut rng = SmallRng::seed_from_u64(21);
        // No relative floor: the coefficient of variation (0.1) is below the default one.
        let mut s = RunningStats::new(0.0001).std_floor(1e-9, 0.0);
        for _ in 0..20_000 {
            s.update(f64::from(100.0 + 10.0 * normal(&mut rng)));
        }
        assert!((s.mean() - 100.0).abs() < 0.5, "{}", s.mean());
        assert!((s.std_dev() - 10.0).abs() < 0.5, "{}", s.std_dev());
        assert!((s.z_score(130.0) - 3.0).abs() < 0.2);
        let mut prev = f64::NEG_INFINITY;
        for x in (0..300).map(f64::from) {
            let z = s.z_score(x);
            assert!(z > prev);
            prev = z;
        }
    }

    #[test]
    fn population_stats_score_before_update() {
        let mut p = PopulationStats::with_stats(RunningStats::new(0.01).min_samples(5));
        let mut rng = SmallRng::seed_from_u64(2);
        for _ in 0..500 {
            let z = p.observe(
                f64::from(400.0 + 50.0 * normal(&mut rng)),
                f64::from(2.0 + 0.5 * normal(&mut rng)),
                f64::from(20.0 + 5.0 * normal(&mut rng)),
            );
            assert!(z.size_z.is_finite() && z.sender_rate_z.is_finite() && z.fee_z.is_finite());
        }
        let peek = p.z_scores(400.0, 100.0, 20.0);
        let z = p.observe(400.0, 100.0, 20.0);
        assert_eq!(peek, z);
        assert!(z.sender_rate_z > 50.0, "{}", z.sender_rate_z);
        assert!(z.size_z.abs() < 1.0);
        let f = AnomalyFeatures {
            sender_rate: 100.0,
            sender_rate_z: z.sender_rate_z,
            size_z: z.size_z,
            fee_z: z.fee_z,
            ..typical()
        };
        let score = ZScoreRule::default().score(&f);
        assert_eq!(
            Thresholds::default().classify(score),
            AnomalyClass::Anomalous
        );
    }
}

//! The `ordering` slot: scores the transactions of a batch; the proposer puts higher scores first.
//!
//! Input is one row per transaction (`f32[N, F]`, see [`OrderingFeatures`] for the columns),
//! output one score per row (`f32[N]`), higher first. The caller breaks ties between equal
//! scores by transaction hash and always keeps each sender's transactions in nonce order, so a
//! policy only scores: it never has to worry about nonces or determinism of ties.
//!
//! # Static policy: fee priority, then arrival (FIFO)
//!
//! [`FeePriority`] ranks the rows lexicographically by
//!
//! 1. the fee key, descending: the total `fee` by default ([`FeeKey::Fee`]), or `fee_per_byte`
//!    with [`FeeKey::FeePerByte`];
//! 2. `arrival_seq`, ascending (first come, first served).
//!
//! and answers rank-derived scores: a row whose key is the `r`-th best (0-based, counting
//! every row with a strictly better key) gets the score `N - r`. Scores are therefore in
//! `1..=N`, the best row gets `N`, and rows with identical `(fee key, arrival_seq)` get the
//! *same* score, so the caller's tie-break by hash applies to them. Any order the caller builds
//! by sorting on the score is exactly the lexicographic order above. Scores are exact integers
//! for `N < 2^24`; past that, rounding to `f32` can only merge neighbouring ranks into ties,
//! never invert two rows.
//!
//! The rule costs one key array of `N` entries and one `sort_unstable` of it: the two sort
//! keys are packed into a single `u64` whose integer order is the wanted order (total order of
//! `f32`, with `-0.0` read as `0.0`; a NaN fee sorts last, a NaN arrival latest).
//!
//! Contract output range: any finite value in `-1e9..=1e9` ([`SCORE_MIN`], [`SCORE_MAX`]);
//! only the order of the scores matters.

use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Feature, OutputLen, OutputSpec, Rows, SlotContract, SlotKind};
use crate::features::FeatureMatrix;
use crate::policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};

/// Number of features per transaction row.
pub const FEATURE_COUNT: usize = 9;

/// Smallest score a policy may answer.
pub const SCORE_MIN: f32 = -1e9;
/// Largest score a policy may answer.
pub const SCORE_MAX: f32 = 1e9;

/// Column of `fee`.
pub const COL_FEE: usize = 0;
/// Column of `fee_per_byte`.
pub const COL_FEE_PER_BYTE: usize = 1;
/// Column of `arrival_seq`.
pub const COL_ARRIVAL_SEQ: usize = 3;

/// `(name, unit, description)` of every column, in order.
const FEATURES: [(&str, &str, &str); FEATURE_COUNT] = [
    (
        "fee",
        "base_units",
        "Total fee the transaction offers, in the ledger's smallest currency unit.",
    ),
    (
        "fee_per_byte",
        "base_units/byte",
        "fee / size_bytes: the fee density of the transaction.",
    ),
    (
        "size_bytes",
        "bytes",
        "Encoded size of the signed transaction.",
    ),
    (
        "arrival_seq",
        "seq",
        "Admission sequence number relative to the oldest transaction in the mempool \
         (0 = oldest, strictly increasing with admission order). Kept relative so it stays \
         an exact integer in f32 (below 2^24).",
    ),
    (
        "sender_pending",
        "count",
        "Transactions of the same sender in the mempool, this one included.",
    ),
    (
        "nonce_gap",
        "count",
        "Nonce minus the sender's next executable nonce (0 = executable now).",
    ),
    (
        "accounts_touched",
        "count",
        "Distinct accounts the transaction declares it reads or writes.",
    ),
    (
        "hot_account_share",
        "ratio",
        "Share (0..1) of the touched accounts that are hot, i.e. also touched by other \
         transactions of the pending batch window; a proxy for execution conflicts.",
    ),
    ("age_ms", "ms", "Time since the transaction was admitted."),
];

/// The `ordering` slot's contract, schema version 1.
pub(crate) fn contract() -> SlotContract {
    SlotContract {
        slot: SlotKind::Ordering,
        schema_version: 1,
        description: "Scores the transactions of a batch; higher scores are proposed first.",
        called: "once per batch, by the proposer",
        rows: Rows::Batch,
        features: FEATURES
            .iter()
            .map(|&(name, unit, description)| Feature::new(name, unit, description))
            .collect(),
        output: OutputSpec {
            name: "score",
            len: OutputLen::PerRow,
            min: SCORE_MIN,
            max: SCORE_MAX,
            unit: "score",
            meaning: "Priority of each transaction, higher first; only the order matters. \
                      Ties are broken by transaction hash and each sender's nonce order is \
                      always kept, whatever the scores.",
        },
        default_deadline: Duration::from_millis(20),
    }
}

/// The features of one transaction, by name. [`OrderingFeatures::to_row`] lays them out in the
/// contract's column order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderingFeatures {
    /// Total fee offered, in base units.
    pub fee: f32,
    /// `fee / size_bytes`, in base units per byte.
    pub fee_per_byte: f32,
    /// Encoded size, in bytes.
    pub size_bytes: f32,
    /// Admission sequence number relative to the oldest pending transaction (0 = oldest).
    pub arrival_seq: f32,
    /// The sender's transactions in the mempool, this one included.
    pub sender_pending: f32,
    /// Nonce minus the sender's next executable nonce.
    pub nonce_gap: f32,
    /// Distinct accounts read or written.
    pub accounts_touched: f32,
    /// Share (0..1) of the touched accounts that are hot.
    pub hot_account_share: f32,
    /// Time since admission, in ms.
    pub age_ms: f32,
}

impl OrderingFeatures {
    /// The row in the contract's column order.
    pub fn to_row(&self) -> [f32; FEATURE_COUNT] {
        [
            self.fee,
            self.fee_per_byte,
            self.size_bytes,
            self.arrival_seq,
            self.sender_pending,
            self.nonce_gap,
            self.accounts_touched,
            self.hot_account_share,
            self.age_ms,
        ]
    }

    /// Reads a row laid out in the contract's column order; `None` unless it has exactly
    /// [`FEATURE_COUNT`] values.
    pub fn from_row(row: &[f32]) -> Option<Self> {
        let r: &[f32; FEATURE_COUNT] = row.try_into().ok()?;
        Some(Self {
            fee: r[0],
            fee_per_byte: r[1],
            size_bytes: r[2],
            arrival_seq: r[3],
            sender_pending: r[4],
            nonce_gap: r[5],
            accounts_touched: r[6],
            hot_account_share: r[7],
            age_ms: r[8],
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

/// Which fee the static rule ranks by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeKey {
    /// The total `fee` (the default): the best choice when blocks are limited by
    /// transaction count, as the `batch_size` slot sizes them.
    #[default]
    Fee,
    /// `fee_per_byte`: the best choice when blocks are limited by bytes.
    FeePerByte,
}

impl FeeKey {
    fn column(self) -> usize {
        match self {
            FeeKey::Fee => COL_FEE,
            FeeKey::FeePerByte => COL_FEE_PER_BYTE,
        }
    }
}

/// Parameters of [`FeePriority`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeePriorityParams {
    /// The fee column ranked first (descending); ties go to the earlier `arrival_seq`.
    pub key: FeeKey,
}

/// Static `ordering` policy: fee priority (descending), then arrival (FIFO). See the
/// [module docs](self) for the exact rule.
#[derive(Clone, Debug)]
pub struct FeePriority {
    info: PolicyInfo,
    params: FeePriorityParams,
}

impl FeePriority {
    /// The rule with its default parameters (rank by total fee).
    pub fn new() -> Self {
        Self::with_params(FeePriorityParams::default())
    }

    /// The rule with the given parameters.
    pub fn with_params(params: FeePriorityParams) -> Self {
        Self {
            info: PolicyInfo {
                name: "fee-priority".to_string(),
                version: "1".to_string(),
                backend: BackendKind::Static,
                slot: SlotKind::Ordering,
                schema_version: 1,
            },
            params,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &FeePriorityParams {
        &self.params
    }

    /// Scores the rows of `input` (which must have [`FEATURE_COUNT`] columns) into `out`,
    /// replacing its contents with one score per row.
    pub fn score_into(&self, input: &FeatureMatrix, out: &mut Vec<f32>) -> Result<(), PolicyError> {
        if input.cols() != FEATURE_COUNT {
            return Err(PolicyError::Failed(format!(
                "ordering expects {FEATURE_COUNT} features per row, got {}",
                input.cols()
            )));
        }
        let n = input.rows();
        if u32::try_from(n).is_err() {
            return Err(PolicyError::Failed(format!(
                "batch of {n} rows is too large"
            )));
        }
        let fee_col = self.params.key.column();
        let mut keys: Vec<(u64, u32)> = input
            .iter_rows()
            .enumerate()
            .map(|(i, row)| (sort_key(row[fee_col], row[COL_ARRIVAL_SEQ]), i as u32))
            .collect();
        keys.sort_unstable_by_key(|&(k, _)| k);

        out.clear();
        out.resize(n, 0.0);
        let mut group_start = 0usize;
        let mut prev_key = None;
        for (rank, &(key, idx)) in keys.iter().enumerate() {
            if prev_key != Some(key) {
                group_start = rank;
                prev_key = Some(key);
            }
            out[idx as usize] = (n - group_start) as f32;
        }
        Ok(())
    }
}

impl Default for FeePriority {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy for FeePriority {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> Isolation {
        Isolation::Inline
    }

    fn evaluate(&self, input: &FeatureMatrix, _deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        let mut out = Vec::new();
        self.score_into(input, &mut out)?;
        Ok(out)
    }
}

/// Maps an `f32` to a `u32` whose unsigned order is the `f32` total order, with `-0.0` read as
/// `0.0` and every NaN replaced by `nan_as`.
fn ordered_bits(x: f32, nan_as: f32) -> u32 {
    let x = if x.is_nan() { nan_as } else { x + 0.0 }; // `-0.0 + 0.0 == +0.0`
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// One `u64` whose ascending order is (fee descending, arrival ascending).
fn sort_key(fee: f32, arrival: f32) -> u64 {
    let fee = !ordered_bits(fee, f32::NEG_INFINITY);
    let arrival = ordered_bits(arrival, f32::INFINITY);
    (u64::from(fee) << 32) | u64::from(arrival)
}

/// A realistic batch of `rows` transactions (at least one), in admission order.
///
/// Fees are whole base units on a coarse grid, so equal fees (ties broken by arrival) are
/// common; `arrival_seq` increases strictly down the rows; a few senders have several
/// pending transactions and some transactions are not yet executable (`nonce_gap > 0`).
pub fn sample<R: Rng + ?Sized>(rows: usize, rng: &mut R) -> FeatureMatrix {
    let rows = rows.max(1);
    let start: u32 = rng.random_range(0..1_000);
    let ms_per_tx: f32 = rng.random_range(0.05..2.0);
    // Arrival gaps of 1 or 2: below 2^24 for any batch under ~8M rows.
    let mut seqs = Vec::with_capacity(rows);
    let mut seq = start;
    for _ in 0..rows {
        seqs.push(seq);
        seq = seq.saturating_add(rng.random_range(1..=2));
    }
    let newest = seq as f32;
    let mut data = Vec::with_capacity(rows * FEATURE_COUNT);
    for &s in &seqs {
        let size: u32 = if rng.random_bool(0.9) {
            rng.random_range(110..600)
        } else {
            rng.random_range(600..16_000)
        };
        // Fee densities cluster on a few price levels, as wallets quote them.
        let fee_per_byte_level: u32 = if rng.random_bool(0.7) {
            [1u32, 2, 5, 10][rng.random_range(0..4)]
        } else {
            rng.random_range(1..200)
        };
        let fee = (fee_per_byte_level * size) as f32;
        let sender_pending: u32 = if rng.random_bool(0.8) {
            1
        } else {
            rng.random_range(2..32)
        };
        let nonce_gap: u32 = if rng.random_bool(0.92) {
            0
        } else {
            rng.random_range(1..4)
        };
        let touched: u32 = rng.random_range(1..=8);
        let hot = rng.random_range(0..=touched);
        let row = OrderingFeatures {
            fee,
            fee_per_byte: fee / size as f32,
            size_bytes: size as f32,
            arrival_seq: s as f32,
            sender_pending: sender_pending as f32,
            nonce_gap: nonce_gap as f32,
            accounts_touched: touched as f32,
            hot_account_share: hot as f32 / touched as f32,
            age_ms: ((newest - s as f32) * ms_per_tx + rng.random::<f32>()).max(0.0),
        };
        data.extend_from_slice(&row.to_row());
    }
    FeatureMatrix::new(rows, FEATURE_COUNT, data)
        .expect("rows x FEATURE_COUNT values by construction")
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn score(policy: &FeePriority, m: &FeatureMatrix) -> Vec<f32> {
        let out = policy.evaluate(m, far()).unwrap();
        contract().validate_output(m.rows(), &out).unwrap();
        out
    }

    fn row(fee: f32, arrival: f32) -> OrderingFeatures {
        OrderingFeatures {
            fee,
            fee_per_byte: fee / 100.0,
            size_bytes: 100.0,
            arrival_seq: arrival,
            ..Default::default()
        }
    }

    /// Reference: a stable sort by (fee desc, arrival asc).
    fn reference_order(m: &FeatureMatrix, fee_col: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..m.rows()).collect();
        idx.sort_by(|&a, &b| {
            let (ra, rb) = (m.row(a).unwrap(), m.row(b).unwrap());
            rb[fee_col]
                .total_cmp(&ra[fee_col])
                .then(ra[COL_ARRIVAL_SEQ].total_cmp(&rb[COL_ARRIVAL_SEQ]))
        });
        idx
    }

    fn assert_matches_reference(m: &FeatureMatrix, scores: &[f32], fee_col: usize) {
        let order = reference_order(m, fee_col);
        for w in order.windows(2) {
            let (a, b) = (w[0], w[1]);
            let (ra, rb) = (m.row(a).unwrap(), m.row(b).unwrap());
            let same_key = ra[fee_col] == rb[fee_col] && ra[COL_ARRIVAL_SEQ] == rb[COL_ARRIVAL_SEQ];
            if same_key {
                assert_eq!(scores[a], scores[b], "equal keys must tie");
            } else {
                assert!(scores[a] > scores[b], "rows {a} and {b} out of order");
            }
        }
        // The best row scores N, every score is in 1..=N.
        assert_eq!(scores[order[0]], m.rows() as f32);
        assert!(scores.iter().all(|&s| s >= 1.0 && s <= m.rows() as f32));
    }

    #[test]
    fn struct_columns_match_contract_names() {
        let c = contract();
        assert_eq!(c.feature_count(), FEATURE_COUNT);
        let f = OrderingFeatures {
            fee: 1.0,
            fee_per_byte: 2.0,
            size_bytes: 3.0,
            arrival_seq: 4.0,
            sender_pending: 5.0,
            nonce_gap: 6.0,
            accounts_touched: 7.0,
            hot_account_share: 8.0,
            age_ms: 9.0,
        };
        let r = f.to_row();
        let by_name = [
            ("fee", f.fee),
            ("fee_per_byte", f.fee_per_byte),
            ("size_bytes", f.size_bytes),
            ("arrival_seq", f.arrival_seq),
            ("sender_pending", f.sender_pending),
            ("nonce_gap", f.nonce_gap),
            ("accounts_touched", f.accounts_touched),
            ("hot_account_share", f.hot_account_share),
            ("age_ms", f.age_ms),
        ];
        assert_eq!(by_name.len(), c.feature_count());
        for (name, v) in by_name {
            assert_eq!(r[c.feature_index(name).unwrap()], v, "column of `{name}`");
        }
        assert_eq!(c.feature_index("fee"), Some(COL_FEE));
        assert_eq!(c.feature_index("fee_per_byte"), Some(COL_FEE_PER_BYTE));
        assert_eq!(c.feature_index("arrival_seq"), Some(COL_ARRIVAL_SEQ));
        assert_eq!(OrderingFeatures::from_row(&r), Some(f));
        assert_eq!(OrderingFeatures::from_row(&r[1..]), None);
        let m = OrderingFeatures::matrix(&[f, f]);
        assert_eq!((m.rows(), m.cols()), (2, FEATURE_COUNT));
        assert_eq!(m.row(1).unwrap(), &r);
    }

    #[test]
    fn contract_is_well_formed() {
        let c = contract();
        assert_eq!(c.schema_version, 1);
        assert_eq!(c.input_shape(), [-1, FEATURE_COUNT as i64]);
        assert_eq!(c.output_shape(), vec![-1]);
        for f in &c.features {
            assert!(
                f.name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
                "{} is not snake_case",
                f.name
            );
            assert!(!f.description.is_empty() && !f.unit.is_empty());
        }
        let p = FeePriority::new();
        assert_eq!(p.info().name, "fee-priority");
        assert_eq!(p.info().version, "1");
        assert_eq!(p.info().backend, BackendKind::Static);
        assert_eq!(p.info().slot, SlotKind::Ordering);
        assert_eq!(p.info().schema_version, c.schema_version);
        assert_eq!(p.isolation(), Isolation::Inline);
    }

    #[test]
    fn samples_fit_the_contract() {
        let mut rng = SmallRng::seed_from_u64(7);
        let c = contract();
        for rows in [0, 1, 2, 17, 1000] {
            let m = sample(rows, &mut rng);
            c.validate_input(&m).unwrap();
            assert_eq!(m.rows(), rows.max(1));
        }
    }

    #[test]
    fn random_batches_follow_fee_then_arrival() {
        let mut rng = SmallRng::seed_from_u64(42);
        let total_fee = FeePriority::new();
        let density = FeePriority::with_params(FeePriorityParams {
            key: FeeKey::FeePerByte,
        });
        for rows in [1, 2, 3, 10, 257, 3000] {
            let m = sample(rows, &mut rng);
            assert_matches_reference(&m, &score(&total_fee, &m), COL_FEE);
            assert_matches_reference(&m, &score(&density, &m), COL_FEE_PER_BYTE);
        }
    }

    #[test]
    fn shuffled_arrivals_and_many_ties() {
        // Arrival not in row order, few distinct fees, some exact duplicates.
        let mut rng = SmallRng::seed_from_u64(3);
        let rows: Vec<OrderingFeatures> = (0..2000)
            .map(|_| {
                row(
                    rng.random_range(0..5) as f32 * 10.0,
                    rng.random_range(0..400) as f32,
                )
            })
            .collect();
        let m = OrderingFeatures::matrix(&rows);
        assert_matches_reference(&m, &score(&FeePriority::new(), &m), COL_FEE);
    }

    #[test]
    fn ties_share_a_score_and_fifo_breaks_equal_fees() {
        let m = OrderingFeatures::matrix(&[
            row(5.0, 3.0),
            row(9.0, 7.0),
            row(5.0, 1.0),
            row(5.0, 3.0),
            row(0.0, 0.0),
        ]);
        let s = score(&FeePriority::new(), &m);
        // Order: (9,7) > (5,1) > (5,3) = (5,3) > (0,0).
        assert_eq!(s, vec![3.0, 5.0, 4.0, 3.0, 1.0]);
    }

    #[test]
    fn single_row_and_signed_zero() {
        let p = FeePriority::new();
        assert_eq!(
            score(&p, &OrderingFeatures::matrix(&[row(0.0, 0.0)])),
            vec![1.0]
        );
        let s = score(
            &p,
            &OrderingFeatures::matrix(&[row(-0.0, 2.0), row(0.0, 1.0)]),
        );
        assert!(s[1] > s[0], "-0.0 and 0.0 are the same fee; FIFO decides");
        let s = score(
            &p,
            &OrderingFeatures::matrix(&[row(0.0, -0.0), row(0.0, 0.0)]),
        );
        assert_eq!(s[0], s[1]);
    }

    #[test]
    fn extreme_and_non_finite_values_do_not_panic() {
        let p = FeePriority::new();
        let m = OrderingFeatures::matrix(&[
            row(f32::MAX, f32::MAX),
            row(f32::MIN, -1e30),
            row(1e-40, 0.0),
            row(f32::NAN, 0.0),
            row(1.0, f32::NAN),
            row(1.0, 5.0),
            row(f32::INFINITY, 0.0),
        ]);
        let s = score(&p, &m);
        assert_eq!(s[6], 7.0, "infinite fee first");
        assert_eq!(s[0], 6.0);
        assert!(s[5] > s[4], "NaN arrival sorts latest");
        assert_eq!(s[3], 1.0, "NaN fee sorts last");
        assert!(s[2] > s[1] && s[1] > s[3]);
    }

    #[test]
    fn wrong_width_is_an_error_not_a_panic() {
        let m = FeatureMatrix::new(2, 3, vec![0.0; 6]).unwrap();
        assert!(FeePriority::new().evaluate(&m, far()).is_err());
        let empty = FeatureMatrix::new(0, FEATURE_COUNT, vec![]).unwrap();
        assert_eq!(
            FeePriority::new().evaluate(&empty, far()).unwrap(),
            Vec::<f32>::new()
        );
    }

    #[test]
    fn ten_thousand_rows_are_exact() {
        let mut rng = SmallRng::seed_from_u64(11);
        let m = sample(10_000, &mut rng);
        let s = score(&FeePriority::new(), &m);
        assert_matches_reference(&m, &s, COL_FEE);
        // Arrival seqs are distinct in samples, so every score is distinct.
        let mut sorted = s.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        assert!(
            sorted
                .windows(2)
                .all(|w| w[0].total_cmp(&w[1]) == Ordering::Less)
        );
    }

    #[test]
    fn deterministic() {
        let mut rng = SmallRng::seed_from_u64(5);
        let m = sample(500, &mut rng);
        let p = FeePriority::new();
        assert_eq!(
            p.evaluate(&m, far()).unwrap(),
            p.evaluate(&m, far()).unwrap()
        );
    }
}

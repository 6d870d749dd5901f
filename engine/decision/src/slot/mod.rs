//! The five decision slots and their contracts (`docs/CONTRACTS.md`, "Slots"; schema v1,
//! `leader_health` v2).
//!
//! A [`SlotContract`] is the whole agreement between the node and whatever answers a slot:
//! the feature schema (names, order, units, version), the input and output shapes, and the
//! output validation the host applies to every answer that does not come from the static
//! policy. Each slot's module also holds its static policy, the fallback that always stands
//! behind models and plugins, and a generator of realistic sample inputs used by the
//! conformance suite, the benchmarks and the demo.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::features::FeatureMatrix;
use crate::policy::Policy;

pub mod anomaly;
pub mod batch_size;
pub mod demand;
pub mod leader_health;
pub mod ordering;

/// One of the five decision slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    /// Orders the transactions of a batch.
    Ordering,
    /// Chooses the size of the next batch.
    BatchSize,
    /// Predicts the leader's failure probability.
    LeaderHealth,
    /// Scores transactions at admission.
    Anomaly,
    /// Forecasts demand for the next intervals.
    Demand,
}

impl SlotKind {
    /// All slots, in a fixed order.
    pub const ALL: [SlotKind; 5] = [
        SlotKind::Ordering,
        SlotKind::BatchSize,
        SlotKind::LeaderHealth,
        SlotKind::Anomaly,
        SlotKind::Demand,
    ];

    /// The slot's name as the CLI, the APIs and manifests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::Ordering => "ordering",
            SlotKind::BatchSize => "batch_size",
            SlotKind::LeaderHealth => "leader_health",
            SlotKind::Anomaly => "anomaly",
            SlotKind::Demand => "demand",
        }
    }

    /// The slot's contract.
    pub fn contract(self) -> &'static SlotContract {
        &CONTRACTS[self as usize]
    }

    /// A new instance of the slot's static policy with its default parameters.
    pub fn static_policy(self) -> Arc<dyn Policy> {
        match self {
            SlotKind::Ordering => Arc::new(ordering::FeePriority::new()),
            SlotKind::BatchSize => Arc::new(batch_size::QueueDepthRule::default()),
            SlotKind::LeaderHealth => Arc::new(leader_health::HeartbeatRule::default()),
            SlotKind::Anomaly => Arc::new(anomaly::ZScoreRule::default()),
            SlotKind::Demand => Arc::new(demand::Holt::default()),
        }
    }

    /// A realistic sample input with `rows` rows (slots that take a single row ignore
    /// `rows` and return one), drawn from `rng`.
    pub fn sample_input<R: Rng + ?Sized>(self, rows: usize, rng: &mut R) -> FeatureMatrix {
        match self {
            SlotKind::Ordering => ordering::sample(rows, rng),
            SlotKind::BatchSize => batch_size::sample(rng),
            SlotKind::LeaderHealth => leader_health::sample(rng),
            SlotKind::Anomaly => anomaly::sample(rows, rng),
            SlotKind::Demand => demand::sample(rng),
        }
    }
}

impl fmt::Display for SlotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SlotKind {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SlotKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| EngineError::UnknownSlot(s.to_string()))
    }
}

static CONTRACTS: LazyLock<[SlotContract; 5]> = LazyLock::new(|| {
    [
        ordering::contract(),
        batch_size::contract(),
        leader_health::contract(),
        anomaly::contract(),
        demand::contract(),
    ]
});

/// One input feature: a column of the slot's feature matrix.
#[derive(Clone, Debug, Serialize)]
pub struct Feature {
    /// Stable name, in snake_case.
    pub name: String,
    /// Unit (`"count"`, `"ms"`, `"bytes"`, `"tx/s"`, `"ratio"`, ...).
    pub unit: &'static str,
    /// What the value means and how it is computed.
    pub description: String,
}

impl Feature {
    pub(crate) fn new(
        name: impl Into<String>,
        unit: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            unit,
            description: description.into(),
        }
    }
}

/// How many rows a slot's input has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    /// Any number of rows, at least one (`f32[N, F]`, the batch axis is symbolic).
    Batch,
    /// Exactly one row (`f32[1, F]`).
    Single,
}

/// How long a slot's output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputLen {
    /// One value per input row.
    PerRow,
    /// A fixed number of values.
    Fixed(usize),
}

/// The output side of a slot's contract.
#[derive(Clone, Debug, Serialize)]
pub struct OutputSpec {
    /// Output name (e.g. `score`).
    pub name: &'static str,
    /// Its length.
    pub len: OutputLen,
    /// Smallest valid value (inclusive).
    pub min: f32,
    /// Largest valid value (inclusive).
    pub max: f32,
    /// Unit of the values.
    pub unit: &'static str,
    /// What the values mean and how the node uses them.
    pub meaning: &'static str,
}

/// Why an answer was refused by [`SlotContract::validate_output`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OutputFault {
    /// NaN or infinity at `index`.
    #[error("non-finite value at index {index}")]
    NonFinite {
        /// Position of the first bad value.
        index: usize,
    },
    /// The answer has the wrong number of values.
    #[error("expected {expected} values, got {got}")]
    WrongLength {
        /// Values expected.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A value outside the slot's range.
    #[error("value {value} at index {index} is outside {min}..={max}")]
    OutOfRange {
        /// Position of the first bad value.
        index: usize,
        /// The value.
        value: f32,
        /// Range start.
        min: f32,
        /// Range end.
        max: f32,
    },
}

/// The contract of one slot: what goes in, what comes out, and what counts as valid.
#[derive(Clone, Debug, Serialize)]
pub struct SlotContract {
    /// The slot.
    pub slot: SlotKind,
    /// Version of the feature schema; a model or plugin declares the version it was built for.
    pub schema_version: u32,
    /// One-line summary of the decision.
    pub description: &'static str,
    /// When the slot is consulted.
    pub called: &'static str,
    /// Input rows.
    pub rows: Rows,
    /// Input features, in column order.
    pub features: Vec<Feature>,
    /// Output.
    pub output: OutputSpec,
    /// Default per-decision deadline.
    #[serde(serialize_with = "serialize_micros")]
    pub default_deadline: Duration,
}

fn serialize_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros().try_into().unwrap_or(u64::MAX))
}

impl SlotContract {
    /// Number of features per row.
    pub fn feature_count(&self) -> usize {
        self.features.len()
    }

    /// Input shape, `-1` for the symbolic batch axis.
    pub fn input_shape(&self) -> [i64; 2] {
        let rows = match self.rows {
            Rows::Batch => -1,
            Rows::Single => 1,
        };
        [rows, self.features.len() as i64]
    }

    /// Output shape, `-1` for the batch axis.
    pub fn output_shape(&self) -> Vec<i64> {
        match self.output.len {
            OutputLen::PerRow => vec![-1],
            OutputLen::Fixed(1) => vec![1],
            OutputLen::Fixed(n) => vec![1, n as i64],
        }
    }

    /// Number of output values expected for an input of `rows` rows.
    pub fn output_len(&self, rows: usize) -> usize {
        match self.output.len {
            OutputLen::PerRow => rows,
            OutputLen::Fixed(n) => n,
        }
    }

    /// Checks that `input` fits this contract: right feature count, row count and finite values.
    pub fn validate_input(&self, input: &FeatureMatrix) -> Result<(), EngineError> {
        let bad = |reason: String| EngineError::InvalidInput {
            slot: self.slot,
            reason,
        };
        if input.cols() != self.features.len() {
            return Err(bad(format!(
                "expected {} features per row, got {}",
                self.features.len(),
                input.cols()
            )));
        }
        match self.rows {
            Rows::Batch if input.rows() == 0 => return Err(bad("the batch is empty".into())),
            Rows::Single if input.rows() != 1 => {
                return Err(bad(format!("expected exactly 1 row, got {}", input.rows())));
            }
            _ => {}
        }
        // A branch-free pass (it vectorises) says whether every value is finite; only a
        // refused input pays for finding the first bad one.
        let data = input.as_slice();
        if !data.iter().fold(true, |ok, v| ok & v.is_finite())
            && let Some(i) = data.iter().position(|v| !v.is_finite())
        {
            return Err(bad(format!(
                "non-finite value in row {} feature `{}`",
                i / self.features.len(),
                self.features[i % self.features.len()].name
            )));
        }
        Ok(())
    }

    /// Checks an answer for an input of `rows` rows: length, finiteness and range.
    pub fn validate_output(&self, rows: usize, output: &[f32]) -> Result<(), OutputFault> {
        let expected = self.output_len(rows);
        if output.len() != expected {
            return Err(OutputFault::WrongLength {
                expected,
                got: output.len(),
            });
        }
        let (min, max) = (self.output.min, self.output.max);
        // Fast path: one branch-free pass (NaN fails both comparisons); the loop below only
        // runs to name the first fault of an answer that has one.
        if output
            .iter()
            .fold(true, |ok, &v| ok & v.is_finite() & (v >= min) & (v <= max))
        {
            return Ok(());
        }
        for (index, &value) in output.iter().enumerate() {
            if !value.is_finite() {
                return Err(OutputFault::NonFinite { index });
            }
            if value < min || value > max {
                return Err(OutputFault::OutOfRange {
                    index,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }

    /// Position of the feature called `name`.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }
}

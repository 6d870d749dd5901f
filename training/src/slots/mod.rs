//! One trainer per learnable slot. Each draws its data from a seed, splits it into a
//! training part and a held-out part (by time or by series, never at random across one
//! stream, so the held-out rows are really unseen), fits, measures on the held-out part
//! against the slot's static policy where that comparison means something, and returns a
//! [`TrainedModel`] whose graph fits the slot contract.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use aurigraph_decision::SlotKind;

use crate::error::{Result, TrainingError};
use crate::manifest::{Manifest, Metric, TrainingInfo};
use crate::model::TrainedModel;

pub mod anomaly;
pub mod batch_size;
pub mod demand;
pub mod leader_health;
pub mod ordering;

/// How much data to train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// The shipped models (a few seconds per slot in release).
    Full,
    /// A tenth or less of it: for tests and a quick look (`--small`).
    Small,
}

/// What to train with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainConfig {
    /// Seed of every random choice (workloads, simulations, splits).
    pub seed: u64,
    /// How much data.
    pub scale: Scale,
}

impl TrainConfig {
    /// The full-size config with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            scale: Scale::Full,
        }
    }

    /// The small config with `seed`.
    pub fn small(seed: u64) -> Self {
        Self {
            seed,
            scale: Scale::Small,
        }
    }

    /// `full` at [`Scale::Full`], `small` otherwise.
    pub fn pick(&self, full: usize, small: usize) -> usize {
        match self.scale {
            Scale::Full => full,
            Scale::Small => small,
        }
    }

    /// The command that reproduces a model trained with this config.
    pub fn command(&self, slot: TrainableSlot) -> String {
        let small = if self.scale == Scale::Small {
            " --small"
        } else {
            ""
        };
        format!(
            "cargo run -p aurigraph-training --release -- train {slot} --seed {}{small} --out models",
            self.seed
        )
    }
}

/// A slot this crate trains a model for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrainableSlot {
    /// `ordering`: linear regression of the expected block value.
    Ordering,
    /// `anomaly`: logistic regression of injected spam and oversized transactions.
    Anomaly,
    /// `batch_size`: linear regression of the best batch size.
    BatchSize,
    /// `demand`: linear autoregression, one output per horizon.
    Demand,
    /// `leader_health`: logistic regression of an imminent leader crash, trained on recorded
    /// cluster telemetry ([`leader_health::train`], which needs the data folder); not in
    /// [`TrainableSlot::ALL`].
    LeaderHealth,
}

impl TrainableSlot {
    /// The slots trained from a seed, in the order `all` trains them (`all` then trains
    /// `leader_health` when its recorded data folder exists).
    pub const ALL: [TrainableSlot; 4] = [
        TrainableSlot::Anomaly,
        TrainableSlot::Ordering,
        TrainableSlot::BatchSize,
        TrainableSlot::Demand,
    ];

    /// The engine's slot.
    pub fn kind(self) -> SlotKind {
        match self {
            TrainableSlot::Ordering => SlotKind::Ordering,
            TrainableSlot::Anomaly => SlotKind::Anomaly,
            TrainableSlot::BatchSize => SlotKind::BatchSize,
            TrainableSlot::Demand => SlotKind::Demand,
            TrainableSlot::LeaderHealth => SlotKind::LeaderHealth,
        }
    }

    /// Trains this slot's model from the seed. `leader_health` has no seeded data: it is
    /// refused here; train it with [`leader_health::train`] on a recorded data folder.
    pub fn train(self, config: &TrainConfig) -> Result<TrainedModel> {
        match self {
            TrainableSlot::Ordering => ordering::train(config),
            TrainableSlot::Anomaly => anomaly::train(config),
            TrainableSlot::BatchSize => batch_size::train(config),
            TrainableSlot::Demand => demand::train(config),
            TrainableSlot::LeaderHealth => Err(TrainingError::Data(
                "leader_health trains on recorded cluster telemetry, not on a seed: \
                 `train leader_health --data DIR` (see training/README.md)"
                    .into(),
            )),
        }
    }
}

impl fmt::Display for TrainableSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind().as_str())
    }
}

impl FromStr for TrainableSlot {
    type Err = TrainingError;

    fn from_str(s: &str) -> Result<Self> {
        TrainableSlot::ALL
            .into_iter()
            .chain([TrainableSlot::LeaderHealth])
            .find(|t| t.kind().as_str() == s)
            .ok_or_else(|| {
                TrainingError::Data(format!(
                    "`{s}` is not a trainable slot (anomaly, ordering, batch_size, demand, \
                     leader_health)"
                ))
            })
    }
}

/// The parts of a manifest a trainer fills in.
pub(crate) struct ManifestParts<'a> {
    pub slot: TrainableSlot,
    pub name: &'a str,
    pub description: &'a str,
    pub algorithm: &'a str,
    pub data: &'a str,
    pub target: &'a str,
    pub metrics: BTreeMap<String, Metric>,
}

pub(crate) fn manifest(config: &TrainConfig, parts: ManifestParts<'_>) -> Manifest {
    let contract = parts.slot.kind().contract();
    let mut metrics = parts.metrics;
    metrics.insert("seed".into(), Metric::Count(config.seed));
    Manifest {
        name: parts.name.to_string(),
        slot: parts.slot.kind().as_str().to_string(),
        version: "1".to_string(),
        schema: contract.schema_version,
        file: "model.onnx".to_string(),
        input: crate::INPUT_NAME.to_string(),
        output: contract.output.name.to_string(),
        output_column: None,
        description: parts.description.to_string(),
        metrics,
        training: TrainingInfo {
            command: config.command(parts.slot),
            seed: config.seed,
            algorithm: parts.algorithm.to_string(),
            data: parts.data.to_string(),
            target: parts.target.to_string(),
        },
    }
}

/// Metadata written into the ONNX file (`metadata_props`).
pub(crate) fn metadata(config: &TrainConfig, slot: TrainableSlot) -> Vec<(String, String)> {
    let contract = slot.kind().contract();
    vec![
        ("slot".into(), slot.kind().as_str().into()),
        ("schema".into(), contract.schema_version.to_string()),
        (
            "features".into(),
            contract
                .features
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("seed".into(), config.seed.to_string()),
        ("command".into(), config.command(slot)),
    ]
}

/// Row-major `f64` copy of `f32` rows.
pub(crate) fn widen<const F: usize>(rows: &[[f32; F]]) -> Vec<f64> {
    rows.iter().flatten().map(|&v| f64::from(v)).collect()
}

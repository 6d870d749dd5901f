//! [`Manifest`]: the `model.toml` written next to each `model.onnx`.
//!
//! The fields are the models folder's contract (`docs/CONTRACTS.md`, "Models and plugins"; `models/README.md`):
//! `name`, `slot`, `version`, `schema` (the slot's feature-schema version), `file`, `input`,
//! `output`, optional `output_column`, `description`, then `[metrics]` (held-out evaluation,
//! the seed and row counts) and `[training]` (the command that made it, the seed, the
//! algorithm and the data). Nothing in it depends on the date or the machine, so the same
//! seed writes the same bytes.

use std::collections::BTreeMap;

use serde::Serialize;

/// One metric value: a number, or a short text (e.g. which baseline it is compared with).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Metric {
    /// A measured number, rounded to 6 significant digits.
    Number(f64),
    /// A count.
    Count(u64),
    /// A text.
    Text(String),
}

impl Metric {
    /// `v` rounded to 6 significant digits (the metrics are estimates; more digits are
    /// noise and make diffs unreadable).
    pub fn number(v: f64) -> Self {
        if v == 0.0 || !v.is_finite() {
            return Metric::Number(if v.is_finite() { 0.0 } else { f64::NAN });
        }
        let digits = 6 - 1 - v.abs().log10().floor() as i32;
        let scale = 10f64.powi(digits);
        Metric::Number((v * scale).round() / scale)
    }
}

/// How the model was made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainingInfo {
    /// The command that reproduces it, from the repository root.
    pub command: String,
    /// The seed.
    pub seed: u64,
    /// The learning algorithm.
    pub algorithm: String,
    /// Where the rows came from.
    pub data: String,
    /// What the model is trained to predict.
    pub target: String,
}

/// The `model.toml` of a trained model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Manifest {
    /// Model name (also the folder name).
    pub name: String,
    /// The slot it answers.
    pub slot: String,
    /// Model version.
    pub version: String,
    /// The slot's feature-schema version it was built for.
    pub schema: u32,
    /// The ONNX file, relative to the folder.
    pub file: String,
    /// Input tensor name.
    pub input: String,
    /// Output tensor name.
    pub output: String,
    /// Column of a 2-D per-row output to read (unused by the models trained here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_column: Option<u32>,
    /// What the model does.
    pub description: String,
    /// Held-out metrics, seed and row counts.
    pub metrics: BTreeMap<String, Metric>,
    /// How it was made.
    pub training: TrainingInfo,
}

impl Manifest {
    /// The manifest as TOML.
    pub fn to_toml(&self) -> crate::Result<String> {
        Ok(toml::to_string(self)?)
    }
}

//! # Aurigraph training
//!
//! Trains the models that ship in `models/`, one per learnable slot, from a seeded
//! workload, and exports them to ONNX from Rust, with a `model.toml` manifest carrying the
//! held-out metrics. One command makes all four, byte for byte the same for the same seed:
//!
//! ```text
//! cargo run -p aurigraph-training --release -- all --seed 42 --out models
//! ```
//!
//! ## How the parts fit
//!
//! - [`data`]: the training rows. [`data::Traffic`] runs the engine's workload generator
//!   (Zipf hot accounts, arrival patterns, injected spam and oversized transactions) through
//!   the engine's real admission, so `anomaly` and `ordering` rows are computed by the same
//!   code the node runs; `batch_size` and `demand` rows come from small documented
//!   simulations driven by the workload's arrival patterns.
//! - [`fit`]: linfa (`linfa-linear` OLS, `linfa-logistic` L-BFGS) on plain `f64` slices.
//! - [`onnx`]: the trained model as a [`onnx::Network`] (standardiser, dense layers,
//!   activations) and its ONNX export (opset 13, hand-written `prost` messages), plus a
//!   reference evaluator the tests check the bytes with.
//! - [`slots`]: one trainer per slot (`anomaly`, `ordering`, `batch_size`, `demand`): data,
//!   target, split, fit, metrics, manifest. `leader_health` trains on recorded chaos runs of a
//!   cluster instead of a seed ([`slots::leader_health`], `train leader_health --data DIR`).
//! - [`manifest`], [`metrics`], [`model`]: the `model.toml`, the evaluation metrics and the
//!   writing of a model folder.
//!
//! Every random choice is drawn from the engine's [`WorkloadRng`](aurigraph_ledger::workload::WorkloadRng)
//! (a fixed xoshiro256** seeded by BLAKE3 key derivation), so a seed names the same models
//! in every build. The exported graph always fits the slot contract
//! ([`aurigraph_decision::SlotContract`]): input `features` `f32[N, F]` (or `f32[1, F]` for
//! single-row slots), output named and shaped as the contract says, range enforced in the
//! graph (`Sigmoid`, `Clip`).

pub mod data;
pub mod error;
pub mod fit;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod retrain;
pub mod slots;

pub use error::{Result, TrainingError};
pub use model::{ModelFiles, TrainedModel};
pub use slots::{Scale, TrainConfig, TrainableSlot};

/// Input tensor name of every exported model.
pub const INPUT_NAME: &str = "features";

/// Trains `slot`'s model with `config` and writes it to `<out>/<name>/` (`model.onnx`,
/// `model.toml`): one step of `aurigraph-training all` and all of `aurigraph-training
/// train SLOT`, which call exactly this.
pub fn train_and_write(
    slot: TrainableSlot,
    config: &TrainConfig,
    out: &std::path::Path,
) -> Result<(TrainedModel, ModelFiles)> {
    let model = slot.train(config)?;
    let files = model.write(out)?;
    Ok((model, files))
}

/// Trains the `leader_health` model on the recorded runs under `data` and writes it to
/// `<out>/leader-health-logistic/`; `data_label` is how the folder is spelled in the
/// recorded command (see [`slots::leader_health::train`]).
pub fn train_leader_health_and_write(
    config: &TrainConfig,
    data: &std::path::Path,
    data_label: &str,
    out: &std::path::Path,
) -> Result<(TrainedModel, ModelFiles)> {
    let model = slots::leader_health::train(config, data, data_label)?;
    let files = model.write(out)?;
    Ok((model, files))
}

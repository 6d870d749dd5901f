//! `batch_size`: linear regression of the best batch size from the load row.
//!
//! Data: the latency simulation of [`crate::data::batch_sim`] (hidden consensus round and
//! per-transaction cost, observed conflict rate, latency goal, queue, arrival rate from the
//! workload's arrival patterns). Label: the largest batch that meets the latency goal, no
//! larger than the queue, inside the configured range. Random split: 75% train, 25% held out
//! (the rows are independent draws). The graph ends in `Clip(0, 1e7)`, the contract's range;
//! the node then rounds and clamps to its configured `min..=max`.
//!
//! Metrics on the held-out rows: R² and MAE of the model, and the MAE of the static
//! queue-depth rule against the same label (the rule moves step by step from the current
//! size, so a single-step comparison is harsh on it; it is reported for scale, not as a
//! verdict).

use std::collections::BTreeMap;

use aurigraph_decision::slot::batch_size::{QueueDepthRule, TARGET_MAX};

use super::{ManifestParts, TrainConfig, TrainableSlot, manifest, metadata, widen};
use crate::data::batch_sim::cases;
use crate::error::Result;
use crate::manifest::Metric;
use crate::metrics::{mae, r2};
use crate::model::TrainedModel;
use crate::onnx::{Activation, BatchAxis, Dense, ExportSpec, Network, OutputShape, Standardizer};

/// Trains the `batch_size` model.
pub fn train(config: &TrainConfig) -> Result<TrainedModel> {
    let slot = TrainableSlot::BatchSize;
    let contract = slot.kind().contract();
    let f = contract.feature_count();
    let n = config.pick(40_000, 4_000);
    let data = cases(config.seed, n);
    let split = n * 3 / 4;
    let rows: Vec<_> = data.iter().map(|c| c.features.to_row()).collect();
    let y: Vec<f64> = data.iter().map(|c| c.label).collect();
    let x = widen(&rows);
    let (x_train, x_test) = x.split_at(split * f);
    let (y_train, y_test) = y.split_at(split);

    let standardizer = Standardizer::fit(x_train, f);
    let (w, b) = crate::fit::linear(&standardizer.apply(x_train), f, y_train)?;
    let clip = Activation::Clip {
        min: 0.0,
        max: TARGET_MAX,
    };
    let network = Network {
        standardizer: Some(standardizer),
        layers: vec![Dense::new(f, 1, &w, &[b], clip)?],
    };
    let pred = network.predict(x_test);
    // What the node does with an answer: clamp to the configured range.
    let clamped: Vec<f64> = pred
        .iter()
        .zip(&data[split..])
        .map(|(p, c)| {
            p.max(f64::from(c.features.min_batch_size))
                .min(f64::from(c.features.max_batch_size))
        })
        .collect();
    let rule = QueueDepthRule::default();
    let static_pred: Vec<f64> = data[split..]
        .iter()
        .map(|c| f64::from(rule.target(&c.features)))
        .collect();

    let mut m = BTreeMap::new();
    m.insert("r2".into(), Metric::number(r2(y_test, &pred)));
    m.insert("mae".into(), Metric::number(mae(y_test, &pred)));
    m.insert("r2_clamped".into(), Metric::number(r2(y_test, &clamped)));
    m.insert("mae_clamped".into(), Metric::number(mae(y_test, &clamped)));
    m.insert(
        "static_mae".into(),
        Metric::number(mae(y_test, &static_pred)),
    );
    m.insert("static_r2".into(), Metric::number(r2(y_test, &static_pred)));
    m.insert("rows_train".into(), Metric::Count(split as u64));
    m.insert("rows_test".into(), Metric::Count((n - split) as u64));

    let spec = ExportSpec {
        graph_name: "batch_size_linear".into(),
        input: crate::INPUT_NAME.into(),
        output: contract.output.name.into(),
        batch: BatchAxis::One,
        output_shape: OutputShape::PerRow,
        doc: "Linear regression of the best batch size, clipped to the contract range.".into(),
        metadata: metadata(config, slot),
    };
    let manifest = manifest(
        config,
        ManifestParts {
            slot,
            name: "batch-size-linear",
            description: "Linear regression on the 8 batch_size features (standardised in the \
                          graph), clipped to 0..1e7: the largest batch that meets the latency \
                          goal without exceeding the queue, in transactions.",
            algorithm: "linfa-linear 0.8 ordinary least squares, features standardised",
            data: &format!(
                "the documented block-latency simulation (training/src/data/batch_sim.rs), \
                 seed {}, {n} rows; 75% train, 25% held out",
                config.seed
            ),
            target: "clamp(min((target_latency - round) / (exec * (1 + conflict_rate)), \
                     queue_depth), min_batch_size, max_batch_size)",
            metrics: m,
        },
    );
    Ok(TrainedModel {
        network,
        spec,
        manifest,
    })
}

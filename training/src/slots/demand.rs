//! `demand`: linear autoregression of the next [`HORIZON`] interval rates on the last
//! [`WINDOW`], one least-squares model per horizon, exported as one `Gemm` with a
//! `[WINDOW, HORIZON]` weight matrix followed by `Clip(0, 1e9)` (the contract's range).
//!
//! Data: arrival-rate series drawn from the workload's arrival patterns
//! ([`crate::data::arrivals`]: steady, diurnal, bursts, Poisson counting noise). Every
//! position of a series gives one row (the 32 past rates, the 8 next). Split by series: the
//! first 75% of the series train, the rest are held out, so no held-out interval was seen.
//!
//! Metrics on the held-out rows, for the model and for the static Holt smoothing: MAE (tx/s)
//! and MAPE (%, over intervals of at least 1 tx/s), averaged over the 8 horizons, and at the
//! first and last horizon.

use std::collections::BTreeMap;

use aurigraph_decision::slot::demand::{FORECAST_MAX, HORIZON, Holt, WINDOW};

use super::{ManifestParts, TrainConfig, TrainableSlot, manifest, metadata};
use crate::data::arrivals::series;
use crate::error::{Result, TrainingError};
use crate::manifest::Metric;
use crate::metrics::{mae, mape};
use crate::model::TrainedModel;
use crate::onnx::{Activation, BatchAxis, Dense, ExportSpec, Network, OutputShape, Standardizer};

/// Length of each generated series, in intervals.
pub const SERIES_LEN: usize = 240;

/// Rows `(x: WINDOW past rates, y: HORIZON next rates)` of a set of series, row-major.
fn rows(all: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for s in all {
        for t in WINDOW..=s.len() - HORIZON {
            x.extend_from_slice(&s[t - WINDOW..t]);
            y.extend_from_slice(&s[t..t + HORIZON]);
        }
    }
    (x, y)
}

/// Column `h` of a row-major `? x HORIZON` matrix.
fn column(y: &[f64], h: usize) -> Vec<f64> {
    y.chunks_exact(HORIZON).map(|r| r[h]).collect()
}

/// Trains the `demand` model.
pub fn train(config: &TrainConfig) -> Result<TrainedModel> {
    let slot = TrainableSlot::Demand;
    let contract = slot.kind().contract();
    debug_assert_eq!(contract.feature_count(), WINDOW);
    let count = config.pick(400, 120);
    let all = series(config.seed, count, SERIES_LEN);
    let cut = count * 3 / 4;
    let (x_train, y_train) = rows(&all[..cut]);
    let (x_test, y_test) = rows(&all[cut..]);
    if x_test.is_empty() {
        return Err(TrainingError::Data("no held-out demand rows".into()));
    }

    let standardizer = Standardizer::fit(&x_train, WINDOW);
    let xs = standardizer.apply(&x_train);
    let mut weights = vec![0.0f64; WINDOW * HORIZON];
    let mut bias = vec![0.0f64; HORIZON];
    for h in 0..HORIZON {
        let (w, b) = crate::fit::linear(&xs, WINDOW, &column(&y_train, h))?;
        for (i, wi) in w.iter().enumerate() {
            weights[i * HORIZON + h] = *wi;
        }
        bias[h] = b;
    }
    let clip = Activation::Clip {
        min: 0.0,
        max: FORECAST_MAX,
    };
    let network = Network {
        standardizer: Some(standardizer),
        layers: vec![Dense::new(WINDOW, HORIZON, &weights, &bias, clip)?],
    };
    let pred = network.predict(&x_test);
    let holt = Holt::default();
    let holt_pred: Vec<f64> = x_test
        .chunks_exact(WINDOW)
        .flat_map(|w| {
            let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            holt.forecast(&w32).map(f64::from)
        })
        .collect();

    let mut m = BTreeMap::new();
    for (who, p) in [("model", &pred), ("holt", &holt_pred)] {
        m.insert(format!("{who}_mae"), Metric::number(mae(&y_test, p)));
        m.insert(
            format!("{who}_mape_pct"),
            Metric::number(mape(&y_test, p, 1.0)),
        );
        for h in [0, HORIZON - 1] {
            let (t, q) = (column(&y_test, h), column(p, h));
            m.insert(format!("{who}_mae_h{}", h + 1), Metric::number(mae(&t, &q)));
            m.insert(
                format!("{who}_mape_pct_h{}", h + 1),
                Metric::number(mape(&t, &q, 1.0)),
            );
        }
    }
    m.insert(
        "rows_train".into(),
        Metric::Count((x_train.len() / WINDOW) as u64),
    );
    m.insert(
        "rows_test".into(),
        Metric::Count((x_test.len() / WINDOW) as u64),
    );
    m.insert("series_train".into(), Metric::Count(cut as u64));
    m.insert("series_test".into(), Metric::Count((count - cut) as u64));

    let spec = ExportSpec {
        graph_name: "demand_autoregression".into(),
        input: crate::INPUT_NAME.into(),
        output: contract.output.name.into(),
        batch: BatchAxis::One,
        output_shape: OutputShape::Row,
        doc: "Linear autoregression: next 8 interval rates from the last 32.".into(),
        metadata: metadata(config, slot),
    };
    let manifest = manifest(
        config,
        ManifestParts {
            slot,
            name: "demand-autoregression",
            description: "Linear autoregression: the arrival rate of each of the next 8 \
                          intervals from the last 32 (one least-squares model per horizon, \
                          one Gemm with a [32, 8] weight matrix), clipped to 0..1e9 tx/s.",
            algorithm: "linfa-linear 0.8 ordinary least squares per horizon, inputs standardised",
            data: &format!(
                "{count} series of {SERIES_LEN} one-second intervals from the workload's \
                 arrival patterns (training/src/data/arrivals.rs), seed {}; first 75% of the \
                 series train, last 25% held out",
                config.seed
            ),
            target: "the arrival rate of each of the next 8 intervals (tx/s)",
            metrics: m,
        },
    );
    Ok(TrainedModel {
        network,
        spec,
        manifest,
    })
}

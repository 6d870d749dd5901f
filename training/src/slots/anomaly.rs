//! `anomaly`: logistic regression of "injected anomaly" on the admission feature row.
//!
//! Data: the `spam-attack` workload preset (Zipf 0.8 recipients, steady 1,000 tx/s, 20% spam
//! in bursts of 50 from 4 senders, 1% oversized, 2% replays, 1% bad signatures, 1%
//! malformed) admitted by the engine's admission ([`Traffic`]). Label: spam or oversized
//! (the injected anomalies that pass admission; replays, bad signatures and malformed bytes
//! are refused before any slot sees them) against normal. Split by time: the first 75% of
//! admitted transactions train, the last 25% are held out. Features are standardised in the
//! graph; the output is `Sigmoid`, so it is a probability in `0..=1`.
//!
//! Metrics on the held-out part: ROC AUC, precision and recall at the slot's thresholds
//! (0.5 suspicious, 0.8 anomalous), for the model and for the static z-score rule.

use std::collections::BTreeMap;

use aurigraph_decision::slot::anomaly::{ANOMALOUS_THRESHOLD, SUSPICIOUS_THRESHOLD, ZScoreRule};
use aurigraph_ledger::workload::{Label, Preset};

use super::{ManifestParts, TrainConfig, TrainableSlot, manifest, metadata, widen};
use crate::data::Traffic;
use crate::error::Result;
use crate::manifest::Metric;
use crate::metrics::{auc, precision_recall};
use crate::model::TrainedModel;
use crate::onnx::{Activation, BatchAxis, Dense, ExportSpec, Network, OutputShape, Standardizer};

/// L2 penalty of the logistic regression.
pub const ALPHA: f64 = 0.1;

/// Trains the `anomaly` model.
pub fn train(config: &TrainConfig) -> Result<TrainedModel> {
    let slot = TrainableSlot::Anomaly;
    let contract = slot.kind().contract();
    let f = contract.feature_count();
    let events = config.pick(60_000, 6_000);
    let traffic = Traffic::admit(Preset::SpamAttack.config(config.seed), events)?;
    let rows: Vec<_> = traffic.rows.iter().map(|r| r.features.to_row()).collect();
    let labels: Vec<bool> = traffic
        .rows
        .iter()
        .map(|r| matches!(r.label, Label::Spam | Label::Oversized))
        .collect();
    let split = rows.len() * 3 / 4;
    let x = widen(&rows);
    let (x_train, x_test) = x.split_at(split * f);
    let (y_train, y_test) = labels.split_at(split);

    let standardizer = Standardizer::fit(x_train, f);
    let (w, b) = crate::fit::logistic(&standardizer.apply(x_train), f, y_train, ALPHA, 300)?;
    let network = Network {
        standardizer: Some(standardizer),
        layers: vec![Dense::new(f, 1, &w, &[b], Activation::Sigmoid)?],
    };

    let p = network.predict(x_test);
    let rule = ZScoreRule::default();
    let s: Vec<f64> = rows[split..]
        .iter()
        .map(|r| {
            f64::from(rule.score_z(
                r[aurigraph_decision::slot::anomaly::COL_SENDER_RATE_Z],
                r[aurigraph_decision::slot::anomaly::COL_SIZE_Z],
            ))
        })
        .collect();
    let mut m = BTreeMap::new();
    let (t1, t2) = (
        f64::from(SUSPICIOUS_THRESHOLD),
        f64::from(ANOMALOUS_THRESHOLD),
    );
    for (who, scores) in [("model", &p), ("static", &s)] {
        m.insert(format!("{who}_auc"), Metric::number(auc(y_test, scores)));
        for (tag, t) in [("0_5", t1), ("0_8", t2)] {
            let (prec, rec) = precision_recall(y_test, scores, t);
            m.insert(format!("{who}_precision_at_{tag}"), Metric::number(prec));
            m.insert(format!("{who}_recall_at_{tag}"), Metric::number(rec));
        }
    }
    m.insert("rows_train".into(), Metric::Count(split as u64));
    m.insert(
        "rows_test".into(),
        Metric::Count((rows.len() - split) as u64),
    );
    m.insert(
        "positive_share_test".into(),
        Metric::number(y_test.iter().filter(|&&l| l).count() as f64 / y_test.len().max(1) as f64),
    );
    m.insert("events".into(), Metric::Count(traffic.events as u64));
    m.insert(
        "refused_at_admission".into(),
        Metric::Count(traffic.refused as u64),
    );

    let spec = ExportSpec {
        graph_name: "anomaly_logistic".into(),
        input: crate::INPUT_NAME.into(),
        output: contract.output.name.into(),
        batch: BatchAxis::Symbolic,
        output_shape: OutputShape::PerRow,
        doc: "Logistic regression: P(injected spam or oversized) from the admission row.".into(),
        metadata: metadata(config, slot),
    };
    let manifest = manifest(
        config,
        ManifestParts {
            slot,
            name: "anomaly-logistic",
            description: "Logistic regression on the 8 admission features (standardised in \
                          the graph): the probability that a transaction is injected spam or \
                          oversized, in 0..1.",
            algorithm: "linfa-logistic 0.8 (L-BFGS, L2 alpha 0.1), features standardised",
            data: &format!(
                "workload preset spam-attack, seed {}, {events} events through the engine's \
                 admission; first 75% of admitted transactions train, last 25% held out",
                config.seed
            ),
            target: "label spam or oversized (1) vs normal (0)",
            metrics: m,
        },
    );
    Ok(TrainedModel {
        network,
        spec,
        manifest,
    })
}

//! `ordering`: linear regression of each transaction's expected value to the block.
//!
//! # Data
//!
//! Two workload presets admitted by the engine's admission ([`Traffic`]): `hot-accounts`
//! (Zipf 1.2 recipients: heavy contention) and `spam-attack` (Zipf 0.8, spam bursts paying
//! the minimum fee), half the events each. The admitted transactions are cut, in admission
//! order, into candidate windows of 32..512 (what the batcher scores at once); each window's
//! rows are the engine's own [`ordering_features`] (hot share within the window, ages at the
//! window's close, per-sender pending count and nonce gap within the window). Split by
//! window: the first 75% of each preset's windows train, the rest are held out.
//!
//! # Target: expected value to the block
//!
//! ```text
//! value = fee_per_byte * (1 - CONFLICT_RISK * hot_account_share)   fee density, discounted
//!       + AGE_VALUE_PER_MS * age_ms                                 waiting time, anti-starvation
//! ```
//!
//! A transaction all of whose accounts are hot in the window is re-executed by the
//! optimistic executor with probability about [`CONFLICT_RISK`] when it is placed early, so its
//! fee density is discounted by that risk: the model learns to push conflict-prone
//! transactions back behind clean ones of similar fee. A second of waiting is worth
//! [`AGE_VALUE_PER_MS`] `* 1000` base units per byte, so cheap transactions are not starved.
//! The product `fee_per_byte * hot_account_share` is not linear in the features: a linear
//! model approximates it, and the held-out R² says how well.
//!
//! Metrics on the held-out windows: R² against the target, and the share of pairs within a
//! window the model orders as the target does, next to the same share for the static
//! fee-priority rule.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::Duration;

use aurigraph_decision::slot::ordering::{FeePriority, OrderingFeatures};
use aurigraph_ledger::batcher::ordering_features;
use aurigraph_ledger::mempool::ReadyTx;
use aurigraph_ledger::workload::Preset;
use rand::Rng;

use super::{ManifestParts, TrainConfig, TrainableSlot, manifest, metadata, widen};
use crate::data::traffic::AdmittedRow;
use crate::data::{Traffic, rng};
use crate::error::{Result, TrainingError};
use crate::manifest::Metric;
use crate::metrics::{pairwise_agreement, r2};
use crate::model::TrainedModel;
use crate::onnx::{Activation, BatchAxis, Dense, ExportSpec, Network, OutputShape, Standardizer};

/// Probability that a fully hot transaction is re-executed when placed early.
pub const CONFLICT_RISK: f64 = 0.6;
/// Value of one millisecond of waiting, in base units per byte.
pub const AGE_VALUE_PER_MS: f64 = 0.0002;

/// A window of admitted transactions as the mempool would hand it to the batcher: per sender
/// within the window, its pending count and each transaction's nonce gap from the sender's
/// lowest nonce.
pub fn ready_window(window: &[AdmittedRow]) -> Vec<ReadyTx> {
    let mut per_sender: HashMap<_, (usize, u64)> = HashMap::new();
    for w in window {
        let t = w.tx.tx.tx();
        let e = per_sender.entry(t.sender).or_insert((0, u64::MAX));
        e.0 += 1;
        e.1 = e.1.min(t.nonce);
    }
    window
        .iter()
        .map(|w| {
            let t = w.tx.tx.tx();
            let (pending, lowest) = per_sender[&t.sender];
            ReadyTx {
                tx: w.tx.clone(),
                sender_pending: pending,
                nonce_gap: t.nonce - lowest,
            }
        })
        .collect()
}

/// The target of one feature row (see the module docs).
pub fn target(f: &OrderingFeatures) -> f64 {
    f64::from(f.fee_per_byte) * (1.0 - CONFLICT_RISK * f64::from(f.hot_account_share))
        + AGE_VALUE_PER_MS * f64::from(f.age_ms)
}

/// The feature rows of `traffic` cut into windows: `(rows, window ranges)`.
fn windows(
    traffic: &Traffic,
    seed: u64,
    purpose: &str,
) -> (Vec<OrderingFeatures>, Vec<Range<usize>>) {
    let mut r = rng(seed, purpose);
    let mut rows = Vec::with_capacity(traffic.rows.len());
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < traffic.rows.len() {
        let len = r.random_range(32..=512).min(traffic.rows.len() - start);
        let window = &traffic.rows[start..start + len];
        let ready = ready_window(window);
        let close = window[len - 1].at + Duration::from_millis(1);
        let begin = rows.len();
        rows.extend(ordering_features(&ready, traffic.epoch + close));
        ranges.push(begin..rows.len());
        start += len;
    }
    (rows, ranges)
}

/// Trains the `ordering` model.
pub fn train(config: &TrainConfig) -> Result<TrainedModel> {
    let slot = TrainableSlot::Ordering;
    let contract = slot.kind().contract();
    let f = contract.feature_count();
    let events = config.pick(40_000, 4_000);

    let mut train_rows = Vec::new();
    let mut test_rows = Vec::new();
    let mut test_groups = Vec::new();
    for (i, preset) in [Preset::HotAccounts, Preset::SpamAttack]
        .into_iter()
        .enumerate()
    {
        let traffic = Traffic::admit(preset.config(config.seed + i as u64), events / 2)?;
        let (rows, ranges) = windows(&traffic, config.seed, preset.name());
        let cut = ranges.len() * 3 / 4;
        if cut == 0 || cut == ranges.len() {
            return Err(TrainingError::Data("too few ordering windows".into()));
        }
        let split = ranges[cut].start;
        train_rows.extend_from_slice(&rows[..split]);
        let base = test_rows.len();
        test_rows.extend_from_slice(&rows[split..]);
        test_groups.extend(
            ranges[cut..]
                .iter()
                .map(|g| g.start - split + base..g.end - split + base),
        );
    }
    let as_rows = |v: &[OrderingFeatures]| v.iter().map(|r| r.to_row()).collect::<Vec<_>>();
    let (x_train, x_test) = (widen(&as_rows(&train_rows)), widen(&as_rows(&test_rows)));
    let y_train: Vec<f64> = train_rows.iter().map(target).collect();
    let y_test: Vec<f64> = test_rows.iter().map(target).collect();

    let standardizer = Standardizer::fit(&x_train, f);
    let (w, b) = crate::fit::linear(&standardizer.apply(&x_train), f, &y_train)?;
    let network = Network {
        standardizer: Some(standardizer),
        layers: vec![Dense::new(f, 1, &w, &[b], Activation::Identity)?],
    };
    let pred = network.predict(&x_test);

    // The static rule's scores, window by window (its scores are ranks within a window).
    let rule = FeePriority::new();
    let mut static_scores = vec![0.0f64; test_rows.len()];
    let mut buf = Vec::new();
    for g in &test_groups {
        let m = OrderingFeatures::matrix(&test_rows[g.clone()]);
        rule.score_into(&m, &mut buf)
            .map_err(|e| TrainingError::Data(e.to_string()))?;
        for (k, s) in g.clone().zip(&buf) {
            static_scores[k] = f64::from(*s);
        }
    }

    let mut m = BTreeMap::new();
    m.insert("r2".into(), Metric::number(r2(&y_test, &pred)));
    m.insert(
        "pairwise_agreement_model".into(),
        Metric::number(pairwise_agreement(&y_test, &pred, &test_groups)),
    );
    m.insert(
        "pairwise_agreement_static".into(),
        Metric::number(pairwise_agreement(&y_test, &static_scores, &test_groups)),
    );
    m.insert("rows_train".into(), Metric::Count(train_rows.len() as u64));
    m.insert("rows_test".into(), Metric::Count(test_rows.len() as u64));
    m.insert(
        "windows_test".into(),
        Metric::Count(test_groups.len() as u64),
    );

    let spec = ExportSpec {
        graph_name: "ordering_linear".into(),
        input: crate::INPUT_NAME.into(),
        output: contract.output.name.into(),
        batch: BatchAxis::Symbolic,
        output_shape: OutputShape::PerRow,
        doc: "Linear regression of the expected value to the block; higher first.".into(),
        metadata: metadata(config, slot),
    };
    let manifest = manifest(
        config,
        ManifestParts {
            slot,
            name: "ordering-linear",
            description: "Linear regression on the 9 ordering features (standardised in the \
                          graph): the expected value of a transaction to the block, its fee \
                          density discounted by its conflict risk, plus an ageing term. Higher \
                          scores are proposed first.",
            algorithm: "linfa-linear 0.8 ordinary least squares, features standardised",
            data: &format!(
                "workload presets hot-accounts (seed {s}) and spam-attack (seed {s1}), \
                 {half} events each through the engine's admission, cut into candidate \
                 windows of 32..512; first 75% of windows train, last 25% held out",
                s = config.seed,
                s1 = config.seed + 1,
                half = events / 2
            ),
            target: "fee_per_byte * (1 - 0.6 * hot_account_share) + 0.0002 * age_ms",
            metrics: m,
        },
    );
    Ok(TrainedModel {
        network,
        spec,
        manifest,
    })
}

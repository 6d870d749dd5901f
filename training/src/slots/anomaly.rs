//! `anomaly`: logistic regression of "injected anomaly" on the admission feature row.
//!
//! Data: the `adversarial-spam` workload preset (sybil spam that mimics honest fees and
//! sizes at a low per-sender rate, honest bursts, honest newcomers, replay waves; see
//! [`Preset::AdversarialSpam`]) on the training seeds `seed..seed + 4`, and `spam-attack`
//! (classic floods from 4 senders, oversized transactions) on `seed`, each admitted by the
//! engine's admission ([`Traffic`]). Label: spam or oversized (the injected anomalies that
//! pass admission; replays, bad signatures and malformed bytes are refused before any slot
//! sees them) against normal. Training uses every row; the headline metrics leave out the
//! rows of the first [`WARM_UP`] of each evaluation run, when every sender is new and the
//! running statistics warm up (a long-running node is past that), and the `*_all_rows`
//! metrics keep them (a node's cold start).
//!
//! Held out: whole runs on the evaluation seeds [`EVAL_SEEDS`] (never trained on): the
//! `adversarial-spam` runs give the main metrics (`model_*`, `static_*`), `spam-attack` on
//! the first evaluation seed the `*_spam_attack` ones. Features are standardised in the
//! graph; the output is `Sigmoid`, a probability in `0..=1`.
//!
//! Metrics: ROC AUC, recall at a false-positive rate of at most 1% (`recall_at_fpr_1pct`),
//! precision, recall and false-positive rate at the slot's thresholds (0.5 suspicious, 0.8
//! anomalous), for the model and for the static z-score rule.

use std::collections::BTreeMap;
use std::time::Duration;

use aurigraph_decision::slot::anomaly::{
    ANOMALOUS_THRESHOLD, COL_SENDER_RATE_Z, COL_SIZE_Z, SUSPICIOUS_THRESHOLD, ZScoreRule,
};
use aurigraph_ledger::workload::{Label, Preset};

use super::{ManifestParts, TrainConfig, TrainableSlot, manifest, metadata, widen};
use crate::data::Traffic;
use crate::error::Result;
use crate::manifest::Metric;
use crate::metrics::{auc, false_positive_rate, precision_recall, recall_at_fpr};
use crate::model::TrainedModel;
use crate::onnx::{Activation, BatchAxis, Dense, ExportSpec, Network, OutputShape, Standardizer};

/// L2 penalty of the logistic regression.
pub const ALPHA: f64 = 0.1;
/// Training seeds: `seed..seed + TRAIN_SEEDS` (42..=45 for the shipped model).
pub const TRAIN_SEEDS: u64 = 4;
/// Evaluation seeds, never trained on.
pub const EVAL_SEEDS: [u64; 3] = [1001, 1002, 1003];
/// Workload time at the start of each run whose rows are not used.
pub const WARM_UP: Duration = Duration::from_secs(10);
/// False-positive budget of the `recall_at_fpr_1pct` metric.
pub const MAX_FPR: f64 = 0.01;

/// Rows, labels and whether the row comes after [`WARM_UP`], of one admitted run.
type Run = (Vec<[f32; 8]>, Vec<bool>, Vec<bool>);

/// The rows of one admitted run (see [`Run`]).
fn run(preset: Preset, seed: u64, events: usize) -> Result<Run> {
    let traffic = Traffic::admit(preset.config(seed), events)?;
    let (mut rows, mut labels, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    for r in &traffic.rows {
        rows.push(r.features.to_row());
        labels.push(matches!(r.label, Label::Spam | Label::Oversized));
        warm.push(r.at >= WARM_UP);
    }
    Ok((rows, labels, warm))
}

/// The rows of `run` after [`WARM_UP`].
fn warmed(run: &Run) -> (Vec<[f32; 8]>, Vec<bool>) {
    let (rows, labels, warm) = run;
    rows.iter()
        .zip(labels)
        .zip(warm)
        .filter(|(_, w)| **w)
        .map(|((r, l), _)| (*r, *l))
        .unzip()
}

/// The static rule's scores of `rows`.
fn static_scores(rows: &[[f32; 8]]) -> Vec<f64> {
    let rule = ZScoreRule::default();
    rows.iter()
        .map(|r| f64::from(rule.score_z(r[COL_SENDER_RATE_Z], r[COL_SIZE_Z])))
        .collect()
}

/// Inserts the held-out metrics of `scores` under `{who}_*{suffix}`.
fn measure(
    m: &mut BTreeMap<String, Metric>,
    who: &str,
    suffix: &str,
    labels: &[bool],
    scores: &[f64],
) {
    let (t1, t2) = (
        f64::from(SUSPICIOUS_THRESHOLD),
        f64::from(ANOMALOUS_THRESHOLD),
    );
    m.insert(
        format!("{who}_auc{suffix}"),
        Metric::number(auc(labels, scores)),
    );
    m.insert(
        format!("{who}_recall_at_fpr_1pct{suffix}"),
        Metric::number(recall_at_fpr(labels, scores, MAX_FPR).0),
    );
    for (tag, t) in [("0_5", t1), ("0_8", t2)] {
        let (prec, rec) = precision_recall(labels, scores, t);
        m.insert(
            format!("{who}_precision_at_{tag}{suffix}"),
            Metric::number(prec),
        );
        m.insert(
            format!("{who}_recall_at_{tag}{suffix}"),
            Metric::number(rec),
        );
        m.insert(
            format!("{who}_fpr_at_{tag}{suffix}"),
            Metric::number(false_positive_rate(labels, scores, t)),
        );
    }
}

/// Trains the `anomaly` model.
pub fn train(config: &TrainConfig) -> Result<TrainedModel> {
    let slot = TrainableSlot::Anomaly;
    let contract = slot.kind().contract();
    let f = contract.feature_count();
    let events = config.pick(60_000, 20_000);
    // Rows start after the 10 s warm-up: a small run still needs a few seconds past it.
    let attack_events = config.pick(30_000, 15_000);
    let train_seeds = config.pick(TRAIN_SEEDS as usize, 1) as u64;
    let eval_seeds = &EVAL_SEEDS[..config.pick(EVAL_SEEDS.len(), 1)];

    // Training uses every row, the cold start included: a model that learned only from
    // warmed-up rows flags most senders of a node's first seconds (they are all new).
    let (mut rows, mut labels, _) = run(Preset::SpamAttack, config.seed, attack_events)?;
    for s in config.seed..config.seed + train_seeds {
        let (r, l, _) = run(Preset::AdversarialSpam, s, events)?;
        rows.extend(r);
        labels.extend(l);
    }
    let x_train = widen(&rows);
    let standardizer = Standardizer::fit(&x_train, f);
    let (w, b) = crate::fit::logistic(&standardizer.apply(&x_train), f, &labels, ALPHA, 300)?;
    let network = Network {
        standardizer: Some(standardizer),
        layers: vec![Dense::new(f, 1, &w, &[b], Activation::Sigmoid)?],
    };

    let mut m = BTreeMap::new();
    let (mut test_rows, mut y_test) = (Vec::new(), Vec::new());
    let (mut all_rows, mut y_all) = (Vec::new(), Vec::new());
    for &s in eval_seeds {
        let r = run(Preset::AdversarialSpam, s, events)?;
        let (w, l) = warmed(&r);
        test_rows.extend(w);
        y_test.extend(l);
        all_rows.extend(r.0);
        y_all.extend(r.1);
    }
    let attack = run(Preset::SpamAttack, eval_seeds[0], attack_events)?;
    let (attack_rows, y_attack) = warmed(&attack);
    for (suffix, r, y) in [
        ("", &test_rows, &y_test),
        ("_all_rows", &all_rows, &y_all),
        ("_spam_attack", &attack_rows, &y_attack),
        ("_spam_attack_all_rows", &attack.0, &attack.1),
    ] {
        measure(&mut m, "model", suffix, y, &network.predict(&widen(r)));
        measure(&mut m, "static", suffix, y, &static_scores(r));
    }
    m.insert("rows_train".into(), Metric::Count(rows.len() as u64));
    m.insert("rows_test".into(), Metric::Count(test_rows.len() as u64));
    m.insert(
        "positive_share_test".into(),
        Metric::number(y_test.iter().filter(|&&l| l).count() as f64 / y_test.len().max(1) as f64),
    );
    m.insert("events_per_run".into(), Metric::Count(events as u64));
    m.insert("train_seed_first".into(), Metric::Count(config.seed));
    m.insert(
        "train_seed_last".into(),
        Metric::Count(config.seed + train_seeds - 1),
    );
    m.insert("eval_seed_first".into(), Metric::Count(eval_seeds[0]));
    m.insert(
        "eval_seed_last".into(),
        Metric::Count(eval_seeds[eval_seeds.len() - 1]),
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
    let last = config.seed + train_seeds - 1;
    let manifest = manifest(
        config,
        ManifestParts {
            slot,
            name: "anomaly-logistic",
            description: "Logistic regression on the 8 admission features (standardised in \
                          the graph): the probability that a transaction is injected spam or \
                          oversized (sybils included), in 0..1.",
            algorithm: "linfa-logistic 0.8 (L-BFGS, L2 alpha 0.1), features standardised",
            data: &format!(
                "workload presets adversarial-spam (seeds {}..={last}, {events} events each) \
                 and spam-attack (seed {}, {} events) through the engine's admission, every \
                 row; held out: adversarial-spam on seeds 1001..=1003 and spam-attack on seed \
                 1001 (metrics `*_spam_attack`), rows after the first 10 s of each run \
                 (`*_all_rows`: every row)",
                config.seed, config.seed, attack_events
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

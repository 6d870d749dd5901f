//! `leader_health`: logistic regression of "this leader crashes within [`HORIZON_MS`]" on the
//! slot's schema-2 row, trained on recorded chaos runs of a real cluster.
//!
//! Unlike the other slots there is no seeded source: the rows only exist in the telemetry of
//! a running cluster. The data folder holds one folder per recorded run, `DIR/<run>/`, each
//! with:
//!
//! - `node-<id>.csv`: that node's `aurigraph telemetry export --format csv --slot
//!   leader_health` (the 12 leading columns, the 18 feature columns of schema 2, `value`),
//!   read with [`read_slot_csv`], which refuses another schema's header;
//! - `events.json`: `{"scenario": "...", "crashes": [{"node": 1, "at_ms": ..., "kind":
//!   "kill"}], "faults": [...]}` (`at_ms` in ms since the Unix epoch; `crashes` may be
//!   empty; other fields are ignored).
//!
//! Label: a row of node `N` scored by the leader itself (`self_scored` = 1) is positive when
//! `N` has a crash at `c` with `c - HORIZON_MS <= at_ms < c`, negative otherwise. Rows a
//! follower scored (`self_scored` = 0) describe the follower, not the leader: they are not
//! trained on, only counted (`follower_rows`). Records without features (digest-only
//! telemetry) are counted (`rows_without_features`) and skipped.
//!
//! Split by run, never inside one: the runs sorted by folder name, every
//! [`HOLD_OUT_EVERY`]-th (the 4th, 8th, ...) is held out, the others train. Fit:
//! `linfa-logistic` (L-BFGS, L2 [`ALPHA`]) on standardised features; the graph is
//! `Sub/Div -> Gemm -> Sigmoid -> Reshape`, `f32[1, 18]` in, `f32[1]` out.
//!
//! Held-out metrics: ROC AUC, recall and false-positive rate at 0.5 and 0.8 for the model and
//! for the static [`HeartbeatRule`] on the same rows, and per held-out crash the lead time:
//! ms from the row at which the model's probability has been `>= 0.8` for 2 consecutive rows
//! of the crashing node (the alert) to the crash. No alert before the crash: no `lead_ms_*`
//! key (a miss; `crashes_detected_test` counts the others).
//!
//! The fit is deterministic (no random draw: the seed is recorded, not used); the runs, nodes
//! and rows are read in sorted order, so the same folder writes the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use aurigraph_decision::slot::leader_health::{FEATURE_COUNT, HeartbeatRule, LeaderHealthFeatures};

use super::{ManifestParts, TrainConfig, TrainableSlot, manifest, metadata};
use crate::data::telemetry::{TelemetryRow, read_slot_csv};
use crate::error::{Result, TrainingError};
use crate::manifest::Metric;
use crate::metrics::auc;
use crate::model::TrainedModel;
use crate::onnx::{Activation, BatchAxis, Dense, ExportSpec, Network, OutputShape, Standardizer};

/// A row is positive when its node crashes within this many ms after it.
pub const HORIZON_MS: u64 = 3000;
/// Every this-many-th run (sorted by name, 1-based) is held out.
pub const HOLD_OUT_EVERY: usize = 4;
/// L2 penalty of the logistic regression.
pub const ALPHA: f64 = 0.1;
/// Probability above which the lead time counts an alert.
pub const ALERT_THRESHOLD: f64 = 0.8;
/// Consecutive rows at or above [`ALERT_THRESHOLD`] that raise the alert.
pub const ALERT_ROWS: usize = 2;
/// The data folder `all` reads, relative to the workspace root.
pub const DEFAULT_DATA: &str = "training/data/leader_health";
/// Column of `self_scored` in the row.
const COL_SELF_SCORED: usize = FEATURE_COUNT - 1;

/// A crash recorded in `events.json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Crash {
    /// The node that crashed.
    pub node: u64,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// How (`kill`, ...); informative only.
    #[serde(default)]
    pub kind: String,
}

/// `events.json` of a run (other fields are ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Events {
    /// The chaos scenario's name.
    #[serde(default)]
    pub scenario: String,
    /// The crashes, possibly none.
    #[serde(default)]
    pub crashes: Vec<Crash>,
}

/// One recorded run: its events and each node's rows, sorted by time.
#[derive(Clone, Debug)]
pub struct RecordedRun {
    /// The folder name.
    pub name: String,
    /// Its `events.json`.
    pub events: Events,
    /// Rows by node id, each sorted by `(at_ms, height, seq)`.
    pub nodes: BTreeMap<u64, Vec<TelemetryRow>>,
}

/// Reads every run folder under `dir`, sorted by name.
pub fn read_runs(dir: &Path) -> Result<Vec<RecordedRun>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainingError::Io { path, source }
    };
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            folders.push(path);
        }
    }
    folders.sort();
    let mut runs = Vec::with_capacity(folders.len());
    for folder in folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let events_path = folder.join("events.json");
        let text = std::fs::read_to_string(&events_path).map_err(io(&events_path))?;
        let events: Events = serde_json::from_str(&text)
            .map_err(|e| TrainingError::Data(format!("{}: {e}", events_path.display())))?;
        let mut nodes = BTreeMap::new();
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .map_err(io(&folder))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::result::Result<_, _>>()
            .map_err(io(&folder))?;
        files.sort();
        for file in files {
            let Some(id) = file
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("node-"))
                .and_then(|n| n.strip_suffix(".csv"))
            else {
                continue;
            };
            let id: u64 = id.parse().map_err(|_| {
                TrainingError::Data(format!(
                    "{}: the node id is not a number (expected `node-<id>.csv`)",
                    file.display()
                ))
            })?;
            let reader = std::io::BufReader::new(std::fs::File::open(&file).map_err(io(&file))?);
            let mut rows = read_slot_csv(reader, aurigraph_decision::SlotKind::LeaderHealth)
                .map_err(|e| TrainingError::Data(format!("{}: {e}", file.display())))?;
            rows.sort_by_key(|r| (r.at_ms, r.height, r.seq, r.row));
            nodes.insert(id, rows);
        }
        if nodes.is_empty() {
            return Err(TrainingError::Data(format!(
                "{}: no `node-<id>.csv` in the run folder",
                folder.display()
            )));
        }
        runs.push(RecordedRun {
            name,
            events,
            nodes,
        });
    }
    if runs.is_empty() {
        return Err(TrainingError::Data(format!(
            "{}: no run folders",
            dir.display()
        )));
    }
    Ok(runs)
}

/// A row the leader scored itself, with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledRow {
    /// Index of its run in the sorted runs.
    pub run: usize,
    /// The node that recorded it.
    pub node: u64,
    /// Its `at_ms`.
    pub at_ms: u64,
    /// The features, in schema order.
    pub features: [f32; FEATURE_COUNT],
    /// Whether the node crashes within [`HORIZON_MS`] after it.
    pub label: bool,
}

/// The labelled rows of a set of runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labelled {
    /// Rows with `self_scored` = 1, in run, node and time order.
    pub rows: Vec<LabelledRow>,
    /// Rows a follower scored (not trained on).
    pub follower_rows: usize,
    /// Records without features (digest-only telemetry).
    pub without_features: usize,
}

/// Whether `at_ms` is within [`HORIZON_MS`] before one of `crashes` of `node`.
pub fn is_positive(crashes: &[Crash], node: u64, at_ms: u64) -> bool {
    crashes
        .iter()
        .any(|c| c.node == node && at_ms < c.at_ms && at_ms >= c.at_ms.saturating_sub(HORIZON_MS))
}

/// Labels the rows of `runs`.
pub fn label(runs: &[RecordedRun]) -> Result<Labelled> {
    let mut out = Labelled::default();
    for (i, run) in runs.iter().enumerate() {
        for (&node, rows) in &run.nodes {
            for r in rows {
                let Some(f) = &r.features else {
                    out.without_features += 1;
                    continue;
                };
                let features: [f32; FEATURE_COUNT] = f.as_slice().try_into().map_err(|_| {
                    TrainingError::Shape(format!("{} features, expected {FEATURE_COUNT}", f.len()))
                })?;
                if features[COL_SELF_SCORED] < 0.5 {
                    out.follower_rows += 1;
                    continue;
                }
                if let Some(v) = features.iter().find(|v| !v.is_finite()) {
                    return Err(TrainingError::NonFinite(format!(
                        "run {}, node {node}, at_ms {}: {v}",
                        run.name, r.at_ms
                    )));
                }
                out.rows.push(LabelledRow {
                    run: i,
                    node,
                    at_ms: r.at_ms,
                    features,
                    label: is_positive(&run.events.crashes, node, r.at_ms),
                });
            }
        }
    }
    Ok(out)
}

/// Whether the run at `index` (0-based, in name order) is held out: the 4th, 8th, ...
pub fn is_held_out(index: usize) -> bool {
    index % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1
}

/// Recall and false-positive rate of `score >= threshold`.
pub fn recall_fpr(labels: &[bool], scores: &[f64], threshold: f64) -> (f64, f64) {
    let (mut tp, mut fneg, mut fp, mut tn) = (0usize, 0usize, 0usize, 0usize);
    for (&l, &s) in labels.iter().zip(scores) {
        match (s >= threshold, l) {
            (true, true) => tp += 1,
            (false, true) => fneg += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
        }
    }
    let ratio = |a: usize, b: usize| {
        if a + b == 0 {
            0.0
        } else {
            a as f64 / (a + b) as f64
        }
    };
    (ratio(tp, fneg), ratio(fp, tn))
}

/// The command that reproduces a model trained on `data` (as the user spelled it).
pub fn command(config: &TrainConfig, data: &str) -> String {
    format!(
        "cargo run -p aurigraph-training --release -- train leader_health --data {data} --seed {} \
         --out models",
        config.seed
    )
}

/// A metric key for a run name: characters other than ASCII letters, digits, `_` and `-`
/// become `_`.
fn key_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Trains the `leader_health` model on the runs under `data`; `data_label` is how the folder
/// is named in the recorded command (e.g. `training/data/leader_health`).
pub fn train(config: &TrainConfig, data: &Path, data_label: &str) -> Result<TrainedModel> {
    let slot = TrainableSlot::LeaderHealth;
    let contract = slot.kind().contract();
    let f = contract.feature_count();
    debug_assert_eq!(f, FEATURE_COUNT);
    let runs = read_runs(data)?;
    if runs.len() < HOLD_OUT_EVERY {
        return Err(TrainingError::Data(format!(
            "{} runs under {}: at least {HOLD_OUT_EVERY} are needed to hold one out",
            runs.len(),
            data.display()
        )));
    }
    let labelled = label(&runs)?;
    let (train_rows, test_rows): (Vec<&LabelledRow>, Vec<&LabelledRow>) =
        labelled.rows.iter().partition(|r| !is_held_out(r.run));
    if test_rows.is_empty() {
        return Err(TrainingError::Data(
            "no self-scored rows in the held-out runs".into(),
        ));
    }
    let widen = |rows: &[&LabelledRow]| -> Vec<f64> {
        rows.iter()
            .flat_map(|r| r.features.iter().map(|&v| f64::from(v)))
            .collect()
    };
    let x_train = widen(&train_rows);
    let x_test = widen(&test_rows);
    let y_train: Vec<bool> = train_rows.iter().map(|r| r.label).collect();
    let y_test: Vec<bool> = test_rows.iter().map(|r| r.label).collect();

    let standardizer = Standardizer::fit(&x_train, f);
    let (w, b) = crate::fit::logistic(&standardizer.apply(&x_train), f, &y_train, ALPHA, 300)?;
    let network = Network {
        standardizer: Some(standardizer),
        layers: vec![Dense::new(f, 1, &w, &[b], Activation::Sigmoid)?],
    };

    let p = network.predict(&x_test);
    let rule = HeartbeatRule::default();
    let s: Vec<f64> = test_rows
        .iter()
        .map(|r| {
            // `features` is a `[f32; FEATURE_COUNT]`: `from_row` always reads it.
            let row = LeaderHealthFeatures::from_row(&r.features).unwrap_or_default();
            f64::from(rule.probability(&row))
        })
        .collect();

    let mut m = BTreeMap::new();
    for (who, scores) in [("model", &p), ("static", &s)] {
        m.insert(format!("{who}_auc"), Metric::number(auc(&y_test, scores)));
        for (tag, t) in [("0_5", 0.5), ("0_8", 0.8)] {
            let (recall, fpr) = recall_fpr(&y_test, scores, t);
            m.insert(format!("{who}_recall_at_{tag}"), Metric::number(recall));
            m.insert(format!("{who}_fpr_at_{tag}"), Metric::number(fpr));
        }
    }
    let count = |v: usize| Metric::Count(v as u64);
    m.insert("rows_train".into(), count(train_rows.len()));
    m.insert("rows_test".into(), count(test_rows.len()));
    m.insert(
        "positives_train".into(),
        count(y_train.iter().filter(|&&l| l).count()),
    );
    m.insert(
        "positives_test".into(),
        count(y_test.iter().filter(|&&l| l).count()),
    );
    m.insert("follower_rows".into(), count(labelled.follower_rows));
    m.insert(
        "rows_without_features".into(),
        count(labelled.without_features),
    );
    m.insert("horizon_ms".into(), Metric::Count(HORIZON_MS));
    let names = |held: bool| -> Vec<&str> {
        runs.iter()
            .enumerate()
            .filter(|(i, _)| is_held_out(*i) == held)
            .map(|(_, r)| r.name.as_str())
            .collect()
    };
    let (runs_train, runs_test) = (names(false), names(true));
    m.insert("runs_train".into(), Metric::Text(runs_train.join(",")));
    m.insert("runs_test".into(), Metric::Text(runs_test.join(",")));

    // Lead time per held-out crash of a node that scored itself before it.
    let (mut crashes_test, mut detected) = (0usize, 0usize);
    for (i, run) in runs.iter().enumerate().filter(|(i, _)| is_held_out(*i)) {
        let mut crashes = run.events.crashes.clone();
        crashes.sort_by_key(|c| (c.at_ms, c.node));
        let mut scored = Vec::new();
        for c in &crashes {
            let since = crashes
                .iter()
                .filter(|o| o.node == c.node && o.at_ms < c.at_ms)
                .map(|o| o.at_ms)
                .max()
                .unwrap_or(0);
            let series: Vec<(u64, f64)> = test_rows
                .iter()
                .zip(&p)
                .filter(|(r, _)| r.run == i && r.node == c.node)
                .filter(|(r, _)| r.at_ms >= since && r.at_ms < c.at_ms)
                .map(|(r, &p)| (r.at_ms, p))
                .collect();
            if series.is_empty() {
                continue;
            }
            let alert = series
                .windows(ALERT_ROWS)
                .find(|w| w.iter().all(|&(_, p)| p >= ALERT_THRESHOLD))
                .map(|w| w[ALERT_ROWS - 1].0);
            scored.push(alert.map(|at| c.at_ms - at));
        }
        crashes_test += scored.len();
        for (k, lead) in scored.iter().enumerate() {
            let Some(lead) = lead else { continue };
            detected += 1;
            let key = if scored.len() == 1 {
                format!("lead_ms_{}", key_part(&run.name))
            } else {
                format!("lead_ms_{}_{}", key_part(&run.name), k + 1)
            };
            m.insert(key, Metric::Count(*lead));
        }
    }
    m.insert("crashes_test".into(), count(crashes_test));
    m.insert("crashes_detected_test".into(), count(detected));

    let per_run: Vec<String> = runs
        .iter()
        .map(|r| {
            let nodes: Vec<String> = r
                .nodes
                .iter()
                .map(|(id, rows)| format!("node-{id} {}", rows.len()))
                .collect();
            format!(
                "{} ({}, {} crashes: {})",
                r.name,
                if r.events.scenario.is_empty() {
                    "no scenario"
                } else {
                    &r.events.scenario
                },
                r.events.crashes.len(),
                nodes.join(", ")
            )
        })
        .collect();
    let data_text = format!(
        "recorded chaos runs in {data_label} (telemetry export rows per node): {}; runs sorted \
         by name, every {HOLD_OUT_EVERY}th held out (test: {}); only rows the leader scored \
         itself (self_scored = 1) are used",
        per_run.join("; "),
        runs_test.join(", ")
    );

    let cmd = command(config, data_label);
    let mut meta = metadata(config, slot);
    for (k, v) in &mut meta {
        if k == "command" {
            v.clone_from(&cmd);
        }
    }
    let spec = ExportSpec {
        graph_name: "leader_health_logistic".into(),
        input: crate::INPUT_NAME.into(),
        output: contract.output.name.into(),
        batch: BatchAxis::One,
        output_shape: OutputShape::PerRow,
        doc: "Logistic regression: P(this leader crashes within 3 s) from the schema-2 row.".into(),
        metadata: meta,
    };
    let mut manifest = manifest(
        config,
        ManifestParts {
            slot,
            name: "leader-health-logistic",
            description: "Logistic regression on the 18 leader_health features (standardised \
                          in the graph), trained on recorded chaos runs: the probability that \
                          the leader scoring itself crashes within 3 s, in 0..1.",
            algorithm: "linfa-logistic 0.8 (L-BFGS, L2 alpha 0.1), features standardised",
            data: &data_text,
            target: "self-scored row within 3000 ms before a crash of its node (1) vs not (0)",
            metrics: m,
        },
    );
    manifest.training.command = cmd;
    Ok(TrainedModel {
        network,
        spec,
        manifest,
    })
}

//! Retraining `demand` on a node's own recorded telemetry (the closed loop, `aurigraph train
//! demand --data-dir DIR`): the recorded input windows give back the arrival-rate series,
//! every position of it one row (the last 32 rates, the next 8), the same model family as the
//! shipped `demand-autoregression` (one least-squares regression per horizon, one `Gemm`,
//! `Clip(0, 1e9)`), fitted on the first 75% of the rows by time and evaluated on the last 25%
//! against Holt (the static rule). A model no better than Holt on that split is refused
//! ([`RetrainError::NoGain`], `E_TRAIN_NO_GAIN`) unless forced.
//!
//! [`write_version`] writes a new version folder atomically (a hidden temporary folder,
//! validated exactly as the node loads it, then renamed into the models folder), with the
//! metrics and the lineage (data range, rows, seed, parent version, command) in `model.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aurigraph_decision::SlotKind;
use aurigraph_decision::slot::demand::{FORECAST_MAX, HORIZON, Holt, WINDOW};

use crate::manifest::{Manifest, Metric, TrainingInfo};
use crate::metrics::{mae, mape};
use crate::onnx::{Activation, BatchAxis, Dense, ExportSpec, Network, OutputShape, Standardizer};

/// The model name a retrained `demand` version carries (the shipped model's name).
pub const DEMAND_MODEL_NAME: &str = "demand-autoregression";
/// Fewest rows (positions with 32 past and 8 next rates) a retraining needs.
pub const MIN_ROWS: usize = 96;

/// Why a retraining refused or failed, with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    /// The slot's labels are not in the node's telemetry.
    #[error("[E_TRAIN_NO_LABELS] {0}")]
    NoLabels(String),
    /// Too few rows.
    #[error("[E_TRAIN_TOO_LITTLE_DATA] {0}")]
    TooLittleData(String),
    /// The model is not better than the static rule on the held-out split.
    #[error("[E_TRAIN_NO_GAIN] {0}")]
    NoGain(String),
    /// Fitting or exporting failed.
    #[error("[E_TRAIN_FAILED] {0}")]
    Training(#[from] crate::TrainingError),
    /// The written folder does not load as the node loads it.
    #[error("[E_TRAIN_INVALID] {0}")]
    Invalid(String),
    /// Reading or writing the models folder failed.
    #[error("[E_IO] {0}")]
    Io(String),
}

impl RetrainError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RetrainError::NoLabels(_) => "E_TRAIN_NO_LABELS",
            RetrainError::TooLittleData(_) => "E_TRAIN_TOO_LITTLE_DATA",
            RetrainError::NoGain(_) => "E_TRAIN_NO_GAIN",
            RetrainError::Training(_) => "E_TRAIN_FAILED",
            RetrainError::Invalid(_) => "E_TRAIN_INVALID",
            RetrainError::Io(_) => "E_IO",
        }
    }
}

/// Why a slot other than `demand` cannot be retrained from its telemetry: what it needs.
pub fn labels_needed(slot: SlotKind) -> Option<&'static str> {
    match slot {
        SlotKind::Demand => None,
        SlotKind::Anomaly => Some(
            "anomaly has no ground truth in the telemetry (which transactions were spam is \
             never recorded): it needs labelled rows, see `aurigraph-training train anomaly`",
        ),
        SlotKind::Ordering => Some(
            "ordering needs each transaction's outcome under an ordering (conflicts, \
             re-executions per position), which the node does not record per row",
        ),
        SlotKind::BatchSize => Some(
            "batch_size needs the block latency each batch size would have given, which the \
             node does not record (only the size it chose)",
        ),
        SlotKind::LeaderHealth => Some(
            "leader_health needs crash labels from recorded chaos runs of a cluster: \
             `aurigraph-training train leader_health --data DIR`",
        ),
    }
}

/// One recorded `demand` decision's input window: 32 rates, oldest first.
#[derive(Clone, Debug)]
pub struct RecordedWindow {
    /// Height the decision was recorded under.
    pub height: u64,
    /// Wall clock, ms.
    pub at_ms: u64,
    /// The 32 rates.
    pub rates: Vec<f32>,
}

/// Where the rows came from and how the version was made (`[training]` of `model.toml`).
#[derive(Clone, Debug, Default)]
pub struct Lineage {
    /// Decisions read.
    pub decisions: u64,
    /// First and last `at_ms` of the decisions read.
    pub at_ms: (u64, u64),
    /// First and last height.
    pub heights: (u64, u64),
    /// Version it replaces (answering the slot, or the newest of the name).
    pub parent: Option<String>,
    /// The command that made it.
    pub command: String,
    /// Seed (recorded; the fit itself is deterministic).
    pub seed: u64,
    /// Data directory label.
    pub data: String,
}

/// The rebuilt series: runs of consecutive windows (each decision's window the previous one
/// shifted by one) as one series; a break (sampling, restart, a lost record) starts another.
pub fn series_of(windows: &[RecordedWindow]) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::new();
    let mut prev: Option<&[f32]> = None;
    for w in windows {
        if w.rates.len() != WINDOW {
            prev = None;
            continue;
        }
        if prev == Some(&w.rates[..]) {
            continue; // the same window recorded twice (both arms)
        }
        let continues = prev.is_some_and(|p| p[1..] == w.rates[..WINDOW - 1]);
        match (continues, out.last_mut()) {
            (true, Some(s)) => s.push(f64::from(w.rates[WINDOW - 1])),
            _ => out.push(w.rates.iter().map(|&v| f64::from(v)).collect()),
        }
        prev = Some(&w.rates);
    }
    out
}

/// A retrained model, its held-out evaluation and how many rows it saw.
#[derive(Clone, Debug)]
pub struct Retrained {
    /// The model.
    pub model: crate::TrainedModel,
    /// Rows fitted on.
    pub rows_train: usize,
    /// Rows held out (the last 25% by time).
    pub rows_test: usize,
    /// Model and Holt MAPE (%) on the held-out rows.
    pub mape: (f64, f64),
    /// Model and Holt MASE on the held-out rows.
    pub mase: (f64, f64),
}

fn holt_forecast(x: &[f64]) -> Vec<f64> {
    let holt = Holt::default();
    x.chunks_exact(WINDOW)
        .flat_map(|w| {
            let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            holt.forecast(&w32).map(f64::from)
        })
        .collect()
}

/// Trains a `demand` version on `windows` (in time order). `force` writes a model that is no
/// better than Holt too.
pub fn train_demand(
    windows: &[RecordedWindow],
    lineage: &Lineage,
    version: &str,
    force: bool,
) -> Result<Retrained, RetrainError> {
    let series = series_of(windows);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for s in &series {
        for t in WINDOW..=s.len().saturating_sub(HORIZON).max(WINDOW - 1) {
            if t + HORIZON > s.len() {
                break;
            }
            x.extend_from_slice(&s[t - WINDOW..t]);
            y.extend_from_slice(&s[t..t + HORIZON]);
        }
    }
    let rows = x.len() / WINDOW;
    if rows < MIN_ROWS {
        return Err(RetrainError::TooLittleData(format!(
            "{} demand decisions with their input window ({} series) give {rows} rows; \
             at least {MIN_ROWS} are needed (each row is 32 past and 8 next intervals, one \
             demand decision per `[telemetry] demand_interval_ms`)",
            windows.len(),
            series.len()
        )));
    }
    let cut = rows * 3 / 4;
    let (x_train, x_test) = x.split_at(cut * WINDOW);
    let (y_train, y_test) = y.split_at(cut * HORIZON);
    let standardizer = Standardizer::fit(x_train, WINDOW);
    let xs = standardizer.apply(x_train);
    let mut weights = vec![0.0f64; WINDOW * HORIZON];
    let mut bias = vec![0.0f64; HORIZON];
    for h in 0..HORIZON {
        let col: Vec<f64> = y_train.chunks_exact(HORIZON).map(|r| r[h]).collect();
        let (w, b) = crate::fit::linear(&xs, WINDOW, &col)?;
        for (i, wi) in w.iter().enumerate() {
            weights[i * HORIZON + h] = if wi.is_finite() { *wi } else { 0.0 };
        }
        bias[h] = b;
    }
    let network = Network {
        standardizer: Some(standardizer),
        layers: vec![Dense::new(
            WINDOW,
            HORIZON,
            &weights,
            &bias,
            Activation::Clip {
                min: 0.0,
                max: FORECAST_MAX,
            },
        )?],
    };
    let pred = network.predict(x_test);
    let holt = holt_forecast(x_test);
    // MASE scale: the mean absolute one-step change of the held-out inputs' newest rates.
    let newest: Vec<f64> = x_test.chunks_exact(WINDOW).map(|w| w[WINDOW - 1]).collect();
    let scale = newest.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>()
        / newest.len().saturating_sub(1).max(1) as f64;
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let (model_mae, holt_mae) = (mae(y_test, &pred), mae(y_test, &holt));
    let mape_pair = (mape(y_test, &pred, 1.0), mape(y_test, &holt, 1.0));
    let mase_pair = (model_mae / scale, holt_mae / scale);
    let gain = mase_pair.0 < mase_pair.1;
    if !gain && !force {
        return Err(RetrainError::NoGain(format!(
            "on the last 25% ({} rows) the model's MASE is {:.4} against Holt's {:.4} \
             (MAPE {:.2}% against {:.2}%): nothing written (--force writes it anyway)",
            rows - cut,
            mase_pair.0,
            mase_pair.1,
            mape_pair.0,
            mape_pair.1
        )));
    }
    let mut m = BTreeMap::new();
    m.insert("model_mae".into(), Metric::number(model_mae));
    m.insert("holt_mae".into(), Metric::number(holt_mae));
    m.insert("model_mape_pct".into(), Metric::number(mape_pair.0));
    m.insert("holt_mape_pct".into(), Metric::number(mape_pair.1));
    m.insert("model_mase".into(), Metric::number(mase_pair.0));
    m.insert("holt_mase".into(), Metric::number(mase_pair.1));
    m.insert("rows_train".into(), Metric::Count(cut as u64));
    m.insert("rows_test".into(), Metric::Count((rows - cut) as u64));
    m.insert("series".into(), Metric::Count(series.len() as u64));
    m.insert("seed".into(), Metric::Count(lineage.seed));
    m.insert("forced".into(), Metric::Count(u64::from(!gain)));
    let contract = SlotKind::Demand.contract();
    let spec = ExportSpec {
        graph_name: "demand_autoregression".into(),
        input: crate::INPUT_NAME.into(),
        output: contract.output.name.into(),
        batch: BatchAxis::One,
        output_shape: OutputShape::Row,
        doc: "Linear autoregression retrained on the node's telemetry: next 8 interval rates \
              from the last 32."
            .into(),
        metadata: vec![
            ("slot".into(), "demand".into()),
            ("schema".into(), contract.schema_version.to_string()),
            ("seed".into(), lineage.seed.to_string()),
            ("command".into(), lineage.command.clone()),
        ],
    };
    let manifest = Manifest {
        name: DEMAND_MODEL_NAME.into(),
        slot: "demand".into(),
        version: version.into(),
        schema: contract.schema_version,
        file: "model.onnx".into(),
        input: crate::INPUT_NAME.into(),
        output: contract.output.name.into(),
        output_column: None,
        description: "Linear autoregression retrained on the node's own demand telemetry: \
                      the arrival rate of each of the next 8 intervals from the last 32, \
                      clipped to 0..1e9 tx/s."
            .into(),
        metrics: m,
        training: TrainingInfo {
            command: lineage.command.clone(),
            seed: lineage.seed,
            algorithm: "linfa-linear 0.8 ordinary least squares per horizon, inputs standardised"
                .into(),
            data: format!(
                "recorded demand decisions of {} (their input windows), first 75% by time \
                 fitted, last 25% held out",
                lineage.data
            ),
            target: "the arrival rate of each of the next 8 intervals (tx/s)".into(),
        },
    };
    Ok(Retrained {
        model: crate::TrainedModel {
            network,
            spec,
            manifest,
        },
        rows_train: cut,
        rows_test: rows - cut,
        mape: mape_pair,
        mase: mase_pair,
    })
}

/// `model.toml` with the lineage added to `[training]`.
fn manifest_with_lineage(
    model: &crate::TrainedModel,
    lineage: &Lineage,
) -> Result<String, RetrainError> {
    let toml = model.manifest.to_toml().map_err(RetrainError::Training)?;
    let mut table: toml::Table = toml
        .parse()
        .map_err(|e| RetrainError::Invalid(format!("manifest: {e}")))?;
    if let Some(toml::Value::Table(t)) = table.get_mut("training") {
        let int = |v: u64| toml::Value::Integer(i64::try_from(v).unwrap_or(i64::MAX));
        t.insert("decisions".into(), int(lineage.decisions));
        t.insert("first_at_ms".into(), int(lineage.at_ms.0));
        t.insert("last_at_ms".into(), int(lineage.at_ms.1));
        t.insert("first_height".into(), int(lineage.heights.0));
        t.insert("last_height".into(), int(lineage.heights.1));
        t.insert(
            "parent_version".into(),
            toml::Value::String(lineage.parent.clone().unwrap_or_else(|| "none".into())),
        );
    }
    toml::to_string(&table).map_err(|e| RetrainError::Invalid(format!("manifest: {e}")))
}

/// The versions of `name` in `models` (folder, version), from each folder's `model.toml`.
pub fn versions_of(models: &Path, name: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(models) else {
        return out;
    };
    for e in entries.flatten() {
        let dir = e.path();
        if dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        if let Ok(m) = aurigraph_onnx::Manifest::read(&dir)
            && m.name == name
        {
            out.push((dir, m.version.clone()));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The next version of `name` in `models`: one more than the largest numeric version (a
/// version's leading digits), `1` when there is none; and the newest existing version.
pub fn next_version(models: &Path, name: &str) -> (String, Option<String>) {
    let existing = versions_of(models, name);
    let num = |v: &str| -> u64 {
        v.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    };
    let newest = existing
        .iter()
        .max_by_key(|(_, v)| num(v))
        .map(|(_, v)| v.clone());
    let next = existing.iter().map(|(_, v)| num(v)).max().unwrap_or(0) + 1;
    (next.to_string(), newest)
}

/// Writes the version into `models/NAME-vVERSION/`: a temporary folder inside a hidden one
/// in `models`, loaded with [`aurigraph_onnx::OnnxPolicy::load_folder_for`] (what the node's
/// registry runs), then renamed. Nothing is left behind on a failure.
pub fn write_version(
    retrained: &Retrained,
    lineage: &Lineage,
    models: &Path,
) -> Result<PathBuf, RetrainError> {
    let model = &retrained.model;
    let onnx = model.network.to_onnx(&model.spec)?;
    let toml = manifest_with_lineage(model, lineage)?;
    aurigraph_onnx::Manifest::parse(&toml, &model.manifest.name)
        .map_err(|e| RetrainError::Invalid(e.one_line()))?;
    std::fs::create_dir_all(models)
        .map_err(|e| RetrainError::Io(format!("{}: {e}", models.display())))?;
    let folder = format!("{}-v{}", model.manifest.name, model.manifest.version);
    let dest = models.join(&folder);
    if dest.exists() {
        return Err(RetrainError::Io(format!("{} exists", dest.display())));
    }
    // The registry scans the folders directly under `models` that hold a `model.toml`: the
    // temporary folder is one level deeper, so a poll never sees it.
    let outer = models.join(format!(".train-{}", std::process::id()));
    let tmp = outer.join(&folder);
    let _ = std::fs::remove_dir_all(&outer);
    let result = (|| {
        std::fs::create_dir_all(&tmp).map_err(|e| RetrainError::Io(e.to_string()))?;
        std::fs::write(tmp.join(&model.manifest.file), &onnx)
            .map_err(|e| RetrainError::Io(e.to_string()))?;
        std::fs::write(tmp.join("model.toml"), &toml)
            .map_err(|e| RetrainError::Io(e.to_string()))?;
        aurigraph_onnx::OnnxPolicy::load_folder_for(
            SlotKind::Demand,
            &tmp,
            &aurigraph_onnx::LoadOptions::default(),
        )
        .map_err(|e| RetrainError::Invalid(format!("[{}] {e}", e.code())))?;
        std::fs::rename(&tmp, &dest).map_err(|e| RetrainError::Io(e.to_string()))
    })();
    let _ = std::fs::remove_dir_all(&outer);
    result.map(|()| dest)
}

//! `aurigraph train SLOT --data-dir DIR [--models DIR] [--seed S] [--json]`: the closed
//! loop's training step. Reads the node's recorded telemetry read-only (like the export: the
//! node may be running), rebuilds the slot's rows, trains a new version
//! ([`aurigraph_training::retrain`]), validates the folder exactly as the node loads it and
//! writes it into the models folder as `NAME-vVERSION/` (temporary folder, then rename), so
//! the node's registry registers it as a candidate. Nothing goes live: the rollout is the
//! operator's or the node's `[retrain]` policy's, under the guard.
//!
//! Only `demand` is self-supervised (each recorded decision holds its input window, so the
//! series and the next-8 targets can be rebuilt; the node records the windows with
//! `[telemetry] features = "full"`). The other slots are refused with `E_TRAIN_NO_LABELS`.
//! With `--json` the result (or the failure, with its code) is one JSON object on standard
//! output: the node's `[retrain]` runs this verb as a child process and reads it.

use std::path::Path;
use std::time::Instant;

use aurigraph_decision::SlotKind;
use aurigraph_node::telemetry::{DecisionRecord, KIND_DECISION, decision_key, parse_decision_key};
use aurigraph_storage::Storage;
use aurigraph_training::retrain::{self, DEMAND_MODEL_NAME, Lineage, RecordedWindow, RetrainError};
use serde::Serialize;

use crate::args::TrainArgs;
use crate::export::ExportError;

/// What a successful training wrote (the `--json` object, with `"ok": true`).
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// The slot.
    pub slot: String,
    /// Model name.
    pub name: String,
    /// The new version.
    pub version: String,
    /// Its folder.
    pub folder: String,
    /// The version it replaces.
    pub parent: Option<String>,
    /// Decisions read.
    pub decisions: u64,
    /// Rows fitted on and held out.
    pub rows_train: usize,
    /// Rows held out.
    pub rows_test: usize,
    /// Model and Holt MAPE (%) on the held-out rows.
    pub model_mape_pct: f64,
    /// Holt's.
    pub holt_mape_pct: f64,
    /// Model MASE on the held-out rows.
    pub model_mase: f64,
    /// Holt's.
    pub holt_mase: f64,
    /// Seconds it took.
    pub seconds: f64,
}

/// A failure: its code and message.
fn fail(e: RetrainError) -> (String, String) {
    (e.code().to_string(), e.to_string())
}

fn read_windows(data_dir: &Path) -> Result<(Vec<RecordedWindow>, u64), (String, String)> {
    let db = data_dir.join("db");
    if !db.join("CURRENT").is_file() {
        return Err((
            "E_USAGE".into(),
            format!(
                "[E_USAGE] no node database in {} (expected {})",
                data_dir.display(),
                db.display()
            ),
        ));
    }
    let storage = Storage::open_read_only(&db)
        .map_err(|e| (e.code().to_string(), format!("[{}] {e}", e.code())))?;
    let mut windows = Vec::new();
    let mut decisions = 0u64;
    let lo = decision_key(0, 0);
    let hi = vec![KIND_DECISION + 1];
    storage
        .scan_telemetry::<ExportError>(&lo, &hi, |k, v| {
            let Some((height, _)) = parse_decision_key(k) else {
                return Ok(());
            };
            let d: DecisionRecord = serde_json::from_slice(v).map_err(|e| {
                ExportError::Corrupt(format!("telemetry record {}: {e}", hex::encode(k)))
            })?;
            if d.slot != SlotKind::Demand.as_str() {
                return Ok(());
            }
            decisions += 1;
            if let Some(rows) = d.features
                && let Some(rates) = rows.into_iter().next()
            {
                windows.push(RecordedWindow {
                    height,
                    at_ms: d.at_ms,
                    rates,
                });
            }
            Ok(())
        })
        .map_err(|e| (e.code().to_string(), e.to_string()))?;
    // Keys are in height order; decisions of one height by sequence; the wall clock orders
    // them across both.
    windows.sort_by_key(|w| (w.at_ms, w.height));
    Ok((windows, decisions))
}

/// Trains and writes; the error is `(code, message)`.
pub fn train(args: &TrainArgs) -> Result<TrainReport, (String, String)> {
    let started = Instant::now();
    let slot: SlotKind = args.slot.parse().map_err(|e| {
        (
            "E_UNKNOWN_SLOT".to_string(),
            format!("[E_UNKNOWN_SLOT] {}: {e}", args.slot),
        )
    })?;
    if let Some(why) = retrain::labels_needed(slot) {
        return Err(fail(RetrainError::NoLabels(format!(
            "{slot} cannot be retrained from the node's telemetry: {why}"
        ))));
    }
    let spinner = (!args.json).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    });
    let step = |msg: &str| {
        if let Some(s) = &spinner {
            s.set_message(msg.to_string());
        }
    };
    step("reading the recorded demand decisions");
    let (windows, decisions) = read_windows(&args.data_dir)?;
    let (version, newest) = retrain::next_version(&args.models, DEMAND_MODEL_NAME);
    let parent = args.parent.clone().or(newest);
    let mut command = format!(
        "aurigraph train {slot} --data-dir {} --models {} --seed {}",
        args.data_dir.display(),
        args.models.display(),
        args.seed
    );
    if let Some(p) = &args.parent {
        command.push_str(&format!(" --parent {p}"));
    }
    if args.force {
        command.push_str(" --force");
    }
    let lineage = Lineage {
        decisions,
        at_ms: (
            windows.first().map_or(0, |w| w.at_ms),
            windows.last().map_or(0, |w| w.at_ms),
        ),
        heights: (
            windows.iter().map(|w| w.height).min().unwrap_or(0),
            windows.iter().map(|w| w.height).max().unwrap_or(0),
        ),
        parent: parent.clone(),
        command,
        seed: args.seed,
        data: args.data_dir.display().to_string(),
    };
    step("fitting and evaluating against Holt");
    let retrained =
        retrain::train_demand(&windows, &lineage, &version, args.force).map_err(fail)?;
    step("exporting, validating and writing the version");
    let dest = retrain::write_version(&retrained, &lineage, &args.models).map_err(fail)?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    Ok(TrainReport {
        slot: slot.as_str().to_string(),
        name: DEMAND_MODEL_NAME.to_string(),
        version,
        folder: dest.display().to_string(),
        parent,
        decisions,
        rows_train: retrained.rows_train,
        rows_test: retrained.rows_test,
        model_mape_pct: retrained.mape.0,
        holt_mape_pct: retrained.mape.1,
        model_mase: retrained.mase.0,
        holt_mase: retrained.mase.1,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `aurigraph train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    match train(args) {
        Ok(r) => {
            if args.json {
                let mut v = serde_json::to_value(&r)?;
                v["ok"] = true.into();
                println!("{v}");
            } else {
                println!(
                    "{} {}@{} written to {} (parent {}): {} decisions, {} rows fitted, {} held \
                     out; held-out MAPE {:.2}% (Holt {:.2}%), MASE {:.3} (Holt {:.3})",
                    r.slot,
                    r.name,
                    r.version,
                    r.folder,
                    r.parent.as_deref().unwrap_or("none"),
                    r.decisions,
                    r.rows_train,
                    r.rows_test,
                    r.model_mape_pct,
                    r.holt_mape_pct,
                    r.model_mase,
                    r.holt_mase
                );
            }
            Ok(())
        }
        Err((code, message)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "code": code, "message": message})
                );
            }
            Err(anyhow::anyhow!("{message}"))
        }
    }
}

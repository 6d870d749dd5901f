//! Rows recorded by a running node: the per-slot CSV of
//! `aurigraph telemetry export --format csv --slot SLOT`, or its JSON lines (`--format
//! jsonl`) (the node must have recorded with
//! `telemetry.features = "full"` for the feature columns to be filled).
//!
//! The export's columns are `height, seq, key, at_ms, arm, backend, name, version, fallback,
//! latency_us, features_digest, row`, then the slot's feature names in schema order, then the
//! output: `value` (one per row) or `value_0..value_{k-1}` (`demand`). [`read_slot_csv`]
//! checks the feature columns against the slot's contract, so an export of another schema
//! is refused rather than read into the wrong columns.
//!
//! [`read_slot_jsonl`] reads the JSON lines export (`--format jsonl`, with or without
//! `--slot`: block records and other slots' decisions are skipped) into the same rows, one
//! per input row of each decision, as the per-slot CSV would give.
//!
//! This reader is for training on real traffic; the shipped models keep training on the
//! seeded sources of this module's siblings (see `training/README.md`).

use std::io::BufRead;

use aurigraph_decision::SlotKind;

/// The leading columns of the per-slot export, before the features.
pub const LEADING_COLUMNS: [&str; 12] = aurigraph_decision::host::SLOT_EXPORT_COLUMNS;

/// A telemetry export that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Reading failed.
    #[error("telemetry export: {0}")]
    Io(#[from] std::io::Error),
    /// The header is not the export of this slot's schema.
    #[error("telemetry export: the header is not the {slot} export: {reason}")]
    Header {
        /// The slot asked for.
        slot: SlotKind,
        /// What differs.
        reason: String,
    },
    /// A line does not parse.
    #[error("telemetry export, line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One input row of one recorded decision.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryRow {
    /// Height the record was written under.
    pub height: u64,
    /// Its sequence within the height.
    pub seq: u32,
    /// The decision key.
    pub key: u64,
    /// Wall-clock time of the decision, ms since the Unix epoch (`at_ms`).
    pub at_ms: u64,
    /// `baseline` or `candidate`.
    pub arm: String,
    /// Backend that answered (`static`, `onnx`, `wasm`).
    pub backend: String,
    /// Name of the policy that answered.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Fallback reason, if the static policy answered instead.
    pub fallback: Option<String>,
    /// Decision latency, microseconds.
    pub latency_us: f64,
    /// Row index within the decision's input.
    pub row: usize,
    /// The features in schema order; `None` when only a digest was recorded.
    pub features: Option<Vec<f32>>,
    /// The output value(s) for this row; empty when not recorded.
    pub values: Vec<f32>,
}

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Reads the per-slot CSV export of `slot`.
pub fn read_slot_csv<R: BufRead>(
    reader: R,
    slot: SlotKind,
) -> Result<Vec<TelemetryRow>, TelemetryError> {
    let contract = slot.contract();
    let names: Vec<&str> = contract.features.iter().map(|f| f.name.as_str()).collect();
    let mut lines = reader.lines();
    let header = match lines.next() {
        Some(h) => split_csv(h?.trim_end_matches('\r')),
        None => {
            return Err(TelemetryError::Header {
                slot,
                reason: "the export is empty".into(),
            });
        }
    };
    let bad = |reason: String| TelemetryError::Header { slot, reason };
    let lead = LEADING_COLUMNS.len();
    if header.len() <= lead + names.len() || header[..lead] != LEADING_COLUMNS {
        return Err(bad(format!("expected {LEADING_COLUMNS:?} first")));
    }
    if header[lead..lead + names.len()] != names[..] {
        return Err(bad(format!(
            "feature columns {:?}, the schema has {names:?}",
            &header[lead..(lead + names.len()).min(header.len())]
        )));
    }
    let outputs = header.len() - lead - names.len();
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let n = i + 2;
        let f = split_csv(line);
        if f.len() != header.len() {
            return Err(TelemetryError::Line {
                line: n,
                reason: format!("{} fields, the header has {}", f.len(), header.len()),
            });
        }
        let num = |j: usize| -> Result<f64, TelemetryError> {
            f[j].parse::<f64>().map_err(|e| TelemetryError::Line {
                line: n,
                reason: format!("column {}: `{}`: {e}", header[j], f[j]),
            })
        };
        let feats = &f[lead..lead + names.len()];
        let features = if feats.iter().all(String::is_empty) {
            None
        } else {
            let mut v = Vec::with_capacity(names.len());
            for j in lead..lead + names.len() {
                v.push(num(j)? as f32);
            }
            Some(v)
        };
        let mut values = Vec::with_capacity(outputs);
        for (j, v) in f.iter().enumerate().skip(lead + names.len()) {
            if !v.is_empty() {
                values.push(num(j)? as f32);
            }
        }
        rows.push(TelemetryRow {
            height: num(0)? as u64,
            seq: num(1)? as u32,
            key: f[2].parse().map_err(|e| TelemetryError::Line {
                line: n,
                reason: format!("key: {e}"),
            })?,
            at_ms: f[3].parse().map_err(|e| TelemetryError::Line {
                line: n,
                reason: format!("at_ms: `{}`: {e}", f[3]),
            })?,
            arm: f[4].clone(),
            backend: f[5].clone(),
            name: f[6].clone(),
            version: f[7].clone(),
            fallback: (!f[8].is_empty()).then(|| f[8].clone()),
            latency_us: num(9)?,
            row: num(11)? as usize,
            features,
            values,
        });
    }
    Ok(rows)
}

/// A decision record of the JSON lines export (the fields the rows need; `kind` and `slot`
/// are checked before).
#[derive(serde::Deserialize)]
struct JsonDecision {
    height: u64,
    #[serde(default)]
    seq: u32,
    #[serde(default)]
    key: u64,
    #[serde(default)]
    at_ms: u64,
    #[serde(default)]
    arm: String,
    #[serde(default)]
    backend: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    fallback: Option<String>,
    #[serde(default)]
    latency_us: f64,
    #[serde(default)]
    rows: usize,
    #[serde(default)]
    cols: usize,
    #[serde(default)]
    features: Option<Vec<Vec<f32>>>,
    #[serde(default)]
    values: Option<Vec<f32>>,
}

/// Reads the JSON lines export (`aurigraph telemetry export --format jsonl`, with or without
/// `--slot`): the decisions of `slot`, one [`TelemetryRow`] per input row, as
/// [`read_slot_csv`] reads the per-slot CSV. Block records and other slots' decisions are
/// skipped; a decision whose column count or feature rows do not fit the slot's schema is
/// refused (a [`TelemetryError::Line`]).
pub fn read_slot_jsonl<R: BufRead>(
    reader: R,
    slot: SlotKind,
) -> Result<Vec<TelemetryRow>, TelemetryError> {
    let contract = slot.contract();
    let cols = contract.feature_count();
    let outputs = match contract.output.len {
        aurigraph_decision::slot::OutputLen::PerRow => 1,
        aurigraph_decision::slot::OutputLen::Fixed(n) => n,
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let bad = |reason: String| TelemetryError::Line { line: n, reason };
        // The kind first: block records have other fields.
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if v["kind"] != "decision" || v["slot"] != slot.as_str() {
            continue;
        }
        let d: JsonDecision = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        if d.cols != cols {
            return Err(bad(format!(
                "{} columns, the {slot} schema has {cols}",
                d.cols
            )));
        }
        if let Some(f) = &d.features
            && (f.len() != d.rows || f.iter().any(|r| r.len() != cols))
        {
            return Err(bad(format!("features are not {} rows of {cols}", d.rows)));
        }
        for row in 0..d.rows.max(1) {
            let values: Vec<f32> = match (&d.values, contract.rows) {
                (None, _) => Vec::new(),
                (Some(v), aurigraph_decision::slot::Rows::Batch) => {
                    v.get(row).copied().into_iter().collect()
                }
                (Some(v), aurigraph_decision::slot::Rows::Single) => {
                    v.iter().take(outputs).copied().collect()
                }
            };
            out.push(TelemetryRow {
                height: d.height,
                seq: d.seq,
                key: d.key,
                at_ms: d.at_ms,
                arm: d.arm.clone(),
                backend: d.backend.clone(),
                name: d.name.clone(),
                version: d.version.clone(),
                fallback: d.fallback.clone(),
                latency_us: d.latency_us,
                row,
                features: d.features.as_ref().and_then(|f| f.get(row).cloned()),
                values,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(slot: SlotKind, outputs: &[&str]) -> String {
        let mut h: Vec<String> = LEADING_COLUMNS.iter().map(|s| s.to_string()).collect();
        h.extend(slot.contract().features.iter().map(|f| f.name.clone()));
        h.extend(outputs.iter().map(|s| s.to_string()));
        h.join(",")
    }

    #[test]
    fn reads_the_per_slot_export() {
        let slot = SlotKind::BatchSize;
        let n = slot.contract().feature_count();
        let feats: Vec<String> = (0..n).map(|i| format!("{}.5", i + 1)).collect();
        let text = format!(
            "{}\n3,0,3,1700000000000,baseline,static,queue_depth_rule,1,,12.500,ab12,0,{},64\n\
             4,1,4,1700000000001,candidate,onnx,\"bs,model\",2,timeout,9.000,cd34,0,{},\n",
            header(slot, &["value"]),
            feats.join(","),
            vec![""; n].join(","),
        );
        let rows = read_slot_csv(text.as_bytes(), slot).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].height, 3);
        assert_eq!(rows[0].at_ms, 1_700_000_000_000);
        assert_eq!(rows[0].features.as_ref().unwrap()[0], 1.5);
        assert_eq!(rows[0].values, vec![64.0]);
        assert_eq!(rows[0].fallback, None);
        assert_eq!(rows[1].name, "bs,model");
        assert_eq!(rows[1].fallback.as_deref(), Some("timeout"));
        assert_eq!(
            rows[1].features, None,
            "digest-only records have no features"
        );
        assert!(rows[1].values.is_empty());
    }

    /// A decision as the node's JSON lines export writes it (`DecisionRecord` plus `kind`,
    /// `height` and `seq`; `features` and `values` absent when not recorded).
    fn decision_line(
        slot: SlotKind,
        height: u64,
        seq: u32,
        features: Option<&[Vec<f32>]>,
        values: Option<&[f32]>,
        fallback: Option<&str>,
    ) -> String {
        let rows = features.map_or(1, <[Vec<f32>]>::len);
        let mut v = serde_json::json!({
            "kind": "decision",
            "height": height,
            "seq": seq,
            "slot": slot.as_str(),
            "key": height,
            "at_ms": 1_700_000_000_000u64 + height,
            "arm": "baseline",
            "backend": "static",
            "name": "rule",
            "version": "1",
            "fallback": fallback,
            "generation": 0,
            "latency_us": 12.25,
            "rows": rows,
            "cols": slot.contract().feature_count(),
            "features_digest": "ab".repeat(32),
            "summary": {"count": 1, "min": 0.0, "max": 0.0, "mean": 0.0},
        });
        if let Some(f) = features {
            v["features"] = serde_json::json!(f);
        }
        if let Some(x) = values {
            v["values"] = serde_json::json!(x);
        }
        v.to_string()
    }

    #[test]
    fn reads_the_jsonl_export_as_the_csv_rows() {
        let slot = SlotKind::BatchSize;
        let n = slot.contract().feature_count();
        let feats: Vec<f32> = (0..n).map(|i| i as f32 + 1.5).collect();
        let block = r#"{"kind":"block","height":3,"at_ms":1,"txs":2}"#;
        let other = decision_line(SlotKind::Ordering, 3, 1, None, None, None);
        let text = [
            block.to_string(),
            decision_line(
                slot,
                3,
                0,
                Some(std::slice::from_ref(&feats)),
                Some(&[64.0]),
                None,
            ),
            other,
            String::new(),
            decision_line(slot, 4, 1, None, None, Some("timeout")),
        ]
        .join("\n");
        let rows = read_slot_jsonl(text.as_bytes(), slot).unwrap();
        assert_eq!(rows.len(), 2, "the batch_size decisions only");
        assert_eq!((rows[0].height, rows[0].seq, rows[0].key), (3, 0, 3));
        assert_eq!(rows[0].features.as_deref(), Some(&feats[..]));
        assert_eq!(rows[0].values, vec![64.0]);
        assert_eq!(rows[0].latency_us, 12.25);
        assert_eq!(rows[0].fallback, None);
        assert_eq!(rows[1].fallback.as_deref(), Some("timeout"));
        assert_eq!(rows[1].features, None, "digest-only");
        assert!(rows[1].values.is_empty());

        // The same records as the per-slot CSV: the same rows.
        let fs: Vec<String> = feats.iter().map(f32::to_string).collect();
        let csv = format!(
            "{}\n3,0,3,1700000000003,baseline,static,rule,1,,12.250,{d},0,{},64\n\
             4,1,4,1700000000004,baseline,static,rule,1,timeout,12.250,{d},0,{},\n",
            header(slot, &["value"]),
            fs.join(","),
            vec![""; n].join(","),
            d = "ab".repeat(32),
        );
        assert_eq!(read_slot_csv(csv.as_bytes(), slot).unwrap(), rows);
    }

    #[test]
    fn jsonl_batched_rows_and_refusals() {
        let slot = SlotKind::Ordering;
        let n = slot.contract().feature_count();
        let f = vec![vec![1.0; n], vec![2.0; n], vec![3.0; n]];
        let line = decision_line(slot, 7, 2, Some(&f), Some(&[0.5, 0.25, 0.125]), None);
        let rows = read_slot_jsonl(line.as_bytes(), slot).unwrap();
        assert_eq!(rows.len(), 3, "one row per input row");
        assert_eq!(rows[2].row, 2);
        assert_eq!(rows[2].features.as_deref(), Some(&vec![3.0; n][..]));
        assert_eq!(rows[2].values, vec![0.125]);

        // Another schema's column count, ragged rows, bad JSON: refused with the line.
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["cols"] = (n + 1).into();
        let text = format!("{}\n{v}\n", decision_line(slot, 1, 0, None, None, None));
        let err = read_slot_jsonl(text.as_bytes(), slot).unwrap_err();
        assert!(matches!(err, TelemetryError::Line { line: 2, .. }), "{err}");
        let ragged = decision_line(slot, 1, 0, Some(&[vec![1.0; n - 1]]), None, None);
        let err = read_slot_jsonl(ragged.as_bytes(), slot).unwrap_err();
        assert!(matches!(err, TelemetryError::Line { line: 1, .. }), "{err}");
        let err = read_slot_jsonl("{not json".as_bytes(), slot).unwrap_err();
        assert!(matches!(err, TelemetryError::Line { line: 1, .. }), "{err}");
    }

    #[test]
    fn refuses_another_schema() {
        let text = format!("{}\n", header(SlotKind::Ordering, &["value"]));
        let err = read_slot_csv(text.as_bytes(), SlotKind::BatchSize).unwrap_err();
        assert!(matches!(err, TelemetryError::Header { .. }), "{err}");
        let short = format!("{}\n1,2\n", header(SlotKind::Ordering, &["value"]));
        let err = read_slot_csv(short.as_bytes(), SlotKind::Ordering).unwrap_err();
        assert!(matches!(err, TelemetryError::Line { line: 2, .. }), "{err}");
    }
}

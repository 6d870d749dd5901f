//! Rows recorded by a running node: the per-slot CSV of
//! `aurigraph telemetry export --format csv --slot SLOT` (the node must have recorded with
//! `telemetry.features = "full"` for the feature columns to be filled).
//!
//! The export's columns are `height, seq, key, at_ms, arm, backend, name, version, fallback,
//! latency_us, features_digest, row`, then the slot's feature names in schema order, then the
//! output: `value` (one per row) or `value_0..value_{k-1}` (`demand`). [`read_slot_csv`]
//! checks the feature columns against the slot's contract, so an export of another schema
//! is refused rather than read into the wrong columns.
//!
//! This reader is for training on real traffic; the shipped models keep training on the
//! seeded sources of this module's siblings (see `training/README.md`).

use std::io::BufRead;

use aurigraph_engine::SlotKind;

/// The leading columns of the per-slot export, before the features.
pub const LEADING_COLUMNS: [&str; 12] = [
    "height",
    "seq",
    "key",
    "at_ms",
    "arm",
    "backend",
    "name",
    "version",
    "fallback",
    "latency_us",
    "features_digest",
    "row",
];

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

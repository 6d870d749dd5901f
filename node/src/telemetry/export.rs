//! `aurigraph telemetry export`: the `telemetry` column family of a node's data dir as CSV
//! or JSON lines, for notebooks and the training crate.
//!
//! **JSON lines.** One object per record, in height order (a block's record, then the
//! decisions written under its height, by sequence): `{"kind": "block", ...}` with the
//! fields of [`BlockRecord`], or `{"kind": "decision", "height": H, "seq": S, ...}` with the
//! fields of [`DecisionRecord`]. `--slot` keeps that slot's decisions only.
//!
//! **CSV.** Without `--slot`: one line per record, the columns of [`CSV_COLUMNS`]; the
//! input rows and output values are JSON arrays in the `features` and `values` columns
//! (empty when not recorded). With `--slot SLOT`: that slot's decisions only, one line per
//! input row, the columns of [`SLOT_COLUMNS`] then the slot's feature names (empty with
//! `features = "digest"`) then the output: `value` for a slot with one value per row,
//! `value_0..value_{k-1}` for `demand`.
//!
//! **Parquet** is refused with `E_FORMAT_UNSUPPORTED`: the workspace carries no parquet
//! writer (the crate would add minutes to a cold build); convert the CSV (e.g.
//! `pandas.read_csv(...).to_parquet(...)`).

use std::io::Write;
use std::path::{Path, PathBuf};

use aurigraph_engine::SlotKind;
use aurigraph_engine::slot::Rows;

use super::{
    BlockRecord, DecisionRecord, KIND_BLOCK, KIND_DECISION, parse_block_key, parse_decision_key,
};
use crate::storage::{Storage, StorageError};

/// An export failure, with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The format is not written by this build.
    #[error("[E_FORMAT_UNSUPPORTED] {0}")]
    Unsupported(String),
    /// Bad arguments (unknown slot, from > to, no database).
    #[error("[E_USAGE] {0}")]
    Usage(String),
    /// The database could not be read.
    #[error("[{code}] {source}", code = .source.code())]
    Storage {
        /// The storage error.
        #[from]
        source: StorageError,
    },
    /// A stored record does not decode.
    #[error("[E_STORAGE_CORRUPT] {0}")]
    Corrupt(String),
    /// Writing the output failed.
    #[error("[E_IO] {0}")]
    Io(#[from] std::io::Error),
}

impl ExportError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::Unsupported(_) => "E_FORMAT_UNSUPPORTED",
            ExportError::Usage(_) => "E_USAGE",
            ExportError::Storage { source } => source.code(),
            ExportError::Corrupt(_) => "E_STORAGE_CORRUPT",
            ExportError::Io(_) => "E_IO",
        }
    }
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet (refused by this build: `E_FORMAT_UNSUPPORTED`).
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "parquet" => Ok(Format::Parquet),
            _ => Err(format!("`{s}`: the formats are csv, jsonl, parquet")),
        }
    }
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The node's data dir (the database is `DIR/db`).
    pub data_dir: PathBuf,
    /// Output format.
    pub format: Format,
    /// Only this slot's decisions (no block records).
    pub slot: Option<SlotKind>,
    /// First height (inclusive).
    pub from: Option<u64>,
    /// Last height (inclusive).
    pub to: Option<u64>,
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Decision records.
    pub decisions: u64,
    /// Block records.
    pub blocks: u64,
    /// Lines written (CSV: without the header).
    pub lines: u64,
}

/// The CSV columns without `--slot`.
pub const CSV_COLUMNS: [&str; 36] = [
    "kind",
    "height",
    "seq",
    "slot",
    "key",
    "at_ms",
    "arm",
    "backend",
    "name",
    "version",
    "fallback",
    "generation",
    "latency_us",
    "rows",
    "cols",
    "features_digest",
    "values_count",
    "values_min",
    "values_max",
    "values_mean",
    "features",
    "values",
    "txs",
    "executed",
    "skipped",
    "target_size",
    "queue_depth",
    "block_latency_ms",
    "commit_mean_ms",
    "commit_p50_ms",
    "commit_p95_ms",
    "commit_p99_ms",
    "conflicts",
    "re_executions",
    "accepted",
    "refused",
];

/// The leading CSV columns with `--slot`.
pub const SLOT_COLUMNS: [&str; 12] = [
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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(w: &mut dyn Write, fields: &[String]) -> std::io::Result<()> {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    writeln!(w, "{}", line.join(","))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Exports the telemetry of `opts.data_dir` to `out`. The database is opened read-only,
/// so the node may be running (it then sees what RocksDB had written when it opened).
pub fn export(opts: &ExportOptions, out: &mut dyn Write) -> Result<ExportSummary, ExportError> {
    if opts.format == Format::Parquet {
        return Err(ExportError::Unsupported(
            "parquet is not built into this binary (it would add a parquet writer and minutes \
             of build); export csv or jsonl and convert, e.g. pandas.read_csv(f).to_parquet(p)"
                .into(),
        ));
    }
    if let (Some(f), Some(t)) = (opts.from, opts.to)
        && f > t
    {
        return Err(ExportError::Usage(format!("--from {f} is after --to {t}")));
    }
    let db = opts.data_dir.join("db");
    if !db.join("CURRENT").is_file() {
        return Err(ExportError::Usage(format!(
            "no node database in {} (expected {})",
            opts.data_dir.display(),
            db.display()
        )));
    }
    let storage = Storage::open_read_only(&db)?;
    export_from(&storage, opts, out)
}

/// [`export`] from an open database.
pub fn export_from(
    storage: &Storage,
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let from = opts.from.unwrap_or(0);
    let to = opts.to.unwrap_or(u64::MAX);
    let mut sum = ExportSummary::default();
    let slot_name = opts.slot.map(SlotKind::as_str);
    match (opts.format, opts.slot) {
        (Format::Csv, Some(slot)) => {
            let contract = slot.contract();
            let mut header: Vec<String> = SLOT_COLUMNS.iter().map(|s| s.to_string()).collect();
            header.extend(contract.features.iter().map(|f| f.name.clone()));
            let outputs = match contract.output.len {
                aurigraph_engine::slot::OutputLen::PerRow => 1,
                aurigraph_engine::slot::OutputLen::Fixed(n) => n,
            };
            if outputs == 1 {
                header.push("value".into());
            } else {
                header.extend((0..outputs).map(|i| format!("value_{i}")));
            }
            csv_line(out, &header)?;
            let cols = contract.feature_count();
            scan_decisions(storage, from, to, |h, s, d| {
                if d.slot != slot.as_str() {
                    return Ok(());
                }
                sum.decisions += 1;
                for row in 0..d.rows.max(1) {
                    let mut f = vec![
                        h.to_string(),
                        s.to_string(),
                        d.key.to_string(),
                        d.at_ms.to_string(),
                        d.arm.clone(),
                        d.backend.clone(),
                        d.name.clone(),
                        d.version.clone(),
                        d.fallback.clone().unwrap_or_default(),
                        format!("{:.3}", d.latency_us),
                        d.features_digest.clone(),
                        row.to_string(),
                    ];
                    match d.features.as_ref().and_then(|x| x.get(row)) {
                        Some(r) => f.extend(r.iter().map(|v| v.to_string())),
                        None => f.extend(std::iter::repeat_n(String::new(), cols)),
                    }
                    let vals: Vec<String> = match (&d.values, contract.rows) {
                        (Some(v), Rows::Batch) => {
                            vec![v.get(row).map(|x| x.to_string()).unwrap_or_default()]
                        }
                        (Some(v), Rows::Single) => v.iter().map(|x| x.to_string()).collect(),
                        (None, _) => vec![String::new(); outputs],
                    };
                    f.extend(vals);
                    csv_line(out, &f)?;
                    sum.lines += 1;
                }
                Ok(())
            })?;
        }
        (Format::Csv, None) => {
            let header: Vec<String> = CSV_COLUMNS.iter().map(|s| s.to_string()).collect();
            csv_line(out, &header)?;
            scan_all(storage, from, to, |rec| {
                let mut f = vec![String::new(); CSV_COLUMNS.len()];
                match rec {
                    Rec::Block(b) => {
                        sum.blocks += 1;
                        f[0] = "block".into();
                        f[1] = b.height.to_string();
                        f[5] = b.at_ms.to_string();
                        f[22] = b.txs.to_string();
                        f[23] = b.executed.to_string();
                        f[24] = b.skipped.to_string();
                        f[25] = b.target_size.to_string();
                        f[26] = b.queue_depth.to_string();
                        f[27] = format!("{:.3}", b.block_latency_ms);
                        let l = &b.submit_to_commit_ms;
                        f[28] = format!("{:.3}", l.mean);
                        f[29] = format!("{:.3}", l.p50);
                        f[30] = format!("{:.3}", l.p95);
                        f[31] = format!("{:.3}", l.p99);
                        f[32] = b.conflicts.to_string();
                        f[33] = b.re_executions.to_string();
                        f[34] = b.accepted.to_string();
                        f[35] = b.refused.to_string();
                    }
                    Rec::Decision(h, s, d) => {
                        sum.decisions += 1;
                        f[0] = "decision".into();
                        f[1] = h.to_string();
                        f[2] = s.to_string();
                        f[3] = d.slot.clone();
                        f[4] = d.key.to_string();
                        f[5] = d.at_ms.to_string();
                        f[6] = d.arm.clone();
                        f[7] = d.backend.clone();
                        f[8] = d.name.clone();
                        f[9] = d.version.clone();
                        f[10] = d.fallback.clone().unwrap_or_default();
                        f[11] = d.generation.to_string();
                        f[12] = format!("{:.3}", d.latency_us);
                        f[13] = d.rows.to_string();
                        f[14] = d.cols.to_string();
                        f[15] = d.features_digest.clone();
                        f[16] = d.summary.count.to_string();
                        f[17] = d.summary.min.to_string();
                        f[18] = d.summary.max.to_string();
                        f[19] = d.summary.mean.to_string();
                        f[20] = d.features.as_ref().map(json).unwrap_or_default();
                        f[21] = d.values.as_ref().map(json).unwrap_or_default();
                    }
                }
                csv_line(out, &f)?;
                sum.lines += 1;
                Ok(())
            })?;
        }
        (_, _) => {
            scan_all(storage, from, to, |rec| {
                let v = match rec {
                    Rec::Block(b) => {
                        if slot_name.is_some() {
                            return Ok(());
                        }
                        sum.blocks += 1;
                        let mut v = serde_json::to_value(&b).unwrap_or_default();
                        v["kind"] = "block".into();
                        v
                    }
                    Rec::Decision(h, s, d) => {
                        if slot_name.is_some_and(|n| n != d.slot) {
                            return Ok(());
                        }
                        sum.decisions += 1;
                        let mut v = serde_json::to_value(&d).unwrap_or_default();
                        v["kind"] = "decision".into();
                        v["height"] = h.into();
                        v["seq"] = s.into();
                        v
                    }
                };
                writeln!(out, "{v}")?;
                sum.lines += 1;
                Ok(())
            })?;
        }
    }
    out.flush()?;
    Ok(sum)
}

enum Rec {
    Block(BlockRecord),
    Decision(u64, u32, DecisionRecord),
}

fn decode<T: serde::de::DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T, ExportError> {
    serde_json::from_slice(v)
        .map_err(|e| ExportError::Corrupt(format!("telemetry record {}: {e}", hex::encode(k))))
}

fn scan_decisions(
    storage: &Storage,
    from: u64,
    to: u64,
    mut f: impl FnMut(u64, u32, DecisionRecord) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let lo = super::decision_key(from, 0);
    let hi = match to.checked_add(1) {
        Some(t) => super::decision_key(t, 0),
        None => vec![KIND_DECISION + 1],
    };
    storage.scan_telemetry::<ExportError>(&lo, &hi, |k, v| {
        let Some((h, s)) = parse_decision_key(k) else {
            return Ok(());
        };
        f(h, s, decode(k, v)?)
    })
}

/// Blocks and decisions merged in height order (a block's record, then the decisions
/// written under its height).
fn scan_all(
    storage: &Storage,
    from: u64,
    to: u64,
    mut f: impl FnMut(Rec) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut blocks: Vec<BlockRecord> = Vec::new();
    let lo = super::block_key(from);
    let hi = match to.checked_add(1) {
        Some(t) => super::block_key(t),
        None => vec![KIND_BLOCK + 1],
    };
    storage.scan_telemetry::<ExportError>(&lo, &hi, |k, v| {
        if parse_block_key(k).is_some() {
            blocks.push(decode(k, v)?);
        }
        Ok(())
    })?;
    let mut blocks = blocks.into_iter().peekable();
    scan_decisions(storage, from, to, |h, s, d| {
        while blocks.peek().is_some_and(|b| b.height <= h) {
            if let Some(b) = blocks.next() {
                f(Rec::Block(b))?;
            }
        }
        f(Rec::Decision(h, s, d))
    })?;
    for b in blocks {
        f(Rec::Block(b))?;
    }
    Ok(())
}

/// Runs the export to `out_path` (or stdout) and reports on stderr.
pub fn run(opts: &ExportOptions, out_path: Option<&Path>) -> Result<ExportSummary, ExportError> {
    let sum = match out_path {
        Some(p) => {
            if opts.format == Format::Parquet {
                // Refuse before creating the file.
                return export(opts, &mut std::io::sink());
            }
            let file = std::fs::File::create(p)?;
            let mut w = std::io::BufWriter::new(file);
            export(opts, &mut w)?
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            export(opts, &mut w)?
        }
    };
    Ok(sum)
}

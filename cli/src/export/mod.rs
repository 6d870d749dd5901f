//! `aurigraph telemetry export`: the `telemetry` column family of a node's data dir as CSV,
//! JSON lines or Parquet, for notebooks and the training crate.
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
//! **Parquet.** The CSV's rows and columns (both forms), typed: [`record_columns`] and
//! [`slot_columns`] give each column's type — INT64 for heights, counts, keys and ms
//! timestamps, FLOAT for the recorded f32 features and values (exactly), DOUBLE for
//! latencies and means (full precision; the CSV rounds latencies to 3 decimals),
//! BYTE_ARRAY UTF8 for text and the JSON `features`/`values` arrays — and which are optional:
//! what the CSV leaves empty is null. Written with parquet's low-level writer (no arrow),
//! snappy pages, in row groups of at most [`ROW_GROUP_ROWS`] rows or about
//! [`ROW_GROUP_BYTES`] bytes, so memory stays bounded on a large export. `pandas.read_parquet`
//! reads it with pyarrow or fastparquet installed.

use std::io::Write;
use std::path::{Path, PathBuf};

use aurigraph_decision::SlotKind;
use aurigraph_decision::slot::Rows;

use aurigraph_node::telemetry::{
    BlockRecord, DecisionRecord, KIND_BLOCK, KIND_DECISION, parse_block_key, parse_decision_key,
};
use aurigraph_storage::{Storage, StorageError};

mod pq;
pub use pq::{ROW_GROUP_BYTES, ROW_GROUP_ROWS};

/// An export failure, with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
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
    /// Writing the Parquet output failed (its sink, or the writer itself).
    #[error("[E_IO] parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

impl ExportError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::Usage(_) => "E_USAGE",
            ExportError::Storage { source } => source.code(),
            ExportError::Corrupt(_) => "E_STORAGE_CORRUPT",
            ExportError::Io(_) | ExportError::Parquet(_) => "E_IO",
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
    /// Apache Parquet: the CSV's rows and columns, typed.
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
pub const SLOT_COLUMNS: [&str; 12] = aurigraph_decision::host::SLOT_EXPORT_COLUMNS;

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

/// A column's Parquet type (its CSV form is text either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// INT64 (heights, counts, keys, ms timestamps).
    I64,
    /// FLOAT (the recorded f32 features and values, exactly).
    F32,
    /// DOUBLE (latencies, means).
    F64,
    /// BYTE_ARRAY, UTF8.
    Str,
}

/// One column of an export: its name, type, and whether a row may leave it empty (null).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Name (the CSV header's).
    pub name: String,
    /// Parquet type.
    pub ty: Ty,
    /// Whether it may be empty (CSV) or null (Parquet).
    pub optional: bool,
}

/// One field of one row, before it is written as CSV text or a Parquet value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    /// Empty (CSV) or null (Parquet).
    Null,
    I(i64),
    F32(f32),
    F64(f64),
    /// A double the CSV writes with 3 decimals.
    F64x3(f64),
    S(String),
}

impl Cell {
    fn int(v: impl TryInto<i64>) -> Cell {
        Cell::I(v.try_into().unwrap_or(i64::MAX))
    }

    fn str(s: &str) -> Cell {
        Cell::S(s.to_string())
    }

    fn csv(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::I(v) => v.to_string(),
            Cell::F32(v) => v.to_string(),
            Cell::F64(v) => v.to_string(),
            Cell::F64x3(v) => format!("{v:.3}"),
            Cell::S(s) => s.clone(),
        }
    }
}

/// The types of [`CSV_COLUMNS`], in order (`true`: optional).
const CSV_TYPES: [(Ty, bool); 36] = [
    (Ty::Str, false), // kind
    (Ty::I64, false), // height
    (Ty::I64, true),  // seq
    (Ty::Str, true),  // slot
    (Ty::I64, true),  // key
    (Ty::I64, false), // at_ms
    (Ty::Str, true),  // arm
    (Ty::Str, true),  // backend
    (Ty::Str, true),  // name
    (Ty::Str, true),  // version
    (Ty::Str, true),  // fallback
    (Ty::I64, true),  // generation
    (Ty::F64, true),  // latency_us
    (Ty::I64, true),  // rows
    (Ty::I64, true),  // cols
    (Ty::Str, true),  // features_digest
    (Ty::I64, true),  // values_count
    (Ty::F32, true),  // values_min
    (Ty::F32, true),  // values_max
    (Ty::F64, true),  // values_mean
    (Ty::Str, true),  // features (JSON)
    (Ty::Str, true),  // values (JSON)
    (Ty::I64, true),  // txs
    (Ty::I64, true),  // executed
    (Ty::I64, true),  // skipped
    (Ty::I64, true),  // target_size
    (Ty::I64, true),  // queue_depth
    (Ty::F64, true),  // block_latency_ms
    (Ty::F64, true),  // commit_mean_ms
    (Ty::F64, true),  // commit_p50_ms
    (Ty::F64, true),  // commit_p95_ms
    (Ty::F64, true),  // commit_p99_ms
    (Ty::I64, true),  // conflicts
    (Ty::I64, true),  // re_executions
    (Ty::I64, true),  // accepted
    (Ty::I64, true),  // refused
];

/// The types of [`SLOT_COLUMNS`], in order (`true`: optional).
const SLOT_TYPES: [(Ty, bool); 12] = [
    (Ty::I64, false), // height
    (Ty::I64, false), // seq
    (Ty::I64, false), // key
    (Ty::I64, false), // at_ms
    (Ty::Str, false), // arm
    (Ty::Str, false), // backend
    (Ty::Str, false), // name
    (Ty::Str, false), // version
    (Ty::Str, true),  // fallback
    (Ty::F64, false), // latency_us
    (Ty::Str, false), // features_digest
    (Ty::I64, false), // row
];

fn columns(names: &[&str], types: &[(Ty, bool)]) -> Vec<Column> {
    names
        .iter()
        .zip(types)
        .map(|(n, &(ty, optional))| Column {
            name: n.to_string(),
            ty,
            optional,
        })
        .collect()
}

/// The columns of the export without `--slot` (CSV and Parquet).
pub fn record_columns() -> Vec<Column> {
    columns(&CSV_COLUMNS, &CSV_TYPES)
}

/// The columns of the export of `slot`: [`SLOT_COLUMNS`], the slot's features (FLOAT,
/// null when only a digest was recorded), then `value` or `value_0..value_{k-1}` (FLOAT).
pub fn slot_columns(slot: SlotKind) -> Vec<Column> {
    let contract = slot.contract();
    let mut cols = columns(&SLOT_COLUMNS, &SLOT_TYPES);
    let float = |name: String| Column {
        name,
        ty: Ty::F32,
        optional: true,
    };
    cols.extend(contract.features.iter().map(|f| float(f.name.clone())));
    match output_count(slot) {
        1 => cols.push(float("value".into())),
        n => cols.extend((0..n).map(|i| float(format!("value_{i}")))),
    }
    cols
}

fn output_count(slot: SlotKind) -> usize {
    match slot.contract().output.len {
        aurigraph_decision::slot::OutputLen::PerRow => 1,
        aurigraph_decision::slot::OutputLen::Fixed(n) => n,
    }
}

/// A record as one row of [`record_columns`].
fn record_row(rec: &Rec) -> Vec<Cell> {
    let mut f = vec![Cell::Null; CSV_COLUMNS.len()];
    match rec {
        Rec::Block(b) => {
            f[0] = Cell::str("block");
            f[1] = Cell::int(b.height);
            f[5] = Cell::int(b.at_ms);
            f[22] = Cell::int(b.txs);
            f[23] = Cell::int(b.executed);
            f[24] = Cell::int(b.skipped);
            f[25] = Cell::int(b.target_size);
            f[26] = Cell::int(b.queue_depth);
            f[27] = Cell::F64x3(b.block_latency_ms);
            let l = &b.submit_to_commit_ms;
            f[28] = Cell::F64x3(l.mean);
            f[29] = Cell::F64x3(l.p50);
            f[30] = Cell::F64x3(l.p95);
            f[31] = Cell::F64x3(l.p99);
            f[32] = Cell::int(b.conflicts);
            f[33] = Cell::int(b.re_executions);
            f[34] = Cell::int(b.accepted);
            f[35] = Cell::int(b.refused);
        }
        Rec::Decision(h, s, d) => {
            f[0] = Cell::str("decision");
            f[1] = Cell::int(*h);
            f[2] = Cell::int(*s);
            f[3] = Cell::str(&d.slot);
            f[4] = Cell::int(d.key);
            f[5] = Cell::int(d.at_ms);
            f[6] = Cell::str(&d.arm);
            f[7] = Cell::str(&d.backend);
            f[8] = Cell::str(&d.name);
            f[9] = Cell::str(&d.version);
            f[10] = d.fallback.as_deref().map_or(Cell::Null, Cell::str);
            f[11] = Cell::int(d.generation);
            f[12] = Cell::F64x3(d.latency_us);
            f[13] = Cell::int(d.rows);
            f[14] = Cell::int(d.cols);
            f[15] = Cell::str(&d.features_digest);
            f[16] = Cell::int(d.summary.count);
            f[17] = Cell::F32(d.summary.min);
            f[18] = Cell::F32(d.summary.max);
            f[19] = Cell::F64(d.summary.mean);
            f[20] = d.features.as_ref().map_or(Cell::Null, |x| Cell::S(json(x)));
            f[21] = d.values.as_ref().map_or(Cell::Null, |x| Cell::S(json(x)));
        }
    }
    f
}

/// Input row `row` of a decision of `slot` as one row of [`slot_columns`].
fn slot_row(slot: SlotKind, h: u64, s: u32, d: &DecisionRecord, row: usize) -> Vec<Cell> {
    let contract = slot.contract();
    let mut f = vec![
        Cell::int(h),
        Cell::int(s),
        Cell::int(d.key),
        Cell::int(d.at_ms),
        Cell::str(&d.arm),
        Cell::str(&d.backend),
        Cell::str(&d.name),
        Cell::str(&d.version),
        d.fallback.as_deref().map_or(Cell::Null, Cell::str),
        Cell::F64x3(d.latency_us),
        Cell::str(&d.features_digest),
        Cell::int(row),
    ];
    let cols = contract.feature_count();
    match d.features.as_ref().and_then(|x| x.get(row)) {
        Some(r) => f.extend((0..cols).map(|j| r.get(j).map_or(Cell::Null, |&v| Cell::F32(v)))),
        None => f.extend(std::iter::repeat_n(Cell::Null, cols)),
    }
    let value = |i: usize| match &d.values {
        Some(v) => v.get(i).map_or(Cell::Null, |&x| Cell::F32(x)),
        None => Cell::Null,
    };
    match contract.rows {
        Rows::Batch => f.push(value(row)),
        Rows::Single => f.extend((0..output_count(slot)).map(value)),
    }
    f
}

/// Where the rows of a CSV or Parquet export go.
enum Sink<'a> {
    Csv(&'a mut (dyn Write + Send)),
    Parquet(Box<pq::Table<&'a mut (dyn Write + Send)>>),
}

impl<'a> Sink<'a> {
    fn new(
        format: Format,
        out: &'a mut (dyn Write + Send),
        cols: &[Column],
    ) -> Result<Self, ExportError> {
        Ok(match format {
            Format::Parquet => Sink::Parquet(Box::new(pq::Table::new(out, cols)?)),
            _ => {
                let header: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
                csv_line(out, &header)?;
                Sink::Csv(out)
            }
        })
    }

    fn row(&mut self, row: Vec<Cell>) -> Result<(), ExportError> {
        match self {
            Sink::Csv(out) => {
                let f: Vec<String> = row.iter().map(Cell::csv).collect();
                csv_line(*out, &f)?;
            }
            Sink::Parquet(t) => t.push(row)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<(), ExportError> {
        if let Sink::Parquet(t) = self {
            t.finish()?;
        }
        Ok(())
    }
}

/// Exports the telemetry of `opts.data_dir` to `out`. The database is opened read-only,
/// so the node may be running (it then sees what RocksDB had written when it opened).
pub fn export(
    opts: &ExportOptions,
    out: &mut (dyn Write + Send),
) -> Result<ExportSummary, ExportError> {
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
    out: &mut (dyn Write + Send),
) -> Result<ExportSummary, ExportError> {
    let from = opts.from.unwrap_or(0);
    let to = opts.to.unwrap_or(u64::MAX);
    let mut sum = ExportSummary::default();
    let slot_name = opts.slot.map(SlotKind::as_str);
    match (opts.format, opts.slot) {
        (Format::Csv | Format::Parquet, Some(slot)) => {
            let mut sink = Sink::new(opts.format, out, &slot_columns(slot))?;
            scan_decisions(storage, from, to, |h, s, d| {
                if d.slot != slot.as_str() {
                    return Ok(());
                }
                sum.decisions += 1;
                for row in 0..d.rows.max(1) {
                    sink.row(slot_row(slot, h, s, &d, row))?;
                    sum.lines += 1;
                }
                Ok(())
            })?;
            sink.finish()?;
        }
        (Format::Csv | Format::Parquet, None) => {
            let mut sink = Sink::new(opts.format, out, &record_columns())?;
            scan_all(storage, from, to, |rec| {
                match &rec {
                    Rec::Block(_) => sum.blocks += 1,
                    Rec::Decision(..) => sum.decisions += 1,
                }
                sink.row(record_row(&rec))?;
                sum.lines += 1;
                Ok(())
            })?;
            sink.finish()?;
        }
        (Format::Jsonl, _) => {
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
    let lo = aurigraph_node::telemetry::decision_key(from, 0);
    let hi = match to.checked_add(1) {
        Some(t) => aurigraph_node::telemetry::decision_key(t, 0),
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
    let lo = aurigraph_node::telemetry::block_key(from);
    let hi = match to.checked_add(1) {
        Some(t) => aurigraph_node::telemetry::block_key(t),
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
            let file = std::fs::File::create(p)?;
            let mut w = std::io::BufWriter::new(file);
            export(opts, &mut w)?
        }
        None => {
            // `Stdout`, not its lock: the Parquet writer wants a `Send` sink.
            let mut w = std::io::BufWriter::new(std::io::stdout());
            export(opts, &mut w)?
        }
    };
    Ok(sum)
}

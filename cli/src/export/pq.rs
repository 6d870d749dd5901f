//! The Parquet form of the export: the CSV's rows and columns, typed, written with parquet's
//! low-level writer (`SerializedFileWriter`, a schema from `parse_message_type`, no arrow).
//!
//! Rows are buffered column by column and written as a row group every
//! [`ROW_GROUP_ROWS`] rows or [`ROW_GROUP_BYTES`] buffered bytes, whichever comes first, so a
//! large export holds at most one row group in memory. Pages are snappy-compressed.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::{Cell, Column, Ty};

/// Rows per row group (at most).
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Buffered bytes per row group (about; strings by length, numbers 8 bytes).
pub const ROW_GROUP_BYTES: usize = 32 << 20;

enum Buf {
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Str(Vec<ByteArray>),
}

struct ColBuf {
    name: String,
    optional: bool,
    values: Buf,
    defs: Vec<i16>,
}

/// The schema text of `columns` (Parquet's message syntax).
pub fn schema_text(columns: &[Column]) -> String {
    let mut s = String::from("message aurigraph_telemetry {\n");
    for c in columns {
        let rep = if c.optional { "optional" } else { "required" };
        let ty = match c.ty {
            Ty::I64 => "int64",
            Ty::F32 => "float",
            Ty::F64 => "double",
            Ty::Str => "binary",
        };
        let ann = if c.ty == Ty::Str { " (UTF8)" } else { "" };
        s.push_str(&format!("  {rep} {ty} {}{ann};\n", c.name));
    }
    s.push('}');
    s
}

/// A Parquet file being written, one row group buffered.
pub struct Table<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    cols: Vec<ColBuf>,
    rows: usize,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
}

fn general(msg: String) -> ParquetError {
    ParquetError::General(msg)
}

impl<W: Write + Send> Table<W> {
    /// Starts a file with these columns on `out`, with the default row group bounds.
    pub fn new(out: W, columns: &[Column]) -> Result<Self, ParquetError> {
        Self::with_limits(out, columns, ROW_GROUP_ROWS, ROW_GROUP_BYTES)
    }

    /// Starts a file with row groups of at most `max_rows` rows or about `max_bytes`.
    pub fn with_limits(
        out: W,
        columns: &[Column],
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Self, ParquetError> {
        let schema = Arc::new(parse_message_type(&schema_text(columns))?);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("aurigraph {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = SerializedFileWriter::new(out, schema, Arc::new(props))?;
        let cols = columns
            .iter()
            .map(|c| ColBuf {
                name: c.name.clone(),
                optional: c.optional,
                values: match c.ty {
                    Ty::I64 => Buf::I64(Vec::new()),
                    Ty::F32 => Buf::F32(Vec::new()),
                    Ty::F64 => Buf::F64(Vec::new()),
                    Ty::Str => Buf::Str(Vec::new()),
                },
                defs: Vec::new(),
            })
            .collect();
        Ok(Self {
            writer,
            cols,
            rows: 0,
            bytes: 0,
            max_rows: max_rows.max(1),
            max_bytes,
        })
    }

    /// Appends one row (one cell per column, in order; `Null` only in optional columns).
    pub fn push(&mut self, row: Vec<Cell>) -> Result<(), ParquetError> {
        if row.len() != self.cols.len() {
            return Err(general(format!(
                "a row of {} cells for {} columns",
                row.len(),
                self.cols.len()
            )));
        }
        for (c, cell) in self.cols.iter_mut().zip(row) {
            let present = !matches!(cell, Cell::Null);
            match (&mut c.values, cell) {
                (_, Cell::Null) if c.optional => {}
                (Buf::I64(v), Cell::I(x)) => v.push(x),
                (Buf::F32(v), Cell::F32(x)) => v.push(x),
                (Buf::F64(v), Cell::F64(x) | Cell::F64x3(x)) => v.push(x),
                (Buf::Str(v), Cell::S(s)) => {
                    self.bytes += s.len();
                    v.push(ByteArray::from(s.into_bytes()));
                }
                (_, cell) => {
                    return Err(general(format!(
                        "column {}: {cell:?} does not fit its type",
                        c.name
                    )));
                }
            }
            self.bytes += 8;
            if c.optional {
                c.defs.push(i16::from(present));
            }
        }
        self.rows += 1;
        if self.rows >= self.max_rows || self.bytes >= self.max_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered rows as one row group.
    fn flush(&mut self) -> Result<(), ParquetError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group()?;
        for c in &mut self.cols {
            let mut cw = rg
                .next_column()?
                .ok_or_else(|| general(format!("no column writer for {}", c.name)))?;
            let defs = c.optional.then_some(&c.defs[..]);
            match &mut c.values {
                Buf::I64(v) => {
                    cw.typed::<Int64Type>().write_batch(v, defs, None)?;
                    v.clear();
                }
                Buf::F32(v) => {
                    cw.typed::<FloatType>().write_batch(v, defs, None)?;
                    v.clear();
                }
                Buf::F64(v) => {
                    cw.typed::<DoubleType>().write_batch(v, defs, None)?;
                    v.clear();
                }
                Buf::Str(v) => {
                    cw.typed::<ByteArrayType>().write_batch(v, defs, None)?;
                    v.clear();
                }
            }
            c.defs.clear();
            cw.close()?;
        }
        rg.close()?;
        self.rows = 0;
        self.bytes = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the row groups written.
    pub fn finish(mut self) -> Result<usize, ParquetError> {
        self.flush()?;
        let meta = self.writer.close()?;
        Ok(meta.num_row_groups())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;

    fn col(name: &str, ty: Ty, optional: bool) -> Column {
        Column {
            name: name.into(),
            ty,
            optional,
        }
    }

    #[test]
    fn row_groups_are_bounded_and_nulls_read_back() {
        let cols = [
            col("n", Ty::I64, false),
            col("x", Ty::F32, true),
            col("s", Ty::Str, true),
        ];
        let path = tempfile::NamedTempFile::new().unwrap();
        let file = std::fs::File::create(path.path()).unwrap();
        let mut t = Table::with_limits(file, &cols, 4, usize::MAX).unwrap();
        for i in 0..10i64 {
            let x = if i % 3 == 0 {
                Cell::Null
            } else {
                Cell::F32(i as f32 / 2.0)
            };
            t.push(vec![Cell::I(i), x, Cell::S(format!("r{i}"))])
                .unwrap();
        }
        assert!(t.push(vec![Cell::Null, Cell::Null, Cell::Null]).is_err());
        assert_eq!(t.finish().unwrap(), 3, "10 rows in groups of 4");
        let r = SerializedFileReader::new(std::fs::File::open(path.path()).unwrap()).unwrap();
        assert_eq!(r.metadata().file_metadata().num_rows(), 10);
        assert!(
            (0..3).all(|g| r.metadata().row_group(g).num_rows() <= 4),
            "bounded row groups"
        );
        let rows: Vec<_> = r.get_row_iter(None).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows[7].get_long(0).unwrap(), 7);
        assert_eq!(rows[7].get_float(1).unwrap(), 3.5);
        assert!(rows[6].get_float(1).is_err(), "null");
        assert_eq!(rows[9].get_string(2).unwrap(), "r9");
    }

    #[test]
    fn every_export_schema_parses() {
        let records = super::super::record_columns();
        let names: Vec<&str> = records.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, super::super::CSV_COLUMNS);
        parse_message_type(&schema_text(&records)).unwrap();
        for slot in aurigraph_decision::SlotKind::ALL {
            let cols = super::super::slot_columns(slot);
            let schema = parse_message_type(&schema_text(&cols)).unwrap();
            assert_eq!(schema.get_fields().len(), cols.len(), "{slot:?}");
        }
    }

    #[test]
    fn a_byte_bound_cuts_row_groups_too() {
        let cols = [col("s", Ty::Str, false)];
        let mut out = Vec::new();
        let mut t = Table::with_limits(&mut out, &cols, usize::MAX, 100).unwrap();
        for _ in 0..10 {
            t.push(vec![Cell::S("x".repeat(60))]).unwrap();
        }
        assert_eq!(t.finish().unwrap(), 5, "two 68-byte rows pass 100 bytes");
    }
}

//! [`FeatureMatrix`]: the row-major `f32[N, F]` input every slot takes.
//!
//! The data sits behind an `Arc`, so handing the same input to the baseline, a shadow
//! candidate and the static fallback costs a reference count, not a copy.

use std::sync::Arc;

/// A row-major matrix of `rows x cols` features. Cheap to clone.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMatrix {
    rows: usize,
    cols: usize,
    data: Arc<[f32]>,
}

/// The shape of the data handed to [`FeatureMatrix::new`] did not match `rows * cols`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feature data has {len} values, expected rows x cols = {rows} x {cols}")]
pub struct ShapeError {
    /// Rows asked for.
    pub rows: usize,
    /// Columns asked for.
    pub cols: usize,
    /// Values given.
    pub len: usize,
}

impl FeatureMatrix {
    /// Builds a matrix from row-major data; `data.len()` must equal `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, ShapeError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(ShapeError {
                rows,
                cols,
                len: data.len(),
            });
        }
        Ok(Self {
            rows,
            cols,
            data: data.into(),
        })
    }

    /// Builds a matrix from rows of equal length.
    pub fn from_rows<R: AsRef<[f32]>>(cols: usize, rows: &[R]) -> Result<Self, ShapeError> {
        let mut data = Vec::with_capacity(rows.len() * cols);
        for r in rows {
            data.extend_from_slice(r.as_ref());
        }
        Self::new(rows.len(), cols, data)
    }

    /// Number of rows (the batch axis).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of features per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i`, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        if i >= self.rows {
            return None;
        }
        self.data.get(i * self.cols..(i + 1) * self.cols)
    }

    /// Iterates over the rows in order.
    pub fn iter_rows(&self) -> impl ExactSizeIterator<Item = &[f32]> + '_ {
        // `chunks_exact(0)` panics, so a zero-width matrix yields empty rows instead.
        let cols = self.cols.max(1);
        let n = if self.cols == 0 { 0 } else { self.rows };
        self.data.chunks_exact(cols).take(n)
    }

    /// The row-major data.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Whether every value is finite (no NaN, no infinity).
    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }
}

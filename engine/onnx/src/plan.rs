//! [`Plans`]: the optimised tract plans of one model, and [`OutputReader`], which turns the
//! model's output tensor into the slot's values.
//!
//! A batched slot's model gets a plan with a symbolic batch axis (any number of rows) and,
//! optionally, plans specialised to fixed batch sizes ("buckets"). A batch runs on the
//! smallest bucket that holds it, padded with zero rows whose answers are dropped, or on the
//! symbolic plan when no bucket fits. Specialised plans are faster because tract picks its
//! matrix kernels and lays out memory once, at load, instead of on every call; see the
//! [module docs](super) for the measured trade-off. A single-row slot's model has one plan,
//! specialised to one row.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_data::internal::{ensure, format_err};

use aurigraph_decision::features::FeatureMatrix;

/// A runnable, optimised plan.
pub(crate) type Plan = Arc<TypedRunnableModel>;

/// The plans of one model.
pub(crate) struct Plans {
    cols: usize,
    /// Symbolic batch (batched slots) or one row (single-row slots).
    generic: Plan,
    /// Specialised plans, sorted by batch size.
    buckets: Vec<(usize, Plan)>,
}

impl Plans {
    pub(crate) fn new(cols: usize, generic: Plan) -> Self {
        Self {
            cols,
            generic,
            buckets: Vec::new(),
        }
    }

    pub(crate) fn set_buckets(&mut self, mut buckets: Vec<(usize, Plan)>) {
        buckets.sort_by_key(|b| b.0);
        self.buckets = buckets;
    }

    /// Batch sizes with a specialised plan.
    pub(crate) fn bucket_sizes(&self) -> Vec<usize> {
        self.buckets.iter().map(|b| b.0).collect()
    }

    /// The bucket a batch of `rows` runs on: the smallest that holds it, unless that would
    /// more than double the rows (small batches run faster unpadded on the symbolic plan).
    pub(crate) fn bucket_for(&self, rows: usize) -> Option<&(usize, Plan)> {
        self.buckets
            .iter()
            .find(|(size, _)| *size >= rows)
            .filter(|(size, _)| *size <= rows.saturating_mul(2))
    }

    /// Runs `input`; returns the output tensor, whose first axis may hold padding rows past
    /// `input.rows()`.
    pub(crate) fn run(&self, input: &FeatureMatrix) -> TractResult<TValue> {
        self.run_on(input, self.bucket_for(input.rows()))
    }

    /// Runs `input` on the symbolic (or only) plan.
    pub(crate) fn run_generic(&self, input: &FeatureMatrix) -> TractResult<TValue> {
        self.run_on(input, None)
    }

    fn run_on(&self, input: &FeatureMatrix, bucket: Option<&(usize, Plan)>) -> TractResult<TValue> {
        let rows = input.rows();
        let (plan, tensor) = match bucket {
            Some((size, plan)) if *size > rows => {
                let mut t = Tensor::zero::<f32>(&[*size, self.cols])?;
                t.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?[..input.as_slice().len()]
                    .copy_from_slice(input.as_slice());
                (plan, t)
            }
            Some((_, plan)) => (
                plan,
                Tensor::from_shape(&[rows, self.cols], input.as_slice())?,
            ),
            None => (
                &self.generic,
                Tensor::from_shape(&[rows, self.cols], input.as_slice())?,
            ),
        };
        let mut out = plan.run(tvec!(tensor.into_tvalue()))?;
        out.pop()
            .ok_or_else(|| format_err!("the plan returned no output"))
    }
}

/// How the slot's values are read from the model's output tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputReader {
    /// Per-row slots: one value per row (`[N]` or `[N, 1]`). Fixed slots: every value.
    Flat,
    /// Column `col` of an `[N, width]` (or `[1, width]`) output.
    Column {
        /// Values per row.
        width: usize,
        /// The column read.
        col: usize,
    },
}

impl OutputReader {
    /// The slot's values for `rows` input rows from `out`; `per_row` for batched slots.
    pub(crate) fn read(&self, out: &Tensor, rows: usize, per_row: bool) -> TractResult<Vec<f32>> {
        let view = out.try_as_plain_ram()?;
        let data = view.as_slice::<f32>()?;
        let lead = out.shape().first().copied().unwrap_or(1);
        match *self {
            OutputReader::Flat if per_row => {
                ensure!(
                    lead >= rows && (lead == 0 || data.len() == lead),
                    "output shape {:?} does not hold one value per row for {rows} rows",
                    out.shape()
                );
                Ok(data[..rows].to_vec())
            }
            OutputReader::Flat => Ok(data.to_vec()),
            OutputReader::Column { width, col } => {
                let need = if per_row { rows } else { 1 };
                ensure!(
                    col < width && data.len() == lead * width && lead >= need,
                    "output shape {:?} does not have column {col} of {width} for {need} rows",
                    out.shape()
                );
                Ok(data
                    .iter()
                    .skip(col)
                    .step_by(width)
                    .take(need)
                    .copied()
                    .collect())
            }
        }
    }
}

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

/// The largest number of bytes of tensors alive at once while `plan` runs a batch of `rows`
/// rows, `batch` being the plan's batch symbol (absent in plans with concrete shapes).
///
/// The plan's own evaluation order is walked step by step, as tract runs it: a node's
/// outputs are alive from its step until the step of their last consumer (the plan's
/// outputs until the end), and a step holds its inputs and its outputs at once. Each
/// output counts as its shape's volume times its element size, plus the buffers its fact
/// declares (a packed matrix's). A buffer tract reuses in place counts twice; constants
/// (the weights) and an operator's scratch space do not count. Sums saturate at
/// `u64::MAX`. An error names the tensor whose shape cannot be evaluated: a dimension that
/// depends on the data, or one that overflows `i64`.
pub(crate) fn peak_bytes(plan: &Plan, batch: Option<&Symbol>, rows: usize) -> Result<u64, String> {
    let model = plan.model();
    let order = plan.order_without_consts();
    let mut values = SymbolValues::default();
    if let Some(sym) = batch {
        values.set(sym, i64::try_from(rows).unwrap_or(i64::MAX));
    }
    let nodes = model.nodes();
    // The step after which each node's outputs are no longer needed; `None`: kept to the end.
    let mut last_use: Vec<Option<usize>> = vec![Some(0); nodes.len()];
    for (step, &n) in order.iter().enumerate() {
        for input in &nodes[n].inputs {
            if let Some(slot) = last_use.get_mut(input.node) {
                *slot = Some(step);
            }
        }
    }
    let outputs = model.output_outlets().map_err(|e| format!("{e}"))?;
    for o in outputs {
        if let Some(slot) = last_use.get_mut(o.node) {
            *slot = None;
        }
    }
    let mut freed_at: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
    for &n in order {
        // A value without a consumer, or whose last consumer is the first step, stays alive
        // to the end, as in tract's plan.
        if let Some(Some(step)) = last_use.get(n).copied()
            && step > 0
            && let Some(list) = freed_at.get_mut(step)
        {
            list.push(n);
        }
    }
    let mut bytes = vec![0u64; nodes.len()];
    let mut live = 0u64;
    let mut peak = 0u64;
    for (step, &n) in order.iter().enumerate() {
        let node = &nodes[n];
        let mut size = 0u64;
        for outlet in &node.outputs {
            size = size.saturating_add(fact_bytes(&outlet.fact, &values).map_err(|e| {
                format!(
                    "output of node `{}` has shape {:?}: {e}",
                    node.name, outlet.fact.shape
                )
            })?);
        }
        bytes[n] = size;
        live = live.saturating_add(size);
        peak = peak.max(live);
        for &done in &freed_at[step] {
            live = live.saturating_sub(bytes[done]);
        }
    }
    Ok(peak)
}

/// Bytes of a tensor of `fact` with the symbols of `values`, with the buffers of an exotic
/// tensor (a matrix packed for multiplication).
fn fact_bytes(fact: &TypedFact, values: &SymbolValues) -> TractResult<u64> {
    let mut volume = 1u64;
    for dim in fact.shape.iter() {
        let d = dim.eval_to_i64(values)?;
        let d = u64::try_from(d).map_err(|_| format_err!("negative dimension {d}"))?;
        volume = volume.saturating_mul(d);
    }
    let mut bytes = volume.saturating_mul(fact.datum_type.size_of() as u64);
    for buffer in fact
        .exotic_fact()
        .map(|x| x.buffer_sizes())
        .unwrap_or_default()
    {
        let b = buffer.eval_to_i64(values)?;
        let b = u64::try_from(b).map_err(|_| format_err!("negative buffer size {b}"))?;
        bytes = bytes.saturating_add(b);
    }
    Ok(bytes)
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

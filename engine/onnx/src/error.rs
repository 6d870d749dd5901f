//! [`OnnxError`]: why a model folder, a manifest or a model was refused, with a stable code.

use std::time::Duration;

use aurigraph_decision::slot::SlotKind;

/// Result alias of the ONNX backend.
pub type OnnxResult<T> = std::result::Result<T, OnnxError>;

/// Why a model was refused at validation or load. Every variant has a stable code
/// ([`OnnxError::code`]) that `aurigraph models validate`, the registry's load errors and
/// the logs print; a code never changes meaning.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OnnxError {
    /// A file of the model folder cannot be read.
    #[error("cannot read `{path}`: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// `model.toml` is missing, is not valid TOML, misses a field, has an unknown field or
    /// a bad value.
    #[error("manifest `{path}`: {reason}")]
    Manifest {
        /// The manifest file (or `<memory>`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The manifest declares a feature-schema version the slot does not use.
    #[error(
        "the model is built for feature schema v{declared} of `{slot}`, the node uses v{expected}; \
         retrain on the current schema (`aurigraph models schema {slot}`)"
    )]
    SchemaVersion {
        /// The slot.
        slot: SlotKind,
        /// The version the manifest declares.
        declared: u32,
        /// The version the slot uses.
        expected: u32,
    },
    /// The model was offered to another slot than the one its manifest declares.
    #[error("the manifest declares the `{declared}` slot, the model was offered to `{expected}`")]
    SlotMismatch {
        /// The slot in the manifest.
        declared: SlotKind,
        /// The slot it was offered to.
        expected: SlotKind,
    },
    /// The model file is larger than [`MAX_MODEL_BYTES`](super::MAX_MODEL_BYTES).
    #[error("the model file is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not an ONNX `ModelProto` with a graph (truncated, corrupt, another format).
    #[error("not a valid ONNX model: {0}")]
    Parse(String),
    /// The manifest names an input or output tensor the graph does not have, or the graph's
    /// inputs and outputs are ambiguous without a name.
    #[error("{0}")]
    TensorName(String),
    /// Wrong rank, a fixed batch where the slot needs a symbolic one, or an output shape that
    /// does not give the slot's output.
    #[error("{0}")]
    Shape(String),
    /// The model's feature count differs from the slot's.
    #[error(
        "the model takes {got} features per row, the `{slot}` slot has {expected} \
         (see `aurigraph models schema {slot}`)"
    )]
    Features {
        /// The slot.
        slot: SlotKind,
        /// Features of the slot.
        expected: usize,
        /// Features the model declares.
        got: i64,
    },
    /// An input or output whose element type is not `f32`.
    #[error("{0}")]
    Dtype(String),
    /// Operators tract cannot run (nor this backend's own operators).
    #[error("unsupported operator(s) {}: {hint}", ops.join(", "))]
    UnsupportedOp {
        /// `domain:op_type` of each unsupported operator, deduplicated.
        ops: Vec<String>,
        /// What to do about it.
        hint: String,
    },
    /// Tensor data stored outside the model file (the folder must be self-contained).
    #[error(
        "initializer `{0}` keeps its data in an external file; save the model with all \
         tensors inside model.onnx (onnx.save_model(..., save_as_external_data=False))"
    )]
    ExternalData(String),
    /// tract could not type, analyse or optimise the graph.
    #[error("tract cannot prepare the model: {0}")]
    Tract(String),
    /// The model answered NaN or infinity on a golden input at warm-up.
    #[error("warm-up: non-finite output (value {index}) on a golden input of {rows} rows")]
    WarmupNan {
        /// Rows of the golden input.
        rows: usize,
        /// Position of the first bad value.
        index: usize,
    },
    /// The model failed, or answered the wrong length or out of range, on a golden input.
    #[error("warm-up: {0}")]
    Warmup(String),
    /// The model is slower than the slot's deadline at warm-up.
    #[error(
        "too slow: {rows} rows took {took:?} at warm-up (best of 3), over the budget of \
         {budget:?} for the `{slot}` slot's deadline"
    )]
    TooSlow {
        /// The slot.
        slot: SlotKind,
        /// Rows timed.
        rows: usize,
        /// Time taken.
        took: Duration,
        /// The budget it had to meet.
        budget: Duration,
    },
    /// The tensors the model's plans keep alive at once, for the largest batch they run,
    /// are over the memory cap ([`LoadOptions::memory_cap`](super::LoadOptions::memory_cap)).
    #[error(
        "the model needs about {estimate} bytes ({estimate_mib:.1} MiB) of tensors at once for \
         a batch of {rows} rows, over the memory cap of {cap} bytes ({cap_mib:.1} MiB)",
        estimate_mib = *.estimate as f64 / 1_048_576.0,
        cap_mib = *.cap as f64 / 1_048_576.0
    )]
    MemoryCap {
        /// The estimate: the peak of the tensors alive at once, in bytes.
        estimate: u64,
        /// Rows of the batch it was estimated for.
        rows: usize,
        /// The cap, in bytes.
        cap: u64,
    },
    /// The memory of the model's plans cannot be bounded: a tensor's shape depends on the
    /// data, or overflows.
    #[error("cannot bound the model's memory for a batch of {rows} rows: {reason}")]
    MemoryUnbounded {
        /// Rows of the batch it was estimated for.
        rows: usize,
        /// The tensor whose shape cannot be evaluated, and why.
        reason: String,
    },
    /// tract panicked on the model (a bug in tract, reported instead of crashing the node).
    #[error("tract panicked on the model: {0}")]
    Panic(String),
    /// The registry has no such model.
    #[error("no model `{name}@{version}` for `{slot}` in the registry")]
    NotFound {
        /// The slot.
        slot: SlotKind,
        /// Name.
        name: String,
        /// Version.
        version: String,
    },
}

impl OnnxError {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            OnnxError::Io { .. } => "E_IO",
            OnnxError::Manifest { .. } => "E_MANIFEST",
            OnnxError::SchemaVersion { .. } => "E_SCHEMA_VERSION",
            OnnxError::SlotMismatch { .. } => "E_SLOT_MISMATCH",
            OnnxError::TooLarge { .. } => "E_ONNX_TOO_LARGE",
            OnnxError::Parse(_) => "E_ONNX_PARSE",
            OnnxError::TensorName(_) => "E_ONNX_TENSOR_NAME",
            OnnxError::Shape(_) => "E_ONNX_SHAPE",
            OnnxError::Features { .. } => "E_ONNX_FEATURES",
            OnnxError::Dtype(_) => "E_ONNX_DTYPE",
            OnnxError::UnsupportedOp { .. } => "E_ONNX_UNSUPPORTED_OP",
            OnnxError::ExternalData(_) => "E_ONNX_EXTERNAL_DATA",
            OnnxError::Tract(_) => "E_ONNX_TRACT",
            OnnxError::WarmupNan { .. } => "E_ONNX_WARMUP_NAN",
            OnnxError::Warmup(_) => "E_ONNX_WARMUP",
            OnnxError::TooSlow { .. } => "E_ONNX_TOO_SLOW",
            OnnxError::MemoryCap { .. } | OnnxError::MemoryUnbounded { .. } => "E_MODEL_MEMORY",
            OnnxError::Panic(_) => "E_ONNX_PANIC",
            OnnxError::NotFound { .. } => "E_MODEL_NOT_FOUND",
        }
    }

    /// Every code, for documentation and tests.
    pub const CODES: [&'static str; 19] = [
        "E_IO",
        "E_MANIFEST",
        "E_SCHEMA_VERSION",
        "E_SLOT_MISMATCH",
        "E_ONNX_TOO_LARGE",
        "E_ONNX_PARSE",
        "E_ONNX_TENSOR_NAME",
        "E_ONNX_SHAPE",
        "E_ONNX_FEATURES",
        "E_ONNX_DTYPE",
        "E_ONNX_UNSUPPORTED_OP",
        "E_ONNX_EXTERNAL_DATA",
        "E_ONNX_TRACT",
        "E_ONNX_WARMUP_NAN",
        "E_ONNX_WARMUP",
        "E_ONNX_TOO_SLOW",
        "E_MODEL_MEMORY",
        "E_ONNX_PANIC",
        "E_MODEL_NOT_FOUND",
    ];

    /// The message on one line (tract's error chains span several).
    pub fn one_line(&self) -> String {
        let s = self.to_string();
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

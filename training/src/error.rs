//! [`TrainingError`], the one error type of the library, and its [`Result`] alias.

/// Why training, export or writing a model failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    /// Shapes that do not fit (a layer, a dataset, a contract).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A NaN or infinite value where a finite one is required.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// The training data cannot train this model (too few rows, one class only, ...).
    #[error("not enough data: {0}")]
    Data(String),
    /// linfa failed to fit.
    #[error("fit failed: {0}")]
    Fit(String),
    /// An ONNX file the reference evaluator cannot read or run.
    #[error("onnx: {0}")]
    Onnx(String),
    /// The engine refused something (a workload config, admission).
    #[error("engine: {0}")]
    Engine(#[from] aurigraph_decision::EngineError),
    /// The manifest could not be serialised.
    #[error("manifest: {0}")]
    Manifest(#[from] toml::ser::Error),
    /// The engine's manifest parser (the one the node loads models with) refused the
    /// `model.toml` this crate was about to write: the two have drifted apart.
    #[error("the engine refuses the manifest: [{code}] {reason}")]
    Contract {
        /// The engine's stable error code (`E_MANIFEST`, `E_SCHEMA_VERSION`, ...).
        code: &'static str,
        /// The engine's reason.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The library's result type.
pub type Result<T, E = TrainingError> = std::result::Result<T, E>;

//! The decision core's error type. Every variant carries a stable code (see [`EngineError::code`])
//! that the CLI, the APIs and the logs print, so callers and operators can match on it.

use crate::slot::SlotKind;

/// Result alias for the decision core.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Errors the decision core reports to its callers.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A slot name that is not one of the five decision slots.
    #[error(
        "unknown slot `{0}` (expected one of: ordering, batch_size, leader_health, anomaly, demand)"
    )]
    UnknownSlot(String),
    /// A feature matrix whose shape does not fit the slot's contract.
    #[error("input does not fit the `{slot}` contract: {reason}")]
    InvalidInput {
        /// The slot whose contract was violated.
        slot: SlotKind,
        /// What was wrong.
        reason: String,
    },
    /// A policy built for another slot or another schema version.
    #[error("policy `{policy}` does not fit the `{slot}` slot: {reason}")]
    ContractMismatch {
        /// The slot it was offered to.
        slot: SlotKind,
        /// The policy's name and version.
        policy: String,
        /// Why it does not fit.
        reason: String,
    },
    /// A rollout command that the current rollout state does not allow.
    #[error("rollout of `{slot}` refused: {reason}")]
    RolloutRefused {
        /// The slot.
        slot: SlotKind,
        /// Why.
        reason: String,
    },
    /// A policy that failed its warm-up on the slot's golden inputs; nothing was swapped.
    #[error("policy `{policy}` failed warm-up for `{slot}`: {reason}")]
    WarmupFailed {
        /// The slot.
        slot: SlotKind,
        /// The policy's label.
        policy: String,
        /// What went wrong.
        reason: String,
    },
    /// The static policy itself failed: a bug, reported instead of a panic.
    #[error("static policy of `{slot}` failed: {reason}")]
    StaticPolicy {
        /// The slot.
        slot: SlotKind,
        /// What went wrong.
        reason: String,
    },
    /// A bad configuration value.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The rollout store failed to read or write.
    #[error("rollout store: {0}")]
    Store(#[from] StoreError),
}

impl EngineError {
    /// A stable, machine-readable code for this error. Codes never change meaning.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::UnknownSlot(_) => "E_UNKNOWN_SLOT",
            EngineError::InvalidInput { .. } => "E_INVALID_INPUT",
            EngineError::ContractMismatch { .. } => "E_CONTRACT_MISMATCH",
            EngineError::RolloutRefused { .. } => "E_ROLLOUT_REFUSED",
            EngineError::WarmupFailed { .. } => "E_WARMUP_FAILED",
            EngineError::StaticPolicy { .. } => "E_STATIC_POLICY",
            EngineError::InvalidConfig(_) => "E_INVALID_CONFIG",
            EngineError::Store(_) => "E_STORE",
        }
    }
}

/// Why a rollout store could not read or write a record (`E_STORE`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or folder operation failed.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// What was being done (`create`, `read`, `write`, `sync`, `rename`).
        action: &'static str,
        /// The file or folder.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A stored record that is not valid JSON of the record's format.
    #[error("corrupt rollout record of {slot}: {source}")]
    Corrupt {
        /// The slot whose record it is.
        slot: SlotKind,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A record that cannot be encoded.
    #[error("cannot encode the rollout record of {slot}: {source}")]
    Encode {
        /// The slot whose record it is.
        slot: SlotKind,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The store's own backend failed (e.g. the node's RocksDB).
    #[error("{0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// Why a persisted policy reference could not be turned back into a policy (see
/// [`PolicyResolver`](crate::rollout::PolicyResolver)). Each variant has a stable code
/// ([`ResolveError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The reference names a backend this resolver does not serve.
    #[error("{backend} is not {served}")]
    OtherBackend {
        /// The reference's backend.
        backend: crate::policy::BackendKind,
        /// What this resolver serves ("an ONNX model", "a WASM plugin").
        served: &'static str,
    },
    /// No registry of the reference's backend is configured.
    #[error("no {0} registry is configured")]
    NoRegistry(&'static str),
    /// Policies of this backend are not kept in a registry (static, fault).
    #[error("{0} policies are not kept in a registry")]
    NotKept(crate::policy::BackendKind),
    /// The registry refused: not registered, or it failed to load (its own code).
    #[error("[{code}] {message}")]
    Refused {
        /// The registry's stable code (`E_MODEL_NOT_FOUND`, `E_WASM_NOT_REGISTERED`, ...).
        code: &'static str,
        /// Why, on one line.
        message: String,
    },
}

impl ResolveError {
    /// A stable, machine-readable code for this error. Codes never change meaning.
    pub fn code(&self) -> &'static str {
        match self {
            ResolveError::OtherBackend { .. } | ResolveError::NotKept(_) => "E_RESOLVE_BACKEND",
            ResolveError::NoRegistry(_) => "E_RESOLVE_NO_REGISTRY",
            ResolveError::Refused { code, .. } => code,
        }
    }
}

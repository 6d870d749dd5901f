//! The [`Policy`] abstraction: one trait that the static, ONNX and WASM backends implement.
//!
//! A policy answers one slot. It receives the slot's feature matrix and a deadline, and
//! returns the raw output values. It does not validate its own output: the
//! [`SlotHost`](crate::host::SlotHost) validates every answer against the slot's contract,
//! enforces the deadline, and lets the static policy answer whenever something goes wrong.

use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::features::FeatureMatrix;
use crate::slot::SlotKind;

mod variant;

pub use variant::Variant;

/// Which kind of backend answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The built-in static policy of the slot.
    Static,
    /// An ONNX model run by tract.
    Onnx,
    /// A WASM plugin run by wasmtime.
    Wasm,
    /// A fault-injecting test double (the `fault` module, behind the `testing` feature);
    /// never used in production.
    Fault,
}

impl BackendKind {
    /// Lower-case name used in tags, metrics labels and the APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Static => "static",
            BackendKind::Onnx => "onnx",
            BackendKind::Wasm => "wasm",
            BackendKind::Fault => "fault",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a policy is: its identity, the slot and the schema version it was built for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// Name (a model folder's `name`, a plugin's name, or the static rule's name).
    pub name: String,
    /// Version string as the manifest declares it.
    pub version: String,
    /// Backend kind.
    pub backend: BackendKind,
    /// Slot it answers.
    pub slot: SlotKind,
    /// Feature-schema version it was built for.
    pub schema_version: u32,
}

impl PolicyInfo {
    /// `backend:name@version`, the form used in logs and decision tags.
    pub fn label(&self) -> String {
        format!("{}:{}@{}", self.backend, self.name, self.version)
    }
}

/// How the host must run a policy to keep the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Call on the decision's own thread. Only for policies that are trusted to return
    /// quickly (the static rules) or that enforce the deadline themselves (a WASM plugin
    /// under epoch interruption). The host still treats a late answer as a timeout.
    Inline,
    /// Run on the host's watchdog workers; the decision waits at most until the deadline,
    /// then the static policy answers and the late result is discarded.
    Watchdog,
}

/// An error a policy reports for one decision.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The backend failed to evaluate (bad tensor, runtime error).
    #[error("evaluation failed: {0}")]
    Failed(String),
    /// The backend noticed the deadline passed and stopped.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// A WASM trap or a caught panic inside the backend.
    #[error("trapped: {0}")]
    Trapped(String),
}

/// A decision policy for one slot.
///
/// Contract for implementations:
/// - `evaluate` must be safe to call from several threads at once.
/// - It returns the raw values in the slot's output layout; it must not reorder rows.
/// - It must never block on I/O or on locks held across decisions, and should return at
///   or before `deadline` (the host does not wait longer for a [`Isolation::Watchdog`]
///   policy, but a policy that ignores the deadline ties up a worker).
/// - It must be deterministic for the same input: the conformance suite checks it.
pub trait Policy: Send + Sync + 'static {
    /// Identity of the policy.
    fn info(&self) -> &PolicyInfo;

    /// How the host runs it. Defaults to [`Isolation::Watchdog`], the safe choice for
    /// anything that is not a trusted static rule.
    fn isolation(&self) -> Isolation {
        Isolation::Watchdog
    }

    /// Computes the slot's output for `input`.
    fn evaluate(&self, input: &FeatureMatrix, deadline: Instant) -> Result<Vec<f32>, PolicyError>;
}

//! [`ApiError`]: every refusal the APIs give, with a stable code, an HTTP status and a gRPC
//! status code. The REST and gRPC layers map the same error the same way.

use std::borrow::Cow;
use std::fmt;

/// What kind of refusal an error is: it decides the HTTP and gRPC status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or names something invalid: 400 / INVALID_ARGUMENT.
    BadRequest,
    /// Nothing of that name: 404 / NOT_FOUND.
    NotFound,
    /// No or a wrong admin token: 401 / UNAUTHENTICATED.
    Unauthorized,
    /// The node is at capacity, retry later: 429 / RESOURCE_EXHAUSTED.
    Overloaded,
    /// The request is valid but refused in the current state (e.g. promote without a
    /// candidate): 409 / FAILED_PRECONDITION.
    Conflict,
    /// The node cannot serve it now (starting, storage failed): 503 / UNAVAILABLE.
    Unavailable,
    /// The body is larger than allowed: 413 / INVALID_ARGUMENT.
    TooLarge,
    /// The path exists but not with this HTTP method: 405 / UNIMPLEMENTED.
    MethodNotAllowed,
    /// A bug or an I/O failure: 500 / INTERNAL.
    Internal,
}

/// A refusal: kind, stable code (`E_*`) and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// Kind (decides the status).
    pub kind: ErrorKind,
    /// Stable code.
    pub code: Cow<'static, str>,
    /// Message.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with `code`.
    pub fn new(
        kind: ErrorKind,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 400 / INVALID_ARGUMENT.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }

    /// 404 / NOT_FOUND.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    /// 500 / INTERNAL.
    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, code, message)
    }

    /// The HTTP status code.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            ErrorKind::BadRequest => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Overloaded => 429,
            ErrorKind::Conflict => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::TooLarge => 413,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Internal => 500,
        }
    }

    /// The gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        let code = match self.kind {
            ErrorKind::BadRequest | ErrorKind::TooLarge => tonic::Code::InvalidArgument,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::Unauthorized => tonic::Code::Unauthenticated,
            ErrorKind::Overloaded => tonic::Code::ResourceExhausted,
            ErrorKind::Conflict => tonic::Code::FailedPrecondition,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::MethodNotAllowed => tonic::Code::Unimplemented,
            ErrorKind::Internal => tonic::Code::Internal,
        };
        let mut status = tonic::Status::new(code, self.to_string());
        if let Ok(v) = self.code.as_ref().parse() {
            status.metadata_mut().insert(CODE_METADATA, v);
        }
        status
    }

    /// Maps an engine error (admin calls) to a refusal.
    pub fn from_engine(e: &aurigraph_decision::EngineError) -> Self {
        use aurigraph_decision::EngineError as E;
        let kind = match e {
            E::UnknownSlot(_) | E::InvalidInput { .. } | E::InvalidConfig(_) => {
                ErrorKind::BadRequest
            }
            E::ContractMismatch { .. } | E::WarmupFailed { .. } => ErrorKind::BadRequest,
            E::RolloutRefused { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        };
        Self::new(kind, e.code(), e.to_string())
    }
}

/// gRPC metadata key carrying the stable code of a refusal.
pub const CODE_METADATA: &str = "x-aurigraph-code";

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<aurigraph_storage::StorageError> for ApiError {
    fn from(e: aurigraph_storage::StorageError) -> Self {
        Self::new(ErrorKind::Internal, e.code(), e.to_string())
    }
}

/// Why the node could not start or had to stop producing blocks. Every variant has a stable
/// code ([`NodeError::code`]) and prints as `[CODE] message`.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A bad configuration (`E_CONFIG`).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// RocksDB failed, or holds something it should not.
    #[error("[{}] {}", .0.code(), .0)]
    Storage(#[from] aurigraph_storage::StorageError),
    /// The ledger refused a setting or could not execute a block.
    #[error("[{}] {}", .0.code(), .0)]
    Ledger(#[from] aurigraph_ledger::LedgerError),
    /// The decision core refused a setting (a slot host could not start).
    #[error("[{}] {}", .0.code(), .0)]
    Engine(#[from] aurigraph_decision::EngineError),
    /// The block log refused a block.
    #[error("[{}] {}", .0.code(), .0)]
    Log(#[from] aurigraph_consensus::BlockLogError),
    /// The database was made for another genesis (`E_GENESIS_MISMATCH`).
    #[error(
        "[E_GENESIS_MISMATCH] the database in {} was created for another genesis (chain {chain_id}); use another --data-dir or the genesis it was made with",
        .data_dir.display()
    )]
    GenesisMismatch {
        /// The data folder.
        data_dir: std::path::PathBuf,
        /// The chain id the database holds.
        chain_id: u32,
    },
    /// A file or socket operation failed; `what` says which.
    #[error("[{code}] {what}: {source}")]
    Io {
        /// The stable code (`E_IO`, `E_LISTEN`).
        code: &'static str,
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A part of the node failed to start (`E_STARTUP`).
    #[error("[E_STARTUP] {0}")]
    Startup(String),
    /// The replicated log refused or failed a block (`E_NOT_LEADER`, `E_RAFT`,
    /// `E_RAFT_START`).
    #[error(transparent)]
    Replica(#[from] aurigraph_consensus::replica::ReplicaError),
}

impl NodeError {
    /// A stable, machine-readable code for this error. Codes never change meaning.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::Config(_) => "E_CONFIG",
            NodeError::Storage(e) => e.code(),
            NodeError::Ledger(e) => e.code(),
            NodeError::Engine(e) => e.code(),
            NodeError::Log(e) => e.code(),
            NodeError::GenesisMismatch { .. } => "E_GENESIS_MISMATCH",
            NodeError::Io { code, .. } => code,
            NodeError::Startup(_) => "E_STARTUP",
            NodeError::Replica(e) => e.code(),
        }
    }

    /// An I/O failure with code `E_IO` while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        NodeError::Io {
            code: "E_IO",
            what: what.into(),
            source,
        }
    }
}

/// Result of the node's start-up and block production.
pub type NodeResult<T> = Result<T, NodeError>;

//! The ledger's error type: the decision core's errors (a bad configuration, a slot host
//! that could not be built) and the one failure only the ledger has, a block the executor
//! could not execute. Every variant has a stable code ([`LedgerError::code`]).

use aurigraph_decision::EngineError;

use crate::executor::ExecutorError;

/// Result alias for the ledger.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// Errors the ledger reports to its callers.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// An error of the decision core (its code is the core's: `E_INVALID_CONFIG`, ...).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The block executor could not execute a block (a bad executor setting, a block above
    /// the size limit, or an executor bug reported instead of a panic); nothing was
    /// committed. A transaction never causes this: a failing transaction gets a failure
    /// status in its receipt.
    #[error("block {height} could not be executed: [{}] {source}", .source.code())]
    Execution {
        /// Height of the block.
        height: u64,
        /// The executor's error (its own stable code is [`ExecutorError::code`]).
        source: ExecutorError,
    },
}

impl LedgerError {
    /// A stable, machine-readable code for this error. Codes never change meaning.
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::Engine(e) => e.code(),
            LedgerError::Execution { .. } => "E_EXECUTION",
        }
    }
}

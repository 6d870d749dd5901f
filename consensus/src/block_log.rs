//! [`BlockLog`]: the seam between proposing a block and executing it.
//!
//! The node's block producer proposes a block (the `batch_size` and `ordering` slots choose
//! it), appends it here, and executes and commits it only once [`BlockLog::append`] returns
//! `Ok`. A single node uses [`SingleNodeLog`], which accepts every block at once. The log
//! entry is the block: its transactions in block order; model outputs are never needed to
//! replay it.

use aurigraph_ledger::tx::SignedTransaction;

/// Why a block could not be appended; nothing of it executed.
#[derive(Debug, thiserror::Error)]
pub enum BlockLogError {
    /// The block is not the next one the log expects.
    #[error("block {height} does not follow the log's last block {last}")]
    OutOfOrder {
        /// The block's height.
        height: u64,
        /// The last height the log holds.
        last: u64,
    },
    /// The log could not take the block now (e.g. it lost the right to append); the block
    /// may be proposed again.
    #[error("block {height} was not appended: {reason}")]
    Unavailable {
        /// The block's height.
        height: u64,
        /// Why.
        reason: String,
    },
}

impl BlockLogError {
    /// A stable, machine-readable code for this error. Codes never change meaning.
    pub fn code(&self) -> &'static str {
        match self {
            BlockLogError::OutOfOrder { .. } => "E_LOG_ORDER",
            BlockLogError::Unavailable { .. } => "E_LOG_UNAVAILABLE",
        }
    }
}

/// Where a proposed block goes before it executes.
pub trait BlockLog: Send + Sync {
    /// Appends the block at `height`; `Ok` once it may execute.
    fn append(&self, height: u64, txs: &[SignedTransaction]) -> Result<(), BlockLogError>;
}

/// The block log of a single node: every block may execute at once.
#[derive(Debug, Default)]
pub struct SingleNodeLog;

impl BlockLog for SingleNodeLog {
    fn append(&self, _height: u64, _txs: &[SignedTransaction]) -> Result<(), BlockLogError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_node_log_takes_every_block() {
        let log = SingleNodeLog;
        for h in 1..=3 {
            assert!(log.append(h, &[]).is_ok());
        }
    }

    #[test]
    fn errors_carry_stable_codes() {
        let e = BlockLogError::OutOfOrder { height: 5, last: 3 };
        assert_eq!(e.code(), "E_LOG_ORDER");
        assert!(e.to_string().contains("block 5"), "{e}");
        let e = BlockLogError::Unavailable {
            height: 7,
            reason: "not the leader".into(),
        };
        assert_eq!(e.code(), "E_LOG_UNAVAILABLE");
        assert!(e.to_string().contains("not the leader"), "{e}");
    }
}

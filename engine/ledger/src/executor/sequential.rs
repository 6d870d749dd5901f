//! [`SequentialExecutor`]: the oracle. One transaction after the other, in block order.

use std::sync::Arc;

use super::receipt::Receipt;
use super::semantics::{Overlay, execute_tx, finish_block};
use super::{BlockExecutor, ExecStats, Execution, ExecutorError, ExecutorKind, check_block};
use crate::state::{StateView, address_order};
use crate::tx::SignedTransaction;

/// Executes a block on the calling thread, in block order. It defines the result every other
/// executor must reproduce, and is the fallback when they cannot run.
#[derive(Clone, Copy, Debug, Default)]
pub struct SequentialExecutor;

impl SequentialExecutor {
    /// A sequential executor.
    pub fn new() -> Self {
        Self
    }
}

/// Executes `txs` in order against `overlay`, appending their receipts: the sequential
/// definition (also Block-STM's sequential tail).
pub(crate) fn execute_in_order(
    overlay: &mut Overlay<'_>,
    chain_id: u32,
    txs: &[Arc<SignedTransaction>],
    receipts: &mut Vec<Receipt>,
) {
    for stx in txs {
        let effect = execute_tx(stx.tx(), chain_id, |a| {
            Ok::<_, std::convert::Infallible>(overlay.read(a))
        });
        let effect = match effect {
            Ok(e) => e,
            Err(never) => match never {},
        };
        for (address, account) in effect.writes() {
            overlay.write(address, *account);
        }
        receipts.push(Receipt {
            tx_hash: stx.hash(),
            status: effect.status,
            fee_charged: effect.fee,
        });
    }
}

impl BlockExecutor for SequentialExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Sequential
    }

    fn threads(&self) -> usize {
        1
    }

    fn execute(
        &self,
        state: &dyn StateView,
        chain_id: u32,
        block: &[Arc<SignedTransaction>],
    ) -> Result<Execution, ExecutorError> {
        check_block(block)?;
        let mut overlay = Overlay::new(state, block.len() * 2);
        let mut receipts = Vec::with_capacity(block.len());
        execute_in_order(&mut overlay, chain_id, block, &mut receipts);
        let stats = ExecStats::new(ExecutorKind::Sequential, 1, false, &receipts);
        Ok(finish_block(
            state,
            receipts,
            overlay.into_touched(),
            stats,
            |v| v.sort_unstable_by(|a, b| address_order(&a.0, &b.0)),
        ))
    }
}

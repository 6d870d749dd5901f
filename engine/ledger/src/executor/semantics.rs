//! The execution rules of one transaction, shared by every executor, and the end of a block
//! (fee-sink credit, write set).

use std::collections::hash_map::Entry;

use super::receipt::{Receipt, TxStatus};
use super::{ExecStats, Execution, FEE_SINK};
use crate::state::{Account, StateView};
use crate::tx::{Address, MAX_OUTPUTS, Operation, Transaction};

/// Most accounts a transaction touches: the sender and up to [`MAX_OUTPUTS`] recipients.
pub(crate) const MAX_TOUCHED: usize = MAX_OUTPUTS + 1;

/// What one transaction does: its status, the fee it pays and the accounts it writes (the
/// sender first). Skips write nothing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TxEffect {
    pub(crate) status: TxStatus,
    pub(crate) fee: u64,
    writes: [(Address, Account); MAX_TOUCHED],
    len: usize,
}

impl TxEffect {
    fn skip(status: TxStatus) -> Self {
        Self {
            status,
            fee: 0,
            writes: [(FEE_SINK, Account::default()); MAX_TOUCHED],
            len: 0,
        }
    }

    /// The accounts written, with their new values.
    pub(crate) fn writes(&self) -> &[(Address, Account)] {
        &self.writes[..self.len]
    }
}

/// Executes `tx` against whatever `read` returns (see the rules in the module docs of
/// [`crate::executor`]). `read` is called at most once per address; an error from it aborts
/// the execution (Block-STM uses this when it meets an estimate).
pub(crate) fn execute_tx<E>(
    tx: &Transaction,
    chain_id: u32,
    mut read: impl FnMut(&Address) -> Result<Account, E>,
) -> Result<TxEffect, E> {
    if tx.chain_id != chain_id {
        return Ok(TxEffect::skip(TxStatus::WrongChain));
    }
    if tx.validate().is_err() {
        return Ok(TxEffect::skip(TxStatus::Invalid));
    }
    if tx.sender == FEE_SINK {
        return Ok(TxEffect::skip(TxStatus::ReservedSender));
    }
    let sender = read(&tx.sender)?;
    if tx.nonce != sender.nonce {
        return Ok(TxEffect::skip(TxStatus::BadNonce));
    }
    let Some(nonce) = sender.nonce.checked_add(1) else {
        return Ok(TxEffect::skip(TxStatus::NonceExhausted));
    };
    let Some(balance) = sender.balance.checked_sub(tx.fee) else {
        return Ok(TxEffect::skip(TxStatus::CannotPayFee));
    };
    let charged = Account { balance, nonce };
    let mut effect = TxEffect {
        status: TxStatus::Success,
        fee: tx.fee,
        writes: [(tx.sender, charged); MAX_TOUCHED],
        len: 1,
    };
    let single;
    let outputs: &[(Address, u64)] = match &tx.op {
        Operation::Transfer { to, amount } => {
            single = [(*to, *amount)];
            &single
        }
        Operation::MultiTransfer { outputs } => outputs,
    };
    // `validate` guarantees the sum fits in u64, so the saturating sum is exact.
    let Some(rest) = balance.checked_sub(tx.amount_out()) else {
        effect.status = TxStatus::InsufficientFunds;
        return Ok(effect);
    };
    effect.writes[0].1.balance = rest;
    for (to, amount) in outputs {
        let at = match effect.writes[..effect.len]
            .iter()
            .position(|(a, _)| a == to)
        {
            Some(at) => at,
            None => {
                let account = read(to)?;
                let at = effect.len;
                // At most MAX_OUTPUTS distinct recipients plus the sender (validated).
                let Some(slot) = effect.writes.get_mut(at) else {
                    return Ok(TxEffect::skip(TxStatus::Invalid));
                };
                *slot = (*to, account);
                effect.len += 1;
                at
            }
        };
        match effect.writes[at].1.balance.checked_add(*amount) {
            Some(b) => effect.writes[at].1.balance = b,
            None => {
                effect.status = TxStatus::BalanceOverflow;
                effect.writes[0].1 = charged;
                effect.len = 1;
                return Ok(effect);
            }
        }
    }
    Ok(effect)
}

/// An account a block touched: its value before the block and after its last transaction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Touched {
    pub(crate) address: Address,
    pub(crate) before: Account,
    pub(crate) after: Account,
}

/// Ends a block: credits the fees of all executed transactions to the fee sink in one write
/// (saturating at `u64::MAX`; the excess is burned and reported), keeps the touched accounts
/// whose value changed and sorts them by address with `sort`.
pub(crate) fn finish_block(
    base: &dyn StateView,
    receipts: Vec<Receipt>,
    mut touched: Vec<Touched>,
    stats: ExecStats,
    sort: impl FnOnce(&mut Vec<(Address, Account)>),
) -> Execution {
    let fees = block_fees(&receipts);
    let mut fees_burned = 0u128;
    if fees > 0 {
        let at = touched
            .iter()
            .position(|t| t.address.0[0] == FEE_SINK.0[0] && t.address == FEE_SINK);
        let sink = credit_fees(base, at.map(|i| touched[i]), fees, &mut fees_burned);
        match at {
            Some(i) => touched[i] = sink,
            None => touched.push(sink),
        }
    }
    let mut write_set: Vec<(Address, Account)> = touched
        .into_iter()
        .filter(|t| t.before != t.after)
        .map(|t| (t.address, t.after))
        .collect();
    sort(&mut write_set);
    Execution {
        receipts,
        write_set,
        fees,
        fees_burned,
        stats,
    }
}

/// The fees a block's receipts charged.
pub(crate) fn block_fees(receipts: &[Receipt]) -> u128 {
    receipts.iter().map(|r| u128::from(r.fee_charged)).sum()
}

/// The fee sink after the block's `fees` are credited to it: `sink` is the sink as the
/// block's transactions left it (`None`: untouched, read from `base`). The credit saturates
/// at `u64::MAX`; the excess is added to `burned`.
pub(crate) fn credit_fees(
    base: &dyn StateView,
    sink: Option<Touched>,
    fees: u128,
    burned: &mut u128,
) -> Touched {
    let mut sink = sink.unwrap_or_else(|| {
        let before = base.account(&FEE_SINK);
        Touched {
            address: FEE_SINK,
            before,
            after: before,
        }
    });
    let credited = u128::from(sink.after.balance) + fees;
    let capped = credited.min(u128::from(u64::MAX));
    *burned += credited - capped;
    sink.after.balance = u64::try_from(capped).unwrap_or(u64::MAX);
    sink
}

/// The sequential overlay: the accounts a block has touched so far, with their values before
/// the block and now.
pub(crate) struct Overlay<'a> {
    base: &'a dyn StateView,
    map: super::hash::AddressMap<(Account, Account)>,
}

impl<'a> Overlay<'a> {
    pub(crate) fn new(base: &'a dyn StateView, capacity: usize) -> Self {
        Self {
            base,
            map: super::hash::address_map(capacity),
        }
    }

    pub(crate) fn read(&mut self, address: &Address) -> Account {
        match self.map.entry(*address) {
            Entry::Occupied(e) => e.get().1,
            Entry::Vacant(v) => {
                let a = self.base.account(address);
                v.insert((a, a));
                a
            }
        }
    }

    pub(crate) fn write(&mut self, address: &Address, account: Account) {
        match self.map.entry(*address) {
            Entry::Occupied(mut e) => e.get_mut().1 = account,
            Entry::Vacant(v) => {
                let before = self.base.account(address);
                v.insert((before, account));
            }
        }
    }

    /// Records that the block has already taken `t.address` from `t.before` to `t.after`
    /// (Block-STM's validated prefix, before its sequential tail).
    pub(crate) fn seed(&mut self, t: Touched) {
        match self.map.entry(t.address) {
            Entry::Occupied(mut e) => e.get_mut().1 = t.after,
            Entry::Vacant(v) => {
                v.insert((t.before, t.after));
            }
        }
    }

    pub(crate) fn into_touched(self) -> Vec<Touched> {
        self.map
            .into_iter()
            .map(|(address, (before, after))| Touched {
                address,
                before,
                after,
            })
            .collect()
    }
}

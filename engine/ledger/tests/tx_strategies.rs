//! Proptest strategies for valid transactions, shared by the transaction decoding fuzz
//! properties (this crate) and the block decoding ones (`storage/tests`, which include this
//! file by path).

use aurigraph_ledger::tx::{
    Address, MAX_OUTPUTS, Operation, SignedTransaction, Transaction, is_small_order,
    keypair_from_seed,
};
use proptest::prelude::*;

pub fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 32]>()
        .prop_map(Address)
        .prop_filter("not a small-order point", |a| !is_small_order(a))
}

/// Amounts above zero whose sum over [`MAX_OUTPUTS`] outputs cannot overflow.
pub fn amount() -> impl Strategy<Value = u64> {
    1..=u64::MAX / MAX_OUTPUTS as u64
}

pub fn multi_transfer() -> impl Strategy<Value = Operation> {
    proptest::collection::vec((address(), amount()), 1..=MAX_OUTPUTS)
        .prop_map(|outputs| Operation::MultiTransfer { outputs })
}

pub fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        (address(), amount()).prop_map(|(to, amount)| Operation::Transfer { to, amount }),
        multi_transfer(),
    ]
}

/// A transaction signed by its sender, valid by every rule decoding checks.
pub fn signed(op: impl Strategy<Value = Operation>) -> impl Strategy<Value = SignedTransaction> {
    (
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        op,
    )
        .prop_map(|(seed, chain_id, nonce, fee, op)| {
            let tx = Transaction {
                chain_id,
                sender: keypair_from_seed(seed).1,
                nonce,
                fee,
                op,
            };
            (seed, tx)
        })
        .prop_filter("valid fields", |(_, tx)| tx.validate().is_ok())
        .prop_map(|(seed, tx)| tx.sign(&keypair_from_seed(seed).0))
}

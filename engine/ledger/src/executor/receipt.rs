//! [`Receipt`] and [`TxStatus`]: what a transaction's execution left behind.

use serde::{Deserialize, Serialize};

use crate::tx::TxHash;

/// How a transaction ended. Each status has a stable numeric code (`as u8`) and a stable
/// string code ([`TxStatus::code`]).
///
/// Statuses from 16 up are *skips*: the transaction changed nothing, not even its nonce, and
/// paid no fee. Statuses below 16 are *executed*: the fee was charged and the nonce advanced,
/// whether or not the operation applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum TxStatus {
    /// The operation applied.
    Success = 0,
    /// The balance left after the fee does not cover the amount sent; the operation did not
    /// apply (fee and nonce stay).
    InsufficientFunds = 1,
    /// A recipient's balance would exceed `u64::MAX`; the operation did not apply, none of
    /// its outputs (fee and nonce stay).
    BalanceOverflow = 2,
    /// Skipped: the transaction names another chain.
    WrongChain = 16,
    /// Skipped: the transaction breaks a field rule ([`crate::tx::Transaction::validate`]).
    Invalid = 17,
    /// Skipped: the sender is a reserved address (the fee sink).
    ReservedSender = 18,
    /// Skipped: the nonce is not the sender's next nonce.
    BadNonce = 19,
    /// Skipped: the sender's nonce is `u64::MAX` and cannot advance.
    NonceExhausted = 20,
    /// Skipped: the sender's balance does not cover the fee.
    CannotPayFee = 21,
}

impl TxStatus {
    /// Stable string code.
    pub fn code(self) -> &'static str {
        match self {
            TxStatus::Success => "OK",
            TxStatus::InsufficientFunds => "E_EXEC_INSUFFICIENT_FUNDS",
            TxStatus::BalanceOverflow => "E_EXEC_BALANCE_OVERFLOW",
            TxStatus::WrongChain => "E_EXEC_WRONG_CHAIN",
            TxStatus::Invalid => "E_EXEC_INVALID",
            TxStatus::ReservedSender => "E_EXEC_RESERVED_SENDER",
            TxStatus::BadNonce => "E_EXEC_BAD_NONCE",
            TxStatus::NonceExhausted => "E_EXEC_NONCE_EXHAUSTED",
            TxStatus::CannotPayFee => "E_EXEC_CANNOT_PAY_FEE",
        }
    }

    /// Whether the transaction was skipped (no state change at all).
    pub fn is_skip(self) -> bool {
        self as u8 >= 16
    }

    /// Whether the operation applied.
    pub fn is_success(self) -> bool {
        self == TxStatus::Success
    }
}

/// The receipt of one transaction (there is no gas: a transaction's cost is its fee).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction's hash.
    pub tx_hash: TxHash,
    /// How it ended.
    pub status: TxStatus,
    /// Fee charged: the transaction's fee when executed, 0 when skipped.
    pub fee_charged: u64,
}

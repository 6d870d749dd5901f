//! [`Refusal`]: why admission turned a transaction away, with a stable code.

use crate::tx::{TxError, TxHash};

/// Why admission refused one input. Every variant has a stable code ([`Refusal::code`]) that
/// the APIs return and the logs print; codes never change meaning.
///
/// The checks run in this order, and an input is refused for the first that fails:
/// size, decoding and field rules ([`Refusal::TooLarge`], [`Refusal::Decode`]), chain
/// ([`Refusal::WrongChain`]), fee ([`Refusal::FeeTooLow`]), duplicate
/// ([`Refusal::Duplicate`]), signature ([`Refusal::BadSignature`]), nonce
/// ([`Refusal::StaleNonce`], [`Refusal::NonceTooFar`]) and balance
/// ([`Refusal::InsufficientBalance`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The bytes are not a valid transaction (truncated, unknown version or operation,
    /// trailing bytes, a field out of range, or above [`crate::tx::MAX_TX_BYTES`]). The code
    /// is the decoder's (`E_TX_*`, see [`TxError::code`]).
    #[error(transparent)]
    Decode(#[from] TxError),
    /// Larger than the configured limit (which is at most [`crate::tx::MAX_TX_BYTES`]).
    #[error("transaction of {size} bytes exceeds the configured {limit}-byte limit")]
    TooLarge {
        /// Size of the input, in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Signed for another chain.
    #[error("transaction for chain {got}; this node serves chain {expected}")]
    WrongChain {
        /// The node's chain.
        expected: u32,
        /// The transaction's chain.
        got: u32,
    },
    /// The fee is below the configured minimum.
    #[error("fee {fee} is below the minimum fee {min}")]
    FeeTooLow {
        /// The fee offered.
        fee: u64,
        /// The minimum.
        min: u64,
    },
    /// The same transaction (same hash) was admitted recently and is pending or was
    /// committed.
    #[error("transaction {0} was already admitted")]
    Duplicate(TxHash),
    /// The signature does not verify (ZIP-215 rules).
    #[error("bad signature")]
    BadSignature,
    /// The nonce is below the sender's committed next nonce: already used.
    #[error("nonce {nonce} was already used: the sender's next nonce is {next}")]
    StaleNonce {
        /// The transaction's nonce.
        nonce: u64,
        /// The sender's next nonce in committed state.
        next: u64,
    },
    /// The nonce is too far above the sender's committed next nonce.
    #[error("nonce {nonce} is too far ahead: the highest accepted now is {max}")]
    NonceTooFar {
        /// The transaction's nonce.
        nonce: u64,
        /// The highest nonce accepted now (committed next nonce + window - 1).
        max: u64,
    },
    /// The sender's committed balance cannot pay the fee and amount of this transaction.
    ///
    /// The check is against the committed balance and this transaction alone: what the
    /// sender's pending transactions will spend is not subtracted. Several pending
    /// transactions may therefore together spend more than the balance; the executor has
    /// the final word (one that cannot pay its fee is skipped, leaves the mempool and may be
    /// submitted again; one that pays its fee but not its amount executes with
    /// [`TxStatus::InsufficientFunds`](crate::executor::TxStatus::InsufficientFunds)).
    #[error(
        "insufficient balance: {needed} needed (fee plus amount of this transaction), \
         {available} available (committed balance)"
    )]
    InsufficientBalance {
        /// Fee plus amount (saturating).
        needed: u64,
        /// The sender's committed balance.
        available: u64,
    },
}

impl Refusal {
    /// Stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Decode(e) => e.code(),
            Refusal::TooLarge { .. } => "E_TX_TOO_LARGE",
            Refusal::WrongChain { .. } => "E_WRONG_CHAIN",
            Refusal::FeeTooLow { .. } => "E_FEE_TOO_LOW",
            Refusal::Duplicate(_) => "E_DUPLICATE",
            Refusal::BadSignature => "E_BAD_SIGNATURE",
            Refusal::StaleNonce { .. } => "E_STALE_NONCE",
            Refusal::NonceTooFar { .. } => "E_NONCE_TOO_FAR",
            Refusal::InsufficientBalance { .. } => "E_INSUFFICIENT_BALANCE",
        }
    }
}

//! [`MempoolError`]: why the mempool refused a transaction, each with a stable code.

use crate::tx::{Address, TxHash};

/// Why [`Mempool::insert`](super::Mempool::insert) refused a transaction. Nothing in the
/// pool changed. Every variant has a stable code ([`MempoolError::code`]) that the APIs
/// return to the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Back-pressure: the pool is at its count or byte bound and the transaction does not
    /// outrank what it would have to evict (or it has a nonce gap, and such transactions
    /// only take free room). The client should retry later or offer a higher fee.
    #[error(
        "mempool full ({count}/{max_txs} transactions, {bytes}/{max_bytes} bytes) and the \
         transaction does not outrank what it would have to evict; retry later or raise the fee"
    )]
    Full {
        /// Transactions held.
        count: usize,
        /// The count bound.
        max_txs: usize,
        /// Bytes held.
        bytes: usize,
        /// The byte bound.
        max_bytes: usize,
    },
    /// The same transaction (same hash) is already pending.
    #[error("transaction {0} is already pending")]
    Duplicate(TxHash),
    /// Another transaction with the same sender and nonce is pending and this one does not
    /// offer enough fee to replace it.
    #[error(
        "sender {sender} already has nonce {nonce} pending with fee {pending_fee}; a \
         replacement must offer a fee of at least {min_fee}"
    )]
    NonceConflict {
        /// The sender.
        sender: Address,
        /// The contested nonce.
        nonce: u64,
        /// Fee of the pending transaction.
        pending_fee: u64,
        /// Smallest fee that would replace it.
        min_fee: u64,
    },
    /// The sender already has the most pending transactions it may have.
    #[error("sender {sender} already has {limit} transactions pending (the per-sender limit)")]
    SenderLimit {
        /// The sender.
        sender: Address,
        /// The per-sender limit.
        limit: usize,
    },
    /// The nonce was already used: it is below the sender's next nonce.
    #[error("nonce {nonce} of sender {sender} is below its next nonce {next}")]
    NonceStale {
        /// The sender.
        sender: Address,
        /// The transaction's nonce.
        nonce: u64,
        /// The sender's next nonce.
        next: u64,
    },
    /// The nonce is further ahead of the sender's next nonce than
    /// [`max_nonce_ahead`](super::MempoolConfig::max_nonce_ahead).
    #[error(
        "nonce {nonce} of sender {sender} is too far ahead of its next nonce {next} (at most \
         {max_ahead} ahead)"
    )]
    NonceTooFar {
        /// The sender.
        sender: Address,
        /// The transaction's nonce.
        nonce: u64,
        /// The sender's next nonce.
        next: u64,
        /// Largest accepted `nonce - next`.
        max_ahead: u64,
    },
    /// Back-pressure for transactions behind a nonce gap: they already hold their share of
    /// the pool ([`max_gapped_percent`](super::MempoolConfig::max_gapped_percent)), the rest
    /// is kept for executable ones. Same code as [`MempoolError::Full`].
    #[error(
        "mempool: {gapped} transactions behind a nonce gap are held, the most it keeps \
         ({limit}); submit the missing nonces first or retry later"
    )]
    GappedFull {
        /// Transactions behind a gap held.
        gapped: usize,
        /// Their bound.
        limit: usize,
    },
}

impl MempoolError {
    /// Every code, in variant order.
    pub const CODES: [&'static str; 6] = [
        "E_MEMPOOL_FULL",
        "E_DUPLICATE",
        "E_NONCE_CONFLICT",
        "E_SENDER_LIMIT",
        "E_STALE_NONCE",
        "E_NONCE_TOO_FAR",
    ];

    /// A stable, machine-readable code. Codes never change meaning.
    pub fn code(&self) -> &'static str {
        Self::CODES[self.index()]
    }

    /// Position of the variant in [`MempoolError::CODES`].
    pub(super) fn index(&self) -> usize {
        match self {
            MempoolError::Full { .. } | MempoolError::GappedFull { .. } => 0,
            MempoolError::Duplicate(_) => 1,
            MempoolError::NonceConflict { .. } => 2,
            MempoolError::SenderLimit { .. } => 3,
            MempoolError::NonceStale { .. } => 4,
            MempoolError::NonceTooFar { .. } => 5,
        }
    }
}

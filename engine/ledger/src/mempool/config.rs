//! [`MempoolConfig`]: the bounds and the replacement rule of a [`Mempool`](super::Mempool).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tx::MAX_TX_BYTES;
use aurigraph_decision::error::EngineError;

/// What a full [`Mempool`](super::Mempool) may evict for a new transaction. Whatever it
/// evicts is reported (the node records it as dropped); what it does not evict for, it
/// refuses with `E_MEMPOOL_FULL` (back-pressure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Eviction {
    /// Nothing: a full pool refuses every new transaction.
    None,
    /// Tails of a strictly worse priority class (normal over suspicious over anomalous).
    ByClass,
    /// Tails of a worse class, or of the same class with a strictly lower fee.
    #[default]
    ByFee,
}

/// Bounds and rules of a [`Mempool`](super::Mempool). Checked by [`MempoolConfig::validate`]
/// when the pool is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MempoolConfig {
    /// Most transactions held at once. Default 100,000. Must be at least 1.
    pub max_txs: usize,
    /// Most encoded bytes held at once. Default 64 MiB. Must be at least
    /// [`MAX_TX_BYTES`], so any valid transaction fits an empty pool.
    pub max_bytes: usize,
    /// Most transactions one sender may have pending. Default 64. Must be at least 1.
    pub max_per_sender: usize,
    /// Largest accepted distance of a nonce ahead of its sender's next nonce
    /// (`nonce <= next + max_nonce_ahead`). Default 256. Must be at least
    /// `max_per_sender - 1`, so a sender can fill its quota in nonce order.
    pub max_nonce_ahead: u64,
    /// Replace-by-fee: a transaction with the same sender and nonce as a pending one
    /// replaces it only when its fee is at least this many percent higher (and always at
    /// least one base unit higher). Default 10. At most 1,000.
    pub replace_bump_percent: u32,
    /// What a full pool may evict to make room (see [`Eviction`]). Default
    /// [`Eviction::ByFee`].
    pub eviction: Eviction,
    /// Share of `max_txs` (percent) that transactions behind a nonce gap (not executable
    /// yet) may hold; past it such a transaction is refused with `E_MEMPOOL_FULL`. The rest
    /// stays for executable transactions, so a pool full of transactions that cannot run
    /// never blocks the ones that fill the gaps. Default 50. 1 to 100.
    pub max_gapped_percent: u8,
    /// Milliseconds after its admission that a transaction behind a nonce gap (not
    /// executable) expires: [`Mempool::expire`](super::Mempool::expire) removes it. A ready
    /// transaction never expires. 0 (the default): never.
    pub gapped_ttl_ms: u64,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 100_000,
            max_bytes: 64 << 20,
            max_per_sender: 64,
            max_nonce_ahead: 256,
            replace_bump_percent: 10,
            eviction: Eviction::ByFee,
            max_gapped_percent: 50,
            gapped_ttl_ms: 0,
        }
    }
}

impl MempoolConfig {
    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |what: String| Err(EngineError::InvalidConfig(format!("mempool: {what}")));
        if self.max_txs == 0 {
            return bad("max_txs must be at least 1".to_string());
        }
        if self.max_bytes < MAX_TX_BYTES {
            return bad(format!(
                "max_bytes must be at least {MAX_TX_BYTES} (the largest transaction)"
            ));
        }
        if self.max_per_sender == 0 {
            return bad("max_per_sender must be at least 1".to_string());
        }
        if self.max_nonce_ahead < self.max_per_sender as u64 - 1 {
            return bad("max_nonce_ahead must be at least max_per_sender - 1".to_string());
        }
        if self.max_gapped_percent == 0 || self.max_gapped_percent > 100 {
            return bad("max_gapped_percent must be in 1..=100".to_string());
        }
        if self.replace_bump_percent > 1_000 {
            return bad("replace_bump_percent must be at most 1000".to_string());
        }
        Ok(())
    }

    /// How many transactions behind a nonce gap the pool holds at most (at least 1).
    pub fn max_gapped(&self) -> usize {
        (self.max_txs * usize::from(self.max_gapped_percent) / 100).max(1)
    }

    /// `gapped_ttl_ms` as a duration; `None` when transactions never expire.
    pub fn gapped_ttl(&self) -> Option<Duration> {
        (self.gapped_ttl_ms > 0).then(|| Duration::from_millis(self.gapped_ttl_ms))
    }

    /// The smallest fee that replaces a pending transaction offering `pending_fee`:
    /// `pending_fee + max(1, ceil(pending_fee * replace_bump_percent / 100))`, saturating.
    pub fn replacement_fee(&self, pending_fee: u64) -> u64 {
        let bump = (u128::from(pending_fee) * u128::from(self.replace_bump_percent)).div_ceil(100);
        let bump = u64::try_from(bump).unwrap_or(u64::MAX).max(1);
        pending_fee.saturating_add(bump)
    }
}

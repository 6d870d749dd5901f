//! [`AdmissionConfig`]: admission's settings and their defaults.

use std::time::Duration;

use crate::tx::MAX_TX_BYTES;
use aurigraph_decision::error::{EngineError, Result};
use aurigraph_decision::slot::anomaly::{RunningStats, Thresholds};

use super::verifier::DEFAULT_MAX_CHUNK;

/// Settings of [`Admission`](super::Admission). Every field's default is in its doc.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionConfig {
    /// Chain identifier transactions must carry. Default 1.
    pub chain_id: u32,
    /// Largest accepted encoding, in bytes, at most [`MAX_TX_BYTES`]. Default
    /// [`MAX_TX_BYTES`] (1,024).
    pub max_tx_bytes: usize,
    /// Smallest accepted fee, in base units. Default 1.
    pub min_fee: u64,
    /// Nonces accepted above a sender's committed next nonce `n`: `n..n + nonce_window`.
    /// It also caps a sender's pending transactions. Default 128; at least 1.
    pub nonce_window: u64,
    /// Admitted hashes remembered for duplicate detection (about 100 bytes each).
    /// Default 262,144; at least 1.
    pub recent_hashes: usize,
    /// Threads of admission's own verification pool; `None` uses the global rayon pool.
    /// Default `None`.
    pub verify_threads: Option<usize>,
    /// Largest chunk of signatures handed to one batch verification. Default
    /// [`DEFAULT_MAX_CHUNK`] (1,024); at least 1.
    pub verify_chunk: usize,
    /// Window of the per-sender rate (time constant of its exponential decay). Default
    /// 10 s; above zero.
    pub rate_window: Duration,
    /// Senders whose rate and age are tracked; the quietest are forgotten beyond it.
    /// Default 100,000; at least 1.
    pub tracked_senders: usize,
    /// Settings of the running population statistics behind the z-scores. Default
    /// [`RunningStats::default`] (half-life about 693 transactions, 30 warm-up samples,
    /// std floor a quarter of the mean).
    pub stats: RunningStats,
    /// Absolute floor of the standard deviation of `sender_rate`, in tx/s. A rate is a
    /// count over the window, so in a quiet network almost every sender reads one
    /// transaction per window and a second one would otherwise be a many-sigma outlier.
    /// It replaces the absolute floor of `stats` for `sender_rate` (the relative floor is
    /// [`RunningStats::DEFAULT_MIN_REL_STD`]). Default 0.2 (two transactions per default
    /// window); finite and >= 0.
    pub sender_rate_min_std: f64,
    /// Score thresholds of the anomaly classes. Default [`Thresholds::default`] (0.5, 0.8).
    pub thresholds: Thresholds,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            chain_id: 1,
            max_tx_bytes: MAX_TX_BYTES,
            min_fee: 1,
            nonce_window: 128,
            recent_hashes: 262_144,
            verify_threads: None,
            verify_chunk: DEFAULT_MAX_CHUNK,
            rate_window: Duration::from_secs(10),
            tracked_senders: 100_000,
            stats: RunningStats::default(),
            sender_rate_min_std: 0.2,
            thresholds: Thresholds::default(),
        }
    }
}

impl AdmissionConfig {
    /// Checks the documented ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(EngineError::InvalidConfig(format!("admission: {m}")));
        if self.max_tx_bytes == 0 || self.max_tx_bytes > MAX_TX_BYTES {
            return bad(&format!("max_tx_bytes must be in 1..={MAX_TX_BYTES}"));
        }
        if self.nonce_window == 0 {
            return bad("nonce_window must be at least 1");
        }
        if self.recent_hashes == 0 || self.tracked_senders == 0 || self.verify_chunk == 0 {
            return bad("recent_hashes, tracked_senders and verify_chunk must be at least 1");
        }
        if self.verify_threads == Some(0) {
            return bad("verify_threads must be at least 1 when set");
        }
        if self.rate_window.is_zero() {
            return bad("rate_window must be above zero");
        }
        if !(self.sender_rate_min_std.is_finite() && self.sender_rate_min_std >= 0.0) {
            return bad("sender_rate_min_std must be finite and >= 0");
        }
        self.thresholds.validate()
    }
}

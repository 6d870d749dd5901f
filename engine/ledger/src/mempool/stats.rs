//! [`MempoolStats`]: occupancy per class and event counters.

use serde::Serialize;

use super::MempoolError;
use aurigraph_decision::slot::anomaly::AnomalyClass;

/// The classes in priority order (best first); the index of a class in this array is its
/// index in [`MempoolStats::classes`].
pub const CLASSES: [AnomalyClass; 3] = [
    AnomalyClass::Normal,
    AnomalyClass::Suspicious,
    AnomalyClass::Anomalous,
];

/// Index of `class` in [`CLASSES`].
pub(super) fn class_index(class: AnomalyClass) -> usize {
    match class {
        AnomalyClass::Normal => 0,
        AnomalyClass::Suspicious => 1,
        AnomalyClass::Anomalous => 2,
    }
}

/// Occupancy of one priority class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClassStats {
    /// The class.
    pub class: AnomalyClass,
    /// Transactions of this class held.
    pub count: usize,
    /// Their encoded bytes.
    pub bytes: usize,
}

/// A snapshot of the pool: occupancy and counters since it was built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MempoolStats {
    /// Transactions held.
    pub count: usize,
    /// Encoded bytes held.
    pub bytes: usize,
    /// Transactions executable now: for each sender, the run of consecutive nonces from its
    /// next nonce (the `batch_size` slot's `queue_depth`).
    pub ready: usize,
    /// Senders with at least one transaction held.
    pub senders: usize,
    /// Occupancy per class, in the order of [`CLASSES`].
    pub classes: [ClassStats; 3],
    /// Transactions accepted (replacements included).
    pub accepted: u64,
    /// Transactions replaced by a higher-fee transaction with the same sender and nonce.
    pub replaced: u64,
    /// Transactions evicted to make room for a higher-priority one.
    pub evicted: u64,
    /// Transactions dropped because their nonce was used by a committed transaction.
    pub stale_dropped: u64,
    /// Transactions removed as committed.
    pub committed: u64,
    /// Transactions removed because the executor skipped them
    /// ([`Mempool::remove_skipped`](super::Mempool::remove_skipped)).
    pub skipped_dropped: u64,
    /// Transactions that expired behind a nonce gap
    /// ([`Mempool::expire`](super::Mempool::expire)).
    pub expired: u64,
    /// Refusals per code, in the order of [`MempoolError::CODES`].
    pub refused: [(&'static str, u64); 6],
}

impl MempoolStats {
    pub(super) fn empty() -> Self {
        Self {
            count: 0,
            bytes: 0,
            ready: 0,
            senders: 0,
            classes: CLASSES.map(|class| ClassStats {
                class,
                count: 0,
                bytes: 0,
            }),
            accepted: 0,
            replaced: 0,
            evicted: 0,
            stale_dropped: 0,
            committed: 0,
            skipped_dropped: 0,
            expired: 0,
            refused: MempoolError::CODES.map(|c| (c, 0)),
        }
    }

    /// Occupancy of `class`.
    pub fn class(&self, class: AnomalyClass) -> ClassStats {
        self.classes[class_index(class)]
    }

    /// Refusals with `code` (0 for an unknown code).
    pub fn refused(&self, code: &str) -> u64 {
        self.refused
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |(_, n)| *n)
    }

    /// Refusals of every code.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().map(|(_, n)| n).sum()
    }
}

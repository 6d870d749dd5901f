//! [`AdmittedTx`]: a transaction that passed admission, as the mempool holds it.

use std::sync::Arc;
use std::time::Instant;

use super::SignedTransaction;
use aurigraph_decision::slot::anomaly::AnomalyClass;

/// A transaction that passed admission: decoded, field-checked, signature-verified, nonce-
/// and duplicate-checked against state, and scored by the `anomaly` slot.
#[derive(Clone, Debug)]
pub struct AdmittedTx {
    /// The transaction (shared: the mempool, the batcher and the executor hold the same one).
    pub tx: Arc<SignedTransaction>,
    /// The `anomaly` slot's score in [0, 1].
    pub anomaly_score: f32,
    /// The priority class the score maps to.
    pub class: AnomalyClass,
    /// Admission sequence number: strictly increasing in admission order (FIFO tie-break).
    pub seq: u64,
    /// When it was admitted.
    pub admitted_at: Instant,
}

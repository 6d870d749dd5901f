//! # `sender-rate`: an `anomaly` plugin
//!
//! Flags senders that submit far faster than the population, weighted by what makes a burst
//! more suspicious: a young sender, oversized transactions, a fee far from the norm, and
//! nonces far ahead of what can execute (a queue-stuffing pattern).
//!
//! The evidence is a weighted sum of the one-sided z-scores the node computes at admission:
//!
//! `e = 1.0 * max(sender_rate_z, 0) * youth + 0.35 * max(size_z, 0) + 0.2 * |fee_z|
//!      + 0.25 * min(nonce_gap, 8)`
//!
//! where `youth` is 1.5 for a sender first seen in the last minute, 1 otherwise; the score is
//! the logistic `1 / (1 + exp(-(e - 3)))`, so `e = 3` (a sender three standard deviations
//! above the population rate) lands on the node's default *suspicious* threshold (0.5) and
//! `e ≈ 4.4` on *anomalous* (0.8). Scores are always finite and within `0..=1`.

use aurigraph_plugin_sdk::{Rows, export_plugin, schema::anomaly};

/// The anomaly score of one transaction row, in `0..=1`.
pub fn score_row(r: &[f32]) -> f32 {
    let finite = |v: f32| if v.is_finite() { v } else { 0.0 };
    let rate_z = finite(r[anomaly::SENDER_RATE_Z]).max(0.0);
    let size_z = finite(r[anomaly::SIZE_Z]).max(0.0);
    let fee_z = finite(r[anomaly::FEE_Z]).abs();
    let gap = finite(r[anomaly::NONCE_GAP]).clamp(0.0, 8.0);
    let youth = if finite(r[anomaly::SENDER_AGE_S]) < 60.0 {
        1.5
    } else {
        1.0
    };
    let evidence = rate_z * youth + 0.35 * size_z + 0.2 * fee_z + 0.25 * gap;
    let s = 1.0 / (1.0 + (-(evidence - 3.0).min(80.0)).exp());
    s.clamp(0.0, 1.0)
}

/// One score per row.
pub fn score(rows: Rows<'_>) -> Vec<f32> {
    rows.iter().map(score_row).collect()
}

export_plugin! {
    name: "sender-rate",
    version: "1.0.0",
    anomaly: score,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rate_z: f32, age_s: f32) -> [f32; anomaly::FEATURE_COUNT] {
        let mut r = [0.0; anomaly::FEATURE_COUNT];
        r[anomaly::SENDER_RATE_Z] = rate_z;
        r[anomaly::SENDER_AGE_S] = age_s;
        r
    }

    #[test]
    fn bursts_from_young_senders_score_highest() {
        let calm = score_row(&row(0.0, 3600.0));
        let busy_old = score_row(&row(3.0, 3600.0));
        let busy_young = score_row(&row(3.0, 5.0));
        assert!(calm < 0.1, "{calm}");
        assert!((busy_old - 0.5).abs() < 1e-6, "{busy_old}");
        assert!(busy_young > 0.8, "{busy_young}");
        assert!(score_row(&[f32::NAN; anomaly::FEATURE_COUNT]).is_finite());
    }
}

//! # `fee-per-byte`: an `ordering` plugin
//!
//! Ranks the batch by fee density (`fee_per_byte`, descending), then by arrival
//! (`arrival_seq`, ascending: first come, first served). Block space is the scarce resource,
//! so the proposer fills it with the transactions that pay the most for each byte; the
//! node's static rule ranks by the total fee, which favours large transactions.
//!
//! Scores are ranks: the best row gets `N`, the worst `1`, and rows with an identical key share
//! a score (the node then breaks the tie by transaction hash). Each sender's nonce order is
//! kept by the node whatever the scores.

use aurigraph_plugin_sdk::{Rows, export_plugin, schema::ordering};

/// One score per row: the rank of `(fee_per_byte desc, arrival_seq asc)`, best = `N`.
pub fn score(rows: Rows<'_>) -> Vec<f32> {
    let keys: Vec<(f32, f32)> = rows
        .iter()
        .map(|r| (r[ordering::FEE_PER_BYTE], r[ordering::ARRIVAL_SEQ]))
        .collect();
    rank_scores(&keys)
}

/// Scores `N - r` where `r` counts the rows with a strictly better `(density desc, seq asc)`.
fn rank_scores(keys: &[(f32, f32)]) -> Vec<f32> {
    let better =
        |a: &(f32, f32), b: &(f32, f32)| b.0.total_cmp(&a.0).then_with(|| a.1.total_cmp(&b.1));
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by(|&i, &j| better(&keys[i], &keys[j]));
    let n = keys.len();
    let mut scores = vec![0.0; n];
    let mut rank = 0;
    for (pos, &i) in order.iter().enumerate() {
        if pos > 0 && better(&keys[order[pos - 1]], &keys[i]).is_ne() {
            rank = pos;
        }
        scores[i] = (n - rank) as f32;
    }
    scores
}

export_plugin! {
    name: "fee-per-byte",
    version: "1.0.0",
    ordering: score,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fee_per_byte: f32, seq: f32) -> [f32; ordering::FEATURE_COUNT] {
        let mut r = [0.0; ordering::FEATURE_COUNT];
        r[ordering::FEE_PER_BYTE] = fee_per_byte;
        r[ordering::ARRIVAL_SEQ] = seq;
        r
    }

    #[test]
    fn densest_first_then_fifo_and_ties_share_a_score() {
        let data: Vec<f32> = [row(2.0, 5.0), row(9.0, 7.0), row(2.0, 1.0), row(2.0, 1.0)].concat();
        let s = score(Rows::new(&data, ordering::FEATURE_COUNT).unwrap());
        assert_eq!(s, vec![1.0, 4.0, 3.0, 3.0]);
    }
}

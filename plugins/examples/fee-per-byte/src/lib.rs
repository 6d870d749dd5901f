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

use aurigraph_plugin_sdk::rank::{desc_then_asc, scores_by_int_key};
use aurigraph_plugin_sdk::{Rows, export_plugin, schema::ordering};

/// One score per row: the rank of `(fee_per_byte desc, arrival_seq asc)`, best = `N`.
pub fn score(rows: Rows<'_>) -> Vec<f32> {
    scores_by_int_key(
        rows.iter()
            .map(|r| desc_then_asc(r[ordering::FEE_PER_BYTE], r[ordering::ARRIVAL_SEQ])),
    )
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

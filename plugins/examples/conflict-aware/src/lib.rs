//! # `conflict-aware`: an `ordering` plugin that cuts executor conflicts
//!
//! The parallel executor runs a block optimistically and re-executes a transaction when one
//! placed before it wrote what it read. Conflicts come from *hot* accounts, touched by several
//! transactions of the batch. The ordering features say, per transaction, how many accounts it
//! touches (`accounts_touched`) and which share of them is hot (`hot_account_share`), so
//! `accounts_touched * hot_account_share` estimates how many hot accounts it contends on.
//!
//! The plugin groups the batch by that estimate, coldest group first:
//!
//! - group 0: transactions that touch no hot account run fully in parallel, at the front;
//! - groups 1, 2, 3, ...: transactions contending on 1, 2, 3... hot accounts (capped at
//!   [`MAX_GROUP`]), so that the transactions likely to conflict sit next to each other in a
//!   short tail instead of being spread over the block, where every one of them would
//!   invalidate the speculative work of the transactions after it.
//!
//! Inside a group the usual economics apply: fee density (`fee_per_byte`) descending, then
//! arrival (`arrival_seq`) ascending. All the transactions of the batch are in the block
//! whatever their place, so moving a hot transaction back costs its sender nothing but a few
//! positions. Scores are ranks (best = `N`); the node keeps each sender's nonce order.

use aurigraph_plugin_sdk::{Rows, export_plugin, schema::ordering};

/// Largest conflict group; transactions contending on more hot accounts join it.
pub const MAX_GROUP: u32 = 8;

/// The conflict group of a row: the estimated number of hot accounts it touches, rounded.
pub fn group(row: &[f32]) -> u32 {
    let touched = row[ordering::ACCOUNTS_TOUCHED].max(0.0);
    let share = row[ordering::HOT_ACCOUNT_SHARE].clamp(0.0, 1.0);
    let hot = (touched * share).round();
    if hot.is_nan() {
        MAX_GROUP
    } else {
        (hot as u32).min(MAX_GROUP)
    }
}

/// One score per row: the rank of `(group asc, fee_per_byte desc, arrival_seq asc)`.
pub fn score(rows: Rows<'_>) -> Vec<f32> {
    let keys: Vec<(u32, f32, f32)> = rows
        .iter()
        .map(|r| {
            (
                group(r),
                r[ordering::FEE_PER_BYTE],
                r[ordering::ARRIVAL_SEQ],
            )
        })
        .collect();
    let cmp = |a: &(u32, f32, f32), b: &(u32, f32, f32)| {
        a.0.cmp(&b.0)
            .then_with(|| b.1.total_cmp(&a.1))
            .then_with(|| a.2.total_cmp(&b.2))
    };
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by(|&i, &j| cmp(&keys[i], &keys[j]));
    let n = keys.len();
    let mut scores = vec![0.0; n];
    let mut rank = 0;
    for (pos, &i) in order.iter().enumerate() {
        if pos > 0 && cmp(&keys[order[pos - 1]], &keys[i]).is_ne() {
            rank = pos;
        }
        scores[i] = (n - rank) as f32;
    }
    scores
}

export_plugin! {
    name: "conflict-aware",
    version: "1.0.0",
    ordering: score,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(touched: f32, hot: f32, fee_per_byte: f32) -> [f32; ordering::FEATURE_COUNT] {
        let mut r = [0.0; ordering::FEATURE_COUNT];
        r[ordering::ACCOUNTS_TOUCHED] = touched;
        r[ordering::HOT_ACCOUNT_SHARE] = hot;
        r[ordering::FEE_PER_BYTE] = fee_per_byte;
        r
    }

    #[test]
    fn cold_first_then_hot_groups_and_fee_density_inside_a_group() {
        let data: Vec<f32> = [
            row(4.0, 0.5, 90.0), // 2 hot accounts
            row(2.0, 0.0, 1.0),  // cold, cheap
            row(4.0, 0.25, 5.0), // 1 hot account
            row(3.0, 0.0, 7.0),  // cold, dear
        ]
        .concat();
        let s = score(Rows::new(&data, ordering::FEATURE_COUNT).unwrap());
        assert_eq!(s, vec![1.0, 3.0, 2.0, 4.0]);
    }
}

//! [`ordering_features`]: the `ordering` slot's feature rows of a candidate window.

use std::collections::HashMap;
use std::time::Instant;

use crate::mempool::ReadyTx;
use crate::tx::Address;
use aurigraph_decision::slot::ordering::OrderingFeatures;

/// Largest `arrival_seq` handed to the slot: `2^24`, the last integer from which every
/// smaller one is exact in `f32`. A window spanning more admissions than that (far beyond
/// any real batch) saturates: later candidates all read `2^24`.
pub const ARRIVAL_SEQ_MAX: u64 = 1 << 24;

/// One feature row per candidate, in the candidates' order:
///
/// - `fee`, `fee_per_byte`, `size_bytes` from the transaction;
/// - `arrival_seq`: admission sequence number minus the oldest candidate's (0 = oldest),
///   capped at [`ARRIVAL_SEQ_MAX`] so it is an exact integer in `f32`;
/// - `sender_pending`, `nonce_gap` from the mempool ([`ReadyTx`]);
/// - `accounts_touched`: distinct accounts the transaction reads or writes;
/// - `hot_account_share`: the share of those accounts that at least one *other* candidate
///   of the window also touches (0 when it conflicts with nothing in the window);
/// - `age_ms`: `now` minus the admission time, in ms (0 if admitted after `now`).
pub fn ordering_features(candidates: &[ReadyTx], now: Instant) -> Vec<OrderingFeatures> {
    let oldest = candidates.iter().map(|c| c.tx.seq).min().unwrap_or(0);
    let accounts: Vec<Vec<Address>> = candidates.iter().map(|c| c.tx.tx.tx().accounts()).collect();
    let mut touched_by: HashMap<Address, u32> = HashMap::new();
    for a in accounts.iter().flatten() {
        *touched_by.entry(*a).or_default() += 1;
    }
    candidates
        .iter()
        .zip(&accounts)
        .map(|(c, accts)| {
            let signed = &c.tx.tx;
            let fee = signed.tx().fee as f32;
            let size = signed.size() as f32;
            let hot = accts
                .iter()
                .filter(|a| touched_by.get(*a).is_some_and(|&n| n > 1))
                .count();
            OrderingFeatures {
                fee,
                fee_per_byte: if size > 0.0 { fee / size } else { 0.0 },
                size_bytes: size,
                arrival_seq: (c.tx.seq - oldest).min(ARRIVAL_SEQ_MAX) as f32,
                sender_pending: c.sender_pending as f32,
                nonce_gap: c.nonce_gap as f32,
                accounts_touched: accts.len() as f32,
                hot_account_share: if accts.is_empty() {
                    0.0
                } else {
                    hot as f32 / accts.len() as f32
                },
                age_ms: now
                    .saturating_duration_since(c.tx.admitted_at)
                    .as_secs_f32()
                    * 1_000.0,
            }
        })
        .collect()
}

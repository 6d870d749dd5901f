//! [`merge_order`]: the final order of a batch from the `ordering` slot's scores, keeping
//! each sender's nonce order whatever the scores.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::mempool::ReadyTx;
use crate::tx::{Address, TxHash};
use aurigraph_decision::slot::anomaly::AnomalyClass;

/// The merge key of one candidate; ascending order is "goes first": better class, then
/// higher score, then lower hash.
type Key = (AnomalyClass, Reverse<u32>, TxHash);

/// The order of `candidates` (indexes into it) for scores `scores` (one per candidate, in
/// the same order; a missing or NaN score counts as the lowest). See the
/// [module docs of the batcher](super) for the algorithm and its guarantees:
///
/// - each sender's candidates come out in ascending nonce order, whatever the scores;
/// - when every sender has a single candidate, the order is exactly ascending
///   `(class, score descending, hash)`;
/// - the result is a permutation of `0..candidates.len()` and depends only on the
///   candidates' (sender, nonce, class, hash) and the scores, not on their input order.
pub fn merge_order(candidates: &[ReadyTx], scores: &[f32]) -> Vec<usize> {
    let items: Vec<MergeItem> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let t = c.tx.tx.tx();
            MergeItem {
                sender: t.sender,
                nonce: t.nonce,
                class: c.tx.class,
                hash: c.tx.tx.hash(),
                score: scores.get(i).copied().unwrap_or(f32::NAN),
            }
        })
        .collect();
    merge_items(&items)
}

/// What the merge needs of one candidate.
#[derive(Clone, Copy, Debug)]
pub(super) struct MergeItem {
    pub sender: Address,
    pub nonce: u64,
    pub class: AnomalyClass,
    pub hash: TxHash,
    pub score: f32,
}

impl MergeItem {
    fn key(&self) -> Key {
        (self.class, Reverse(score_bits(self.score)), self.hash)
    }
}

/// The heap-over-senders merge of [`merge_order`].
pub(super) fn merge_items(items: &[MergeItem]) -> Vec<usize> {
    // Each sender's candidates in nonce order (hash breaks a duplicate nonce, which the
    // mempool never hands over, so even that input has one deterministic answer).
    let mut by_sender: Vec<usize> = (0..items.len()).collect();
    by_sender.sort_unstable_by_key(|&i| (items[i].sender, items[i].nonce, items[i].hash));
    let groups: Vec<&[usize]> = by_sender
        .chunk_by(|&a, &b| items[a].sender == items[b].sender)
        .collect();

    // One heap entry per sender: the key of its next candidate, the group and the position.
    let mut heap: BinaryHeap<Reverse<(Key, usize, usize)>> = groups
        .iter()
        .enumerate()
        .filter_map(|(g, group)| group.first().map(|&i| Reverse((items[i].key(), g, 0))))
        .collect();
    let mut out = Vec::with_capacity(items.len());
    while let Some(Reverse((_, g, pos))) = heap.pop() {
        let Some(group) = groups.get(g) else {
            continue;
        };
        if let Some(&i) = group.get(pos) {
            out.push(i);
        }
        if let Some(&next) = group.get(pos + 1) {
            heap.push(Reverse((items[next].key(), g, pos + 1)));
        }
    }
    out
}

/// A `u32` whose unsigned order is the order of the scores: `-0.0` reads as `0.0` and NaN as
/// the lowest score.
fn score_bits(x: f32) -> u32 {
    let x = if x.is_nan() {
        f32::NEG_INFINITY
    } else {
        x + 0.0
    };
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sender: u8, nonce: u64, class: AnomalyClass, hash: u8, score: f32) -> MergeItem {
        MergeItem {
            sender: Address([sender; 32]),
            nonce,
            class,
            hash: TxHash([hash; 32]),
            score,
        }
    }

    #[test]
    fn score_bits_order_scores() {
        let xs = [
            f32::NEG_INFINITY,
            -1e9,
            -1.0,
            -0.0,
            0.0,
            1e-30,
            1.0,
            1e9,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(score_bits(w[0]) <= score_bits(w[1]), "{w:?}");
        }
        assert_eq!(score_bits(-0.0), score_bits(0.0));
        assert_eq!(score_bits(f32::NAN), score_bits(f32::NEG_INFINITY));
    }

    #[test]
    fn a_low_scored_lower_nonce_goes_first() {
        use AnomalyClass::Normal as N;
        // Sender 1: nonce 0 scored 1, nonce 1 scored 100; sender 2: one tx scored 50.
        let items = [
            item(1, 0, N, 10, 1.0),
            item(1, 1, N, 11, 100.0),
            item(2, 7, N, 12, 50.0),
        ];
        assert_eq!(merge_items(&items), vec![2, 0, 1]);
    }

    #[test]
    fn class_first_then_score_then_hash() {
        use AnomalyClass::{Anomalous as A, Normal as N, Suspicious as S};
        let items = [
            item(1, 0, A, 1, 9.0),
            item(2, 0, S, 2, 9.0),
            item(3, 0, N, 9, 1.0),
            item(4, 0, N, 3, 1.0),
            item(5, 0, N, 4, 5.0),
        ];
        assert_eq!(merge_items(&items), vec![4, 3, 2, 1, 0]);
    }
}

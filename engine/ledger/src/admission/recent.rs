//! [`RecentHashes`]: a bounded set of recently admitted transaction hashes (first in,
//! first out), for duplicate detection.

use std::collections::{HashMap, VecDeque};

use crate::tx::TxHash;

/// The last `capacity` admitted hashes. Older duplicates are caught by the nonce checks:
/// once a transaction is committed its nonce is stale.
///
/// Every operation is `O(1)` amortized: [`RecentHashes::forget`] only drops the hash from
/// the live map and leaves its entry in the FIFO order dead (each entry carries the
/// generation it was inserted with, so a dead entry never evicts a later insertion of the
/// same hash); dead entries are skipped when they reach the front, and the order is
/// compacted once it holds twice `capacity` entries.
#[derive(Debug)]
pub(crate) struct RecentHashes {
    live: HashMap<TxHash, u64>,
    order: VecDeque<(TxHash, u64)>,
    next_generation: u64,
    capacity: usize,
}

impl RecentHashes {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            live: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn contains(&self, h: &TxHash) -> bool {
        self.live.contains_key(h)
    }

    /// Remembers `h`, forgetting the oldest hash when full.
    pub(crate) fn insert(&mut self, h: TxHash) {
        if self.live.contains_key(&h) {
            return;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.live.insert(h, generation);
        self.order.push_back((h, generation));
        while self.live.len() > self.capacity {
            let Some((old, g)) = self.order.pop_front() else {
                break;
            };
            if self.live.get(&old) == Some(&g) {
                self.live.remove(&old);
            }
        }
        if self.order.len() >= 2 * self.capacity {
            let live = &self.live;
            self.order.retain(|(x, g)| live.get(x) == Some(g));
        }
    }

    /// Forgets `h` (its transaction left the mempool uncommitted).
    pub(crate) fn forget(&mut self, h: &TxHash) {
        self.live.remove(h);
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    #[cfg(test)]
    fn order_len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo() {
        let mut r = RecentHashes::new(2);
        let h = |b| TxHash([b; 32]);
        r.insert(h(1));
        r.insert(h(2));
        r.insert(h(2));
        assert_eq!(r.len(), 2);
        r.insert(h(3));
        assert!(!r.contains(&h(1)) && r.contains(&h(2)) && r.contains(&h(3)));
        r.forget(&h(2));
        assert!(!r.contains(&h(2)));
        r.insert(h(4));
        assert!(r.contains(&h(3)) && r.contains(&h(4)));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_forgotten_hash_inserted_again_is_not_evicted_by_its_dead_entry() {
        let mut r = RecentHashes::new(3);
        let h = |b| TxHash([b; 32]);
        r.insert(h(1));
        r.forget(&h(1));
        r.insert(h(2));
        r.insert(h(1));
        r.insert(h(3));
        // The dead first entry of 1 reaches the front first and must not take the live 1.
        r.insert(h(4));
        assert!(r.contains(&h(1)) && r.contains(&h(3)) && r.contains(&h(4)));
        assert!(!r.contains(&h(2)));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn forgetting_keeps_the_order_bounded() {
        let mut r = RecentHashes::new(4);
        for i in 0..1_000u32 {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_le_bytes());
            r.insert(TxHash(b));
            r.forget(&TxHash(b));
            assert!(r.order_len() < 8, "order grew to {}", r.order_len());
        }
        assert_eq!(r.len(), 0);
    }
}

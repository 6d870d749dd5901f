//! [`RecentHashes`]: a bounded set of recently admitted transaction hashes (first in,
//! first out), for duplicate detection.

use std::collections::{HashSet, VecDeque};

use crate::tx::TxHash;

/// The last `capacity` admitted hashes. Older duplicates are caught by the nonce checks:
/// once a transaction is committed its nonce is stale.
#[derive(Debug)]
pub(crate) struct RecentHashes {
    set: HashSet<TxHash>,
    order: VecDeque<TxHash>,
    capacity: usize,
}

impl RecentHashes {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn contains(&self, h: &TxHash) -> bool {
        self.set.contains(h)
    }

    /// Remembers `h`, forgetting the oldest hash when full.
    pub(crate) fn insert(&mut self, h: TxHash) {
        if !self.set.insert(h) {
            return;
        }
        self.order.push_back(h);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// Forgets `h` (its transaction left the mempool uncommitted). Its slot in the FIFO
    /// order is reclaimed when it reaches the front.
    pub(crate) fn forget(&mut self, h: &TxHash) {
        if self.set.remove(h)
            && let Some(i) = self.order.iter().rposition(|x| x == h)
        {
            self.order.remove(i);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
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
}

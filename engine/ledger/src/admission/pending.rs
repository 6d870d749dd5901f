//! [`PendingView`]: what admission knows of pending (admitted, not yet committed)
//! transactions, and [`PendingNonces`], a self-contained implementation.

use std::collections::{BTreeSet, HashMap};

use parking_lot::Mutex;

use crate::tx::Address;

/// Admission's view of the transactions admitted but not yet committed: the sender's next
/// expected nonce.
///
/// Admission checks nonces against committed state (below the account's nonce is stale,
/// from `account nonce + nonce_window` too far), so a sender may submit `n + 1` while `n`
/// is pending whatever the view says. The view only serves the `nonce_gap` feature (a
/// nonce minus the next expected one). It is not consulted to refuse: a second
/// transaction with a pending nonce goes on to the mempool, which replaces by fee or
/// refuses.
///
/// Implementations: the [`Mempool`](crate::mempool::Mempool) (its `pending_nonce`; the
/// node plugs it in with [`Admission::with_pending`](super::Admission::with_pending)), and
/// [`PendingNonces`], which admission feeds itself through the hooks (the default).
/// Implementations must be cheap (one short lock at most) and must never block on
/// admission.
pub trait PendingView: Send + Sync {
    /// The nonce the sender's next transaction would execute at: `account_nonce` (the
    /// committed next nonce) plus the consecutive nonces from it that pending transactions
    /// hold. Never below `account_nonce`.
    fn next_nonce(&self, sender: &Address, account_nonce: u64) -> u64;

    /// Admission admitted `nonce` of `sender`. Default: nothing (a mempool learns of the
    /// transaction when the node inserts it).
    fn admitted(&self, _sender: &Address, _nonce: u64) {}

    /// An admitted transaction left without being committed (evicted, expired, refused by
    /// the mempool). Default: nothing.
    fn released(&self, _sender: &Address, _nonce: u64) {}

    /// A commit moved `sender`'s committed next nonce to `next_nonce`. Default: nothing.
    fn committed(&self, _sender: &Address, _next_nonce: u64) {}
}

impl PendingView for crate::mempool::Mempool {
    fn next_nonce(&self, sender: &Address, account_nonce: u64) -> u64 {
        self.pending_nonce(sender, account_nonce).max(account_nonce)
    }
}

const SHARDS: usize = 16;

/// One shard: pending nonces by sender.
type Shard = Mutex<HashMap<Address, BTreeSet<u64>>>;

/// Pending nonces per sender, fed by admission itself: for a node, test or harness that
/// runs admission without a mempool's view.
///
/// Admission records each admitted nonce ([`PendingView::admitted`]); whoever holds the
/// transactions reports [`PendingView::released`] (left uncommitted) and
/// [`PendingView::committed`] (after a commit; [`PendingView::next_nonce`] also ignores
/// nonces below the committed one, so a missed call costs memory for a while, never a
/// wrong answer). Sharded by sender over 16 mutexes; every call holds one for a few map
/// operations.
pub struct PendingNonces {
    shards: Box<[Shard]>,
}

impl Default for PendingNonces {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PendingNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingNonces")
            .field("senders", &self.senders())
            .field("pending", &self.len())
            .finish()
    }
}

impl PendingNonces {
    /// An empty tracker.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, sender: &Address) -> &Shard {
        &self.shards[usize::from(sender.0[0]) % SHARDS]
    }

    /// The sender's pending nonces, in order.
    pub fn nonces(&self, sender: &Address) -> Vec<u64> {
        self.shard(sender)
            .lock()
            .get(sender)
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Senders with at least one pending nonce.
    pub fn senders(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Pending nonces over all senders.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().values().map(BTreeSet::len).sum::<usize>())
            .sum()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().is_empty())
    }
}

impl PendingView for PendingNonces {
    fn next_nonce(&self, sender: &Address, account_nonce: u64) -> u64 {
        let shard = self.shard(sender).lock();
        let mut next = account_nonce;
        if let Some(q) = shard.get(sender) {
            for &n in q.range(account_nonce..) {
                if n != next {
                    break;
                }
                next = next.saturating_add(1);
            }
        }
        next
    }

    fn admitted(&self, sender: &Address, nonce: u64) {
        self.shard(sender)
            .lock()
            .entry(*sender)
            .or_default()
            .insert(nonce);
    }

    fn released(&self, sender: &Address, nonce: u64) {
        let mut shard = self.shard(sender).lock();
        if let Some(q) = shard.get_mut(sender) {
            q.remove(&nonce);
            if q.is_empty() {
                shard.remove(sender);
            }
        }
    }

    fn committed(&self, sender: &Address, next_nonce: u64) {
        let mut shard = self.shard(sender).lock();
        if let Some(q) = shard.get_mut(sender) {
            *q = q.split_off(&next_nonce);
            if q.is_empty() {
                shard.remove(sender);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_nonce_follows_contiguous_pending_nonces() {
        let p = PendingNonces::new();
        let a = Address([3; 32]);
        assert_eq!(p.next_nonce(&a, 5), 5);
        for n in [5, 6, 8] {
            p.admitted(&a, n);
        }
        assert_eq!(p.next_nonce(&a, 5), 7);
        assert_eq!(
            p.next_nonce(&a, 8),
            9,
            "below the committed nonce is ignored"
        );
        p.committed(&a, 6);
        assert_eq!(p.nonces(&a), vec![6, 8]);
        p.released(&a, 6);
        assert_eq!(p.next_nonce(&a, 6), 6);
        p.released(&a, 8);
        assert!(p.is_empty());
        assert_eq!(p.senders(), 0);
    }
}

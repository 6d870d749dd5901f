//! [`PendingNonces`]: pending nonces and spends per sender, shared with the mempool.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

use crate::tx::Address;

const SHARDS: usize = 16;

/// Pending nonces of one sender, each with the fee plus amount it will spend.
type SenderQueue = BTreeMap<u64, u64>;

/// The nonces (and spends) of admitted transactions that are not yet committed, per sender,
/// shared by admission and the mempool.
///
/// Committed state knows a sender's next nonce `n`; while `n` waits in the mempool the
/// sender may already submit `n + 1`, and admission must neither accept a second `n` nor
/// forget what `n` will spend. This tracker holds, per sender, the pending nonces and the
/// fee plus amount each will spend.
///
/// ## Who updates it
///
/// - Admission reserves a nonce when it admits a transaction ([`PendingNonces::reserve`]).
/// - The mempool calls [`PendingNonces::release`] when an admitted transaction leaves it
///   without being committed (evicted, expired, refused for lack of room), so its nonce can
///   be used again.
/// - After a commit, [`PendingNonces::committed`] drops the nonces below the sender's new
///   committed next nonce. Admission also prunes them by itself whenever it looks at a
///   sender, so a missed call costs memory for a while, never correctness.
///
/// It is sharded by sender (16 mutexes), and every call holds one shard lock for a few
/// map operations: callers on different threads rarely wait for each other.
pub struct PendingNonces {
    shards: Box<[Mutex<HashMap<Address, SenderQueue>>]>,
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

/// What admission needs to know about a sender, read under one lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SenderView {
    /// The lowest nonce at or above the committed next nonce that no pending transaction
    /// holds: the next executable nonce.
    pub next_executable: u64,
    /// Whether the nonce asked about is pending.
    pub taken: bool,
    /// Fee plus amount of the pending transactions (saturating).
    pub pending_spend: u64,
}

impl PendingNonces {
    /// An empty tracker.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, sender: &Address) -> &Mutex<HashMap<Address, SenderQueue>> {
        &self.shards[usize::from(sender.0[0]) % SHARDS]
    }

    /// The sender's state relative to `committed_next` (the next nonce in committed state),
    /// and whether `nonce` is pending. Prunes nonces below `committed_next`.
    pub(crate) fn view(&self, sender: &Address, committed_next: u64, nonce: u64) -> SenderView {
        let mut shard = self.shard(sender).lock();
        let Some(q) = shard.get_mut(sender) else {
            return SenderView {
                next_executable: committed_next,
                taken: false,
                pending_spend: 0,
            };
        };
        prune(q, committed_next);
        let mut next = committed_next;
        for &n in q.keys() {
            if n != next {
                break;
            }
            next = next.saturating_add(1);
        }
        let view = SenderView {
            next_executable: next,
            taken: q.contains_key(&nonce),
            pending_spend: q.values().fold(0u64, |a, &c| a.saturating_add(c)),
        };
        if q.is_empty() {
            shard.remove(sender);
        }
        view
    }

    /// Marks `nonce` of `sender` pending, spending `spend` (fee plus amount). Returns
    /// `false`, changing nothing, when that nonce is already pending.
    pub fn reserve(&self, sender: Address, nonce: u64, spend: u64) -> bool {
        let mut shard = self.shard(&sender).lock();
        let q = shard.entry(sender).or_default();
        if q.contains_key(&nonce) {
            return false;
        }
        q.insert(nonce, spend);
        true
    }

    /// Frees a pending nonce whose transaction left the mempool without being committed.
    /// Returns whether it was pending.
    pub fn release(&self, sender: &Address, nonce: u64) -> bool {
        let mut shard = self.shard(sender).lock();
        let Some(q) = shard.get_mut(sender) else {
            return false;
        };
        let was = q.remove(&nonce).is_some();
        if q.is_empty() {
            shard.remove(sender);
        }
        was
    }

    /// Drops the sender's pending nonces below `next_nonce`, its committed next nonce after
    /// a commit.
    pub fn committed(&self, sender: &Address, next_nonce: u64) {
        let mut shard = self.shard(sender).lock();
        if let Some(q) = shard.get_mut(sender) {
            prune(q, next_nonce);
            if q.is_empty() {
                shard.remove(sender);
            }
        }
    }

    /// The sender's pending nonces, in order.
    pub fn nonces(&self, sender: &Address) -> Vec<u64> {
        self.shard(sender)
            .lock()
            .get(sender)
            .map(|q| q.keys().copied().collect())
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
            .map(|s| s.lock().values().map(BTreeMap::len).sum::<usize>())
            .sum()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().is_empty())
    }
}

fn prune(q: &mut SenderQueue, committed_next: u64) {
    if q.first_key_value()
        .is_some_and(|(&n, _)| n < committed_next)
    {
        *q = q.split_off(&committed_next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_executable_follows_contiguous_pending_nonces() {
        let p = PendingNonces::new();
        let a = Address([3; 32]);
        assert_eq!(p.view(&a, 5, 5).next_executable, 5);
        assert!(p.reserve(a, 5, 10));
        assert!(p.reserve(a, 6, 10));
        assert!(p.reserve(a, 8, 10));
        assert!(!p.reserve(a, 8, 99));
        let v = p.view(&a, 5, 8);
        assert_eq!(v.next_executable, 7);
        assert!(v.taken);
        assert_eq!(v.pending_spend, 30);
        // A commit up to 6 prunes 5; admission's own view prunes too.
        p.committed(&a, 6);
        assert_eq!(p.nonces(&a), vec![6, 8]);
        assert_eq!(p.view(&a, 7, 0).pending_spend, 10);
        assert_eq!(p.nonces(&a), vec![8]);
        assert!(p.release(&a, 8));
        assert!(!p.release(&a, 8));
        assert!(p.is_empty());
        assert_eq!(p.senders(), 0);
    }
}

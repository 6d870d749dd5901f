//! [`SenderQueue`]: one sender's pending transactions in nonce order, and the [`Rank`] that
//! orders transactions for selection and eviction.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Instant;

use crate::tx::{AdmittedTx, TxHash};
use aurigraph_decision::slot::anomaly::AnomalyClass;

/// Priority of a transaction; ascending order is best first: better class, then higher fee,
/// then earlier admission, then lower hash. The hash makes it a total order, so every
/// choice the pool makes is deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Rank {
    pub class: AnomalyClass,
    pub fee: Reverse<u64>,
    pub seq: u64,
    pub hash: TxHash,
}

impl Rank {
    pub fn of(tx: &AdmittedTx) -> Self {
        Rank {
            class: tx.class,
            fee: Reverse(tx.tx.tx().fee),
            seq: tx.seq,
            hash: tx.tx.hash(),
        }
    }

    /// Whether a transaction of this rank may evict one of rank `victim`: a strictly better
    /// class, or the same class and a strictly higher fee. Age and hash never decide an
    /// eviction: among equals the one already held stays.
    pub fn outranks(&self, victim: &Rank) -> bool {
        self.class < victim.class || (self.class == victim.class && self.fee.0 > victim.fee.0)
    }

    /// Whether it outranks `victim` by class alone.
    pub fn outranks_by_class(&self, victim: &Rank) -> bool {
        self.class < victim.class
    }
}

/// A transaction held by the pool.
#[derive(Clone, Debug)]
pub(super) struct Pooled {
    pub tx: AdmittedTx,
    pub rank: Rank,
    pub size: usize,
}

/// One sender's pending transactions.
#[derive(Debug)]
pub(super) struct SenderQueue {
    /// The sender's next nonce as the pool knows it (the committed account nonce): the
    /// nonce its next executable transaction must carry.
    pub next: u64,
    /// Held transactions by nonce.
    pub txs: BTreeMap<u64, Pooled>,
    /// Length of the run of consecutive nonces from `next` (the executable transactions).
    pub ready: usize,
    /// Key of the sender in the pool's set of ready heads (set when `ready > 0`).
    pub head: Option<(Rank, u64)>,
    /// Key of the sender in the pool's set of tails (set when `txs` is not empty).
    pub tail: Option<(Rank, u64)>,
    /// Admission time of its tail, its key in the pool's set of gapped tails (set when the
    /// tail is behind a nonce gap: `ready < txs.len()`).
    pub gapped: Option<Instant>,
}

impl SenderQueue {
    pub fn new(next: u64) -> Self {
        Self {
            next,
            txs: BTreeMap::new(),
            ready: 0,
            head: None,
            tail: None,
            gapped: None,
        }
    }

    /// Number of consecutive nonces held from `from` on.
    pub fn consecutive_from(&self, from: u64) -> usize {
        let mut want = Some(from);
        let mut n = 0;
        for &nonce in self.txs.range(from..).map(|(k, _)| k) {
            if Some(nonce) != want {
                break;
            }
            n += 1;
            want = nonce.checked_add(1);
        }
        n
    }

    /// One past the last executable nonce.
    pub fn ready_end(&self) -> u64 {
        self.next.saturating_add(self.ready as u64)
    }
}

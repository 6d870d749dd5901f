//! [`Pool`]: the mempool's state and algorithms, single-threaded. [`Mempool`](super::Mempool)
//! wraps it in a mutex.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::Instant;

use super::Eviction;
use super::sender::{Pooled, Rank, SenderQueue};
use super::stats::{MempoolStats, class_index};
use super::{Inserted, MempoolConfig, MempoolError, ReadyTx, Removal, Removed};
use crate::tx::{Address, AdmittedTx, TxHash};

/// Most transactions one insertion may evict. A transaction is at most
/// [`MAX_TX_BYTES`](crate::tx::MAX_TX_BYTES) and the smallest is about 150 bytes, so a few
/// evictions always suffice; the cap bounds the work of an insertion regardless.
pub(super) const MAX_EVICTIONS_PER_INSERT: usize = 32;

/// Key of a sender's first executable transaction in [`Pool::heads`] (best first).
type HeadKey = (Rank, Address, u64);
/// Key of a sender's last transaction in [`Pool::tails`] (worst first).
type TailKey = (Reverse<Rank>, Address, u64);
/// Key of a sender whose last transaction is behind a nonce gap in [`Pool::gapped`]: that
/// transaction's admission time (oldest first).
type GappedKey = (Instant, Address);

/// The pool's state. Every method keeps these invariants:
///
/// - `by_hash` has exactly one entry per held transaction, pointing at its sender and nonce;
/// - a sender has an entry in `senders` iff it holds at least one transaction;
/// - `heads` holds, for every sender with an executable transaction, the key of its first
///   one (`nonce == next`); `tails` holds, for every sender, the key of its last one;
/// - `gapped` holds, for every sender whose last transaction is not executable, that
///   transaction's admission time;
/// - `stats` counts and bytes (total, per class) and `ready` match the held transactions.
#[derive(Debug)]
pub(super) struct Pool {
    config: MempoolConfig,
    by_hash: HashMap<TxHash, (Address, u64)>,
    senders: HashMap<Address, SenderQueue>,
    heads: BTreeSet<HeadKey>,
    tails: BTreeSet<TailKey>,
    gapped: BTreeSet<GappedKey>,
    stats: MempoolStats,
    /// Transactions removed by the current operation. The last reference to a transaction
    /// is often the pool's, so [`Mempool`](super::Mempool) takes these out and frees them
    /// after releasing the lock.
    pub graveyard: Vec<AdmittedTx>,
}

impl Pool {
    pub fn new(config: MempoolConfig) -> Self {
        Self {
            config,
            by_hash: HashMap::new(),
            senders: HashMap::new(),
            heads: BTreeSet::new(),
            tails: BTreeSet::new(),
            gapped: BTreeSet::new(),
            stats: MempoolStats::empty(),
            graveyard: Vec::new(),
        }
    }

    pub fn stats(&self) -> MempoolStats {
        let mut s = self.stats.clone();
        s.senders = self.senders.len();
        s
    }

    pub fn len(&self) -> usize {
        self.stats.count
    }

    pub fn bytes(&self) -> usize {
        self.stats.bytes
    }

    pub fn ready_len(&self) -> usize {
        self.stats.ready
    }

    pub fn get(&self, hash: &TxHash) -> Option<&AdmittedTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        Some(&self.senders.get(sender)?.txs.get(nonce)?.tx)
    }

    pub fn sender_len(&self, sender: &Address) -> usize {
        self.senders.get(sender).map_or(0, |q| q.txs.len())
    }

    pub fn pending_nonce(&self, sender: &Address, account_nonce: u64) -> u64 {
        match self.senders.get(sender) {
            None => account_nonce,
            Some(q) => {
                let from = q.next.max(account_nonce);
                from.saturating_add(q.consecutive_from(from) as u64)
            }
        }
    }

    /// Inserts `tx`; see the module docs of [`mempool`](super) for the rules.
    pub fn insert(&mut self, tx: AdmittedTx, account_nonce: u64) -> Result<Inserted, MempoolError> {
        let result = self.try_insert(tx, account_nonce);
        match &result {
            Ok(ins) => {
                self.stats.accepted += 1;
                for r in &ins.removed {
                    match r.reason {
                        Removal::Evicted => self.stats.evicted += 1,
                        Removal::Replaced => self.stats.replaced += 1,
                        Removal::Stale
                        | Removal::Committed
                        | Removal::Skipped
                        | Removal::Expired => {}
                    }
                }
            }
            Err(e) => self.stats.refused[e.index()].1 += 1,
        }
        result
    }

    fn full(&self) -> MempoolError {
        MempoolError::Full {
            count: self.stats.count,
            max_txs: self.config.max_txs,
            bytes: self.stats.bytes,
            max_bytes: self.config.max_bytes,
        }
    }

    fn try_insert(&mut self, tx: AdmittedTx, account_nonce: u64) -> Result<Inserted, MempoolError> {
        let rank = Rank::of(&tx);
        let hash = rank.hash;
        let (sender, nonce, fee) = {
            let t = tx.tx.tx();
            (t.sender, t.nonce, t.fee)
        };
        let size = tx.tx.size();
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate(hash));
        }
        let max_per_sender = self.config.max_per_sender;
        let (next, ready, held, existing) = match self.senders.get(&sender) {
            Some(q) => (
                q.next,
                q.ready,
                q.txs.len(),
                q.txs.get(&nonce).map(|p| (p.rank, p.size)),
            ),
            None => (account_nonce, 0, 0, None),
        };
        let floor = next.max(account_nonce);
        if nonce < floor {
            return Err(MempoolError::NonceStale {
                sender,
                nonce,
                next: floor,
            });
        }
        let max_ahead = self.config.max_nonce_ahead;
        if nonce - floor > max_ahead {
            return Err(MempoolError::NonceTooFar {
                sender,
                nonce,
                next: floor,
                max_ahead,
            });
        }

        if let Some((old, old_size)) = existing {
            // Replace-by-fee.
            let min_fee = self.config.replacement_fee(old.fee.0);
            if fee < min_fee {
                return Err(MempoolError::NonceConflict {
                    sender,
                    nonce,
                    pending_fee: old.fee.0,
                    min_fee,
                });
            }
            let need_bytes = (self.stats.bytes.saturating_sub(old_size) + size)
                .saturating_sub(self.config.max_bytes);
            let victims = if need_bytes > 0 {
                // A replacement behind a nonce gap takes free room only, like any gapped
                // transaction.
                if !self.is_ready(sender, nonce) {
                    return Err(self.full());
                }
                self.plan_eviction(&rank, sender, 0, need_bytes)
                    .ok_or_else(|| self.full())?
            } else {
                Vec::new()
            };
            let mut removed = self.evict(&victims);
            if let Some(old) = self.take_entry(sender, nonce) {
                removed.push(Removed {
                    hash: old.hash,
                    sender,
                    nonce,
                    reason: Removal::Replaced,
                });
            }
            self.add_entry(sender, nonce, Pooled { tx, rank, size }, account_nonce);
            self.refresh(sender);
            return Ok(Inserted {
                hash,
                ready: self.is_ready(sender, nonce),
                removed,
            });
        }

        if held >= max_per_sender {
            return Err(MempoolError::SenderLimit {
                sender,
                limit: max_per_sender,
            });
        }
        let extends_run = next.checked_add(ready as u64) == Some(nonce);
        if !extends_run {
            let gapped = self.stats.count.saturating_sub(self.stats.ready);
            let limit = self.config.max_gapped();
            if gapped >= limit {
                return Err(MempoolError::GappedFull { gapped, limit });
            }
        }
        let need_count = (self.stats.count + 1).saturating_sub(self.config.max_txs);
        let need_bytes = (self.stats.bytes + size).saturating_sub(self.config.max_bytes);
        let victims = if need_count > 0 || need_bytes > 0 {
            // Only a transaction that extends its sender's executable run may evict: one
            // behind a nonce gap may never become executable and only takes free room.
            if !extends_run {
                return Err(self.full());
            }
            self.plan_eviction(&rank, sender, need_count, need_bytes)
                .ok_or_else(|| self.full())?
        } else {
            Vec::new()
        };
        let removed = self.evict(&victims);
        self.add_entry(sender, nonce, Pooled { tx, rank, size }, account_nonce);
        self.refresh(sender);
        Ok(Inserted {
            hash,
            ready: self.is_ready(sender, nonce),
            removed,
        })
    }

    fn is_ready(&self, sender: Address, nonce: u64) -> bool {
        self.senders
            .get(&sender)
            .is_some_and(|q| nonce >= q.next && nonce < q.ready_end())
    }

    /// The transactions to evict, worst first, so that `need_count` transactions and
    /// `need_bytes` bytes become free; `None` when that would take a transaction `new` does
    /// not outrank (or more than [`MAX_EVICTIONS_PER_INSERT`]). Only sender tails are
    /// evicted, never one of `exclude` (the new transaction's sender).
    ///
    /// Walks the tails worst first, merged with a small heap of the tails that evictions in
    /// the plan uncover (a victim's predecessor becomes its sender's tail), so the plan is
    /// exactly what evicting the worst tail one at a time would do.
    fn plan_eviction(
        &self,
        new: &Rank,
        exclude: Address,
        need_count: usize,
        need_bytes: usize,
    ) -> Option<Vec<(Address, u64)>> {
        let mut global = self.tails.iter().filter(|k| k.1 != exclude).peekable();
        let mut uncovered: BinaryHeap<Reverse<TailKey>> = BinaryHeap::new();
        let mut victims = Vec::new();
        let (mut count, mut bytes) = (0usize, 0usize);
        while count < need_count || bytes < need_bytes {
            if victims.len() >= MAX_EVICTIONS_PER_INSERT {
                return None;
            }
            let take_global = match (global.peek(), uncovered.peek()) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(g), Some(Reverse(u))) => *g <= u,
            };
            let (Reverse(rank), sender, nonce) = if take_global {
                *global.next()?
            } else {
                uncovered.pop()?.0
            };
            let outranked = match self.config.eviction {
                Eviction::None => false,
                Eviction::ByClass => new.outranks_by_class(&rank),
                Eviction::ByFee => new.outranks(&rank),
            };
            if !outranked {
                return None;
            }
            let q = self.senders.get(&sender)?;
            let victim = q.txs.get(&nonce)?;
            victims.push((sender, nonce));
            count += 1;
            bytes += victim.size;
            if let Some((&prev, p)) = q.txs.range(..nonce).next_back() {
                uncovered.push(Reverse((Reverse(p.rank), sender, prev)));
            }
        }
        Some(victims)
    }

    /// Evicts a plan from [`Pool::plan_eviction`].
    fn evict(&mut self, victims: &[(Address, u64)]) -> Vec<Removed> {
        let mut removed = Vec::with_capacity(victims.len());
        let mut touched = Vec::new();
        for &(sender, nonce) in victims {
            if let Some(rank) = self.take_entry(sender, nonce) {
                removed.push(Removed {
                    hash: rank.hash,
                    sender,
                    nonce,
                    reason: Removal::Evicted,
                });
                tracing::debug!(tx = %rank.hash, %sender, nonce, class = rank.class.as_str(), fee = rank.fee.0, "mempool: evicted");
            }
            if !touched.contains(&sender) {
                touched.push(sender);
            }
        }
        for sender in touched {
            self.refresh(sender);
        }
        removed
    }

    /// Adds a transaction (its sender's queue is created with `next` when missing). The
    /// caller refreshes the sender.
    fn add_entry(&mut self, sender: Address, nonce: u64, p: Pooled, next: u64) {
        let c = &mut self.stats.classes[class_index(p.rank.class)];
        c.count += 1;
        c.bytes += p.size;
        self.stats.count += 1;
        self.stats.bytes += p.size;
        self.by_hash.insert(p.rank.hash, (sender, nonce));
        self.senders
            .entry(sender)
            .or_insert_with(|| SenderQueue::new(next))
            .txs
            .insert(nonce, p);
    }

    /// Removes a transaction into the graveyard; its rank. The caller refreshes the sender.
    fn take_entry(&mut self, sender: Address, nonce: u64) -> Option<Rank> {
        let p = self.senders.get_mut(&sender)?.txs.remove(&nonce)?;
        self.by_hash.remove(&p.rank.hash);
        // Saturating: the totals match the content (checked by `check_invariants`), and a
        // broken invariant must not panic on a transaction's path.
        let c = &mut self.stats.classes[class_index(p.rank.class)];
        c.count = c.count.saturating_sub(1);
        c.bytes = c.bytes.saturating_sub(p.size);
        self.stats.count = self.stats.count.saturating_sub(1);
        self.stats.bytes = self.stats.bytes.saturating_sub(p.size);
        self.graveyard.push(p.tx);
        Some(p.rank)
    }

    /// Recomputes a sender's executable run and its keys in `heads`, `tails` and `gapped`;
    /// forgets a sender with no transaction left.
    fn refresh(&mut self, sender: Address) {
        let Pool {
            senders,
            heads,
            tails,
            gapped,
            stats,
            ..
        } = self;
        let Some(q) = senders.get_mut(&sender) else {
            return;
        };
        if let Some((rank, nonce)) = q.head.take() {
            heads.remove(&(rank, sender, nonce));
        }
        if let Some((rank, nonce)) = q.tail.take() {
            tails.remove(&(Reverse(rank), sender, nonce));
        }
        if let Some(at) = q.gapped.take() {
            gapped.remove(&(at, sender));
        }
        stats.ready = stats.ready.saturating_sub(q.ready);
        q.ready = q.consecutive_from(q.next);
        stats.ready += q.ready;
        if q.ready > 0
            && let Some(p) = q.txs.get(&q.next)
        {
            heads.insert((p.rank, sender, q.next));
            q.head = Some((p.rank, q.next));
        }
        match q.txs.last_key_value() {
            Some((&nonce, p)) => {
                tails.insert((Reverse(p.rank), sender, nonce));
                q.tail = Some((p.rank, nonce));
                if q.ready < q.txs.len() {
                    gapped.insert((p.tx.admitted_at, sender));
                    q.gapped = Some(p.tx.admitted_at);
                }
            }
            None => {
                senders.remove(&sender);
            }
        }
    }

    /// Up to `limit` executable transactions, best first under the nonce constraint; see
    /// [`Mempool::select_ready`](super::Mempool::select_ready).
    pub fn select(&self, limit: usize, skip: Option<&HashSet<TxHash>>) -> Vec<ReadyTx> {
        let mut out = Vec::with_capacity(limit.min(self.stats.ready));
        let mut global = self.heads.iter().peekable();
        let mut uncovered: BinaryHeap<Reverse<HeadKey>> = BinaryHeap::new();
        while out.len() < limit {
            let take_global = match (global.peek(), uncovered.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(g), Some(Reverse(u))) => *g <= u,
            };
            let next = if take_global {
                global.next().copied()
            } else {
                uncovered.pop().map(|r| r.0)
            };
            let Some((rank, sender, nonce)) = next else {
                break;
            };
            let Some(q) = self.senders.get(&sender) else {
                continue;
            };
            let Some(p) = q.txs.get(&nonce) else {
                continue;
            };
            if !skip.is_some_and(|s| s.contains(&rank.hash)) {
                out.push(ReadyTx {
                    tx: p.tx.clone(),
                    sender_pending: q.txs.len(),
                    nonce_gap: nonce.saturating_sub(q.next),
                });
            }
            if let Some(n1) = nonce.checked_add(1)
                && n1 < q.ready_end()
                && let Some(s) = q.txs.get(&n1)
            {
                uncovered.push(Reverse((s.rank, sender, n1)));
            }
        }
        out
    }

    /// Removes committed transactions and advances their senders' next nonces past them.
    pub fn remove_committed(&mut self, hashes: &[TxHash]) -> Vec<Removed> {
        let mut removed = Vec::with_capacity(hashes.len());
        let mut touched = BTreeSet::new();
        for h in hashes {
            let Some(&(sender, nonce)) = self.by_hash.get(h) else {
                continue;
            };
            if self.take_entry(sender, nonce).is_some() {
                removed.push(Removed {
                    hash: *h,
                    sender,
                    nonce,
                    reason: Removal::Committed,
                });
                self.stats.committed += 1;
            }
            if let Some(q) = self.senders.get_mut(&sender) {
                q.next = q.next.max(nonce.saturating_add(1));
            }
            touched.insert(sender);
        }
        for sender in touched {
            self.drop_stale(sender, &mut removed);
            self.refresh(sender);
        }
        removed
    }

    /// Removes transactions a block skipped, leaving their senders' next nonces alone.
    pub fn remove_skipped(&mut self, hashes: &[TxHash]) -> Vec<Removed> {
        let mut removed = Vec::with_capacity(hashes.len());
        let mut touched = BTreeSet::new();
        for h in hashes {
            let Some(&(sender, nonce)) = self.by_hash.get(h) else {
                continue;
            };
            if self.take_entry(sender, nonce).is_some() {
                removed.push(Removed {
                    hash: *h,
                    sender,
                    nonce,
                    reason: Removal::Skipped,
                });
                self.stats.skipped_dropped += 1;
            }
            touched.insert(sender);
        }
        for sender in touched {
            self.refresh(sender);
        }
        removed
    }

    /// Every sender holding a transaction.
    pub fn senders(&self) -> Vec<Address> {
        self.senders.keys().copied().collect()
    }

    /// Raises senders' next nonces to their committed account nonces and drops what became
    /// stale.
    pub fn advance_nonces(&mut self, nonces: &[(Address, u64)]) -> Vec<Removed> {
        let mut removed = Vec::new();
        for &(sender, next) in nonces {
            let Some(q) = self.senders.get_mut(&sender) else {
                continue;
            };
            if next <= q.next {
                continue;
            }
            q.next = next;
            self.drop_stale(sender, &mut removed);
            self.refresh(sender);
        }
        removed
    }

    /// Removes the transactions behind a nonce gap admitted more than the TTL before `now`,
    /// each sender's from its highest nonce down; see
    /// [`Mempool::expire`](super::Mempool::expire).
    pub fn expire(&mut self, now: Instant) -> Vec<Removed> {
        let mut removed = Vec::new();
        let Some(ttl) = self.config.gapped_ttl() else {
            return removed;
        };
        if self.stats.count == self.stats.ready {
            return removed;
        }
        while let Some(&(at, sender)) = self.gapped.first() {
            if now.saturating_duration_since(at) <= ttl {
                break;
            }
            self.gapped.pop_first();
            let tail = self
                .senders
                .get(&sender)
                .and_then(|q| q.txs.last_key_value())
                .map(|(&nonce, _)| nonce);
            if let Some(nonce) = tail
                && let Some(rank) = self.take_entry(sender, nonce)
            {
                removed.push(Removed {
                    hash: rank.hash,
                    sender,
                    nonce,
                    reason: Removal::Expired,
                });
                self.stats.expired += 1;
                tracing::debug!(tx = %rank.hash, %sender, nonce, "mempool: expired behind a nonce gap");
            }
            // Puts the sender's new tail in `gapped` when it is behind the gap too.
            self.refresh(sender);
        }
        removed
    }

    /// Drops a sender's transactions below its next nonce. The caller refreshes the sender.
    fn drop_stale(&mut self, sender: Address, removed: &mut Vec<Removed>) {
        let Some(q) = self.senders.get(&sender) else {
            return;
        };
        let stale: Vec<u64> = q.txs.range(..q.next).map(|(&n, _)| n).collect();
        for nonce in stale {
            if let Some(rank) = self.take_entry(sender, nonce) {
                removed.push(Removed {
                    hash: rank.hash,
                    sender,
                    nonce,
                    reason: Removal::Stale,
                });
                self.stats.stale_dropped += 1;
            }
        }
    }

    /// Checks every invariant listed on [`Pool`]; a description of the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut count = 0;
        let mut bytes = 0;
        let mut ready = 0;
        let mut classes = [(0usize, 0usize); 3];
        for (sender, q) in &self.senders {
            if q.txs.is_empty() {
                return Err(format!("sender {sender} kept with no transaction"));
            }
            if q.ready != q.consecutive_from(q.next) {
                return Err(format!("sender {sender}: stale ready count"));
            }
            ready += q.ready;
            for (&nonce, p) in &q.txs {
                if nonce < q.next {
                    return Err(format!("sender {sender}: stale nonce {nonce} kept"));
                }
                if self.by_hash.get(&p.rank.hash) != Some(&(*sender, nonce)) {
                    return Err(format!("sender {sender}: nonce {nonce} not indexed"));
                }
                count += 1;
                bytes += p.size;
                let c = &mut classes[class_index(p.rank.class)];
                c.0 += 1;
                c.1 += p.size;
            }
            let head = (q.ready > 0)
                .then(|| q.txs.get(&q.next).map(|p| (p.rank, q.next)))
                .flatten();
            if q.head != head || head.is_some_and(|(r, n)| !self.heads.contains(&(r, *sender, n))) {
                return Err(format!("sender {sender}: head key out of date"));
            }
            let tail = q.txs.last_key_value().map(|(&n, p)| (p.rank, n));
            if q.tail != tail
                || tail.is_some_and(|(r, n)| !self.tails.contains(&(Reverse(r), *sender, n)))
            {
                return Err(format!("sender {sender}: tail key out of date"));
            }
            let gapped = (q.ready < q.txs.len())
                .then(|| q.txs.last_key_value().map(|(_, p)| p.tx.admitted_at))
                .flatten();
            if q.gapped != gapped || gapped.is_some_and(|at| !self.gapped.contains(&(at, *sender)))
            {
                return Err(format!("sender {sender}: gapped key out of date"));
            }
        }
        let gapped = self.senders.values().filter(|q| q.gapped.is_some()).count();
        if self.gapped.len() != gapped {
            return Err("gapped set has extra keys".to_string());
        }
        let heads = self.senders.values().filter(|q| q.head.is_some()).count();
        if self.heads.len() != heads || self.tails.len() != self.senders.len() {
            return Err("head or tail set has extra keys".to_string());
        }
        if self.by_hash.len() != count {
            return Err("hash index has extra entries".to_string());
        }
        let s = &self.stats;
        if (s.count, s.bytes, s.ready) != (count, bytes, ready) {
            return Err(format!(
                "totals ({}, {}, {}) differ from the content ({count}, {bytes}, {ready})",
                s.count, s.bytes, s.ready
            ));
        }
        for (c, &(n, b)) in s.classes.iter().zip(&classes) {
            if (c.count, c.bytes) != (n, b) {
                return Err(format!("class {} totals out of date", c.class.as_str()));
            }
        }
        if count > self.config.max_txs || bytes > self.config.max_bytes {
            return Err(format!(
                "bounds exceeded: {count}/{} transactions, {bytes}/{} bytes",
                self.config.max_txs, self.config.max_bytes
            ));
        }
        Ok(())
    }
}

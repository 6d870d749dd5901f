//! The mempool: admitted transactions waiting for a batch.
//!
//! [`Mempool`] holds [`AdmittedTx`]s between admission and commit. It is bounded by count
//! and by bytes ([`MempoolConfig`]), refuses with a stable code instead of growing
//! ([`MempoolError`]), keeps each sender's transactions in nonce order, and hands the
//! batcher the executable ones best first. Given the same operations in the same order it
//! always reaches the same state and gives the same answers: every choice is made on a
//! total order that ends with the transaction hash, and hash maps are only ever used for
//! lookups, never iterated into an answer.
//!
//! # Priority
//!
//! A transaction's rank is, best first: its class from the `anomaly` slot
//! (normal > suspicious > anomalous), then its fee (higher first), then its admission
//! sequence number (older first), then its hash. Selection takes the best; eviction takes
//! the worst.
//!
//! # Per-sender queues and readiness
//!
//! Each sender has a queue in nonce order and a *next nonce*: the nonce of its committed
//! account (seeded by the `account_nonce` the caller passes on the sender's first
//! insertion, raised by [`Mempool::remove_committed`] and [`Mempool::advance_nonces`];
//! [`Mempool::remove_skipped`] drops transactions a block skipped without moving it, since
//! a skipped transaction did not use its nonce). It never runs ahead of the committed
//! account nonce as long as only transactions that executed are passed as committed.
//! Only the run of consecutive nonces starting at the next nonce is *ready* (executable);
//! transactions behind a gap stay queued, not ready, until the gap is filled. A transaction
//! is refused when its nonce is below the next nonce (`E_STALE_NONCE`) or more than
//! `max_nonce_ahead` ahead of it (`E_NONCE_TOO_FAR`), and when its sender already holds
//! `max_per_sender` transactions (`E_SENDER_LIMIT`). The same transaction twice is
//! `E_DUPLICATE`.
//!
//! # Expiry behind a nonce gap
//!
//! With [`gapped_ttl_ms`](MempoolConfig::gapped_ttl_ms) set, [`Mempool::expire`] removes
//! the transactions behind a nonce gap that were admitted more than the TTL ago
//! ([`Removal::Expired`]). The age counts from admission, so a transaction that waited
//! ready and then fell behind a gap (its predecessor skipped) may expire at the first call
//! after that. A ready transaction never expires. A sender's transactions behind its gap
//! expire from its highest nonce down: the highest goes once it is older than the TTL,
//! then the one below it, and so on; a younger one keeps those below it held until it
//! expires itself, so an expiry never leaves a nonce gap in front of a transaction still
//! held. The pool keeps the senders whose last transaction is behind a gap ordered by that
//! transaction's admission time, so a call costs `O(1)` when nothing is behind a gap,
//! `O(log n)` when nothing has expired, and a few `O(log n)` updates per expired
//! transaction.
//!
//! A sender whose queue empties is forgotten, so memory stays bounded by what is held; its
//! next nonce then comes again from the `account_nonce` of its next insertion.
//!
//! [`Mempool::pending_nonce`] answers admission's "next expected nonce": the account nonce
//! plus the consecutive run the pool holds from it.
//!
//! # Replace-by-fee
//!
//! A transaction with the sender and nonce of a pending one (but another hash) replaces it
//! when its fee is at least `replace_bump_percent` (default 10%) higher, and at least one
//! base unit higher: `fee >= old + max(1, ceil(old * bump / 100))`. Otherwise it is refused
//! with `E_NONCE_CONFLICT`, which states the fee needed. The bump makes replacement cost
//! something, so a sender cannot churn the pool for free.
//!
//! # Eviction when full
//!
//! When a new transaction would take the pool past `max_txs` or `max_bytes`:
//!
//! 1. A transaction behind a nonce gap never evicts anything: it only takes free room
//!    (`E_MEMPOOL_FULL` otherwise). It might never become executable, and letting it evict
//!    would let a sender flush the pool with transactions that never execute.
//! 2. Only the *tail* of a sender's queue (its highest nonce) may be evicted, so an eviction
//!    never leaves a nonce gap in front of another queued transaction of that sender. The
//!    new transaction's own sender is never a victim.
//! 3. Victims are taken worst first among all tails: anomalous before suspicious before
//!    normal, then the lowest fee, then the newest (then the highest hash). Evicting a tail
//!    uncovers its predecessor as the sender's new tail, which competes in the same order.
//! 4. The new transaction must *outrank* every victim: a strictly better class, or the same
//!    class and a strictly higher fee ([`Eviction::ByFee`], the default; [`Eviction::ByClass`]
//!    only counts the class, [`Eviction::None`] evicts nothing). Among equals the
//!    transaction already held stays (no churn). If the room cannot be made from outranked
//!    victims (or it would take more than 32), nothing is evicted and the insertion is
//!    refused with `E_MEMPOOL_FULL`: this is the back-pressure signal, and the pool never
//!    grows past its bounds.
//! 5. Transactions behind a nonce gap hold at most
//!    [`max_gapped_percent`](MempoolConfig::max_gapped_percent) of `max_txs` (default half);
//!    past that one more is refused with `E_MEMPOOL_FULL`, so executable transactions (those
//!    that fill the gaps among them) always find room and a pool of transactions that cannot
//!    run never blocks production.
//!
//! A replacement that is larger than the transaction it replaces may evict other senders'
//! tails for the extra bytes under the same rules. Every insertion reports what it removed
//! ([`Inserted::removed`]) so the node can tell subscribers.
//!
//! # Selection for the batcher
//!
//! [`Mempool::select_ready`] returns up to `limit` ready transactions without removing them:
//! a k-way merge over senders. The set of senders' first ready transactions is kept sorted
//! by rank; selection walks it best first, and each time it takes a sender's transaction
//! that sender's next ready one joins a small heap merged with the walk. So the result is,
//! at every step, the best transaction whose predecessors of the same sender are already
//! taken: class priority first, each sender's transactions in consecutive nonce order from
//! its next nonce. Cost `O(limit * log(senders))`. Transactions stay in the pool until
//! [`Mempool::remove_committed`]; a proposer that pipelines blocks passes the transactions
//! already in flight to [`Mempool::select_ready_excluding`].
//!
//! # Concurrency
//!
//! All state sits behind one `parking_lot` mutex with short critical sections. What an
//! insertion needs from the transaction (hash, size, fee) is cached in the
//! [`SignedTransaction`](crate::tx::SignedTransaction), the work under the lock is a few
//! `O(log n)` map and set updates, and transactions removed by an operation are freed after
//! the lock is released (the pool often holds the last reference). [`Mempool::insert_batch`]
//! takes the lock once per [`INSERT_CHUNK`] transactions and [`Mempool::remove_committed`]
//! once per [`COMMIT_CHUNK`] hashes, so neither holds submitters off for long.
//!
//! One lock rather than shards by sender, because the bounds and the eviction order are
//! global: with shards, an insertion into a full pool would have to lock every shard to
//! find the worst tail, the count and byte bounds would need a reservation protocol, and
//! determinism would need a global order anyway. Figures from a one-off throughput harness
//! run during development (not kept in the repository, so indicative only; release build,
//! the 2-core development machine, 64,000 pre-signed transfers of 4,000 senders into a pool
//! of up to 64,000): about 1.5 us per insertion from 1 thread and the same total throughput
//! from 8 threads (~670k tx/s either way: the lock is not contended into collapse); about
//! 0.3 us per insertion refused or evicting at the bound; selecting 5,000 ready
//! transactions about 2.5 ms and removing them as committed about 1.6 us each. Admission's
//! signature checks cost ~20-50 us per transaction, so the lock is far from the bottleneck
//! of the path (the admission-to-commit bench, `benches/benches/pipeline.rs`, measures the
//! whole path); sharding would only pay on many more cores.

use std::collections::HashSet;

use parking_lot::Mutex;
use serde::Serialize;

use crate::tx::{Address, AdmittedTx, TxHash};
use aurigraph_decision::error::EngineError;

mod config;
mod error;
mod pool;
mod sender;
mod stats;

pub use config::{Eviction, MempoolConfig};
pub use error::MempoolError;
pub use stats::{CLASSES, ClassStats, MempoolStats};

use pool::Pool;

/// [`Mempool::insert_batch`] takes the lock once per this many transactions, so a large
/// batch does not hold other submitters off for long.
pub const INSERT_CHUNK: usize = 256;

/// [`Mempool::remove_committed`] takes the lock once per this many hashes.
pub const COMMIT_CHUNK: usize = 512;

/// Why a transaction left the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// Committed in a block.
    Committed,
    /// Its nonce was used by a committed transaction (another one with the same nonce, or
    /// the account moved past it).
    Stale,
    /// Evicted to make room for a higher-priority transaction.
    Evicted,
    /// Replaced by a higher-fee transaction with the same sender and nonce.
    Replaced,
    /// Skipped by the executor (a skip status such as a bad nonce or a fee it could not
    /// pay: no state change, not even the nonce). It left the pool without using its
    /// nonce, so the sender may submit that nonce again.
    Skipped,
    /// Behind a nonce gap for longer than the TTL after its admission
    /// ([`Mempool::expire`]).
    Expired,
}

impl Removal {
    /// Lower-case name for logs, metrics and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Removal::Committed => "committed",
            Removal::Stale => "stale",
            Removal::Evicted => "evicted",
            Removal::Replaced => "replaced",
            Removal::Skipped => "skipped",
            Removal::Expired => "expired",
        }
    }
}

/// A transaction that left the pool, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Removed {
    /// Its hash.
    pub hash: TxHash,
    /// Its sender.
    pub sender: Address,
    /// Its nonce.
    pub nonce: u64,
    /// Why it left.
    pub reason: Removal,
}

/// What an accepted insertion did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inserted {
    /// The inserted transaction's hash.
    pub hash: TxHash,
    /// Whether it is executable now (in its sender's run of consecutive nonces).
    pub ready: bool,
    /// Transactions it evicted or replaced, in the order they were removed.
    pub removed: Vec<Removed>,
}

/// A ready transaction chosen by [`Mempool::select_ready`], with the per-sender figures the
/// `ordering` slot's features need.
#[derive(Clone, Debug)]
pub struct ReadyTx {
    /// The transaction.
    pub tx: AdmittedTx,
    /// Transactions of its sender held in the pool, this one included.
    pub sender_pending: usize,
    /// Its nonce minus its sender's next nonce (0 = executable first).
    pub nonce_gap: u64,
}

/// The mempool. See the [module docs](self). Safe to share between threads.
#[derive(Debug)]
pub struct Mempool {
    config: MempoolConfig,
    pool: Mutex<Pool>,
}

impl Mempool {
    /// An empty pool; refused with [`EngineError::InvalidConfig`] when the config is out of
    /// its documented ranges.
    pub fn new(config: MempoolConfig) -> Result<Self, EngineError> {
        config.validate()?;
        Ok(Self {
            config,
            pool: Mutex::new(Pool::new(config)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Runs a mutation under the lock, then frees the transactions it removed after
    /// releasing the lock.
    fn with<R>(&self, f: impl FnOnce(&mut Pool) -> R) -> R {
        let (r, dead) = {
            let mut pool = self.pool.lock();
            let r = f(&mut pool);
            (r, std::mem::take(&mut pool.graveyard))
        };
        drop(dead);
        r
    }

    /// Inserts one admitted transaction. `account_nonce` is the sender's committed next nonce
    /// as admission read it: it seeds the sender's queue when the pool holds nothing of the
    /// sender, and a nonce below it is stale in any case.
    ///
    /// On refusal nothing changed. On success the result lists what was evicted or replaced.
    pub fn insert(&self, tx: AdmittedTx, account_nonce: u64) -> Result<Inserted, MempoolError> {
        self.with(|p| p.insert(tx, account_nonce))
    }

    /// Inserts several transactions, in order, with the same effect and results as calling
    /// [`Mempool::insert`] for each in turn, but taking the lock once per [`INSERT_CHUNK`].
    pub fn insert_batch<I>(&self, txs: I) -> Vec<Result<Inserted, MempoolError>>
    where
        I: IntoIterator<Item = (AdmittedTx, u64)>,
    {
        let txs: Vec<(AdmittedTx, u64)> = txs.into_iter().collect();
        let mut out = Vec::with_capacity(txs.len());
        let mut it = txs.into_iter().peekable();
        while it.peek().is_some() {
            self.with(|pool| {
                for (tx, nonce) in it.by_ref().take(INSERT_CHUNK) {
                    out.push(pool.insert(tx, nonce));
                }
            });
        }
        out
    }

    /// Admission's "next expected nonce" of `sender`: `max(account_nonce, the pool's next
    /// nonce)` plus the number of consecutive nonces the pool holds from there.
    pub fn pending_nonce(&self, sender: &Address, account_nonce: u64) -> u64 {
        self.pool.lock().pending_nonce(sender, account_nonce)
    }

    /// Up to `limit` ready transactions, best first under the nonce constraint (see the
    /// module docs), without removing them. Each sender's transactions come in consecutive
    /// nonce order from its next nonce.
    pub fn select_ready(&self, limit: usize) -> Vec<ReadyTx> {
        self.pool.lock().select(limit, None)
    }

    /// Like [`Mempool::select_ready`], but skips the transactions in `in_flight` (proposed in
    /// a block not yet committed) while still taking their successors, which will be
    /// executable once the earlier block commits.
    pub fn select_ready_excluding(
        &self,
        limit: usize,
        in_flight: &HashSet<TxHash>,
    ) -> Vec<ReadyTx> {
        self.pool.lock().select(limit, Some(in_flight))
    }

    /// Removes committed transactions (unknown hashes are ignored), raises each one's
    /// sender's next nonce past it, and drops the sender's transactions that became stale.
    ///
    /// Pass only transactions that really used their nonce (executed, whatever their
    /// operation's outcome): a transaction the executor skipped did not advance its
    /// sender's nonce and goes to [`Mempool::remove_skipped`] instead, or the sender's next
    /// nonce would run ahead of its account and its later transactions and a resubmission
    /// of the skipped nonce would be refused.
    /// Returns what was removed: per chunk of [`COMMIT_CHUNK`] hashes, the committed ones in
    /// the order given, then the stale ones.
    ///
    /// Each chunk takes the lock once, so a large block does not hold submitters off for
    /// long (about 1.5 us per transaction); a selection running concurrently may see a
    /// block partly removed.
    pub fn remove_committed(&self, hashes: &[TxHash]) -> Vec<Removed> {
        let mut removed = Vec::with_capacity(hashes.len());
        for chunk in hashes.chunks(COMMIT_CHUNK) {
            removed.extend(self.with(|p| p.remove_committed(chunk)));
        }
        removed
    }

    /// Removes transactions a committed block skipped (unknown hashes are ignored) without
    /// moving their senders' next nonces: a skipped transaction changed nothing, so its
    /// nonce is still the account's next one and the sender may submit it again. The
    /// sender's later transactions stay queued, behind the gap, until it does. Returns what
    /// was removed (reason [`Removal::Skipped`]), in the order given.
    pub fn remove_skipped(&self, hashes: &[TxHash]) -> Vec<Removed> {
        let mut removed = Vec::with_capacity(hashes.len());
        for chunk in hashes.chunks(COMMIT_CHUNK) {
            removed.extend(self.with(|p| p.remove_skipped(chunk)));
        }
        removed
    }

    /// Raises senders' next nonces to their committed account nonces (for transactions
    /// committed that this pool never held, e.g. proposed by another node) and drops what
    /// became stale. Lower values are ignored.
    pub fn advance_nonces(&self, nonces: &[(Address, u64)]) -> Vec<Removed> {
        self.with(|p| p.advance_nonces(nonces))
    }

    /// Every sender holding a transaction, in no particular order.
    pub fn senders(&self) -> Vec<Address> {
        self.pool.lock().senders()
    }

    /// Removes every transaction behind a nonce gap admitted more than
    /// [`gapped_ttl_ms`](MempoolConfig::gapped_ttl_ms) before `now` (strictly more), each
    /// sender's from its highest nonce down, stopping at a sender's first transaction that
    /// has not expired (see the [module docs](self)). Returns what was removed (reason
    /// [`Removal::Expired`]), in the order removed: each time, the last transaction of the
    /// sender whose last transaction behind a gap was admitted first. Returns at once,
    /// without taking the lock, when the TTL is 0, and in `O(1)` when every transaction held
    /// is ready.
    pub fn expire(&self, now: std::time::Instant) -> Vec<Removed> {
        if self.config.gapped_ttl_ms == 0 {
            return Vec::new();
        }
        self.with(|p| p.expire(now))
    }

    /// The pending transaction with this hash.
    pub fn get(&self, hash: &TxHash) -> Option<AdmittedTx> {
        self.pool.lock().get(hash).cloned()
    }

    /// Whether a transaction with this hash is pending.
    pub fn contains(&self, hash: &TxHash) -> bool {
        self.pool.lock().get(hash).is_some()
    }

    /// Transactions of `sender` held.
    pub fn sender_len(&self, sender: &Address) -> usize {
        self.pool.lock().sender_len(sender)
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.pool.lock().len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.pool.lock().bytes()
    }

    /// Ready (executable) transactions held.
    pub fn ready_len(&self) -> usize {
        self.pool.lock().ready_len()
    }

    /// Occupancy per class and counters.
    pub fn stats(&self) -> MempoolStats {
        self.pool.lock().stats()
    }

    /// Checks the pool's internal invariants (indexes consistent, totals exact, bounds held);
    /// the first broken one. For tests and debug assertions; costs `O(n)`.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.pool.lock().check_invariants()
    }
}

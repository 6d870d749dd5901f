//! Admission: raw transaction bytes in, [`AdmittedTx`]s (or refusals with stable codes)
//! out, in batches.
//!
//! ## The path of a batch ([`Admission::admit`])
//!
//! 1. **Decode and stateless checks** (parallel): size limit, strict decoding and field
//!    rules ([`SignedTransaction::decode`]), chain, minimum fee. A hash already admitted is
//!    refused here too, before any signature work.
//! 2. **Signatures** (parallel, batched): the survivors go to the [`SignatureVerifier`]:
//!    chunks on rayon, one `ed25519-consensus` batch verification per chunk, single
//!    verification inside a chunk that fails, to find exactly the bad ones (ZIP-215: batch
//!    and single verification agree).
//! 3. **Stateful checks** (sequential, in input order, under one lock): duplicate (also
//!    within the batch); nonce against the sender's committed next nonce `n` from the
//!    [`StateView`]: below `n` is stale, from `n + nonce_window` too far, anything between
//!    is accepted, so `n + 1` is admitted while `n` is pending; the committed balance must
//!    cover the fee plus the amount. An admitted transaction gets its `seq`, its hash is
//!    remembered, the [`PendingView`] hears of it, and its `anomaly` feature row is built ([`AnomalyFeatures`]: per-sender rate
//!    and age from a decaying counter, z-scores from [`PopulationStats`], scored before the
//!    values are folded in). Sizes and fees are folded in for every transaction, a sender's
//!    rate with probability `1 / (its count in the window)`, about once per sender per
//!    window: the rate population is sender-weighted, so a flood from a few senders cannot
//!    raise the mean it is measured against and hide itself.
//! 4. **Anomaly slot**: one [`SlotHost::decide`] per batch, keyed by the batch sequence
//!    number, over the admitted rows; [`Thresholds`] map scores to [`AnomalyClass`]es. The
//!    host answers with the static rule whenever a model or plugin fails; should the host
//!    itself refuse the input (only a shape bug can cause that), every transaction of the
//!    batch gets score 0: nothing admitted is dropped.
//!
//! Results come back one per input, in input order ([`BatchOutcome`]). No input bytes can
//! make admission panic. The refusal codes are listed on [`Refusal`].
//!
//! ## Sequence numbers and concurrency
//!
//! `admit` takes `&self` and may be called from several threads: decoding and signatures
//! run outside any lock, the stateful stage of one batch runs under one lock, so the
//! checks of concurrent batches never interleave. `seq` is assigned in that stage, strictly
//! increasing over all batches; a caller that needs mempool insertion in `seq` order calls
//! `admit` from one thread.
//!
//! ## Pending transactions and the mempool
//!
//! Nonce checks are against committed state, so nothing pending can make admission refuse
//! `n + 1`. A second transaction with the nonce of a pending one (another hash) is
//! admitted too: the mempool replaces by fee or refuses it. Pending transactions matter to
//! the `nonce_gap` feature only, through a [`PendingView`]: by default a
//! [`PendingNonces`] that admission feeds itself; the node plugs in the
//! [`Mempool`](crate::mempool::Mempool) with [`Admission::with_pending`]. Either way the
//! node reports back:
//! - [`Admission::release`] when an admitted transaction leaves the mempool uncommitted
//!   (refused by it, evicted, replaced, skipped by the executor), or
//!   [`Admission::release_removed`] with the mempool's removal reports: its hash is
//!   forgotten, so the same bytes may be submitted again;
//! - [`Admission::committed`] with a sender's new next nonce after a commit.
//!
//! The balance check is against the committed balance and this transaction alone: what the
//! sender's pending transactions will spend is not subtracted (the executor has the final
//! word, and a transaction that cannot pay still pays its fee).
//!
//! Time for the rate features comes from a [`Clock`] (the system clock by default, a
//! [`ManualClock`](aurigraph_decision::clock::ManualClock) in tests).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rayon::prelude::*;

use crate::mempool::{Removal, Removed};
use crate::state::StateView;
use crate::tx::{Address, AdmittedTx, SignedTransaction};
use aurigraph_decision::clock::{Clock, SystemClock};
use aurigraph_decision::error::{EngineError, Result};
use aurigraph_decision::host::{DecisionTag, SlotHost};
use aurigraph_decision::slot::SlotKind;
use aurigraph_decision::slot::anomaly::{
    AnomalyClass, AnomalyFeatures, PopulationStats, Thresholds,
};

mod activity;
mod config;
mod pending;
mod recent;
mod refusal;
mod verifier;

pub use config::AdmissionConfig;
pub use pending::{PendingNonces, PendingView};
pub use refusal::Refusal;
pub use verifier::{DEFAULT_MAX_CHUNK, SignatureVerifier};

use activity::SenderActivity;
use recent::RecentHashes;

/// The outcome of one input: admitted, or refused with a reason.
pub type Admitted = std::result::Result<AdmittedTx, Refusal>;

/// The outcome of one batch.
#[derive(Clone, Debug)]
pub struct BatchOutcome {
    /// Batch sequence number (the key of the `anomaly` decision).
    pub batch: u64,
    /// One result per input, in input order.
    pub results: Vec<Admitted>,
    /// The `anomaly` feature rows of the admitted transactions, in input order (the slot's
    /// input; what the training crate pairs with the workload's labels).
    pub features: Vec<AnomalyFeatures>,
    /// How the `anomaly` decision was taken; `None` when nothing was admitted or the host
    /// refused the input (scores 0 then).
    pub anomaly: Option<DecisionTag>,
}

impl BatchOutcome {
    /// Admitted transactions, in input order.
    pub fn admitted(&self) -> impl Iterator<Item = &AdmittedTx> {
        self.results.iter().filter_map(|r| r.as_ref().ok())
    }

    /// Number of admitted transactions.
    pub fn admitted_count(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }

    /// Consumes the outcome into the admitted transactions, in input order.
    pub fn into_admitted(self) -> Vec<AdmittedTx> {
        self.results.into_iter().filter_map(|r| r.ok()).collect()
    }
}

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionCounters {
    /// Batches processed.
    pub batches: u64,
    /// Inputs admitted.
    pub admitted: u64,
    /// Inputs refused.
    pub refused: u64,
    /// Batches whose `anomaly` input the host refused (scored 0): a bug if ever non-zero.
    pub anomaly_refused: u64,
}

/// The admission's mutable books, behind one lock.
struct Books {
    recent: RecentHashes,
    activity: SenderActivity,
    population: PopulationStats,
    next_seq: u64,
    next_batch: u64,
    counters: AdmissionCounters,
}

/// Admission of raw transactions. See the [module docs](self).
pub struct Admission {
    config: AdmissionConfig,
    anomaly: Arc<SlotHost>,
    verifier: SignatureVerifier,
    pending: Arc<dyn PendingView>,
    clock: Arc<dyn Clock>,
    books: Mutex<Books>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("config", &self.config)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

/// A decoded input that passed the stateless checks.
type Decoded = std::result::Result<Arc<SignedTransaction>, Refusal>;

/// A batch after [`Admission::prepare`]: decoded and signature-checked, not yet checked
/// against the state.
#[derive(Debug)]
pub struct Prepared {
    decoded: Vec<Decoded>,
}

/// A batch after [`Admission::check`], before the `anomaly` slot scores it.
#[derive(Debug)]
pub struct Checked {
    batch: u64,
    decoded: Vec<Decoded>,
    rows: Vec<AnomalyFeatures>,
    seqs: Vec<u64>,
}

impl Admission {
    /// Admission with `config`, scoring with the `anomaly` slot's host, on the system clock
    /// and with a fresh [`PendingNonces`].
    ///
    /// Fails with [`EngineError::InvalidConfig`] on a config outside its documented ranges
    /// or a host of another slot.
    pub fn new(config: AdmissionConfig, anomaly: Arc<SlotHost>) -> Result<Self> {
        config.validate()?;
        if anomaly.slot() != SlotKind::Anomaly {
            return Err(EngineError::InvalidConfig(format!(
                "admission needs the `anomaly` slot's host, got `{}`",
                anomaly.slot()
            )));
        }
        let verifier = SignatureVerifier::new(config.verify_threads, config.verify_chunk)?;
        let mut population = PopulationStats::with_stats(config.stats);
        population.sender_rate = config.stats.std_floor(
            config.sender_rate_min_std,
            aurigraph_decision::slot::anomaly::RunningStats::DEFAULT_MIN_REL_STD,
        );
        let books = Books {
            recent: RecentHashes::new(config.recent_hashes),
            activity: SenderActivity::new(config.rate_window.as_secs_f64(), config.tracked_senders),
            population,
            next_seq: 0,
            next_batch: 0,
            counters: AdmissionCounters::default(),
        };
        Ok(Self {
            config,
            anomaly,
            verifier,
            pending: Arc::new(PendingNonces::new()),
            clock: SystemClock::shared(),
            books: Mutex::new(books),
        })
    }

    /// Uses `clock` for the rate and age features.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reads pending nonces from `pending` (e.g. the mempool) instead of a fresh
    /// [`PendingNonces`].
    pub fn with_pending(mut self, pending: Arc<dyn PendingView>) -> Self {
        self.pending = pending;
        self
    }

    /// The settings.
    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    /// The view of pending transactions.
    pub fn pending(&self) -> &Arc<dyn PendingView> {
        &self.pending
    }

    /// The signature verifier.
    pub fn verifier(&self) -> &SignatureVerifier {
        &self.verifier
    }

    /// The `anomaly` slot's host.
    pub fn anomaly_host(&self) -> &Arc<SlotHost> {
        &self.anomaly
    }

    /// Counters since start.
    pub fn counters(&self) -> AdmissionCounters {
        self.books.lock().counters
    }

    /// Hashes currently remembered for duplicate detection.
    pub fn recent_hashes(&self) -> usize {
        self.books.lock().recent.len()
    }

    /// An admitted transaction left the mempool without being committed: forgets its hash,
    /// so it can be submitted again, and tells the [`PendingView`].
    pub fn release(&self, tx: &SignedTransaction) {
        self.pending.released(&tx.tx().sender, tx.tx().nonce);
        self.books.lock().recent.forget(&tx.hash());
    }

    /// Transactions left the mempool without being committed (evicted, replaced, skipped by
    /// the executor, stale, expired): forgets their hashes, so the same bytes may be submitted again,
    /// and tells the [`PendingView`] of every one but a replaced transaction (its
    /// replacement holds the same nonce and is pending). Entries removed as
    /// [`Removal::Committed`] are ignored: a committed hash stays remembered, so a replay is
    /// refused as a duplicate while it is recent (and as a stale nonce after that). Takes
    /// the lock once.
    pub fn release_removed(&self, removed: &[Removed]) {
        let mut books = self.books.lock();
        for r in removed {
            match r.reason {
                Removal::Committed => continue,
                Removal::Replaced => {}
                Removal::Evicted | Removal::Skipped | Removal::Stale | Removal::Expired => {
                    self.pending.released(&r.sender, r.nonce)
                }
            }
            books.recent.forget(&r.hash);
        }
    }

    /// A commit moved `sender`'s next nonce to `next_nonce`.
    pub fn committed(&self, sender: &Address, next_nonce: u64) {
        self.pending.committed(sender, next_nonce);
    }

    /// Admits one input; see [`Admission::admit`].
    pub fn admit_one(&self, state: &dyn StateView, bytes: &[u8]) -> Admitted {
        let mut out = self.admit(state, &[bytes]);
        out.results
            .pop()
            .unwrap_or(Err(Refusal::Decode(crate::tx::TxError::Truncated(
                "empty batch",
            ))))
    }

    /// Admits a batch of raw encoded transactions against committed `state`; one result per
    /// input, in input order. See the [module docs](self) for the steps. The same as
    /// [`Admission::prepare`], then [`Admission::check`], then [`Admission::score`].
    pub fn admit<B: AsRef<[u8]> + Sync>(
        &self,
        state: &dyn StateView,
        inputs: &[B],
    ) -> BatchOutcome {
        let prepared = self.prepare(inputs);
        let checked = self.check(state, prepared);
        self.score(checked)
    }

    /// Steps 1 and 2, which need no state: decoding and stateless checks, the duplicate
    /// check against recent hashes, and the batched signature checks, on the verifier's
    /// pool. A caller that guards its state with a lock takes it only for
    /// [`Admission::check`], so a commit never waits for signature checks.
    pub fn prepare<B: AsRef<[u8]> + Sync>(&self, inputs: &[B]) -> Prepared {
        // 1. Decode and stateless checks, in parallel.
        let mut decoded: Vec<Decoded> = self
            .verifier
            .install(|| inputs.par_iter().map(|b| self.decode(b.as_ref())).collect());
        {
            let books = self.books.lock();
            for d in &mut decoded {
                if let Ok(tx) = d
                    && books.recent.contains(&tx.hash())
                {
                    *d = Err(Refusal::Duplicate(tx.hash()));
                }
            }
        }

        // 2. Signatures, batched and in parallel.
        let candidates: Vec<&SignedTransaction> =
            decoded.iter().filter_map(|d| d.as_deref().ok()).collect();
        let valid = self.verifier.verify_batch(&candidates);
        let mut valid = valid.into_iter();
        for d in &mut decoded {
            if d.is_ok() && !valid.next().unwrap_or(false) {
                *d = Err(Refusal::BadSignature);
            }
        }
        Prepared { decoded }
    }

    /// Step 3: the stateful checks (nonce, balance, duplicates in flight) and the anomaly
    /// features, in input order, under the books lock, against committed `state`.
    pub fn check(&self, state: &dyn StateView, prepared: Prepared) -> Checked {
        let Prepared { mut decoded } = prepared;
        let now = self.clock.monotonic().as_secs_f64();
        let mut rows: Vec<AnomalyFeatures> = Vec::new();
        let mut seqs: Vec<u64> = Vec::new();
        let mut batch_next: HashMap<Address, u64> = HashMap::new();
        let batch;
        {
            let mut books = self.books.lock();
            batch = books.next_batch;
            books.next_batch += 1;
            for d in &mut decoded {
                let Ok(tx) = d else { continue };
                match self.check_state(&mut books, &mut batch_next, state, tx, now) {
                    Ok(features) => {
                        rows.push(features);
                        seqs.push(books.next_seq);
                        books.next_seq += 1;
                    }
                    Err(r) => *d = Err(r),
                }
            }
            books.counters.batches += 1;
            books.counters.admitted += rows.len() as u64;
            books.counters.refused += (decoded.len() - rows.len()) as u64;
        }
        Checked {
            batch,
            decoded,
            rows,
            seqs,
        }
    }

    /// Step 4: the `anomaly` slot, once per batch, and the results.
    pub fn score(&self, checked: Checked) -> BatchOutcome {
        let Checked {
            batch,
            decoded,
            rows,
            seqs,
        } = checked;
        let (scores, tag) = self.score_rows(batch, &rows);
        let admitted_at = Instant::now();
        let mut admitted = scores.into_iter().zip(seqs);
        let results = decoded
            .into_iter()
            .map(|d| {
                let tx = d?;
                // One (score, seq) per transaction that passed step 3, in the same order.
                let (score, seq) = admitted.next().unwrap_or((0.0, u64::MAX));
                Ok(AdmittedTx {
                    tx,
                    anomaly_score: score,
                    class: self.config.thresholds.classify(score),
                    seq,
                    admitted_at,
                })
            })
            .collect();
        BatchOutcome {
            batch,
            results,
            features: rows,
            anomaly: tag,
        }
    }

    fn decode(&self, bytes: &[u8]) -> Decoded {
        if bytes.len() > self.config.max_tx_bytes {
            return Err(Refusal::TooLarge {
                size: bytes.len(),
                limit: self.config.max_tx_bytes,
            });
        }
        let tx = SignedTransaction::decode(bytes)?;
        let t = tx.tx();
        if t.chain_id != self.config.chain_id {
            return Err(Refusal::WrongChain {
                expected: self.config.chain_id,
                got: t.chain_id,
            });
        }
        if t.fee < self.config.min_fee {
            return Err(Refusal::FeeTooLow {
                fee: t.fee,
                min: self.config.min_fee,
            });
        }
        Ok(Arc::new(tx))
    }

    /// Duplicate, nonce and balance checks of one signature-checked transaction; on success
    /// records it and returns its feature row.
    fn check_state(
        &self,
        books: &mut Books,
        batch_next: &mut HashMap<Address, u64>,
        state: &dyn StateView,
        stx: &SignedTransaction,
        now: f64,
    ) -> std::result::Result<AnomalyFeatures, Refusal> {
        let hash = stx.hash();
        if books.recent.contains(&hash) {
            return Err(Refusal::Duplicate(hash));
        }
        let tx = stx.tx();
        let account = state.account(&tx.sender);
        let base = account.nonce;
        if tx.nonce < base {
            return Err(Refusal::StaleNonce {
                nonce: tx.nonce,
                next: base,
            });
        }
        let max = base.saturating_add(self.config.nonce_window - 1);
        if tx.nonce > max {
            return Err(Refusal::NonceTooFar {
                nonce: tx.nonce,
                max,
            });
        }
        // Saturating: no balance covers more than u64::MAX, so overflow reads "cannot pay".
        let needed = tx.fee.saturating_add(tx.amount_out());
        if needed > account.balance {
            return Err(Refusal::InsufficientBalance {
                needed,
                available: account.balance,
            });
        }
        // Next expected nonce: this batch's own admissions first (the mempool has not seen
        // them yet), then the pending view.
        let next = batch_next
            .get(&tx.sender)
            .copied()
            .unwrap_or_else(|| self.pending.next_nonce(&tx.sender, base))
            .max(base);
        batch_next.insert(
            tx.sender,
            if tx.nonce == next {
                next.saturating_add(1)
            } else {
                next
            },
        );
        self.pending.admitted(&tx.sender, tx.nonce);
        books.recent.insert(hash);

        let mut u = [0u8; 8];
        u.copy_from_slice(&hash.0[..8]);
        let u = (u64::from_le_bytes(u) >> 11) as f64 / (1u64 << 53) as f64;
        let seen = books.activity.record(tx.sender, now, u);
        let size = stx.size() as f64;
        let fee_per_byte = tx.fee as f64 / size.max(1.0);
        // Scored before folding in; rates are folded about once per sender per window.
        let p = &mut books.population;
        let size_z = p.size.observe(size) as f32;
        let fee_z = p.fee_per_byte.observe(fee_per_byte) as f32;
        let sender_rate_z = if seen.fold {
            p.sender_rate.observe(seen.rate)
        } else {
            p.sender_rate.z_score(seen.rate)
        } as f32;
        Ok(AnomalyFeatures {
            size_bytes: size as f32,
            sender_rate: seen.rate as f32,
            sender_rate_z,
            size_z,
            fee_per_byte: fee_per_byte as f32,
            fee_z,
            nonce_gap: tx.nonce.saturating_sub(next) as f32,
            sender_age_s: seen.age as f32,
        })
    }

    /// Scores the admitted rows with one decision; score 0 for all if the host refuses.
    fn score_rows(&self, batch: u64, rows: &[AnomalyFeatures]) -> (Vec<f32>, Option<DecisionTag>) {
        if rows.is_empty() {
            return (Vec::new(), None);
        }
        let input = AnomalyFeatures::matrix(rows);
        match self.anomaly.decide(batch, &input) {
            Ok(d) if d.values.len() == rows.len() => (d.values, Some(d.tag)),
            Ok(d) => {
                self.refused_input(&format!(
                    "{} scores for {} rows",
                    d.values.len(),
                    rows.len()
                ));
                (vec![0.0; rows.len()], None)
            }
            Err(e) => {
                self.refused_input(&e.to_string());
                (vec![0.0; rows.len()], None)
            }
        }
    }

    fn refused_input(&self, reason: &str) {
        self.books.lock().counters.anomaly_refused += 1;
        tracing::error!(%reason, "anomaly host refused admission's input: scoring the batch 0");
    }

    /// The class of `score` under the configured thresholds.
    pub fn classify(&self, score: f32) -> AnomalyClass {
        self.config.thresholds.classify(score)
    }

    /// The configured thresholds.
    pub fn thresholds(&self) -> &Thresholds {
        &self.config.thresholds
    }
}

//! The batcher: builds the next batch from the mempool with the `batch_size` and `ordering`
//! slots.
//!
//! [`Batcher::build`] takes four steps:
//!
//! 1. **Size.** The `batch_size` slot answers a target from [`BatchSizeFeatures`]: the
//!    mempool's ready count as `queue_depth`, the caller's [`BatchLoad`] (current size, last
//!    block latency, arrival rate, conflict rate) and the configured target latency and
//!    `min..=max`. The answer is rounded to the nearest whole transaction and clamped to
//!    `min_batch_size..=max_batch_size` ([`clamp_target`]), so no policy can push the node
//!    outside its configuration.
//! 2. **Candidates.** Up to that many ready transactions from
//!    [`Mempool::select_ready`]: class priority first (normal, then suspicious, then
//!    anomalous), fee priority within a class, each sender's transactions a consecutive
//!    nonce run from its next nonce. The batch is exactly this window; the model orders it.
//! 3. **Scores.** The `ordering` slot scores the window once, one [`OrderingFeatures`] row
//!    per candidate ([`ordering_features`]).
//! 4. **Order.** [`merge_order`] turns the scores into the final order (below).
//!
//! The batch comes back with what answered each slot ([`SlotAnswer`]) for telemetry.
//!
//! # The ordering merge
//!
//! Each candidate gets the key `(class, score descending, hash ascending)`. The candidates
//! are grouped by sender, each group sorted by nonce, and a binary heap holds one entry per
//! sender: the key of that sender's next unplaced candidate. The merge pops the smallest
//! key, places that candidate, and pushes the sender's following candidate. So:
//!
//! - **nonce order always holds**, whatever the scores: only a sender's next candidate is
//!   ever in the heap. When a sender's lower nonce is scored below its higher nonce, the
//!   lower one is placed where *its own* key puts it and the higher one follows as soon
//!   as it is both unblocked and the best key left;
//! - **class priority**: classes come out in order, except that a transaction never
//!   overtakes a worse-classed predecessor of its own sender (it cannot execute before it);
//! - **higher score first, ties by hash**: with one candidate per sender the result is
//!   exactly the sort by key; equal scores fall back to the hash, so the order never depends
//!   on the input order, the thread or the run;
//! - it costs `O(n log s)` for `n` candidates of `s` senders.
//!
//! The alternative, keying a sender by the best score among all its remaining candidates
//! (pulling a low-scored nonce forward for the sake of a high-scored successor), lets one
//! high score drag a sender's whole run ahead of others; a model that wants that can score
//! the predecessor high itself, since it sees `nonce_gap` and `sender_pending`.
//!
//! # Fallback
//!
//! A slot host only errors on a shape bug (a model's failure is already answered by the
//! static policy inside the host). If the `batch_size` host errors, the static queue-depth
//! rule sizes the batch directly; if the `ordering` host errors, the static fee-priority
//! scores ([`FeePriority`]) order it. The batch is never dropped or delayed; the error is
//! reported as [`SlotAnswer::Failed`] and logged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::mempool::{Mempool, ReadyTx};
use crate::tx::{AdmittedTx, TxHash};
use aurigraph_decision::error::EngineError;
use aurigraph_decision::host::{DecisionTag, SlotHost};
use aurigraph_decision::slot::SlotKind;
use aurigraph_decision::slot::batch_size::{BatchSizeFeatures, QueueDepthRule, TARGET_MAX};
use aurigraph_decision::slot::ordering::{FeePriority, OrderingFeatures};

mod features;
mod merge;

pub use features::{ARRIVAL_SEQ_MAX, ordering_features};
pub use merge::merge_order;

/// Settings of a [`Batcher`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatcherConfig {
    /// Smallest batch size. Default 1. Must be at least 1.
    pub min_batch_size: usize,
    /// Largest batch size. Default 5,000. Must be in `min_batch_size..=1e7`.
    pub max_batch_size: usize,
    /// Latency goal per block in ms, handed to the `batch_size` slot (0 = none). Default
    /// 500. Must be finite and >= 0.
    pub target_latency_ms: f32,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self {
            min_batch_size: 1,
            max_batch_size: 5_000,
            target_latency_ms: 500.0,
        }
    }
}

impl BatcherConfig {
    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |what: &str| Err(EngineError::InvalidConfig(format!("batcher: {what}")));
        if self.min_batch_size == 0 {
            return bad("min_batch_size must be at least 1");
        }
        if self.max_batch_size < self.min_batch_size || self.max_batch_size > TARGET_MAX as usize {
            return bad("max_batch_size must be in min_batch_size..=10000000");
        }
        if !self.target_latency_ms.is_finite() || self.target_latency_ms < 0.0 {
            return bad("target_latency_ms must be finite and >= 0");
        }
        Ok(())
    }
}

/// The load figures the caller measures, for the `batch_size` slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchLoad {
    /// Target size of the previous batch (0 if none yet): usually the last
    /// [`Batch::target_size`].
    pub current_batch_size: usize,
    /// Proposal-to-commit time of the last block, in ms (0 if none yet).
    pub last_block_latency_ms: f32,
    /// Admissions per second over the recent window.
    pub arrival_rate: f32,
    /// Conflicts per transaction of the last block, capped at 1 (0..1): for the scheduled
    /// executor, declared accounts that waited for an earlier transaction; for Block-STM,
    /// failed validations and estimate reads. See
    /// [`pipeline::conflict_rate`](crate::pipeline::conflict_rate).
    pub conflict_rate: f32,
}

/// What answered one slot for a batch.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum SlotAnswer {
    /// The slot host decided; the tag says which policy answered (and any fallback inside
    /// the host).
    Decided(DecisionTag),
    /// The host errored (a shape bug); the batcher's static fallback answered.
    Failed {
        /// The error's stable code.
        code: &'static str,
        /// The error.
        reason: String,
    },
    /// The slot was not consulted (no candidates to order).
    NotAsked,
}

impl SlotAnswer {
    /// The decision tag, when the host decided.
    pub fn tag(&self) -> Option<&DecisionTag> {
        match self {
            SlotAnswer::Decided(t) => Some(t),
            _ => None,
        }
    }

    fn failed(e: &EngineError) -> Self {
        SlotAnswer::Failed {
            code: e.code(),
            reason: e.to_string(),
        }
    }
}

/// A batch, in proposal order.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The transactions, in the final order. At most `target_size`.
    pub txs: Vec<AdmittedTx>,
    /// The target size after rounding and clamping.
    pub target_size: usize,
    /// The queue depth the `batch_size` slot saw (ready transactions).
    pub queue_depth: usize,
    /// What answered the `batch_size` slot.
    pub batch_size: SlotAnswer,
    /// What answered the `ordering` slot.
    pub ordering: SlotAnswer,
}

impl Batch {
    /// The transactions' hashes, in order (for [`Mempool::remove_committed`] once committed).
    pub fn hashes(&self) -> Vec<TxHash> {
        self.txs.iter().map(|t| t.tx.hash()).collect()
    }
}

/// Rounds `target` to the nearest whole number and clamps it to `min..=max`; a non-finite
/// target reads as `min`. Expects `min <= max`.
pub fn clamp_target(target: f32, min: usize, max: usize) -> usize {
    if !target.is_finite() {
        return min;
    }
    let r = target.round();
    if r <= min as f32 {
        min
    } else if r >= max as f32 {
        max
    } else {
        // `min < r < max <= usize::MAX`, a whole number: the cast is exact.
        (r as usize).clamp(min, max)
    }
}

/// Builds batches. See the [module docs](self). Cheap to share: the hosts are behind `Arc`s.
#[derive(Debug, Clone)]
pub struct Batcher {
    config: BatcherConfig,
    batch_size: Arc<SlotHost>,
    ordering: Arc<SlotHost>,
}

impl Batcher {
    /// A batcher over the two slot hosts; refused with [`EngineError::InvalidConfig`] when
    /// the config is out of range or a host serves another slot.
    pub fn new(
        config: BatcherConfig,
        batch_size: Arc<SlotHost>,
        ordering: Arc<SlotHost>,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        for (host, want) in [
            (&batch_size, SlotKind::BatchSize),
            (&ordering, SlotKind::Ordering),
        ] {
            if host.slot() != want {
                return Err(EngineError::InvalidConfig(format!(
                    "batcher: the {want} host serves the {} slot",
                    host.slot()
                )));
            }
        }
        Ok(Self {
            config,
            batch_size,
            ordering,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BatcherConfig {
        &self.config
    }

    /// The `batch_size` slot's features for a queue of `queue_depth` ready transactions.
    pub fn size_features(&self, queue_depth: usize, load: &BatchLoad) -> BatchSizeFeatures {
        BatchSizeFeatures {
            queue_depth: queue_depth as f32,
            current_batch_size: load.current_batch_size as f32,
            last_block_latency_ms: load.last_block_latency_ms,
            target_latency_ms: self.config.target_latency_ms,
            arrival_rate: load.arrival_rate,
            min_batch_size: self.config.min_batch_size as f32,
            max_batch_size: self.config.max_batch_size as f32,
            conflict_rate: load.conflict_rate,
        }
    }

    /// The next batch's target size, rounded and clamped to the configured range, and what
    /// answered. `key` routes the decision (e.g. the proposal's height).
    pub fn target_size(
        &self,
        queue_depth: usize,
        load: &BatchLoad,
        key: u64,
    ) -> (usize, SlotAnswer) {
        let features = self.size_features(queue_depth, load);
        let (raw, answer) = match self.batch_size.decide(key, &features.matrix()) {
            Ok(d) => (
                d.values.first().copied().unwrap_or(f32::NAN),
                SlotAnswer::Decided(d.tag),
            ),
            Err(e) => {
                tracing::warn!(error = %e, code = e.code(), "batch_size host failed: static queue-depth rule sizes the batch");
                (
                    QueueDepthRule::default().target(&features),
                    SlotAnswer::failed(&e),
                )
            }
        };
        let (min, max) = (self.config.min_batch_size, self.config.max_batch_size);
        (clamp_target(raw, min, max), answer)
    }

    /// The final order of `candidates` (indexes into it) and what answered the `ordering`
    /// slot. Each sender's nonce order holds whatever the scores; see the module docs.
    pub fn order(
        &self,
        candidates: &[ReadyTx],
        key: u64,
        now: Instant,
    ) -> (Vec<usize>, SlotAnswer) {
        if candidates.is_empty() {
            return (Vec::new(), SlotAnswer::NotAsked);
        }
        let matrix = OrderingFeatures::matrix(&ordering_features(candidates, now));
        let (scores, answer) = match self.ordering.decide(key, &matrix) {
            Ok(d) => (d.values, SlotAnswer::Decided(d.tag)),
            Err(e) => {
                tracing::warn!(error = %e, code = e.code(), "ordering host failed: static fee priority orders the batch");
                let mut scores = Vec::new();
                if FeePriority::new().score_into(&matrix, &mut scores).is_err() {
                    // Only for more than 2^32 rows; the merge still orders by class and hash.
                    scores.clear();
                }
                (scores, SlotAnswer::failed(&e))
            }
        };
        (merge_order(candidates, &scores), answer)
    }

    /// Builds the next batch from `pool`; the transactions stay in the pool until
    /// [`Mempool::remove_committed`]. `key` routes both slots' decisions (e.g. the
    /// proposal's height).
    pub fn build(&self, pool: &Mempool, load: &BatchLoad, key: u64) -> Batch {
        self.build_at(pool, load, key, Instant::now(), None)
    }

    /// [`Batcher::build`] at a given time (for the `age_ms` feature), skipping the
    /// transactions already `in_flight` in an uncommitted proposal (their successors are
    /// taken, see [`Mempool::select_ready_excluding`]).
    pub fn build_at(
        &self,
        pool: &Mempool,
        load: &BatchLoad,
        key: u64,
        now: Instant,
        in_flight: Option<&HashSet<TxHash>>,
    ) -> Batch {
        let queue_depth = pool
            .ready_len()
            .saturating_sub(in_flight.map_or(0, HashSet::len));
        let (target_size, batch_size) = self.target_size(queue_depth, load, key);
        let candidates = match in_flight {
            Some(skip) => pool.select_ready_excluding(target_size, skip),
            None => pool.select_ready(target_size),
        };
        let (order, ordering) = self.order(&candidates, key, now);
        let mut slots: Vec<Option<ReadyTx>> = candidates.into_iter().map(Some).collect();
        let txs = order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take))
            .map(|c| c.tx)
            .collect();
        Batch {
            txs,
            target_size,
            queue_depth,
            batch_size,
            ordering,
        }
    }
}

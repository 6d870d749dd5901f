//! Decision telemetry: what every slot decided, on what input, what answered and how fast,
//! and what each block then did, in the RocksDB `telemetry` column family.
//!
//! **Hook.** The node installs an observer on each of its five slot hosts
//! ([`SlotHost::set_observer`](aurigraph_decision::SlotHost::set_observer)); the engine hands it every final decision (after any
//! fallback) with its key and input, and knows nothing of the node. The [`Recorder`] samples
//! the decision by its key, copies what it keeps into a bounded buffer, and returns. The
//! producer thread drains the buffer into the batch of the next block it commits (so a
//! block's `batch_size` and `ordering` decisions commit atomically with it), or writes it on
//! its own between blocks.
//!
//! **Records** (JSON values, keys in the storage table of [`aurigraph_storage`]):
//! - [`DecisionRecord`]: slot, key, arm, backend/name/version that answered, fallback
//!   reason, routing generation, latency, the input (always for single-row slots, whose one
//!   row is small and is what retraining `demand` and `leader_health` needs; every row of a
//!   batched slot with `features = "full"`, else its blake3 digest), the output values (always for single-row slots; for the
//!   batched `ordering` and `anomaly` a summary, plus the values with `"full"`).
//! - [`BlockRecord`]: per block, its size and batch decisions, submit-to-commit latency of
//!   its transactions (mean, p50, p95, p99, max), conflicts and re-executions, executed and
//!   skipped counts, and the submissions accepted and refused by admission since the
//!   previous block.
//!
//! **Sampling.** `telemetry.sample_rate` keeps a decision when a hash of its key falls
//! under the rate: deterministic, and a block's height samples its block record and its
//! `batch_size` and `ordering` decisions together (they share the key).
//!
//! **Retention.** At most `max_records` decision records and `max_records` block records
//! are kept, and none older than `max_age_blocks` blocks when set: each write carries the
//! range deletes that restore the bound, so the bound holds after every batch.
//! The bound counts records, not bytes: with `features = "full"` an `ordering` record holds
//! every row of its batch (up to `block.max_txs` rows of 9 features), so size `max_records`
//! for that. At start the recorder reads the stored keys once to rebuild its books.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aurigraph_decision::SlotKind;
use aurigraph_decision::host::{DecisionObserver, DecisionRecord as EngineRecord};
use aurigraph_decision::slot::Rows;
use aurigraph_ledger::pipeline::ProducedBlock;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::{FeatureRecording, TelemetryConfig};
use aurigraph_storage::{Storage, StorageError, TelemetryWrite};

/// Key kind byte of block records.
pub const KIND_BLOCK: u8 = 0x01;
/// Key kind byte of decision records.
pub const KIND_DECISION: u8 = 0x02;

/// Decisions buffered between two writes at most; beyond, they are counted and dropped.
pub const MAX_PENDING: usize = 65_536;

/// Key of the block record at `height`.
pub fn block_key(height: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(KIND_BLOCK);
    k.extend_from_slice(&height.to_be_bytes());
    k
}

/// Key of the `seq`-th decision record written under `height`.
pub fn decision_key(height: u64, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.push(KIND_DECISION);
    k.extend_from_slice(&height.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a decision key into (height, seq).
pub fn parse_decision_key(k: &[u8]) -> Option<(u64, u32)> {
    if k.len() != 13 || k[0] != KIND_DECISION {
        return None;
    }
    let h = u64::from_be_bytes(k[1..9].try_into().ok()?);
    let s = u32::from_be_bytes(k[9..13].try_into().ok()?);
    Some((h, s))
}

/// Splits a block key into its height.
pub fn parse_block_key(k: &[u8]) -> Option<u64> {
    if k.len() != 9 || k[0] != KIND_BLOCK {
        return None;
    }
    Some(u64::from_be_bytes(k[1..9].try_into().ok()?))
}

/// Whether `key` is sampled at `rate` (0..=1): a fixed hash of the key against the rate.
pub fn sampled(rate: f64, key: u64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    // splitmix64: a well-mixed, stable hash of the key.
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z as f64) < rate * (u64::MAX as f64)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Count, min, max and mean of a decision's output values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub count: usize,
    /// Smallest.
    pub min: f32,
    /// Largest.
    pub max: f32,
    /// Mean.
    pub mean: f64,
}

impl Summary {
    /// The summary of `values` (zeros when empty).
    pub fn of(values: &[f32]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let (mut min, mut max, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
        for &v in values {
            min = min.min(v);
            max = max.max(v);
            sum += f64::from(v);
        }
        Self {
            count: values.len(),
            min,
            max,
            mean: sum / values.len() as f64,
        }
    }
}

/// One recorded decision (the JSON value of a decision record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Slot name.
    pub slot: String,
    /// Decision key (block height, admission batch, round).
    pub key: u64,
    /// Wall clock when recorded, ms since the Unix epoch.
    pub at_ms: u64,
    /// `baseline` or `candidate`.
    pub arm: String,
    /// Backend that answered (`static`, `onnx`, `wasm`).
    pub backend: String,
    /// Name of the policy that answered.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Why the static policy answered instead, if it did.
    pub fallback: Option<String>,
    /// Routing generation the decision ran on.
    pub generation: u64,
    /// Time inside the host, microseconds.
    pub latency_us: f64,
    /// Input rows.
    pub rows: usize,
    /// Input columns (the slot's feature count).
    pub cols: usize,
    /// blake3 of the input's f32 values (little-endian), hex.
    pub features_digest: String,
    /// Every input row, with `features = "full"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<Vec<f32>>>,
    /// Output values: always for single-row slots, with `"full"` for batched ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f32>>,
    /// Summary of the output values.
    pub summary: Summary,
}

/// Submit-to-commit latency of a block's transactions, ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl LatencyStats {
    /// Stats of `ms` (sorted in place).
    pub fn of(ms: &mut [f64]) -> Self {
        if ms.is_empty() {
            return Self::default();
        }
        ms.sort_by(f64::total_cmp);
        let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        Self {
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
            max: ms[ms.len() - 1],
        }
    }
}

/// One block's outcome (the JSON value of a block record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockRecord {
    /// Height.
    pub height: u64,
    /// Wall clock at commit, ms since the Unix epoch.
    pub at_ms: u64,
    /// Transactions in the block.
    pub txs: usize,
    /// Executed (fee charged), successful or not.
    pub executed: usize,
    /// Skipped by the executor (changed nothing).
    pub skipped: usize,
    /// The batch's target size (after clamping).
    pub target_size: usize,
    /// Ready transactions the `batch_size` slot saw.
    pub queue_depth: usize,
    /// What answered `batch_size` (the engine's `SlotAnswer`).
    pub batch_size: serde_json::Value,
    /// What answered `ordering`.
    pub ordering: serde_json::Value,
    /// Proposal to commit, ms.
    pub block_latency_ms: f64,
    /// Admission to commit of the block's transactions, ms.
    pub submit_to_commit_ms: LatencyStats,
    /// Executor conflicts.
    pub conflicts: u64,
    /// Executions beyond one per transaction (Block-STM).
    pub re_executions: u64,
    /// Submissions admission accepted since the previous block record.
    pub accepted: u64,
    /// Submissions admission refused since the previous block record.
    pub refused: u64,
    /// Decisions dropped (buffer full) since the previous block record.
    pub decisions_dropped: u64,
}

/// Where the next decision record goes and what the retention bound has to delete.
#[derive(Debug, Default)]
struct Books {
    /// Height and next sequence of the last decision written.
    next: Option<(u64, u32)>,
    /// Decision records per height, oldest first: (height, first seq, end seq).
    heights: VecDeque<(u64, u32, u32)>,
    /// Decision records in storage.
    total: u64,
    /// Oldest block record possibly in storage.
    oldest_block: Option<u64>,
    /// Admission counters at the last block record.
    admitted: u64,
    refused: u64,
}

/// Samples decisions, buffers them and writes them with the blocks. See the module docs.
pub struct Recorder {
    config: TelemetryConfig,
    pending: Mutex<Vec<DecisionRecord>>,
    dropped: AtomicU64,
    books: Mutex<Books>,
    /// Records the retention bound deleted so far (block and decision records).
    pruned: AtomicU64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder continuing what `storage` already holds (its sequence numbers and the
    /// retention books are read back: one scan of the decision keys).
    pub fn open(config: TelemetryConfig, storage: &Storage) -> Result<Arc<Self>, StorageError> {
        let mut books = Books::default();
        storage.scan_telemetry::<StorageError>(&[KIND_BLOCK], &[KIND_BLOCK + 1], |k, _| {
            if books.oldest_block.is_none() {
                books.oldest_block = parse_block_key(k);
            }
            Ok(())
        })?;
        storage.scan_telemetry::<StorageError>(
            &[KIND_DECISION],
            &[KIND_DECISION + 1],
            |k, _| {
                if let Some((h, s)) = parse_decision_key(k) {
                    match books.heights.back_mut() {
                        Some(last) if last.0 == h => last.2 = s + 1,
                        _ => books.heights.push_back((h, s, s + 1)),
                    }
                    books.total += 1;
                    books.next = Some((h, s + 1));
                }
                Ok(())
            },
        )?;
        Ok(Arc::new(Self {
            config,
            pending: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            pruned: AtomicU64::new(0),
            books: Mutex::new(books),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// The observer to install on a slot host.
    pub fn observer(self: &Arc<Self>) -> DecisionObserver {
        let me = self.clone();
        Arc::new(move |r: &EngineRecord<'_>| me.record(r))
    }

    /// Samples and buffers one decision.
    pub fn record(&self, r: &EngineRecord<'_>) {
        if !self.config.enabled || !sampled(self.config.sample_rate, r.key) {
            return;
        }
        let full = self.config.features == FeatureRecording::Full;
        let d = r.decision;
        let input = r.input;
        let mut bytes = Vec::with_capacity(input.as_slice().len() * 4);
        for v in input.as_slice() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let batched = r.slot.contract().rows == Rows::Batch;
        let rec = DecisionRecord {
            slot: r.slot.as_str().to_string(),
            key: r.key,
            at_ms: now_ms(),
            arm: d.tag.arm.as_str().to_string(),
            backend: d.tag.answered_by.backend.to_string(),
            name: d.tag.answered_by.name.to_string(),
            version: d.tag.answered_by.version.to_string(),
            fallback: d.tag.fallback.map(|f| f.as_str().to_string()),
            generation: d.tag.generation,
            latency_us: d.latency.as_secs_f64() * 1e6,
            rows: input.rows(),
            cols: input.cols(),
            features_digest: blake3::hash(&bytes).to_hex().to_string(),
            features: (full || !batched).then(|| input.iter_rows().map(<[f32]>::to_vec).collect()),
            values: (full || !batched).then(|| d.values.clone()),
            summary: Summary::of(&d.values),
        };
        let mut p = self.pending.lock();
        if p.len() < MAX_PENDING {
            p.push(rec);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Decisions buffered, not yet written.
    pub fn pending(&self) -> usize {
        self.pending.lock().len()
    }

    /// The telemetry of a block about to commit: the buffered decisions, the block record
    /// (when its height is sampled) and the retention deletes. `admission` is the
    /// admission's (accepted, refused) totals now.
    pub fn block_write(&self, produced: &ProducedBlock, admission: (u64, u64)) -> TelemetryWrite {
        let mut w = TelemetryWrite::default();
        if !self.config.enabled {
            return w;
        }
        let height = produced.height;
        let mut books = self.books.lock();
        self.drain_into(&mut books, height, &mut w);
        let (accepted, refused) = (
            admission.0.saturating_sub(books.admitted),
            admission.1.saturating_sub(books.refused),
        );
        (books.admitted, books.refused) = admission;
        if sampled(self.config.sample_rate, height) {
            let now = Instant::now();
            let mut lat: Vec<f64> = produced
                .txs
                .iter()
                .map(|t| now.saturating_duration_since(t.admitted_at).as_secs_f64() * 1e3)
                .collect();
            let stats = &produced.outcome.execution.stats;
            let b = &produced.batch;
            let rec = BlockRecord {
                height,
                at_ms: now_ms(),
                txs: produced.txs.len(),
                executed: stats.executed,
                skipped: stats.skipped,
                target_size: b.target_size,
                queue_depth: b.queue_depth,
                batch_size: serde_json::to_value(&b.batch_size).unwrap_or_default(),
                ordering: serde_json::to_value(&b.ordering).unwrap_or_default(),
                block_latency_ms: produced.latency.as_secs_f64() * 1e3,
                submit_to_commit_ms: LatencyStats::of(&mut lat),
                conflicts: stats.conflicts,
                re_executions: stats.re_executions,
                accepted,
                refused,
                decisions_dropped: self.dropped.swap(0, Ordering::Relaxed),
            };
            if let Ok(v) = serde_json::to_vec(&rec) {
                w.puts.push((block_key(height), v));
                books.oldest_block.get_or_insert(height);
            }
        }
        self.prune(&mut books, height, &mut w);
        w
    }

    /// The buffered decisions as a write of their own (between blocks), under `height`
    /// (the head's).
    pub fn flush_write(&self, height: u64) -> TelemetryWrite {
        let mut w = TelemetryWrite::default();
        let mut books = self.books.lock();
        self.drain_into(&mut books, height, &mut w);
        if !w.is_empty() {
            self.prune(&mut books, height, &mut w);
        }
        w
    }

    fn drain_into(&self, books: &mut Books, height: u64, w: &mut TelemetryWrite) {
        let taken = std::mem::take(&mut *self.pending.lock());
        if taken.is_empty() {
            return;
        }
        // Heights only grow; were a write ever under an older height, it goes after.
        let (height, mut seq) = match books.next {
            Some((h, s)) if h >= height => (h, s),
            _ => (height, 0),
        };
        let first = seq;
        for rec in taken {
            if let Ok(v) = serde_json::to_vec(&rec) {
                w.puts.push((decision_key(height, seq), v));
                seq = seq.saturating_add(1);
            }
        }
        Self::account(books, height, first, seq);
    }

    fn account(books: &mut Books, height: u64, first: u32, end: u32) {
        if end == first {
            return;
        }
        match books.heights.back_mut() {
            Some(last) if last.0 == height => last.2 = end,
            _ => books.heights.push_back((height, first, end)),
        }
        books.total += u64::from(end - first);
        books.next = Some((height, end));
    }

    /// Adds the range deletes that restore the retention bound after writing at `height`.
    fn prune(&self, books: &mut Books, height: u64, w: &mut TelemetryWrite) {
        let max = self.config.max_records;
        let age = self.config.max_age_blocks;
        // Block records: keep heights >= cutoff.
        let mut cutoff = height.saturating_add(1).saturating_sub(max);
        if age > 0 {
            cutoff = cutoff.max(height.saturating_add(1).saturating_sub(age));
        }
        let mut pruned = 0u64;
        if let Some(oldest) = books.oldest_block
            && oldest < cutoff
        {
            pruned += cutoff - oldest;
            w.deletes.push((block_key(0), block_key(cutoff)));
            books.oldest_block = Some(cutoff);
        }
        // Decision records: by age, whole heights.
        if age > 0 {
            let cut = height.saturating_add(1).saturating_sub(age);
            let mut removed = false;
            while let Some(&(h, first, end)) = books.heights.front() {
                if h >= cut {
                    break;
                }
                books.total -= u64::from(end - first);
                pruned += u64::from(end - first);
                books.heights.pop_front();
                removed = true;
            }
            if removed {
                w.deletes.push((decision_key(0, 0), decision_key(cut, 0)));
            }
        }
        // Decision records: by count, oldest first.
        while books.total > max {
            let Some(front) = books.heights.front_mut() else {
                break;
            };
            let (h, first, end) = *front;
            let excess = books.total - max;
            let n = u64::from(end - first);
            if excess >= n {
                w.deletes
                    .push((decision_key(h, first), decision_key(h.saturating_add(1), 0)));
                books.total -= n;
                pruned += n;
                books.heights.pop_front();
            } else {
                let upto = first + excess as u32;
                w.deletes
                    .push((decision_key(h, first), decision_key(h, upto)));
                front.1 = upto;
                books.total -= excess;
                pruned += excess;
            }
        }
        if pruned > 0 {
            self.pruned.fetch_add(pruned, Ordering::Relaxed);
        }
    }

    /// Records the retention bound deleted since the node started (block records, whose
    /// oldest may have been absent already, and decision records).
    pub fn pruned_total(&self) -> u64 {
        self.pruned.load(Ordering::Relaxed)
    }

    /// Installs this recorder on every host.
    pub fn install<'a>(
        self: &Arc<Self>,
        hosts: impl IntoIterator<Item = &'a Arc<aurigraph_decision::SlotHost>>,
    ) {
        if !self.config.enabled {
            return;
        }
        for h in hosts {
            h.set_observer(Some(self.observer()));
        }
    }
}

/// The slot of a name, for filters.
pub fn parse_slot(s: &str) -> Option<SlotKind> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_deterministic_and_near_the_rate() {
        let n = 20_000u64;
        let kept = (0..n).filter(|k| sampled(0.25, *k)).count() as f64 / n as f64;
        assert!((kept - 0.25).abs() < 0.02, "{kept}");
        assert!((0..1000).all(|k| sampled(0.25, k) == sampled(0.25, k)));
        assert!((0..1000).all(|k| sampled(1.0, k) && !sampled(0.0, k)));
        // A smaller rate keeps a subset of a larger one.
        assert!((0..n).all(|k| !sampled(0.1, k) || sampled(0.5, k)));
    }

    #[test]
    fn keys_sort_by_kind_then_height_then_seq() {
        assert!(block_key(u64::MAX) < decision_key(0, 0));
        assert!(decision_key(1, u32::MAX) < decision_key(2, 0));
        assert_eq!(parse_decision_key(&decision_key(7, 3)), Some((7, 3)));
        assert_eq!(parse_block_key(&block_key(9)), Some(9));
        assert_eq!(parse_block_key(&decision_key(9, 0)), None);
    }

    #[test]
    fn latency_stats_and_summaries() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        let s = LatencyStats::of(&mut v);
        assert_eq!((s.p50, s.p99, s.max), (51.0, 99.0, 100.0));
        assert_eq!(LatencyStats::of(&mut []), LatencyStats::default());
        let m = Summary::of(&[1.0, 3.0]);
        assert_eq!((m.count, m.min, m.max, m.mean), (2, 1.0, 3.0, 2.0));
    }

    #[test]
    fn the_config_section_parses_and_is_checked() {
        let c = crate::NodeConfig::parse(
            "[telemetry]\nsample_rate = 0.5\nfeatures = \"full\"\nmax_records = 10\nmax_age_blocks = 3\n",
        )
        .unwrap();
        assert_eq!(c.telemetry.features, FeatureRecording::Full);
        assert_eq!(c.telemetry.max_age_blocks, 3);
        c.validate().unwrap();
        let d = crate::NodeConfig::default().telemetry;
        assert!(d.enabled && d.sample_rate == 1.0 && d.features == FeatureRecording::Digest);
        let bad = crate::NodeConfig::parse("[telemetry]\nsample_rate = 1.5\n").unwrap();
        assert!(bad.validate().is_err());
        assert!(crate::NodeConfig::parse("[telemetry]\nfeatures = \"some\"\n").is_err());
    }
}

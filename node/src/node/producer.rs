//! Block production: propose, append to the block log, execute, commit, publish. See the
//! [`super`] module for the loop; [`produce_ready_blocks`] is one pass of it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aurigraph_decision::SlotKind;
use aurigraph_decision::slot::{demand, leader_health};
use aurigraph_ledger::mempool::Removal;
use aurigraph_ledger::pipeline::ProducedBlock;
use aurigraph_ledger::tx::SignedTransaction;
use aurigraph_storage::BlockWrite;
use aurigraph_storage::block::{BlockHeader, StoredBlock, tx_root};

use super::{BlockEvent, DroppedEvent, NodeCore};
use crate::error::{NodeError, NodeResult};
use crate::service::dropped_event;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Produces, commits and publishes every block that is ready now. Returns how many.
///
/// A block is appended to the block log, executed, then committed inside the pipeline's
/// commit section with the committed view held: the state moves and the block is written to
/// RocksDB in one batch. The section is then left (submissions insert again) while the
/// write-ahead log is synced, and only then does the head move and the view open: no read
/// sees the block before it is on disk. A submission accepted meanwhile is recorded with a
/// synced write, which syncs the block's write before it too (the log is one sequence), so
/// nothing acknowledged ever depends on a block that a crash could lose. When the write fails
/// the pipeline puts the state back, the mempool keeps the transactions and the error is
/// returned (the caller retries); when the sync fails the node halts (`E_STORAGE_SYNC`: the
/// state is ahead of the disk).
pub fn produce_ready_blocks(core: &NodeCore, max_blocks: usize) -> NodeResult<usize> {
    if let Some(cluster) = core.cluster.get() {
        return super::cluster::produce(core, cluster, max_blocks);
    }
    let mut n = 0;
    // An empty mempool proposes nothing: the slots are not asked for an idle round.
    while n < max_blocks && core.pipeline.mempool().ready_len() > 0 {
        let Some(proposal) = core.pipeline.propose() else {
            break;
        };
        let txs: Vec<SignedTransaction> =
            proposal.batch.txs.iter().map(|t| (*t.tx).clone()).collect();
        core.log.append(proposal.height, &txs)?;
        let executed = core.pipeline.execute(proposal)?;
        let view = core.view.write();
        let parent = core.head().hash;
        let (produced, (head, block)) = core.pipeline.commit_with(executed, |produced| {
            persist(core, produced, &txs, parent, now_ms(), None, Sync::Deferred)
        })?;
        // Outside the commit section, the view still held: a block's fsync no longer holds
        // submissions' mempool insertions up (measured in docs/PERFORMANCE.md).
        if let Err(e) = core.storage.sync_wal() {
            // Halted before the view opens: no read sees the state ahead of the disk.
            let e = NodeError::from(e);
            core.halt.send_replace(Some(e.to_string()));
            return Err(e);
        }
        *core.head.write() = head;
        drop(view);
        published(core, produced, block, head, true);
        n += 1;
    }
    Ok(n)
}

/// Whether [`persist`] waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sync {
    /// Synced before it returns (when the storage syncs).
    Now,
    /// Written to the write-ahead log only; the caller calls `Storage::sync_wal` before
    /// anything reads or announces the block.
    Deferred,
}

/// Writes an executed block to RocksDB (block, index, receipts, state writes, head,
/// telemetry, its transactions out of the `mempool` family, and a replica's Raft state) in
/// one batch.
pub(crate) fn persist(
    core: &NodeCore,
    produced: &ProducedBlock,
    txs: &[SignedTransaction],
    parent: [u8; 32],
    timestamp_ms: u64,
    raft_state: Option<&[u8]>,
    sync: Sync,
) -> NodeResult<(aurigraph_storage::Head, StoredBlock)> {
    let header = BlockHeader {
        height: produced.height,
        parent,
        state_root: produced.outcome.state_root,
        timestamp_ms,
        tx_root: tx_root(txs.iter().map(|t| t.hash())),
    };
    let block = StoredBlock {
        header,
        txs: txs.to_vec(),
        receipts: produced.outcome.execution.receipts.clone(),
    };
    let telemetry = core.telemetry.as_ref().map(|t| {
        let c = core.pipeline.admission().counters();
        t.block_write(produced, (c.admitted, c.refused))
    });
    let write = BlockWrite {
        block: &block,
        writes: &produced.outcome.execution.write_set,
        telemetry,
        raft_state,
    };
    let head = match sync {
        Sync::Now => core.storage.commit_block(&write)?,
        Sync::Deferred => core.storage.commit_block_unsynced(&write)?,
    };
    Ok((head, block))
}

/// After a block is committed: metrics (with each transaction's admission-to-commit time
/// when this node admitted them: `admitted_here`), the guards' outcomes, the transactions it
/// made stale recorded as dropped, and the block published to subscribers.
pub(crate) fn published(
    core: &NodeCore,
    produced: ProducedBlock,
    block: StoredBlock,
    head: aurigraph_storage::Head,
    admitted_here: bool,
) {
    core.metrics.block_committed(&block, produced.latency);
    if admitted_here {
        let now = Instant::now();
        core.metrics.commit_latencies(
            produced
                .txs
                .iter()
                .map(|t| now.saturating_duration_since(t.admitted_at)),
        );
    }
    observe_outcomes(core, &produced);
    let stale: Vec<DroppedEvent> = produced
        .removed
        .iter()
        .filter(|r| r.reason == Removal::Stale)
        .map(|r| DroppedEvent {
            hash: r.hash,
            code: "E_DROPPED_STALE".to_string(),
            reason: format!(
                "nonce {} of its sender was used by another committed transaction",
                r.nonce
            ),
            height: head.height,
        })
        .collect();
    if let Err(e) = core.settle(&[], stale) {
        // They stay in the `mempool` family: re-admission on restart records them then.
        tracing::error!(code = e.code(), error = %e, "stale transactions not recorded as dropped");
    }
    let event = Arc::new(BlockEvent {
        height: head.height,
        hash: head.hash,
        state_root: head.state_root,
        receipts: block.receipts,
        conflicts: produced.outcome.execution.stats.conflicts,
        re_executions: produced.outcome.execution.stats.re_executions,
        executed: produced.outcome.execution.stats.executed,
        latency: produced.latency,
    });
    // No subscriber is not an error.
    let _ = core.events.send(event);
}

/// Drops the transactions that stayed behind a nonce gap past `block.mempool_gapped_ttl_ms`
/// ([`Pipeline::expire`](aurigraph_ledger::pipeline::Pipeline::expire)): recorded as
/// dropped with `E_DROPPED_EXPIRED`, counted and announced. Returns at once when every
/// transaction held is ready. The committed view is held from their removal to their
/// `dropped` record, so a read sees each one pending or dropped, never missing.
fn expire_gapped(core: &NodeCore) {
    let mempool = core.pipeline.mempool();
    if mempool.config().gapped_ttl_ms == 0 || mempool.len() == mempool.ready_len() {
        return;
    }
    let view = core.view.write();
    let removed = core.pipeline.expire(Instant::now());
    if removed.is_empty() {
        return;
    }
    let height = core.head().height;
    let expired: Vec<DroppedEvent> = removed
        .iter()
        .filter_map(|r| dropped_event(r, height))
        .collect();
    if let Err(e) = core.settle(&[], expired) {
        // They stay in the `mempool` family: re-admitted on restart, they expire again.
        tracing::error!(code = e.code(), error = %e, "expired transactions not recorded as dropped");
    }
    drop(view);
}

/// Feeds each slot's key metric to its guard, per arm, so a canary is judged on what
/// it led to (the same anytime-valid confidence sequences `policy status` shows):
/// `ordering` on the block's proposal-to-commit time, `batch_size` on the mean
/// submit-to-commit latency of the block's transactions (ms, higher is worse). A
/// decision the static policy answered in a fallback credits no arm.
fn observe_outcomes(core: &NodeCore, produced: &ProducedBlock) {
    let arm_of = |answer: &aurigraph_ledger::batcher::SlotAnswer| {
        answer.tag().filter(|t| t.fallback.is_none()).map(|t| t.arm)
    };
    if let Some(arm) = arm_of(&produced.batch.ordering) {
        core.hosts[&SlotKind::Ordering].observe_outcome(arm, produced.latency.as_secs_f64() * 1e3);
    }
    if let Some(arm) = arm_of(&produced.batch.batch_size)
        && !produced.txs.is_empty()
    {
        let now = Instant::now();
        let total: f64 = produced
            .txs
            .iter()
            .map(|t| now.saturating_duration_since(t.admitted_at).as_secs_f64() * 1e3)
            .sum();
        core.hosts[&SlotKind::BatchSize].observe_outcome(arm, total / produced.txs.len() as f64);
    }
}

/// Sets the archive's gauges; returns the archived height.
fn archive_metrics(core: &NodeCore) -> u64 {
    let archived_to = core.storage.archived_to().unwrap_or(0);
    let (segments, bytes) = core.storage.archive().map_or((0, 0), |a| a.stats());
    core.metrics.set_archive(archived_to, segments, bytes);
    archived_to
}

/// Storage tiers: once the head is `storage.archive_after_blocks` plus a whole segment past
/// the archived height, one archive step moves the oldest hot segment to the archive (see the
/// storage crate's `archive` module). It runs between rounds, holding no lock of the commit
/// path (RocksDB orders its batch against block commits); reads of the moving blocks answer
/// from RocksDB until the segment is readable, then from the archive. A failure is logged and
/// counted, and the next round tries again.
fn archive_round(core: &NodeCore, archived_to: &mut u64) {
    let s = &core.config.storage;
    if s.archive_after_blocks == 0 || core.storage.archive().is_none() {
        return;
    }
    let below = core
        .head()
        .height
        .saturating_sub(s.archive_after_blocks)
        .saturating_add(1);
    if below <= archived_to.saturating_add(s.archive_segment_blocks) {
        return;
    }
    let started = Instant::now();
    match core.storage.archive_step(below, s.archive_segment_blocks) {
        Ok(Some(run)) => {
            let seg = run.segment;
            core.metrics
                .archive_run(u64::from(seg.blocks), started.elapsed());
            *archived_to = archive_metrics(core);
            tracing::info!(
                first = seg.first,
                last = seg.last,
                blocks = seg.blocks,
                bytes = seg.bytes,
                ms = started.elapsed().as_millis() as u64,
                "blocks archived"
            );
        }
        Ok(None) => {
            // Nothing hot to move (e.g. a replica that installed a snapshot): check again
            // when the head has moved a segment on.
            *archived_to = below.saturating_sub(1);
        }
        Err(e) => {
            core.metrics.archive_failure(e.code());
            tracing::warn!(code = e.code(), error = %e, "archive step failed: retried next round");
        }
    }
}

/// Whether a failed block can be tried again: storage and log unavailability and execution
/// failures can pass; corruption, a log out of order or a layout mismatch cannot.
fn is_fatal(e: &NodeError) -> bool {
    matches!(
        e.code(),
        "E_STORAGE_CORRUPT" | "E_STORAGE_MISMATCH" | "E_STORAGE_SYNC" | "E_LOG_ORDER"
    )
}

/// The producer's loop; returns when [`NodeCore::stop`] is called or production halts.
///
/// A failed round is retried with exponential backoff (50 ms doubling up to
/// `block.retry_backoff_max_ms`): meanwhile the node is not ready (`/readyz` 503, and
/// submissions are refused with `E_NOT_READY`), `aurigraph_node_production_stalled` is 1 and
/// each failure counts in `aurigraph_node_block_failures_total{code}`. It serves again after
/// the first block that commits. A fatal failure, or `block.retry_limit` failures in a row,
/// halts the node: the producer stops, the error is logged and published to
/// [`Node::halted`](super::Node::halted), which `aurigraph start` waits on to exit with it.
pub(crate) fn run(core: Arc<NodeCore>) {
    let interval = Duration::from_millis(core.config.block.interval_ms);
    let max_backoff = Duration::from_millis(core.config.block.retry_backoff_max_ms);
    let demand_every = Duration::from_millis(core.config.telemetry.demand_interval_ms);
    let mut last_demand = Instant::now();
    let mut rates: Vec<f32> = Vec::new();
    let mut arrivals_seen = core.accepted_total.load(Ordering::Relaxed);
    let mut round: u64 = 0;
    let mut failures: u32 = 0;
    let mut archived_to = archive_metrics(&core);
    while !core.stop.load(Ordering::Acquire) {
        let started = Instant::now();
        let produced = produce_ready_blocks(&core, 64);
        let made = *produced.as_ref().unwrap_or(&0);
        match produced {
            Ok(_) => {
                if failures > 0 {
                    tracing::info!(failures, "block production recovered");
                    failures = 0;
                    core.metrics.set_production_stalled(false);
                    core.ready.store(true, Ordering::Release);
                }
            }
            Err(e) => {
                failures += 1;
                core.metrics.block_failure(e.code());
                core.metrics.set_production_stalled(true);
                core.ready.store(false, Ordering::Release);
                let limit = core.config.block.retry_limit;
                if is_fatal(&e) || failures > limit {
                    tracing::error!(code = e.code(), error = %e, failures, "block production halted");
                    let msg = if is_fatal(&e) {
                        e.to_string()
                    } else {
                        format!("{e} ({failures} tries in a row)")
                    };
                    core.halt.send_replace(Some(msg));
                    return;
                }
                let backoff = Duration::from_millis(50)
                    .saturating_mul(1u32 << (failures - 1).min(16))
                    .min(max_backoff);
                tracing::warn!(code = e.code(), error = %e, failures, retry_in_ms = backoff.as_millis() as u64, "block failed: retrying");
                let mut guard = core.wake.0.lock();
                if !core.stop.load(Ordering::Acquire) {
                    let _ = core.wake.1.wait_for(&mut guard, backoff);
                }
                continue;
            }
        }
        round += 1;
        // leader_health: a node alone has no leader to score; it feeds the slot its own
        // production round as a stand-in heartbeat window. A cluster replica's monitor scores
        // the leader instead (crate::health).
        if !core.config.cluster.enabled() {
            let round_ms = started.elapsed().as_secs_f32() * 1e3;
            let hb = leader_health::LeaderHealthFeatures {
                heartbeat_interval_ms: interval.as_secs_f32() * 1e3,
                election_timeout_ms: interval.as_secs_f32() * 1e4,
                ms_since_last_heartbeat: round_ms,
                rtt_mean_ms: round_ms,
                rtt_p99_ms: round_ms,
                window_ticks: 10.0,
                mempool_depth: core.pipeline.mempool().len() as f32,
                self_scored: 1.0,
                ..Default::default()
            };
            if let Err(e) = core.hosts[&SlotKind::LeaderHealth].decide(round, &hb.matrix()) {
                tracing::warn!(error = %e, "leader_health decision failed");
            }
        }
        // demand: the arrival rate per second, forecast each second (each
        // `telemetry.demand_interval_ms`).
        if last_demand.elapsed() >= demand_every {
            let accepted = core.accepted_total.load(Ordering::Relaxed);
            let secs = last_demand.elapsed().as_secs_f32();
            rates.push(accepted.saturating_sub(arrivals_seen) as f32 / secs);
            arrivals_seen = accepted;
            last_demand = Instant::now();
            if rates.len() > demand::WINDOW {
                rates.remove(0);
            }
            let w = demand::DemandWindow::from_recent(&rates).matrix();
            // The forecast (its maximum over the horizon) feeds the scaling advice and,
            // with `block.batch_size_reads_forecast`, its first horizon value is the
            // `batch_size` slot's arrival rate for the next 3 intervals (then the
            // measured rate again, unless a newer forecast came).
            match core.hosts[&SlotKind::Demand].decide(round, &w) {
                Ok(d) => crate::scaling::observe_forecast(&core, &d.values),
                Err(e) => tracing::warn!(error = %e, "demand decision failed"),
            }
        }
        expire_gapped(&core);
        core.metrics.set_mempool(core.pipeline.mempool().len());
        core.flush_telemetry();
        archive_round(&core, &mut archived_to);
        let mut guard = core.wake.0.lock();
        if core.stop.load(Ordering::Acquire) {
            break;
        }
        // A node alone waits for a full block or the interval. A cluster's leader proposes
        // again at once while transactions are ready (the blocks in flight are the batching:
        // what arrives while they replicate makes the next ones); otherwise it waits.
        let busy = match core.cluster.get() {
            Some(c) => {
                made > 0
                    && aurigraph_consensus::replica::is_leader(&c.raft)
                    && core.pipeline.mempool().ready_len() > 0
            }
            None => core.pipeline.mempool().ready_len() >= core.config.block.max_txs,
        };
        if !busy {
            let _ = core.wake.1.wait_for(&mut guard, interval);
        }
    }
}

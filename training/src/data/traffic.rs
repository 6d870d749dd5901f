//! [`Traffic`]: a seeded workload pushed through the engine's real admission, so that the
//! training rows are exactly the rows the node computes.
//!
//! The workload generator ([`aurigraph_ledger::workload`]) produces labelled events (Zipf hot
//! accounts, arrival patterns, injected spam, oversized transactions, replays, bad signatures,
//! malformed bytes). They are admitted in arrival order, in batches of
//! [`ADMISSION_BATCH`] of workload time, by an [`Admission`] on a [`ManualClock`] that follows
//! the workload's arrival times, against the genesis state; every [`BLOCK_INTERVAL`] the
//! admitted nonces are reported committed, as a node that keeps up would. Each admitted
//! transaction comes back with the `anomaly` feature row admission built for it (per-sender
//! rate and age, running z-scores) and the workload's label. Refused inputs (replays, bad
//! signatures, malformed bytes) never reach a slot, so they carry no row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurigraph_decision::clock::ManualClock;
use aurigraph_decision::slot::anomaly::AnomalyFeatures;
use aurigraph_decision::{HostConfig, SlotHost, SlotKind};
use aurigraph_ledger::admission::{Admission, AdmissionConfig};
use aurigraph_ledger::state::{Account, ShardedState, StateView};
use aurigraph_ledger::tx::{Address, AdmittedTx};
use aurigraph_ledger::workload::{Label, Workload, WorkloadConfig};

use crate::error::{Result, TrainingError};

/// Workload time gathered into one admission batch.
pub const ADMISSION_BATCH: Duration = Duration::from_millis(5);
/// Workload time between two simulated commits.
pub const BLOCK_INTERVAL: Duration = Duration::from_millis(200);

/// One admitted transaction with its features and label.
#[derive(Clone, Debug)]
pub struct AdmittedRow {
    /// The transaction as admission returned it, with `admitted_at` set to the workload's
    /// arrival time (from [`Traffic::epoch`]), so ages are reproducible.
    pub tx: AdmittedTx,
    /// The `anomaly` feature row admission computed.
    pub features: AnomalyFeatures,
    /// What the workload says it is.
    pub label: Label,
    /// Arrival time from the start of the workload.
    pub at: Duration,
}

/// The admitted part of a workload, in admission order.
#[derive(Debug)]
pub struct Traffic {
    /// The admitted transactions, in admission (`seq`) order.
    pub rows: Vec<AdmittedRow>,
    /// Events generated.
    pub events: usize,
    /// Events refused at admission.
    pub refused: usize,
    /// The instant that stands for workload time zero in [`AdmittedTx::admitted_at`].
    pub epoch: Instant,
}

impl Traffic {
    /// Generates `events` events of `config` and admits them. Deterministic for a given
    /// config and event count.
    pub fn admit(config: WorkloadConfig, events: usize) -> Result<Self> {
        let workload = Workload::new(config)?;
        let generated = workload.generate(events);
        let mut state = ShardedState::from_genesis(workload.genesis(), 16)
            .map_err(|e| TrainingError::Data(format!("genesis: {e}")))?;
        let host = Arc::new(SlotHost::new(SlotKind::Anomaly, HostConfig::default())?);
        let clock = ManualClock::new();
        let admission_config = AdmissionConfig {
            chain_id: workload.config().chain_id,
            ..AdmissionConfig::default()
        };
        let admission = Admission::new(admission_config, host)?.with_clock(clock.clone());

        let epoch = Instant::now();
        let mut now = Duration::ZERO;
        let mut rows = Vec::with_capacity(generated.len());
        let mut refused = 0usize;
        let mut next_nonce: HashMap<Address, u64> = HashMap::new();
        let mut next_commit = BLOCK_INTERVAL;
        let mut start = 0usize;
        while start < generated.len() {
            let batch_end = generated[start].at + ADMISSION_BATCH;
            let end = generated[start..]
                .iter()
                .position(|e| e.at >= batch_end)
                .map_or(generated.len(), |p| start + p);
            let batch = &generated[start..end];
            let last_at = batch[batch.len() - 1].at;
            if last_at > now {
                clock.advance(last_at - now);
                now = last_at;
            }
            let inputs: Vec<&[u8]> = batch.iter().map(|e| e.bytes.as_slice()).collect();
            let outcome = admission.admit(&state, &inputs);
            let mut features = outcome.features.into_iter();
            for (event, result) in batch.iter().zip(outcome.results) {
                match result {
                    Ok(mut tx) => {
                        let f = features.next().ok_or_else(|| {
                            TrainingError::Shape("admission returned fewer rows than txs".into())
                        })?;
                        tx.admitted_at = epoch + event.at;
                        let t = tx.tx.tx();
                        let n = next_nonce.entry(t.sender).or_insert(0);
                        *n = (*n).max(t.nonce + 1);
                        rows.push(AdmittedRow {
                            tx,
                            features: f,
                            label: event.label,
                            at: event.at,
                        });
                    }
                    Err(_) => refused += 1,
                }
            }
            if now >= next_commit {
                // Everything admitted so far commits: the state's nonces move (balances are
                // far above what the workload spends, so they stay), admission's pending
                // reservations are pruned. Sorted, so the commit does not depend on hashing.
                let mut writes: Vec<(Address, Account)> = next_nonce
                    .drain()
                    .map(|(sender, nonce)| {
                        let balance = state.account(&sender).balance;
                        (sender, Account { balance, nonce })
                    })
                    .collect();
                writes.sort_unstable_by_key(|(a, _)| *a);
                state.apply(&writes);
                for (sender, nonce) in &writes {
                    admission.committed(sender, nonce.nonce);
                }
                next_commit = now + BLOCK_INTERVAL;
            }
            start = end;
        }
        Ok(Self {
            rows,
            events: generated.len(),
            refused,
            epoch,
        })
    }
}

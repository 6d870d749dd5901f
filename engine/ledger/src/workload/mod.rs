//! The workload generator: seeded, realistic transaction traffic with labelled anomalies.
//! The tests, the training crate, the A/B harness and the demo all use it.
//!
//! A [`Workload`] is built from a [`WorkloadConfig`] (or a named [`Preset`]: `uniform`,
//! `hot-accounts`, `bursty`, `diurnal`, `spam-attack`, and the decision-quality presets
//! `adversarial-spam`, `shifting-hotspots`, `seasonal-demand`). It derives:
//!
//! - **accounts**: `accounts` regular accounts then `anomalies.spam_senders` spam accounts,
//!   then an [`Adversary`]'s sybil and newcomer accounts,
//!   each with a key pair from [`keypair_from_seed`] of BLAKE3-derived seed bytes;
//!   regular account `i` has popularity rank `i` (0 is the hottest);
//! - **a [`Genesis`]** that funds all of them with `initial_balance`;
//! - **a stream of [`Event`]s**: arrival time offset, encoded transaction bytes and a
//!   [`Label`] saying what it is.
//!
//! ## Traffic
//!
//! Regular arrivals follow a Poisson process whose rate follows the [`Arrival`] pattern
//! (steady, diurnal, bursts). Each is a regular transaction (a transfer, or with
//! `multi_transfer_share` a 2- or 3-output multi-transfer) or, with the configured shares,
//! an oversized transaction, a replay, a bad signature or malformed bytes. Spam bursts come
//! on top (see [`Anomalies`]). Recipients are drawn on a Zipf law with exponent
//! `zipf_exponent` (the contention knob; 0 is uniform), senders uniformly unless
//! `zipf_senders`. The generator tracks every sender's nonce, so the admissible
//! transactions of a sender (normal, spam, oversized) carry consecutive nonces in event
//! order, and amounts and fees stay far below the genesis balances: executed in event
//! order, every admissible transaction is valid.
//!
//! ## Determinism and parallel signing
//!
//! Every choice is made sequentially by one [`WorkloadRng`] seeded from the config's seed,
//! producing unsigned drafts (cheap); drafts are then signed in parallel with rayon
//! (Ed25519 signing is deterministic). So the same config gives byte-identical events
//! whatever the thread count or chunking: [`Workload::generate`] and
//! [`Workload::stream`] yield the same events.
//!
//! ```
//! use aurigraph_ledger::workload::{Label, Preset, Workload};
//!
//! let w = Workload::new(Preset::SpamAttack.config(7)).expect("preset is valid");
//! let events = w.generate(200);
//! assert_eq!(events.len(), 200);
//! assert!(events.windows(2).all(|p| p[0].at <= p[1].at));
//! assert!(events.iter().any(|e| e.label == Label::Spam));
//! assert_eq!(w.genesis().allocations.len(), 1_000 + 4);
//! ```

use std::time::Duration;

use ed25519_consensus::SigningKey;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::state::Genesis;
use crate::tx::{Address, keypair_from_seed};
use aurigraph_decision::error::Result;

mod config;
mod plan;
mod rng;

pub use config::{Adversary, Anomalies, Arrival, Hotspots, Preset, WorkloadConfig};
pub use rng::WorkloadRng;

use plan::{Body, Draft, Planner};

/// What an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A regular transaction: valid, admitted, expected to score normal.
    Normal,
    /// Part of a spam burst: valid and admitted, expected to be flagged (sender rate).
    Spam,
    /// The largest valid multi-transfer: admitted, expected to be flagged (size).
    Oversized,
    /// An earlier admissible transaction again: refused.
    Replay,
    /// A bad signature: refused (`E_BAD_SIGNATURE`).
    BadSignature,
    /// Not a transaction: refused (`E_TX_*`).
    Malformed,
}

impl Label {
    /// Every label.
    pub const ALL: [Label; 6] = [
        Label::Normal,
        Label::Spam,
        Label::Oversized,
        Label::Replay,
        Label::BadSignature,
        Label::Malformed,
    ];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Normal => "normal",
            Label::Spam => "spam",
            Label::Oversized => "oversized",
            Label::Replay => "replay",
            Label::BadSignature => "bad_signature",
            Label::Malformed => "malformed",
        }
    }

    /// Whether admission should admit it (a valid transaction with a fresh nonce).
    pub fn admissible(self) -> bool {
        matches!(self, Label::Normal | Label::Spam | Label::Oversized)
    }

    /// Whether it is an injected anomaly (anything but [`Label::Normal`]).
    pub fn is_anomaly(self) -> bool {
        self != Label::Normal
    }
}

/// One generated input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the stream, from 0.
    pub index: u64,
    /// Arrival time from the start of the workload (non-decreasing along the stream).
    pub at: Duration,
    /// What it is.
    pub label: Label,
    /// The bytes submitted.
    pub bytes: Vec<u8>,
}

/// A seeded workload: accounts, genesis, events. See the [module docs](self).
pub struct Workload {
    config: WorkloadConfig,
    keys: Vec<SigningKey>,
    addresses: Vec<Address>,
    genesis: Genesis,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Events signed per parallel round of [`EventStream`].
const STREAM_CHUNK: usize = 1_024;

impl Workload {
    /// Derives the accounts (in parallel) and the genesis. Fails with
    /// [`EngineError::InvalidConfig`](aurigraph_decision::EngineError::InvalidConfig) on a config outside
    /// its documented ranges.
    pub fn new(config: WorkloadConfig) -> Result<Self> {
        config.validate()?;
        let total = config.total_accounts();
        let seed = config.seed;
        let (keys, addresses): (Vec<SigningKey>, Vec<Address>) = (0..total as u64)
            .into_par_iter()
            .map(|i| {
                let mut material = [0u8; 16];
                material[..8].copy_from_slice(&seed.to_le_bytes());
                material[8..].copy_from_slice(&i.to_le_bytes());
                keypair_from_seed(blake3::derive_key(
                    "aurigraph workload v1 account key",
                    &material,
                ))
            })
            .unzip();
        let genesis = Genesis {
            chain_id: config.chain_id,
            allocations: addresses
                .iter()
                .map(|a| (*a, config.initial_balance))
                .collect(),
        };
        Ok(Self {
            config,
            keys,
            addresses,
            genesis,
        })
    }

    /// The workload of a named preset (see [`Preset`]) with `seed`.
    pub fn preset(name: &str, seed: u64) -> Result<Self> {
        Self::new(WorkloadConfig::preset(name, seed)?)
    }

    /// The config.
    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// The genesis allocation funding every account.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// All account addresses: regular accounts by popularity rank, then spam accounts.
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// The regular accounts, by popularity rank (0 is the hottest).
    pub fn regular_accounts(&self) -> &[Address] {
        &self.addresses[..self.config.accounts]
    }

    /// The accounts that send labelled spam: the spam senders, then the sybils of an
    /// [`Adversary`].
    pub fn spam_accounts(&self) -> &[Address] {
        let start = self.config.accounts;
        &self.addresses
            [start..start + self.config.anomalies.spam_senders + self.config.sybil_accounts()]
    }

    /// The honest newcomer accounts of an [`Adversary`] (empty without one).
    pub fn newcomer_accounts(&self) -> &[Address] {
        &self.addresses[self.config.total_accounts() - self.config.newcomer_accounts()..]
    }

    /// Ground truth for `demand`: the mean rate of the regular arrival process over each
    /// of `n` intervals of `interval` from the start ([`Arrival::mean_rates`]).
    pub fn true_rates(&self, interval: Duration, n: usize) -> Vec<f64> {
        self.config.arrival.mean_rates(interval, n)
    }

    /// The signing key of account `i` (as in [`Workload::addresses`]).
    pub fn signing_key(&self, i: usize) -> Option<&SigningKey> {
        self.keys.get(i)
    }

    /// The first `n` events, signed in parallel.
    pub fn generate(&self, n: usize) -> Vec<Event> {
        let mut planner = Planner::new(&self.config, &self.addresses);
        let drafts: Vec<Draft> = (0..n).map(|_| planner.next_draft()).collect();
        self.sign(drafts)
    }

    /// The endless stream of events, signed in parallel rounds of 1,024. Yields exactly
    /// what [`Workload::generate`] returns.
    pub fn stream(&self) -> EventStream<'_> {
        EventStream {
            workload: self,
            planner: Planner::new(&self.config, &self.addresses),
            ready: Vec::new().into_iter(),
        }
    }

    fn sign(&self, drafts: Vec<Draft>) -> Vec<Event> {
        drafts
            .into_par_iter()
            .map(|d| {
                let bytes = match d.body {
                    Body::Raw(b) => b,
                    Body::Sign {
                        tx,
                        signer,
                        corrupt,
                    } => {
                        // `signer` indexes `keys` by construction.
                        let s = tx.sign(&self.keys[signer]);
                        let mut b = s.encoded().to_vec();
                        if corrupt && let Some(last) = b.last_mut() {
                            // Bit 0 of the signature's last byte (the top byte of s).
                            *last ^= 0x01;
                        }
                        b
                    }
                };
                Event {
                    index: d.index,
                    at: Duration::from_nanos(d.at_nanos),
                    label: d.label,
                    bytes,
                }
            })
            .collect()
    }
}

/// Writes the labels of `events` as CSV, one line per event: `index,at_ns,label,hash`
/// (`hash` is the transaction hash in hex, the key the node's blocks and telemetry use;
/// empty for bytes that do not decode). With the node's telemetry export joined on the hash,
/// every decision of the `anomaly` slot gets its ground truth.
pub fn write_labels_csv<W: std::io::Write>(events: &[Event], mut out: W) -> std::io::Result<()> {
    writeln!(out, "index,at_ns,label,hash")?;
    for e in events {
        let hash = crate::tx::SignedTransaction::decode(&e.bytes)
            .map(|t| t.hash().to_string())
            .unwrap_or_default();
        writeln!(
            out,
            "{},{},{},{hash}",
            e.index,
            e.at.as_nanos(),
            e.label.as_str()
        )?;
    }
    Ok(())
}

/// Writes a true rate series ([`Workload::true_rates`]) as CSV: `interval,start_ms,rate`
/// (`rate` in tx/s, the ground truth of a `demand` forecast of that interval).
pub fn write_rates_csv<W: std::io::Write>(
    rates: &[f64],
    interval: Duration,
    mut out: W,
) -> std::io::Result<()> {
    writeln!(out, "interval,start_ms,rate")?;
    for (k, r) in rates.iter().enumerate() {
        writeln!(out, "{k},{},{r}", interval.as_millis() * k as u128)?;
    }
    Ok(())
}

/// The endless event stream of a [`Workload`] (see [`Workload::stream`]).
pub struct EventStream<'a> {
    workload: &'a Workload,
    planner: Planner<'a>,
    ready: std::vec::IntoIter<Event>,
}

impl std::fmt::Debug for EventStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl Iterator for EventStream<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if let Some(e) = self.ready.next() {
            return Some(e);
        }
        let drafts: Vec<Draft> = (0..STREAM_CHUNK)
            .map(|_| self.planner.next_draft())
            .collect();
        self.ready = self.workload.sign(drafts).into_iter();
        self.ready.next()
    }
}

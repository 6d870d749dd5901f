//! [`WorkloadConfig`], its arrival patterns and anomaly shares, and the named [`Preset`]s.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use aurigraph_decision::error::{EngineError, Result};

/// When transactions arrive: a Poisson process whose rate follows a pattern (tx/s).
/// Spam bursts come on top of it ([`Anomalies::spam_share`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "pattern", rename_all = "snake_case")]
pub enum Arrival {
    /// A constant rate.
    Steady {
        /// Arrivals per second (> 0).
        rate: f64,
    },
    /// A sinusoidal day: `mean * (1 + amplitude * sin(2 pi t / period))`.
    Diurnal {
        /// Mean arrivals per second (> 0).
        mean: f64,
        /// Relative swing, `0..=1`.
        amplitude: f64,
        /// Length of one cycle (> 0).
        period: Duration,
    },
    /// A base rate, with `burst_rate` during the first `burst_len` of every `every`.
    Bursts {
        /// Arrivals per second between bursts (> 0).
        base: f64,
        /// Arrivals per second during a burst (> 0).
        burst_rate: f64,
        /// Length of a burst (at most `every`).
        burst_len: Duration,
        /// Time from the start of one burst to the next (> 0).
        every: Duration,
    },
}

impl Arrival {
    /// The rate at `t` seconds.
    pub fn rate_at(&self, t: f64) -> f64 {
        match *self {
            Arrival::Steady { rate } => rate,
            Arrival::Diurnal {
                mean,
                amplitude,
                period,
            } => {
                mean * (1.0 + amplitude * (std::f64::consts::TAU * t / period.as_secs_f64()).sin())
            }
            Arrival::Bursts {
                base,
                burst_rate,
                burst_len,
                every,
            } => {
                if t.rem_euclid(every.as_secs_f64()) < burst_len.as_secs_f64() {
                    burst_rate
                } else {
                    base
                }
            }
        }
    }

    /// The highest rate the pattern reaches.
    pub fn max_rate(&self) -> f64 {
        match *self {
            Arrival::Steady { rate } => rate,
            Arrival::Diurnal {
                mean, amplitude, ..
            } => mean * (1.0 + amplitude),
            Arrival::Bursts {
                base, burst_rate, ..
            } => base.max(burst_rate),
        }
    }

    fn validate(&self) -> Result<()> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        let ok = match *self {
            Arrival::Steady { rate } => pos(rate),
            Arrival::Diurnal {
                mean,
                amplitude,
                period,
            } => pos(mean) && (0.0..=1.0).contains(&amplitude) && !period.is_zero(),
            Arrival::Bursts {
                base,
                burst_rate,
                burst_len,
                every,
            } => pos(base) && pos(burst_rate) && !every.is_zero() && burst_len <= every,
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(format!(
                "arrival {self:?} is outside its documented ranges"
            )))
        }
    }
}

/// Shares of injected anomalies. Every share is a fraction of all events.
///
/// - **spam**: bursts of `spam_burst_len` valid, minimum-fee transfers from one of
///   `spam_senders` dedicated (funded) accounts, `spam_interval` apart, on top of the
///   arrival process. Admitted; the `anomaly` slot should flag them (sender rate).
/// - **oversized**: a valid multi-transfer with the most outputs ([`crate::tx::MAX_OUTPUTS`]),
///   the largest valid encoding (759 bytes against 158 for a transfer). Admitted; the
///   `anomaly` slot should flag it (size).
/// - **replay**: the exact bytes of one of the last 1,024 admissible transactions again.
///   Refused (`E_DUPLICATE`, or `E_STALE_NONCE` once the original left
///   the recent-hash set).
/// - **bad signature**: a fresh transaction with one signature bit flipped (its nonce is not
///   used up). Refused (`E_BAD_SIGNATURE`).
/// - **malformed**: junk bytes, a truncated encoding or an encoding above
///   [`crate::tx::MAX_TX_BYTES`]. Refused (`E_TX_*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Anomalies {
    /// Share of spam events, `0..1`. Default 0.
    pub spam_share: f64,
    /// Dedicated spam accounts (funded in genesis even when `spam_share` is 0). Default 4.
    pub spam_senders: usize,
    /// Transactions per spam burst (>= 1). Default 50.
    pub spam_burst_len: usize,
    /// Time between the transactions of a burst. Default 2 ms.
    pub spam_interval: Duration,
    /// Share of oversized transactions. Default 0.
    pub oversized_share: f64,
    /// Share of replays. Default 0.
    pub replay_share: f64,
    /// Share of transactions with a bad signature. Default 0.
    pub bad_signature_share: f64,
    /// Share of malformed inputs. Default 0.
    pub malformed_share: f64,
}

impl Default for Anomalies {
    fn default() -> Self {
        Self {
            spam_share: 0.0,
            spam_senders: 4,
            spam_burst_len: 50,
            spam_interval: Duration::from_millis(2),
            oversized_share: 0.0,
            replay_share: 0.0,
            bad_signature_share: 0.0,
            malformed_share: 0.0,
        }
    }
}

impl Anomalies {
    /// Probability that a regular arrival starts a spam burst, so that spam makes up
    /// `spam_share` of all events: `s / ((1 - s) * burst_len)`.
    pub(crate) fn burst_probability(&self) -> f64 {
        if self.spam_share <= 0.0 {
            0.0
        } else {
            self.spam_share / ((1.0 - self.spam_share) * self.spam_burst_len as f64)
        }
    }

    fn validate(&self) -> Result<()> {
        let share = |v: f64| (0.0..=1.0).contains(&v);
        let others = [
            self.oversized_share,
            self.replay_share,
            self.bad_signature_share,
            self.malformed_share,
        ];
        if !(share(self.spam_share) && self.spam_share < 1.0 && others.iter().all(|&v| share(v))) {
            return Err(invalid("anomaly shares must be in 0..=1 (spam below 1)"));
        }
        if others.iter().sum::<f64>() > 1.0 {
            return Err(invalid(
                "oversized, replay, bad-signature and malformed shares add up above 1",
            ));
        }
        if self.spam_burst_len == 0 {
            return Err(invalid("spam_burst_len must be at least 1"));
        }
        if self.spam_share > 0.0 && self.spam_senders == 0 {
            return Err(invalid("spam needs at least one spam sender"));
        }
        if self.burst_probability() > 1.0 {
            return Err(invalid(
                "spam_share too high for spam_burst_len: at most one burst starts per arrival",
            ));
        }
        Ok(())
    }
}

/// Everything that defines a workload. The same config (seed included) always yields the
/// same accounts, genesis and byte-identical events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadConfig {
    /// Seed of keys, choices and times. Default 0.
    pub seed: u64,
    /// Chain identifier in every transaction and in the genesis. Default 1.
    pub chain_id: u32,
    /// Regular accounts (>= 2); account `i` has popularity rank `i`. Default 1,000.
    pub accounts: usize,
    /// Genesis balance of every account, spam accounts included. Default 10^12.
    pub initial_balance: u64,
    /// Contention knob: recipients are drawn on a Zipf law with this exponent over the
    /// accounts (0 = uniform; 1 to 1.5 = a few hot accounts receive much of the traffic).
    /// Finite and >= 0. Default 0.
    pub zipf_exponent: f64,
    /// Whether senders follow the Zipf law too. Default false: a hot *sender* is a
    /// high-rate sender, which the `anomaly` slot reads as spam; hot *recipients* create the
    /// write contention the executor and the ordering slot care about.
    pub zipf_senders: bool,
    /// Arrival pattern. Default steady 1,000 tx/s.
    pub arrival: Arrival,
    /// Share of regular transactions that are multi-transfers (2 or 3 outputs). Default
    /// 0.05.
    pub multi_transfer_share: f64,
    /// Largest amount per output (amounts are uniform in `1..=max_amount`). Default 1,000.
    pub max_amount: u64,
    /// Smallest fee (regular fees are uniform in `min_fee..=max_fee`; spam pays
    /// `min_fee`). Default 1.
    pub min_fee: u64,
    /// Largest fee. Default 100.
    pub max_fee: u64,
    /// Injected anomalies. Default none.
    pub anomalies: Anomalies,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            chain_id: 1,
            accounts: 1_000,
            initial_balance: 1_000_000_000_000,
            zipf_exponent: 0.0,
            zipf_senders: false,
            arrival: Arrival::Steady { rate: 1_000.0 },
            multi_transfer_share: 0.05,
            max_amount: 1_000,
            min_fee: 1,
            max_fee: 100,
            anomalies: Anomalies::default(),
        }
    }
}

impl WorkloadConfig {
    /// The named preset with `seed`; see [`Preset`].
    pub fn preset(name: &str, seed: u64) -> Result<Self> {
        Ok(name.parse::<Preset>()?.config(seed))
    }

    /// Checks the documented ranges.
    pub fn validate(&self) -> Result<()> {
        if self.accounts < 2 {
            return Err(invalid("at least 2 accounts"));
        }
        if !(self.zipf_exponent.is_finite() && self.zipf_exponent >= 0.0) {
            return Err(invalid("zipf_exponent must be finite and >= 0"));
        }
        if !(0.0..=1.0).contains(&self.multi_transfer_share) {
            return Err(invalid("multi_transfer_share must be in 0..=1"));
        }
        if self.max_amount == 0 || self.min_fee > self.max_fee {
            return Err(invalid("max_amount must be >= 1 and min_fee <= max_fee"));
        }
        self.arrival.validate()?;
        self.anomalies.validate()
    }
}

fn invalid(m: impl fmt::Display) -> EngineError {
    EngineError::InvalidConfig(format!("workload: {m}"))
}

/// Named workloads, shared by the tests, the training crate, the A/B harness and the demo.
/// All have 1,000 accounts, 5% multi-transfers, fees 1..=100 and amounts 1..=1,000.
///
/// | name | arrival | recipients | anomalies |
/// |---|---|---|---|
/// | `uniform` | steady 1,000 tx/s | uniform | none |
/// | `hot-accounts` | steady 1,000 tx/s | Zipf 1.2: the top account receives 23% of outputs, the top 10 57% | none |
/// | `bursty` | 500 tx/s, 5,000 tx/s for 1 s every 10 s | Zipf 0.8 (top 10: 23%) | none |
/// | `diurnal` | 1,000 tx/s ± 80% over a 60 s "day" | Zipf 0.8 | none |
/// | `spam-attack` | steady 1,000 tx/s | Zipf 0.8 | 20% spam (bursts of 50 from 4 senders), 1% oversized, 2% replays, 1% bad signatures, 1% malformed |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// `uniform`: steady traffic, no contention, no anomalies.
    Uniform,
    /// `hot-accounts`: steady traffic onto a few hot recipients.
    HotAccounts,
    /// `bursty`: a tenfold burst of one second every ten.
    Bursty,
    /// `diurnal`: a sinusoidal load over a 60-second cycle.
    Diurnal,
    /// `spam-attack`: every kind of anomaly, mostly spam bursts.
    SpamAttack,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 5] = [
        Preset::Uniform,
        Preset::HotAccounts,
        Preset::Bursty,
        Preset::Diurnal,
        Preset::SpamAttack,
    ];

    /// The preset's name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Uniform => "uniform",
            Preset::HotAccounts => "hot-accounts",
            Preset::Bursty => "bursty",
            Preset::Diurnal => "diurnal",
            Preset::SpamAttack => "spam-attack",
        }
    }

    /// The preset's config with `seed`.
    pub fn config(self, seed: u64) -> WorkloadConfig {
        let base = WorkloadConfig {
            seed,
            ..WorkloadConfig::default()
        };
        match self {
            Preset::Uniform => base,
            Preset::HotAccounts => WorkloadConfig {
                zipf_exponent: 1.2,
                ..base
            },
            Preset::Bursty => WorkloadConfig {
                zipf_exponent: 0.8,
                arrival: Arrival::Bursts {
                    base: 500.0,
                    burst_rate: 5_000.0,
                    burst_len: Duration::from_secs(1),
                    every: Duration::from_secs(10),
                },
                ..base
            },
            Preset::Diurnal => WorkloadConfig {
                zipf_exponent: 0.8,
                arrival: Arrival::Diurnal {
                    mean: 1_000.0,
                    amplitude: 0.8,
                    period: Duration::from_secs(60),
                },
                ..base
            },
            Preset::SpamAttack => WorkloadConfig {
                zipf_exponent: 0.8,
                anomalies: Anomalies {
                    spam_share: 0.2,
                    oversized_share: 0.01,
                    replay_share: 0.02,
                    bad_signature_share: 0.01,
                    malformed_share: 0.01,
                    ..Anomalies::default()
                },
                ..base
            },
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                invalid(format!(
                    "unknown preset `{s}` (expected one of: {})",
                    names.join(", ")
                ))
            })
    }
}

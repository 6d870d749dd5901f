//! Rollout: how a candidate policy reaches production, and how it leaves it.
//!
//! - [`Mode`]: `off` (baseline answers everything), `shadow` (the candidate runs next to the
//!   baseline off the hot path; its answers are compared and recorded, never used) and
//!   `canary P` (P% of decisions go to the candidate).
//! - Canary routing is sticky and salted: a decision key always lands in the same bucket
//!   ([`canary_bucket`]), and a key goes to the candidate when its bucket is below P. So
//!   raising P only ever moves keys from baseline to candidate, never back.
//! - [`StepSchedule`]: an optional ladder (e.g. 5, 25, 50, 100%) that the host climbs after a
//!   minimum number of candidate decisions per step, while the [`Guard`] holds.
//! - [`Guard`]: sequential tests that roll the candidate back by themselves.
//! - [`RolloutStore`]: where the rollout state is persisted so that it survives a restart.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod guard;
pub mod schedule;
pub mod store;

pub use guard::{Guard, GuardAlarm, GuardConfig, GuardSnapshot};
pub use schedule::StepSchedule;
pub use store::{FileStore, MemoryStore, PolicyRef, PolicyResolver, RolloutRecord, RolloutStore};

/// Canary shares are kept in basis points: 10,000 = 100%.
pub const FULL_SHARE_BP: u32 = 10_000;

/// How a slot's candidate is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// The baseline answers every decision.
    #[default]
    Off,
    /// The candidate also runs, off the hot path; its answer is recorded and compared, never used.
    Shadow,
    /// The candidate answers this share of decisions, in basis points (500 = 5%).
    Canary {
        /// Share of decision keys routed to the candidate, in basis points.
        basis_points: u32,
    },
}

impl Mode {
    /// A canary at `percent` (0..=100, two decimals kept).
    pub fn canary_percent(percent: f64) -> Option<Mode> {
        if !(0.0..=100.0).contains(&percent) {
            return None;
        }
        Some(Mode::Canary {
            basis_points: (percent * 100.0).round() as u32,
        })
    }

    /// The canary share in percent, or `None` when not in canary.
    pub fn percent(self) -> Option<f64> {
        match self {
            Mode::Canary { basis_points } => Some(f64::from(basis_points) / 100.0),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Off => f.write_str("off"),
            Mode::Shadow => f.write_str("shadow"),
            Mode::Canary { basis_points } => {
                write!(f, "canary {}%", f64::from(*basis_points) / 100.0)
            }
        }
    }
}

/// The sticky bucket (0..10,000) of a decision key under a salt.
///
/// xxh3 is specified and stable across versions and platforms, so a key keeps its bucket
/// across restarts as long as the persisted salt is the same.
pub fn canary_bucket(key: u64, salt: u64) -> u32 {
    (xxhash_rust::xxh3::xxh3_64_with_seed(&key.to_le_bytes(), salt) % u64::from(FULL_SHARE_BP))
        as u32
}

/// Whether `key` goes to the candidate at a share of `basis_points`.
pub fn routes_to_candidate(key: u64, salt: u64, basis_points: u32) -> bool {
    canary_bucket(key, salt) < basis_points
}

//! [`HostConfig`]: the settings of a [`SlotHost`](super::SlotHost).

use std::time::Duration;

use super::BreakerConfig;
use crate::rollout::GuardConfig;

/// Settings of a [`SlotHost`](super::SlotHost).
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Per-decision deadline; `None` takes the slot contract's default.
    pub deadline: Option<Duration>,
    /// Time kept back at the end of the deadline for the static policy to answer;
    /// `None` keeps a tenth of the deadline.
    pub fallback_reserve: Option<Duration>,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
    /// Rollout guard.
    pub guard: GuardConfig,
    /// Watchdog worker threads of this slot.
    pub watchdog_workers: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            deadline: None,
            fallback_reserve: None,
            breaker: BreakerConfig::default(),
            guard: GuardConfig::default(),
            watchdog_workers: 2,
        }
    }
}

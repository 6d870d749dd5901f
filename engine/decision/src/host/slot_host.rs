//! [`SlotHost`]: the host's state, its constructor and its accessors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;

use super::breaker::Breaker;
use super::guard::GuardCell;
use super::observer::ObserverCell;
use super::routing::Routing;
use super::shadow::ShadowStats;
use super::watchdog::Watchdog;
use super::{Answerer, HostConfig};
use crate::clock::Clock;
use crate::error::Result;
use crate::metrics::SlotMetrics;
use crate::policy::Policy;
use crate::rollout::{GuardConfig, RolloutStore};
use crate::slot::{SlotContract, SlotKind};

/// The host of one slot. See the module docs.
pub struct SlotHost {
    pub(super) slot: SlotKind,
    pub(super) contract: &'static SlotContract,
    pub(super) fallback: Arc<dyn Policy>,
    pub(super) static_answerer: Answerer,
    pub(super) deadline: Duration,
    pub(super) reserve: Duration,
    pub(super) routing: ArcSwap<Routing>,
    /// Serialises every change of routing.
    pub(super) control: Mutex<()>,
    pub(super) guard: Arc<Mutex<GuardCell>>,
    pub(super) rollback_pending: Arc<AtomicBool>,
    pub(super) guard_config: GuardConfig,
    pub(super) breaker: Breaker,
    pub(super) watchdog: Watchdog,
    pub(super) metrics: SlotMetrics,
    pub(super) shadow: Arc<Mutex<ShadowStats>>,
    pub(super) next_candidate_id: AtomicU64,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) store: Option<Arc<dyn RolloutStore>>,
    /// Set once an observer is installed: the hot path reads only this flag when none is.
    pub(super) observed: AtomicBool,
    pub(super) observer: ArcSwapOption<ObserverCell>,
}

impl SlotHost {
    /// A host with the slot's default static policy, its own metrics and no persistence.
    /// Fails only on an invalid config.
    pub fn new(slot: SlotKind, config: HostConfig) -> Result<Self> {
        Self::builder(slot).config(config).build()
    }

    /// The slot.
    pub fn slot(&self) -> SlotKind {
        self.slot
    }

    /// The slot's contract.
    pub fn contract(&self) -> &'static SlotContract {
        self.contract
    }

    /// The per-decision deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

impl std::fmt::Debug for SlotHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotHost")
            .field("slot", &self.slot)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

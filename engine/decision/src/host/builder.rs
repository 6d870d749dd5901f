//! [`SlotHostBuilder`]: a host with a store, a resolver, shared metrics or a test clock,
//! and the restore of persisted rollout state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::breaker::Breaker;
use super::guard::GuardCell;
use super::persist::restore;
use super::routing::Routing;
use super::shadow::ShadowStats;
use super::watchdog::Watchdog;
use super::{Answerer, HostConfig, SlotHost};
use crate::clock::{Clock, SystemClock};
use crate::error::{EngineError, Result};
use crate::metrics::EngineMetrics;
use crate::policy::{BackendKind, Isolation, Policy};
use crate::rollout::{Guard, Mode, PolicyResolver, RolloutStore};
use crate::slot::{SlotContract, SlotKind};

/// Builder of a [`SlotHost`] with a store, a resolver, shared metrics or a test clock.
pub struct SlotHostBuilder {
    slot: SlotKind,
    config: HostConfig,
    fallback: Option<Arc<dyn Policy>>,
    metrics: Option<EngineMetrics>,
    clock: Option<Arc<dyn Clock>>,
    store: Option<Arc<dyn RolloutStore>>,
    resolver: Option<Arc<dyn PolicyResolver>>,
}

impl SlotHost {
    /// A builder for a host with a store, shared metrics or a test clock.
    pub fn builder(slot: SlotKind) -> SlotHostBuilder {
        SlotHostBuilder {
            slot,
            config: HostConfig::default(),
            fallback: None,
            metrics: None,
            clock: None,
            store: None,
            resolver: None,
        }
    }
}

impl SlotHostBuilder {
    /// Host settings.
    pub fn config(mut self, config: HostConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces the slot's default static policy with another static rule (e.g. other
    /// parameters). It must report [`BackendKind::Static`] and fit the slot.
    pub fn fallback(mut self, policy: Arc<dyn Policy>) -> Self {
        self.fallback = Some(policy);
        self
    }

    /// Metric families shared with the rest of the node.
    pub fn metrics(mut self, metrics: EngineMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The clock for the breaker and timestamps.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Persists the rollout state in `store`; on build, restores it through `resolver`.
    pub fn store(
        mut self,
        store: Arc<dyn RolloutStore>,
        resolver: Arc<dyn PolicyResolver>,
    ) -> Self {
        self.store = Some(store);
        self.resolver = Some(resolver);
        self
    }

    /// Builds the host, restoring the persisted rollout state if a store was given.
    /// A persisted policy that cannot be resolved any more is dropped with a warning
    /// (baseline: the static policy answers; candidate: the rollout is off).
    pub fn build(self) -> Result<SlotHost> {
        let slot = self.slot;
        let contract = slot.contract();
        self.config.guard.validate()?;
        let fallback = self.fallback.unwrap_or_else(|| slot.static_policy());
        check_fits(contract, fallback.as_ref())?;
        if fallback.info().backend != BackendKind::Static
            || fallback.isolation() != Isolation::Inline
        {
            return Err(EngineError::InvalidConfig(format!(
                "the fallback of `{slot}` must be an inline static policy, got {}",
                fallback.info().label()
            )));
        }
        let deadline = self.config.deadline.unwrap_or(contract.default_deadline);
        if deadline.is_zero() {
            return Err(EngineError::InvalidConfig(
                "the deadline must be positive".into(),
            ));
        }
        let reserve = self
            .config
            .fallback_reserve
            .unwrap_or(deadline / 10)
            .min(deadline);
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        let metrics = self.metrics.unwrap_or_default();
        let slot_metrics = metrics.slot(slot);
        let mut routing = Routing {
            generation: 0,
            baseline: None,
            candidate: None,
            candidate_id: 0,
            mode: Mode::Off,
            salt: rand::random(),
            schedule: None,
            step: 0,
            last_rollback: None,
        };
        if let (Some(store), Some(resolver)) = (&self.store, &self.resolver)
            && let Some(rec) = store.load(slot)?
        {
            restore(slot, &mut routing, rec, resolver.as_ref());
        }
        slot_metrics
            .canary_share
            .set(routing.mode.percent().map_or(0, |p| p.round() as i64));
        let routing_candidate_id = routing.candidate_id;
        let host = SlotHost {
            slot,
            contract,
            static_answerer: Answerer::of(fallback.info()),
            fallback,
            deadline,
            reserve,
            routing: ArcSwap::from_pointee(routing),
            control: Mutex::new(()),
            guard: Arc::new(Mutex::new(GuardCell {
                candidate_id: routing_candidate_id,
                guard: Guard::new(self.config.guard.clone()),
                step_decisions: 0,
                pending_alarm: None,
            })),
            rollback_pending: Arc::new(AtomicBool::new(false)),
            guard_config: self.config.guard.clone(),
            breaker: Breaker::new(self.config.breaker.clone(), clock.clone()),
            watchdog: Watchdog::new(slot.as_str(), self.config.watchdog_workers),
            metrics: slot_metrics,
            shadow: Arc::new(Mutex::new(ShadowStats::default())),
            next_candidate_id: AtomicU64::new(1),
            clock,
            store: self.store,
            observed: AtomicBool::new(false),
            observer: arc_swap::ArcSwapOption::empty(),
        };
        Ok(host)
    }
}

pub(super) fn check_fits(contract: &SlotContract, policy: &dyn Policy) -> Result<()> {
    let info = policy.info();
    let mismatch = |reason: String| EngineError::ContractMismatch {
        slot: contract.slot,
        policy: info.label(),
        reason,
    };
    if info.slot != contract.slot {
        return Err(mismatch(format!(
            "it is built for the `{}` slot",
            info.slot
        )));
    }
    if info.schema_version != contract.schema_version {
        return Err(mismatch(format!(
            "it declares feature schema v{}, the slot uses v{}",
            info.schema_version, contract.schema_version
        )));
    }
    Ok(())
}

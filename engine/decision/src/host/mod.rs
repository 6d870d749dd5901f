//! The policy host: one [`SlotHost`] per slot.
//!
//! A host holds the slot's static policy (always), a baseline (the static policy or a
//! promoted model or plugin), an optional candidate and the rollout [`Mode`], all in one
//! immutable `Routing` value behind an [`ArcSwap`]. A decision loads the current routing
//! once and finishes on it, so a swap never changes a decision half-way: in-flight
//! decisions finish on the version they started with, new ones see the new version.
//!
//! ## A decision
//!
//! 1. The input's shape is checked against the slot contract (a caller error otherwise).
//! 2. The decision key picks the arm: the candidate when the mode is `canary P` and the
//!    key's sticky bucket is below P, else the baseline.
//! 3. A static arm answers inline. Any other policy runs under the deadline: inline when
//!    it enforces the deadline itself ([`Isolation::Inline`]), else on the watchdog
//!    workers, and the host stops waiting at `deadline - fallback_reserve`.
//! 4. The answer is validated against the contract (length, finite, range). On any
//!    failure (error, timeout, panic, trap, invalid output, busy workers, open breaker)
//!    the static policy answers and the reason is counted and tagged.
//! 5. The candidate's outcome feeds the [`Guard`], which may roll it back at once, and the
//!    step schedule, which may raise the canary share.
//! 6. In `shadow` mode the candidate is also run, on an idle worker and never waited for;
//!    its answer is validated, compared with the one used, and counted.
//! 7. When an observer is installed ([`SlotHost::set_observer`], the node's telemetry),
//!    it is handed the final decision with its key and input; without one this costs a
//!    relaxed atomic load.
//!
//! The hot path takes no lock unless the decision went to the candidate (the guard's
//! mutex); the metrics handles are resolved once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;

use crate::clock::Clock;
use crate::error::{EngineError, Result};
use crate::features::FeatureMatrix;
use crate::metrics::{ShadowOutcome, SlotMetrics};
use crate::policy::{Isolation, Policy, PolicyError};
use crate::rollout::guard::Moments;
use crate::rollout::{
    FULL_SHARE_BP, Guard, GuardConfig, Mode, PolicyRef, RolloutRecord, RolloutStore, StepSchedule,
    routes_to_candidate,
};
use crate::slot::{OutputFault, Rows, SlotContract, SlotKind};

mod breaker;
mod builder;
mod decision;
mod status;
mod watchdog;

pub use breaker::BreakerConfig;
pub use builder::SlotHostBuilder;
pub use decision::{
    Answerer, Arm, Decision, DecisionObserver, DecisionRecord, DecisionTag, FallbackReason,
    SLOT_EXPORT_COLUMNS,
};
pub use status::{ArmTotals, ScheduleStatus, ShadowSummary, SlotStatus};

use builder::check_fits;

use breaker::{Breaker, Permit};
use watchdog::{Watchdog, Watched, panic_message};

/// Format version of the [`RolloutRecord`]s this host writes.
const RECORD_FORMAT: u32 = 1;

/// Golden inputs a policy must answer correctly before it is accepted.
const WARMUP_ROWS: [usize; WARMUP_INPUTS] = [1, 7, 64];

/// How many golden inputs a policy answers at load (its first calls).
pub const WARMUP_INPUTS: usize = 3;

/// Settings of a [`SlotHost`].
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

/// A policy placed on an arm, with what the hot path needs resolved up front.
struct Armed {
    policy: Arc<dyn Policy>,
    answerer: Answerer,
    isolation: Isolation,
}

impl Armed {
    fn new(policy: Arc<dyn Policy>) -> Self {
        Self {
            answerer: Answerer::of(policy.info()),
            isolation: policy.isolation(),
            policy,
        }
    }

    fn to_ref(&self) -> PolicyRef {
        let info = self.policy.info();
        PolicyRef {
            backend: info.backend,
            name: info.name.clone(),
            version: info.version.clone(),
        }
    }
}

/// The immutable routing of a slot; replaced whole on every change.
struct Routing {
    generation: u64,
    /// `None`: the static policy is the baseline.
    baseline: Option<Arc<Armed>>,
    candidate: Option<Arc<Armed>>,
    /// Identifies the candidate for the guard (changes when the candidate changes).
    candidate_id: u64,
    mode: Mode,
    salt: u64,
    schedule: Option<StepSchedule>,
    step: usize,
    last_rollback: Option<String>,
}

impl Routing {
    #[inline]
    fn route(&self, key: u64) -> Arm {
        match self.mode {
            Mode::Canary { basis_points }
                if self.candidate.is_some()
                    && routes_to_candidate(key, self.salt, basis_points) =>
            {
                Arm::Candidate
            }
            _ => Arm::Baseline,
        }
    }

    /// A copy with a new generation, for modification.
    fn next(&self) -> Routing {
        Routing {
            generation: self.generation + 1,
            baseline: self.baseline.clone(),
            candidate: self.candidate.clone(),
            candidate_id: self.candidate_id,
            mode: self.mode,
            salt: self.salt,
            schedule: self.schedule.clone(),
            step: self.step,
            last_rollback: self.last_rollback.clone(),
        }
    }
}

/// The candidate's guard and step progress.
struct GuardCell {
    candidate_id: u64,
    guard: Guard,
    step_decisions: u64,
    /// An alarm raised by a shadow run on a worker, applied by the next decision.
    pending_alarm: Option<String>,
}

/// Shadow statistics.
#[derive(Default)]
struct ShadowStats {
    divergence: Moments,
}

/// The host of one slot. See the module docs.
pub struct SlotHost {
    slot: SlotKind,
    contract: &'static SlotContract,
    fallback: Arc<dyn Policy>,
    static_answerer: Answerer,
    deadline: Duration,
    reserve: Duration,
    routing: ArcSwap<Routing>,
    /// Serialises every change of routing.
    control: Mutex<()>,
    guard: Arc<Mutex<GuardCell>>,
    rollback_pending: Arc<AtomicBool>,
    guard_config: GuardConfig,
    breaker: Breaker,
    watchdog: Watchdog,
    metrics: SlotMetrics,
    shadow: Arc<Mutex<ShadowStats>>,
    next_candidate_id: AtomicU64,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn RolloutStore>>,
    /// Set once an observer is installed: the hot path reads only this flag when none is.
    observed: AtomicBool,
    observer: ArcSwapOption<ObserverCell>,
}

/// Holder of the observer (an `ArcSwapOption` needs a sized value).
struct ObserverCell(DecisionObserver);

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

    /// Takes one decision. `key` routes it (e.g. a batch id, a sender, a block height):
    /// the same key always lands on the same arm for a given canary share.
    ///
    /// Errors only when `input` does not have the slot's shape; any failure of a model or
    /// plugin is answered by the static policy and reported in the [`DecisionTag`].
    pub fn decide(&self, key: u64, input: &FeatureMatrix) -> Result<Decision> {
        let start = Instant::now();
        self.check_shape(input)?;
        let routing = self.routing.load_full();
        let arm = routing.route(key);
        let armed = match arm {
            Arm::Baseline => routing.baseline.as_ref(),
            Arm::Candidate => routing.candidate.as_ref(),
        };
        let deadline = start + self.deadline;
        let (values, answered_by, fallback) = match armed {
            None => (
                self.static_answer(input, deadline)?,
                self.static_answerer.clone(),
                None,
            ),
            Some(armed) => match self.breaker.permit() {
                Permit::Denied => (
                    self.static_answer(input, deadline)?,
                    self.static_answerer.clone(),
                    Some(FallbackReason::CircuitOpen),
                ),
                permit => {
                    let outcome = self.call(armed, input, deadline - self.reserve);
                    if self.breaker.record(arm, permit, outcome.is_ok()) {
                        self.metrics.circuit_open.set(1);
                        tracing::warn!(slot = %self.slot, %arm, policy = %armed.answerer, "circuit breaker opened: slot on static for a cooldown");
                    } else if permit == Permit::Probe && outcome.is_ok() {
                        self.metrics.circuit_open.set(0);
                        tracing::info!(slot = %self.slot, "circuit breaker closed after a successful probe");
                    }
                    if arm == Arm::Candidate {
                        self.record_candidate(&routing, outcome.is_err());
                    }
                    match outcome {
                        Ok(v) => (v, armed.answerer.clone(), None),
                        Err(reason) => {
                            tracing::debug!(slot = %self.slot, %arm, policy = %armed.answerer, %reason, "fallback to static");
                            (
                                self.static_answer(input, deadline)?,
                                self.static_answerer.clone(),
                                Some(reason),
                            )
                        }
                    }
                }
            },
        };
        if routing.mode == Mode::Shadow {
            self.apply_pending_rollback();
            self.shadow_run(&routing, input, &values);
        }
        let latency = start.elapsed();
        self.metrics
            .decision(arm, answered_by.backend, latency.as_secs_f64());
        if let Some(reason) = fallback {
            self.metrics.fallback(arm, reason);
        }
        let decision = Decision {
            values,
            tag: DecisionTag {
                arm,
                answered_by,
                fallback,
                generation: routing.generation,
            },
            latency,
        };
        if self.observed.load(Ordering::Relaxed) {
            self.notify(key, input, &decision);
        }
        Ok(decision)
    }

    /// Installs (`Some`) or removes (`None`) the decision observer: from the next decision
    /// on, every decision of this host is handed to it once its answer is final (after any
    /// fallback), with its key and input. Without an observer a decision pays one relaxed
    /// atomic load. The engine keeps nothing for it: recording, sampling and storage are
    /// the observer's (the node's telemetry).
    pub fn set_observer(&self, observer: Option<DecisionObserver>) {
        let on = observer.is_some();
        self.observer
            .store(observer.map(|o| Arc::new(ObserverCell(o))));
        self.observed.store(on, Ordering::Relaxed);
    }

    #[cold]
    fn notify(&self, key: u64, input: &FeatureMatrix, decision: &Decision) {
        let Some(cell) = self.observer.load_full() else {
            return;
        };
        let record = DecisionRecord {
            slot: self.slot,
            key,
            input,
            decision,
        };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| (cell.0)(&record))) {
            tracing::warn!(slot = %self.slot, msg = %panic_message(p), "decision observer panicked");
        }
    }

    /// Reports one observation of the slot's key metric (e.g. block latency of a batch
    /// ordered by an arm) for the guard's regression test. May roll the candidate back.
    pub fn observe_outcome(&self, arm: Arm, value: f64) {
        let routing = self.routing.load();
        if routing.candidate.is_none() {
            return;
        }
        let alarm = {
            let mut g = self.guard.lock();
            if g.candidate_id != routing.candidate_id {
                return;
            }
            g.guard.record_metric(arm == Arm::Candidate, value)
        };
        if let Some(alarm) = alarm {
            self.auto_rollback(routing.candidate_id, alarm.to_string());
        }
    }

    fn check_shape(&self, input: &FeatureMatrix) -> Result<()> {
        let c = self.contract;
        let rows_ok = match c.rows {
            Rows::Batch => input.rows() > 0,
            Rows::Single => input.rows() == 1,
        };
        if input.cols() != c.feature_count() || !rows_ok {
            return Err(EngineError::InvalidInput {
                slot: self.slot,
                reason: format!(
                    "shape [{}, {}] does not fit {:?}",
                    input.rows(),
                    input.cols(),
                    c.input_shape()
                ),
            });
        }
        Ok(())
    }

    #[inline]
    fn static_answer(&self, input: &FeatureMatrix, deadline: Instant) -> Result<Vec<f32>> {
        let values =
            self.fallback
                .evaluate(input, deadline)
                .map_err(|e| EngineError::StaticPolicy {
                    slot: self.slot,
                    reason: e.to_string(),
                })?;
        debug_assert!(self.contract.validate_output(input.rows(), &values).is_ok());
        Ok(values)
    }

    /// Runs a non-static policy under the deadline and validates its answer.
    fn call(
        &self,
        armed: &Armed,
        input: &FeatureMatrix,
        deadline: Instant,
    ) -> Result<Vec<f32>, FallbackReason> {
        let raw = match armed.isolation {
            Isolation::Inline => {
                let r = catch_unwind(AssertUnwindSafe(|| armed.policy.evaluate(input, deadline)));
                if Instant::now() > deadline {
                    return Err(FallbackReason::Timeout);
                }
                match r {
                    Ok(r) => r,
                    Err(p) => {
                        tracing::debug!(slot = %self.slot, msg = %panic_message(p), "policy panicked");
                        return Err(FallbackReason::Panic);
                    }
                }
            }
            Isolation::Watchdog => {
                let policy = armed.policy.clone();
                let input = input.clone();
                match self
                    .watchdog
                    .run(deadline, move || policy.evaluate(&input, deadline))
                {
                    Watched::Done(r) => r,
                    Watched::Panicked(msg) => {
                        tracing::debug!(slot = %self.slot, %msg, "policy panicked");
                        return Err(FallbackReason::Panic);
                    }
                    Watched::Failed(reason) => return Err(reason),
                }
            }
        };
        let values = raw.map_err(|e| match e {
            PolicyError::Failed(_) => FallbackReason::Error,
            PolicyError::DeadlineExceeded => FallbackReason::Timeout,
            PolicyError::Trapped(_) => FallbackReason::Trap,
        })?;
        self.contract
            .validate_output(input.rows(), &values)
            .map_err(fault_reason)?;
        Ok(values)
    }

    fn record_candidate(&self, routing: &Routing, failed: bool) {
        let mut g = self.guard.lock();
        if g.candidate_id != routing.candidate_id {
            return;
        }
        if let Some(alarm) = g.guard.record_decision(failed) {
            drop(g);
            self.auto_rollback(routing.candidate_id, alarm.to_string());
            return;
        }
        let (Mode::Canary { .. }, Some(schedule)) = (routing.mode, &routing.schedule) else {
            return;
        };
        g.step_decisions += 1;
        if g.step_decisions < schedule.min_decisions() || schedule.is_last(routing.step) {
            return;
        }
        // Hold the step while the observed failure rate is above the bound, even before
        // the guard can call it significant.
        let snap_rate = g.guard.snapshot().failure_rate;
        if snap_rate > self.guard_config.max_failure_rate {
            return;
        }
        g.step_decisions = 0;
        drop(g);
        self.advance_step(routing.generation);
    }

    fn advance_step(&self, seen_generation: u64) {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if cur.generation != seen_generation {
            return;
        }
        let Some(schedule) = &cur.schedule else {
            return;
        };
        let Some(bp) = schedule.step(cur.step + 1) else {
            return;
        };
        let mut next = cur.next();
        next.step += 1;
        next.mode = Mode::Canary { basis_points: bp };
        tracing::info!(slot = %self.slot, share = %next.mode, "canary step advanced");
        self.commit(next, false).ok();
    }

    fn auto_rollback(&self, candidate_id: u64, reason: String) {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if cur.candidate_id != candidate_id || cur.candidate.is_none() {
            return;
        }
        let what = cur
            .candidate
            .as_ref()
            .map(|c| c.answerer.to_string())
            .unwrap_or_default();
        tracing::warn!(slot = %self.slot, candidate = %what, %reason, "guard rolled the candidate back");
        let next = rolled_back(&cur, format!("guard: {reason} ({what})"));
        self.metrics.rollbacks.inc();
        self.commit(next, false).ok();
    }

    /// Applies an alarm that a shadow run raised on a worker thread.
    fn apply_pending_rollback(&self) {
        if !self.rollback_pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let (id, alarm) = {
            let mut g = self.guard.lock();
            (g.candidate_id, g.pending_alarm.take())
        };
        if let Some(alarm) = alarm {
            self.auto_rollback(id, format!("{alarm} in shadow"));
        }
    }

    fn shadow_run(&self, routing: &Routing, input: &FeatureMatrix, used: &[f32]) {
        let Some(candidate) = routing.candidate.clone() else {
            return;
        };
        let input = input.clone();
        let used = used.to_vec();
        let contract = self.contract;
        let metrics = self.metrics.clone();
        let stats = self.shadow.clone();
        let guard = self.guard.clone();
        let pending = self.rollback_pending.clone();
        let candidate_id = routing.candidate_id;
        let deadline = Instant::now() + self.deadline;
        let spawned = self.watchdog.spawn_if_idle(move || {
            let r = catch_unwind(AssertUnwindSafe(|| {
                candidate.policy.evaluate(&input, deadline)
            }));
            let ok = match r {
                Ok(Ok(v))
                    if Instant::now() <= deadline
                        && contract.validate_output(input.rows(), &v).is_ok() =>
                {
                    let d = divergence(contract, &used, &v);
                    metrics.shadow_divergence.observe(d);
                    stats.lock().divergence.push(d);
                    true
                }
                _ => false,
            };
            metrics.shadow(if ok {
                ShadowOutcome::Ok
            } else {
                ShadowOutcome::Failed
            });
            let mut g = guard.lock();
            if g.candidate_id == candidate_id
                && let Some(alarm) = g.guard.record_decision(!ok)
            {
                g.pending_alarm = Some(alarm.to_string());
                pending.store(true, Ordering::Release);
            }
        });
        if !spawned {
            self.metrics.shadow(ShadowOutcome::Skipped);
        }
    }

    // ---- operator commands -------------------------------------------------------------

    /// Loads `policy` as the candidate, replacing any previous candidate; the mode goes
    /// to `off` until the operator chooses shadow or canary. The policy must fit the slot
    /// and answer the golden inputs validly within the deadline (warm-up, off the hot
    /// path); otherwise it is refused and the running routing is untouched.
    pub fn load_candidate(&self, policy: Arc<dyn Policy>) -> Result<()> {
        check_fits(self.contract, policy.as_ref())?;
        let armed = Arc::new(Armed::new(policy));
        self.warm_up(&armed)?;
        let _c = self.control.lock();
        let cur = self.routing.load();
        let mut next = cur.next();
        next.candidate = Some(armed);
        next.candidate_id = self.next_candidate_id.fetch_add(1, Ordering::Relaxed) + 1;
        next.mode = Mode::Off;
        next.schedule = None;
        next.step = 0;
        next.salt = rand::random();
        self.commit(next, true)
    }

    fn warm_up(&self, armed: &Armed) -> Result<()> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5EED);
        for rows in WARMUP_ROWS {
            let input = self.slot.sample_input(rows, &mut rng);
            let deadline = Instant::now() + self.deadline;
            if let Err(reason) = self.call(armed, &input, deadline) {
                return Err(EngineError::WarmupFailed {
                    slot: self.slot,
                    policy: armed.answerer.to_string(),
                    reason: format!("{reason} on a golden input of {} rows", input.rows()),
                });
            }
        }
        Ok(())
    }

    /// Sets the mode. `shadow` and `canary` need a candidate. A manual mode change stops
    /// any step schedule. Raising the canary share keeps every key already on the
    /// candidate there (same salt).
    pub fn set_mode(&self, mode: Mode) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if mode != Mode::Off && cur.candidate.is_none() {
            return Err(self.refused("no candidate is loaded"));
        }
        if let Mode::Canary { basis_points } = mode
            && basis_points > FULL_SHARE_BP
        {
            return Err(self.refused("a canary share must be between 0 and 100%"));
        }
        let mut next = cur.next();
        next.mode = mode;
        next.schedule = None;
        next.step = 0;
        self.commit(next, true)
    }

    /// Starts a canary that climbs `schedule` while the guard holds.
    pub fn start_schedule(&self, schedule: StepSchedule) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if cur.candidate.is_none() {
            return Err(self.refused("no candidate is loaded"));
        }
        let first = schedule.step(0).unwrap_or(FULL_SHARE_BP);
        let mut next = cur.next();
        next.mode = Mode::Canary {
            basis_points: first,
        };
        next.schedule = Some(schedule);
        next.step = 0;
        self.guard.lock().step_decisions = 0;
        self.commit(next, true)
    }

    /// Makes the candidate the baseline; the rollout ends.
    pub fn promote(&self) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        let Some(candidate) = cur.candidate.clone() else {
            return Err(self.refused("no candidate to promote"));
        };
        let mut next = cur.next();
        next.baseline = Some(candidate);
        next.candidate = None;
        next.mode = Mode::Off;
        next.schedule = None;
        next.step = 0;
        self.commit(next, true)?;
        self.breaker.reset();
        self.metrics.circuit_open.set(0);
        Ok(())
    }

    /// Removes the candidate at once; the baseline answers every new decision.
    pub fn rollback(&self, reason: &str) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        if cur.candidate.is_none() {
            return Err(self.refused("no candidate to roll back"));
        }
        let next = rolled_back(&cur, format!("operator: {reason}"));
        self.metrics.rollbacks.inc();
        self.commit(next, true)
    }

    /// Puts the static policy back as the baseline (after a promoted model misbehaves).
    pub fn reset_baseline(&self) -> Result<()> {
        let _c = self.control.lock();
        let cur = self.routing.load();
        let mut next = cur.next();
        next.baseline = None;
        self.commit(next, true)?;
        self.breaker.reset();
        self.metrics.circuit_open.set(0);
        Ok(())
    }

    fn refused(&self, reason: &str) -> EngineError {
        EngineError::RolloutRefused {
            slot: self.slot,
            reason: reason.to_string(),
        }
    }

    /// Persists and publishes `next`. Called with the control lock held. When `strict`,
    /// a store failure refuses the change (operator commands); otherwise the change is
    /// applied anyway and the failure logged (the guard's rollbacks must never wait).
    fn commit(&self, next: Routing, strict: bool) -> Result<()> {
        if let Some(store) = &self.store
            && let Err(e) = store.save(&self.record(&next))
        {
            if strict {
                return Err(e);
            }
            tracing::error!(slot = %self.slot, error = %e, "cannot persist rollout state");
        }
        if next.candidate_id != self.routing.load().candidate_id {
            *self.guard.lock() = GuardCell {
                candidate_id: next.candidate_id,
                guard: Guard::new(self.guard_config.clone()),
                step_decisions: 0,
                pending_alarm: None,
            };
            *self.shadow.lock() = ShadowStats::default();
        }
        self.metrics
            .canary_share
            .set(next.mode.percent().map_or(0, |p| p.round() as i64));
        self.routing.store(Arc::new(next));
        Ok(())
    }

    fn record(&self, r: &Routing) -> RolloutRecord {
        RolloutRecord {
            format: RECORD_FORMAT,
            slot: self.slot,
            baseline: r.baseline.as_ref().map(|a| a.to_ref()),
            candidate: r.candidate.as_ref().map(|a| a.to_ref()),
            mode: r.mode,
            salt: r.salt,
            schedule: r.schedule.clone(),
            step: r.step,
            last_rollback: r.last_rollback.clone(),
            updated_at_ms: self.clock.unix_millis(),
        }
    }

    /// The slot's state for operators.
    pub fn status(&self) -> SlotStatus {
        self.apply_pending_rollback();
        let r = self.routing.load();
        let guard = r
            .candidate
            .as_ref()
            .map(|_| self.guard.lock().guard.snapshot());
        let totals = |arm| {
            let (decisions, fallbacks) = self.metrics.arm_totals(arm);
            ArmTotals {
                decisions,
                fallbacks,
            }
        };
        let (ok, failed, skipped) = self.metrics.shadow_totals();
        SlotStatus {
            slot: self.slot,
            mode: r.mode,
            baseline: r
                .baseline
                .as_ref()
                .map_or_else(|| self.static_answerer.clone(), |a| a.answerer.clone()),
            candidate: r.candidate.as_ref().map(|a| a.answerer.clone()),
            schedule: r.schedule.as_ref().map(|s| ScheduleStatus {
                steps_percent: s.steps_bp().iter().map(|&b| f64::from(b) / 100.0).collect(),
                step: r.step,
                min_decisions: s.min_decisions(),
            }),
            generation: r.generation,
            circuit_open: self.breaker.is_open(),
            circuit_trips: self.breaker.trips(),
            guard,
            last_rollback: r.last_rollback.clone(),
            deadline_us: self.deadline.as_micros().try_into().unwrap_or(u64::MAX),
            baseline_totals: totals(Arm::Baseline),
            candidate_totals: totals(Arm::Candidate),
            shadow: ShadowSummary {
                ok,
                failed,
                skipped,
                mean_divergence: self.shadow.lock().divergence.mean(),
            },
        }
    }
}

fn rolled_back(cur: &Routing, reason: String) -> Routing {
    let mut next = cur.next();
    next.candidate = None;
    next.mode = Mode::Off;
    next.schedule = None;
    next.step = 0;
    next.last_rollback = Some(reason);
    next
}

fn fault_reason(f: OutputFault) -> FallbackReason {
    match f {
        OutputFault::NonFinite { .. } => FallbackReason::NonFinite,
        OutputFault::WrongLength { .. } => FallbackReason::WrongLength,
        OutputFault::OutOfRange { .. } => FallbackReason::OutOfRange,
    }
}

/// How far a shadow answer is from the answer used, per slot:
/// `ordering`: the share of sampled pairs the two orders rank differently (0..1);
/// `anomaly`, `leader_health`: mean absolute difference of probabilities (0..1);
/// `batch_size`, `demand`: mean symmetric relative difference `|a-b| / max(|a|, |b|, 1)` (0..1).
pub fn divergence(contract: &SlotContract, used: &[f32], other: &[f32]) -> f64 {
    let n = used.len().min(other.len());
    if n == 0 {
        return 0.0;
    }
    match contract.slot {
        SlotKind::Ordering => {
            if n < 2 {
                return 0.0;
            }
            let pairs = n.min(4096);
            let mut discordant = 0usize;
            for k in 0..pairs {
                let i = k % n;
                let j = (k.wrapping_mul(7919).wrapping_add(1)) % n;
                if i == j {
                    continue;
                }
                let a = used[i].total_cmp(&used[j]);
                let b = other[i].total_cmp(&other[j]);
                if a != b {
                    discordant += 1;
                }
            }
            discordant as f64 / pairs as f64
        }
        SlotKind::Anomaly | SlotKind::LeaderHealth => {
            used.iter()
                .zip(other)
                .map(|(a, b)| f64::from((a - b).abs()))
                .sum::<f64>()
                / n as f64
        }
        SlotKind::BatchSize | SlotKind::Demand => {
            used.iter()
                .zip(other)
                .map(|(a, b)| f64::from((a - b).abs()) / f64::from(a.abs().max(b.abs()).max(1.0)))
                .sum::<f64>()
                / n as f64
        }
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

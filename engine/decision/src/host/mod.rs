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
//!
//! ## Where each part lives
//!
//! - `slot_host.rs`: the [`SlotHost`] struct, [`SlotHost::new`] and its accessors.
//! - `config.rs`: [`HostConfig`].
//! - `builder.rs`: [`SlotHostBuilder`], the contract check of a policy against the slot.
//! - `routing.rs`: the `Routing` value and the policies on its arms, the arm choice for
//!   a key (step 2), the routing after a rollback.
//! - `decide.rs`: [`SlotHost::decide`], steps 1 to 7 in order: shape check, breaker,
//!   static fallback, metrics.
//! - `call.rs`: a non-static policy's call under the deadline and the validation of its
//!   answer (steps 3 and 4).
//! - `breaker.rs`: the circuit breaker and [`BreakerConfig`].
//! - `watchdog.rs`: the worker threads that run watchdog-isolated calls and shadow runs.
//! - `guard.rs`: the candidate's guard and step schedule (step 5),
//!   [`SlotHost::observe_outcome`], the guard's rollbacks.
//! - `shadow.rs`: the shadow run (step 6), its statistics and [`divergence`].
//! - `warmup.rs`: the golden inputs a candidate answers at load, [`WARMUP_INPUTS`].
//! - `commands.rs`: the operator commands ([`SlotHost::load_candidate`],
//!   [`SlotHost::set_mode`], [`SlotHost::start_schedule`], [`SlotHost::promote`],
//!   [`SlotHost::rollback`], [`SlotHost::reset_baseline`]).
//! - `persist.rs`: each routing change saved to the rollout store and published, the
//!   record written, and its restore at build.
//! - `observer.rs`: the decision observer (step 7).
//! - `decision.rs`: what a decision returns ([`Decision`], [`DecisionTag`], [`Arm`],
//!   [`FallbackReason`], [`Answerer`]) and what the observer gets ([`DecisionRecord`]).
//! - `status.rs`: [`SlotHost::status`] and [`SlotStatus`] with its parts.
//!
//! [`Mode`]: crate::rollout::Mode
//! [`ArcSwap`]: arc_swap::ArcSwap
//! [`Isolation::Inline`]: crate::policy::Isolation::Inline
//! [`Guard`]: crate::rollout::Guard

mod breaker;
mod builder;
mod call;
mod commands;
mod config;
mod decide;
mod decision;
mod guard;
mod observer;
mod persist;
mod routing;
mod shadow;
mod slot_host;
mod status;
mod warmup;
mod watchdog;

pub use breaker::BreakerConfig;
pub use builder::SlotHostBuilder;
pub use config::HostConfig;
pub use decision::{
    Answerer, Arm, Decision, DecisionObserver, DecisionRecord, DecisionTag, FallbackReason,
    SLOT_EXPORT_COLUMNS,
};
pub use shadow::divergence;
pub use slot_host::SlotHost;
pub use status::{ArmTotals, ScheduleStatus, ShadowSummary, SlotStatus};
pub use warmup::WARMUP_INPUTS;

//! The slot conformance suite: written once, run against every backend.
//!
//! [`check`] takes a slot, a factory of the policy under test and what to expect of it,
//! and runs the same checks whatever the backend (static, ONNX, WASM, or the fault
//! injector of [`crate::fault`]):
//!
//! 1. **Contract**: the policy declares the slot and its schema version.
//! 2. **Direct answers** (for [`Expect::Answers`]): on golden inputs of several batch sizes
//!    the raw output passes the slot's output validation, and the same input gives the
//!    same output twice (determinism).
//! 3. **Through the host**: the policy is loaded as the candidate (warm-up included) at
//!    canary 100%, and decisions are taken from several threads at once. Every decision
//!    returns exactly one valid answer within the deadline (plus a scheduling slack far
//!    below any injected delay). A well-behaved policy answers them all itself; a
//!    misbehaving one is replaced by the static policy on each decision, with one of the
//!    expected fallback reasons in the tag and exactly the static policy's values.
//!
//! The backends' own test suites call [`check`]; `engine/decision/tests/conformance.rs` runs it for
//! the static policies and every fault of [`crate::fault::Fault`].

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::host::{Arm, BreakerConfig, FallbackReason, HostConfig, SlotHost};
use crate::policy::Policy;
use crate::rollout::{GuardConfig, Mode};
use crate::slot::{Rows, SlotKind};

/// What the suite expects of the policy under test.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Answers every decision itself, validly.
    Answers,
    /// Is replaced by the static policy on every decision (after warm-up), for one of
    /// these reasons.
    FallsBack(Vec<FallbackReason>),
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// Per-decision deadline of the host under test.
    pub deadline: Duration,
    /// Allowed lateness beyond the deadline (thread scheduling on a loaded machine).
    pub slack: Duration,
    /// Threads taking decisions at once.
    pub threads: usize,
    /// Decisions per thread.
    pub decisions_per_thread: usize,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(50),
            slack: Duration::from_millis(100),
            threads: 3,
            decisions_per_thread: 20,
        }
    }
}

/// What the run saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Decisions taken through the host.
    pub decisions: usize,
    /// Of which answered by the policy under test.
    pub answered_by_policy: usize,
    /// Of which answered by the static fallback.
    pub fallbacks: usize,
    /// Slowest decision.
    pub max_latency: Duration,
}

fn golden_rows(slot: SlotKind) -> &'static [usize] {
    match slot.contract().rows {
        Rows::Batch => &[1, 2, 17, 256],
        Rows::Single => &[1],
    }
}

/// Runs the suite. `make` builds a fresh instance of the policy under test.
/// Returns what it saw, or a description of the first violation.
pub fn check(
    slot: SlotKind,
    make: &dyn Fn() -> Arc<dyn Policy>,
    expect: &Expect,
    config: &SuiteConfig,
) -> Result<Report, String> {
    let contract = slot.contract();
    let policy = make();
    let info = policy.info().clone();
    if info.slot != slot {
        return Err(format!(
            "{} declares slot `{}`, expected `{slot}`",
            info.label(),
            info.slot
        ));
    }
    if info.schema_version != contract.schema_version {
        return Err(format!(
            "{} declares schema v{}, the slot uses v{}",
            info.label(),
            info.schema_version,
            contract.schema_version
        ));
    }

    let mut rng = SmallRng::seed_from_u64(0xC0F0);
    if matches!(expect, Expect::Answers) {
        for &rows in golden_rows(slot) {
            let input = slot.sample_input(rows, &mut rng);
            let far = Instant::now() + Duration::from_secs(5);
            let a = policy
                .evaluate(&input, far)
                .map_err(|e| format!("{}: error on {rows} rows: {e}", info.label()))?;
            contract
                .validate_output(input.rows(), &a)
                .map_err(|e| format!("{}: invalid output on {rows} rows: {e}", info.label()))?;
            let b = policy
                .evaluate(&input, far)
                .map_err(|e| format!("{}: error on repeat: {e}", info.label()))?;
            if a.iter()
                .map(|v| v.to_bits())
                .ne(b.iter().map(|v| v.to_bits()))
            {
                return Err(format!(
                    "{}: not deterministic on {rows} rows",
                    info.label()
                ));
            }
        }
    }

    // Through the host, as a canary candidate at 100%.
    let host = Arc::new(
        SlotHost::new(
            slot,
            HostConfig {
                deadline: Some(config.deadline),
                // The suite checks per-decision behaviour; the breaker has its own tests.
                breaker: BreakerConfig {
                    failure_threshold: u32::MAX,
                    cooldown: Duration::from_secs(1),
                },
                // Likewise the guard: no rollback part-way through the run.
                guard: GuardConfig {
                    min_decisions: u64::MAX,
                    ..GuardConfig::default()
                },
                ..HostConfig::default()
            },
        )
        .map_err(|e| e.to_string())?,
    );
    let fresh = make();
    host.load_candidate(fresh)
        .map_err(|e| format!("{}: refused at load: [{}] {e}", info.label(), e.code()))?;
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .map_err(|e| e.to_string())?;
    let fallback = slot.static_policy();

    let handles: Vec<_> = (0..config.threads)
        .map(|t| {
            let host = host.clone();
            let fallback = fallback.clone();
            let expect = expect.clone();
            let config = config.clone();
            let label = info.label();
            thread::spawn(move || -> Result<Report, String> {
                let mut rng = SmallRng::seed_from_u64(0xD0 + t as u64);
                let mut rep = Report::default();
                for i in 0..config.decisions_per_thread {
                    let rows = golden_rows(slot)[i % golden_rows(slot).len()];
                    let input = slot.sample_input(rows, &mut rng);
                    let key = (t * 1_000_000 + i) as u64;
                    let d = host
                        .decide(key, &input)
                        .map_err(|e| format!("decision refused: [{}] {e}", e.code()))?;
                    rep.decisions += 1;
                    rep.max_latency = rep.max_latency.max(d.latency);
                    if d.latency > config.deadline + config.slack {
                        return Err(format!(
                            "{label}: a decision took {:?}, deadline {:?}",
                            d.latency, config.deadline
                        ));
                    }
                    slot.contract()
                        .validate_output(input.rows(), &d.values)
                        .map_err(|e| {
                            format!("{label}: the host returned an invalid answer: {e}")
                        })?;
                    if d.tag.arm != Arm::Candidate {
                        return Err(format!(
                            "{label}: key {key} not routed to the candidate at 100%"
                        ));
                    }
                    match (&expect, d.tag.fallback) {
                        (Expect::Answers, None) => rep.answered_by_policy += 1,
                        (Expect::Answers, Some(r)) => {
                            return Err(format!("{label}: fell back ({r}) but should answer"));
                        }
                        (Expect::FallsBack(_), None) => {
                            return Err(format!(
                                "{label}: answered by {} but should fall back",
                                d.tag.answered_by
                            ));
                        }
                        (Expect::FallsBack(reasons), Some(r)) => {
                            if !reasons.contains(&r) {
                                return Err(format!(
                                    "{label}: fell back for `{r}`, expected one of {reasons:?}"
                                ));
                            }
                            let far = Instant::now() + Duration::from_secs(5);
                            let want = fallback.evaluate(&input, far).map_err(|e| e.to_string())?;
                            if want
                                .iter()
                                .map(|v| v.to_bits())
                                .ne(d.values.iter().map(|v| v.to_bits()))
                            {
                                return Err(format!(
                                    "{label}: fallback values differ from the static policy's"
                                ));
                            }
                            rep.fallbacks += 1;
                        }
                    }
                }
                Ok(rep)
            })
        })
        .collect();
    let mut total = Report::default();
    for h in handles {
        let rep = h
            .join()
            .map_err(|_| "a decision thread panicked".to_string())??;
        total.decisions += rep.decisions;
        total.answered_by_policy += rep.answered_by_policy;
        total.fallbacks += rep.fallbacks;
        total.max_latency = total.max_latency.max(rep.max_latency);
    }
    let expected = config.threads * config.decisions_per_thread;
    if total.decisions != expected {
        return Err(format!(
            "{} decisions returned, {expected} taken",
            total.decisions
        ));
    }
    let st = host.status();
    let counted = st.candidate_totals.decisions as usize;
    if counted != expected || st.candidate_totals.fallbacks as usize != total.fallbacks {
        return Err(format!(
            "metrics counted {counted} decisions and {} fallbacks; {expected} and {} were taken",
            st.candidate_totals.fallbacks, total.fallbacks
        ));
    }
    Ok(total)
}

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
//!    canary 100% on a host with the slot contract's deadline, and decisions are taken from
//!    several threads at once. Every decision returns exactly one valid answer. A
//!    well-behaved policy answers them itself; a misbehaving one is replaced by the static
//!    policy on each decision, with one of the expected fallback reasons in the tag and
//!    exactly the static policy's values.
//!
//! The deadline is never widened for a loaded machine; lateness is counted instead. A
//! decision is *late* when it returns after the deadline, and *timed out* when the static
//! policy answered it because the policy under test ran out of time
//! ([`FallbackReason::Timeout`] or [`FallbackReason::Busy`]) where another outcome was
//! expected. Each timed-out decision must carry the static policy's values and a latency of
//! at least the host's cut-off (the deadline less the fallback reserve): the late answer is
//! never used and the reason is never given early. At least [`SuiteConfig::min_on_time`] of
//! the decisions must return within the deadline, and at least as many must have the
//! expected outcome. Likewise a load refused because the warm-up ran out of time is counted
//! and tried again ([`load_candidate`]); any other refusal fails the run.
//!
//! The backends' own test suites call [`check`]; `engine/decision/tests/conformance.rs` runs it for
//! the static policies and every fault of [`crate::fault::Fault`].

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::error::EngineError;
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
    /// Per-decision deadline of the host under test; `None` takes the slot contract's
    /// deadline.
    pub deadline: Option<Duration>,
    /// Share of the decisions (0..=1) that must return within the deadline, and share that
    /// must have the expected outcome; the rest may be late or timed out (see the module
    /// docs).
    pub min_on_time: f64,
    /// Threads taking decisions at once.
    pub threads: usize,
    /// Decisions per thread.
    pub decisions_per_thread: usize,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            deadline: None,
            min_on_time: 0.8,
            threads: 3,
            decisions_per_thread: 40,
        }
    }
}

/// What the run saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The host's per-decision deadline.
    pub deadline: Duration,
    /// Decisions taken through the host.
    pub decisions: usize,
    /// Of which answered by the policy under test.
    pub answered_by_policy: usize,
    /// Of which answered by the static fallback for an expected reason.
    pub fallbacks: usize,
    /// Of which answered by the static fallback because the policy under test ran out of
    /// time where another outcome was expected.
    pub timed_out: usize,
    /// Decisions that returned after the deadline (whoever answered them).
    pub late: usize,
    /// Slowest decision.
    pub max_latency: Duration,
    /// Loads of the policy refused because its warm-up ran out of time, before the one
    /// that was accepted (see [`load_candidate`]).
    pub warmups_out_of_time: usize,
}

impl Report {
    fn add(&mut self, other: &Report) {
        self.decisions += other.decisions;
        self.answered_by_policy += other.answered_by_policy;
        self.fallbacks += other.fallbacks;
        self.timed_out += other.timed_out;
        self.late += other.late;
        self.max_latency = self.max_latency.max(other.max_latency);
    }
}

/// Loads of a policy [`load_candidate`] makes at most.
pub const LOAD_ATTEMPTS: usize = 5;

/// Whether `e` refused a policy because a warm-up call ran out of time (a timeout, or no
/// idle watchdog worker) rather than for its answer.
pub fn warm_up_out_of_time(e: &EngineError) -> bool {
    let EngineError::WarmupFailed { reason, .. } = e else {
        return false;
    };
    [FallbackReason::Timeout, FallbackReason::Busy]
        .iter()
        .any(|r| reason.starts_with(&format!("{} ", r.as_str())))
}

/// Loads a fresh policy from `make` as the candidate of `host`. A load refused because the
/// warm-up ran out of time (on a loaded machine a watchdog worker, a fresh one above all, can
/// wait longer than the deadline to be scheduled) is counted and tried again with another
/// fresh policy after a pause (one deadline, doubling at each refusal), up to
/// [`LOAD_ATTEMPTS`] loads in all; any other refusal is returned at once. Returns the loads
/// refused for lack of time before the accepted one.
pub fn load_candidate(
    host: &SlotHost,
    make: &dyn Fn() -> Arc<dyn Policy>,
) -> Result<usize, EngineError> {
    let mut out_of_time = 0;
    loop {
        match host.load_candidate(make()) {
            Ok(()) => return Ok(out_of_time),
            Err(e) if warm_up_out_of_time(&e) && out_of_time + 1 < LOAD_ATTEMPTS => {
                thread::sleep(host.deadline() * (1u32 << out_of_time));
                out_of_time += 1;
            }
            Err(e) => return Err(e),
        }
    }
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
    let host_config = HostConfig {
        deadline: config.deadline,
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
    };
    let reserve = host_config.fallback_reserve;
    let host = Arc::new(SlotHost::new(slot, host_config).map_err(|e| e.to_string())?);
    let deadline = host.deadline();
    // When the host stops waiting for a non-static policy.
    let cut_off = deadline - reserve.unwrap_or(deadline / 10).min(deadline);
    let warmups_out_of_time = load_candidate(&host, make)
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
                    if d.latency > deadline {
                        rep.late += 1;
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
                    let Some(reason) = d.tag.fallback else {
                        if let Expect::FallsBack(_) = &expect {
                            return Err(format!(
                                "{label}: answered by {} but should fall back",
                                d.tag.answered_by
                            ));
                        }
                        rep.answered_by_policy += 1;
                        continue;
                    };
                    let far = Instant::now() + Duration::from_secs(5);
                    let want = fallback.evaluate(&input, far).map_err(|e| e.to_string())?;
                    if want
                        .iter()
                        .map(|v| v.to_bits())
                        .ne(d.values.iter().map(|v| v.to_bits()))
                    {
                        return Err(format!(
                            "{label}: fell back ({reason}) with values that differ from the \
                             static policy's"
                        ));
                    }
                    match &expect {
                        Expect::FallsBack(reasons) if reasons.contains(&reason) => {
                            rep.fallbacks += 1;
                        }
                        _ if matches!(reason, FallbackReason::Timeout | FallbackReason::Busy) => {
                            if d.latency < cut_off {
                                return Err(format!(
                                    "{label}: fell back for `{reason}` after {:?}, before the \
                                     host's cut-off at {cut_off:?}",
                                    d.latency
                                ));
                            }
                            rep.timed_out += 1;
                        }
                        Expect::Answers => {
                            return Err(format!("{label}: fell back ({reason}) but should answer"));
                        }
                        Expect::FallsBack(reasons) => {
                            return Err(format!(
                                "{label}: fell back for `{reason}`, expected one of {reasons:?}"
                            ));
                        }
                    }
                }
                Ok(rep)
            })
        })
        .collect();
    let mut total = Report {
        deadline,
        warmups_out_of_time,
        ..Report::default()
    };
    for h in handles {
        let rep = h
            .join()
            .map_err(|_| "a decision thread panicked".to_string())??;
        total.add(&rep);
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
    let fell_back = total.fallbacks + total.timed_out;
    if counted != expected || st.candidate_totals.fallbacks as usize != fell_back {
        return Err(format!(
            "metrics counted {counted} decisions and {} fallbacks; {expected} and {fell_back} \
             were taken",
            st.candidate_totals.fallbacks
        ));
    }
    let needed = (config.min_on_time * expected as f64).ceil() as usize;
    let on_time = total.decisions - total.late;
    if on_time < needed {
        return Err(format!(
            "{}: {on_time} of {expected} decisions returned within the {deadline:?} deadline, \
             at least {needed} must: {total:?}",
            info.label()
        ));
    }
    let as_expected = total.decisions - total.timed_out;
    if as_expected < needed {
        return Err(format!(
            "{}: {as_expected} of {expected} decisions had the expected outcome, at least \
             {needed} must ({} timed out): {total:?}",
            info.label(),
            total.timed_out
        ));
    }
    Ok(total)
}

/// Settings of [`check_rollback`].
#[derive(Clone, Debug)]
pub struct RollbackConfig {
    /// Threads taking decisions at once.
    pub threads: usize,
    /// Pause of each thread between two decisions.
    pub pause: Duration,
    /// Time from canary 100% by which the guard must have rolled the candidate back.
    pub rolled_back_within: Duration,
    /// How long the threads keep deciding once the rollback is seen.
    pub serve_after: Duration,
    /// Share of the decisions (0..=1) that must return within the deadline.
    pub min_on_time: f64,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        Self {
            threads: 3,
            pause: Duration::from_millis(5),
            rolled_back_within: Duration::from_secs(2),
            serve_after: Duration::from_millis(500),
            min_on_time: 0.9,
        }
    }
}

/// What [`check_rollback`] saw.
#[derive(Clone, Debug, Default)]
pub struct RollbackReport {
    /// The host's per-decision deadline.
    pub deadline: Duration,
    /// Time from canary 100% to the rollback in the host's status.
    pub rolled_back_after: Duration,
    /// The rollback's reason in the host's status.
    pub reason: String,
    /// Candidate decisions the guard had counted when it fired (all failures).
    pub guard_decisions: u64,
    /// Decisions routed to the candidate.
    pub candidate_decisions: usize,
    /// Of which answered by the static policy for one of the expected reasons.
    pub expected_fallbacks: usize,
    /// Of which answered by the static policy because the open breaker held the candidate
    /// off.
    pub circuit_open: usize,
    /// Of which answered by the static policy because the candidate ran out of time where
    /// another reason was expected.
    pub timed_out: usize,
    /// Decisions routed to the baseline (the static policy) after the rollback.
    pub baseline_decisions: usize,
    /// Decisions that returned after the deadline.
    pub late: usize,
    /// Load attempts refused because the warm-up ran out of time (see [`load_candidate`]).
    pub warmups_out_of_time: usize,
}

impl RollbackReport {
    fn add(&mut self, other: &RollbackReport) {
        self.candidate_decisions += other.candidate_decisions;
        self.expected_fallbacks += other.expected_fallbacks;
        self.circuit_open += other.circuit_open;
        self.timed_out += other.timed_out;
        self.baseline_decisions += other.baseline_decisions;
        self.late += other.late;
    }
}

/// A candidate that passes warm-up and then fails every decision, on a host with the slot
/// contract's deadline and the default breaker and guard, at canary 100%.
///
/// `make` builds the candidate; `input` builds the input of each decision after warm-up
/// (its arguments: the decision's number within its thread, and the thread's generator),
/// on which the candidate fails for one of `reasons`. Decisions are taken from several
/// threads until the guard's rollback shows in the host's status (which must happen within
/// [`RollbackConfig::rolled_back_within`]) and for [`RollbackConfig::serve_after`] more.
/// Checked:
///
/// - every decision returns a valid answer; a decision routed to the candidate is answered
///   by the static policy with its values, for one of `reasons`, for the open breaker
///   ([`FallbackReason::CircuitOpen`]), or for lack of time (`timeout` or `busy`, never
///   before the host's cut-off); a decision routed to the baseline is the static policy's
///   own answer, and once a thread sees the baseline it never sees the candidate again;
/// - at least one candidate decision fell back for one of `reasons`;
/// - the status shows the rollback: no candidate, mode `off`, the breaker closed, and a
///   reason naming the guard's failure rate (every counted decision a failure) and the
///   candidate;
/// - the host's per-arm totals match the decisions taken;
/// - at least [`RollbackConfig::min_on_time`] of the decisions return within the deadline;
/// - a decision taken after the run is the static policy's.
pub fn check_rollback(
    slot: SlotKind,
    make: &dyn Fn() -> Arc<dyn Policy>,
    input: &(dyn Fn(usize, &mut SmallRng) -> crate::features::FeatureMatrix + Sync),
    reasons: &[FallbackReason],
    config: &RollbackConfig,
) -> Result<RollbackReport, String> {
    use std::sync::atomic::{AtomicBool, Ordering};

    let host = SlotHost::new(slot, HostConfig::default()).map_err(|e| e.to_string())?;
    let deadline = host.deadline();
    let cut_off = deadline - deadline / 10;
    let label = make().info().label();
    let warmups_out_of_time = load_candidate(&host, make)
        .map_err(|e| format!("{label}: refused at load: [{}] {e}", e.code()))?;
    let fallback = slot.static_policy();
    let static_label = fallback.info().label();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .map_err(|e| e.to_string())?;

    let run = thread::scope(|s| {
        let threads: Vec<_> = (0..config.threads)
            .map(|t| {
                let (host, fallback, stop) = (&host, &fallback, &stop);
                let (label, static_label) = (&label, &static_label);
                s.spawn(move || -> Result<RollbackReport, String> {
                    let mut rng = SmallRng::seed_from_u64(0xFA11 + t as u64);
                    let mut rep = RollbackReport::default();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let x = input(i, &mut rng);
                        let key = (t * 1_000_000_000 + i) as u64;
                        i += 1;
                        let d = host
                            .decide(key, &x)
                            .map_err(|e| format!("decision refused: [{}] {e}", e.code()))?;
                        if d.latency > deadline {
                            rep.late += 1;
                        }
                        slot.contract()
                            .validate_output(x.rows(), &d.values)
                            .map_err(|e| format!("{label}: an invalid answer: {e}"))?;
                        let far = Instant::now() + Duration::from_secs(5);
                        let want = fallback.evaluate(&x, far).map_err(|e| e.to_string())?;
                        if want
                            .iter()
                            .map(|v| v.to_bits())
                            .ne(d.values.iter().map(|v| v.to_bits()))
                        {
                            return Err(format!(
                                "{label}: {:?} answered with values that differ from the \
                                 static policy's",
                                d.tag
                            ));
                        }
                        if d.tag.arm == Arm::Baseline {
                            if d.tag.fallback.is_some()
                                || d.tag.answered_by.to_string() != *static_label
                            {
                                return Err(format!(
                                    "{label}: the baseline decision is {:?}",
                                    d.tag
                                ));
                            }
                            rep.baseline_decisions += 1;
                        } else {
                            if rep.baseline_decisions > 0 {
                                return Err(format!(
                                    "{label}: routed to the candidate after the rollback"
                                ));
                            }
                            rep.candidate_decisions += 1;
                            match d.tag.fallback {
                                Some(r) if reasons.contains(&r) => rep.expected_fallbacks += 1,
                                Some(FallbackReason::CircuitOpen) => rep.circuit_open += 1,
                                Some(r @ (FallbackReason::Timeout | FallbackReason::Busy)) => {
                                    if d.latency < cut_off {
                                        return Err(format!(
                                            "{label}: fell back for `{r}` after {:?}, before \
                                             the host's cut-off at {cut_off:?}",
                                            d.latency
                                        ));
                                    }
                                    rep.timed_out += 1;
                                }
                                other => {
                                    return Err(format!(
                                        "{label}: a candidate decision tagged {other:?}, \
                                         expected one of {reasons:?}"
                                    ));
                                }
                            }
                        }
                        thread::sleep(config.pause);
                    }
                    Ok(rep)
                })
            })
            .collect();
        let rolled_back = loop {
            if let Some(why) = host.status().last_rollback {
                break Some((start.elapsed(), why));
            }
            if start.elapsed() > config.rolled_back_within
                || threads.iter().any(|h| h.is_finished())
            {
                break None;
            }
            thread::sleep(Duration::from_millis(2));
        };
        if rolled_back.is_some() {
            thread::sleep(config.serve_after);
        }
        stop.store(true, Ordering::Relaxed);
        let mut total = RollbackReport::default();
        for h in threads {
            let rep = h
                .join()
                .map_err(|_| "a decision thread panicked".to_string())??;
            if rolled_back.is_some() && rep.baseline_decisions == 0 {
                return Err(format!(
                    "{label}: a thread saw no decision on the baseline after the rollback"
                ));
            }
            total.add(&rep);
        }
        let (after, reason) = rolled_back.ok_or_else(|| {
            format!(
                "{label}: not rolled back within {:?}: {total:?}",
                config.rolled_back_within
            )
        })?;
        total.rolled_back_after = after;
        total.reason = reason;
        Ok::<_, String>(total)
    })?;
    let mut rep = RollbackReport {
        deadline,
        warmups_out_of_time,
        ..run
    };

    let st = host.status();
    if st.candidate.is_some() || st.mode != Mode::Off || st.circuit_open {
        return Err(format!(
            "{label}: after the rollback the status shows candidate {:?}, mode {}, circuit \
             open {}",
            st.candidate, st.mode, st.circuit_open
        ));
    }
    let counted = rep
        .reason
        .strip_prefix("guard: failure rate ")
        .and_then(|r| r.split_once(' '))
        .and_then(|(rate, _)| rate.split_once('/'))
        .and_then(|(k, n)| Some((k.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
    match counted {
        Some((k, n)) if k == n && rep.reason.ends_with(&format!("({label})")) => {
            rep.guard_decisions = n;
        }
        _ => {
            return Err(format!(
                "{label}: the rollback reason is `{}`, expected the guard's failure rate with \
                 every decision failed",
                rep.reason
            ));
        }
    }
    let (c, b) = (&st.candidate_totals, &st.baseline_totals);
    if c.decisions as usize != rep.candidate_decisions
        || c.fallbacks as usize != rep.candidate_decisions
        || b.decisions as usize != rep.baseline_decisions
        || b.fallbacks != 0
    {
        return Err(format!(
            "{label}: the host counted {c:?} on the candidate and {b:?} on the baseline: {rep:?}"
        ));
    }
    if rep.expected_fallbacks == 0 {
        return Err(format!(
            "{label}: no candidate decision fell back for one of {reasons:?}: {rep:?}"
        ));
    }
    let decisions = rep.candidate_decisions + rep.baseline_decisions;
    let needed = (config.min_on_time * decisions as f64).ceil() as usize;
    if decisions - rep.late < needed {
        return Err(format!(
            "{label}: {} of {decisions} decisions returned within the {deadline:?} deadline, \
             at least {needed} must: {rep:?}",
            decisions - rep.late
        ));
    }
    let mut rng = SmallRng::seed_from_u64(0xFA11_00FF);
    let x = input(0, &mut rng);
    let d = host
        .decide(u64::MAX, &x)
        .map_err(|e| format!("decision refused: [{}] {e}", e.code()))?;
    if d.tag.arm != Arm::Baseline
        || d.tag.fallback.is_some()
        || d.tag.answered_by.to_string() != static_label
    {
        return Err(format!(
            "{label}: after the rollback a decision is {:?}",
            d.tag
        ));
    }
    Ok(rep)
}

//! The policy host's rollout behaviour: routing, schedule, guard, breaker, shadow, swaps,
//! persistence and metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aurigraph_decision::clock::ManualClock;
use aurigraph_decision::fault::{Fault, FaultyPolicy};
use aurigraph_decision::host::{BreakerConfig, WARMUP_INPUTS};
use aurigraph_decision::metrics::EngineMetrics;
use aurigraph_decision::policy::Variant;
use aurigraph_decision::rollout::{
    FileStore, GuardConfig, MemoryStore, Mode, PolicyRef, PolicyResolver, StepSchedule,
};
use aurigraph_decision::slot::demand;
use aurigraph_decision::{
    Arm, FallbackReason, FeatureMatrix, HostConfig, Policy, PolicyError, PolicyInfo, ResolveError,
    SlotHost, SlotKind,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn input(slot: SlotKind, rows: usize, seed: u64) -> FeatureMatrix {
    slot.sample_input(rows, &mut SmallRng::seed_from_u64(seed))
}

/// Timing is the subject of the conformance suite, not of these tests: a generous deadline
/// keeps preemption on a loaded two-core machine from turning into timeouts here.
fn relaxed() -> HostConfig {
    HostConfig {
        deadline: Some(Duration::from_secs(1)),
        ..HostConfig::default()
    }
}

fn variant(slot: SlotKind, name: &str) -> Arc<dyn Policy> {
    Arc::new(Variant::new(slot.static_policy(), name, "2"))
}

fn flaky(slot: SlotKind, fault: Fault, rate: f64) -> Arc<dyn Policy> {
    Arc::new(
        FaultyPolicy::new(slot.static_policy(), fault)
            .with_rate(rate)
            .after_calls(WARMUP_INPUTS as u64),
    )
}

#[test]
fn static_baseline_answers_and_tags() {
    let host = SlotHost::new(SlotKind::Ordering, relaxed()).unwrap();
    let d = host.decide(1, &input(SlotKind::Ordering, 32, 1)).unwrap();
    assert_eq!(d.values.len(), 32);
    assert_eq!(d.tag.arm, Arm::Baseline);
    assert_eq!(d.tag.answered_by.backend.as_str(), "static");
    assert_eq!(d.tag.fallback, None);
}

#[test]
fn a_bad_input_shape_is_a_clear_error_and_the_host_keeps_serving() {
    let host = SlotHost::new(SlotKind::Anomaly, HostConfig::default()).unwrap();
    let f = SlotKind::Anomaly.contract().feature_count();
    let wrong = FeatureMatrix::new(2, f + 1, vec![0.0; 2 * (f + 1)]).unwrap();
    let err = host.decide(1, &wrong).unwrap_err();
    assert_eq!(err.code(), "E_INVALID_INPUT");
    let empty = FeatureMatrix::new(0, f, vec![]).unwrap();
    assert_eq!(
        host.decide(1, &empty).unwrap_err().code(),
        "E_INVALID_INPUT"
    );
    let single = SlotHost::new(SlotKind::BatchSize, HostConfig::default()).unwrap();
    let two = input(SlotKind::Ordering, 2, 1);
    assert_eq!(
        single.decide(1, &two).unwrap_err().code(),
        "E_INVALID_INPUT"
    );
    assert!(host.decide(2, &input(SlotKind::Anomaly, 4, 2)).is_ok());
}

#[test]
fn operator_commands_without_a_candidate_are_refused() {
    let host = SlotHost::new(SlotKind::Demand, relaxed()).unwrap();
    for r in [
        host.set_mode(Mode::Shadow),
        host.set_mode(Mode::Canary { basis_points: 500 }),
        host.promote(),
        host.rollback("why not"),
        host.start_schedule(StepSchedule::from_percents(&[5.0], 10).unwrap()),
    ] {
        assert_eq!(r.unwrap_err().code(), "E_ROLLOUT_REFUSED");
    }
    host.load_candidate(variant(SlotKind::Demand, "holt-b"))
        .unwrap();
    assert_eq!(
        host.set_mode(Mode::Canary {
            basis_points: 10_001
        })
        .unwrap_err()
        .code(),
        "E_ROLLOUT_REFUSED"
    );
}

#[test]
fn canary_routes_by_key_and_rollback_is_immediate() {
    let slot = SlotKind::BatchSize;
    let host = SlotHost::new(slot, relaxed()).unwrap();
    host.load_candidate(variant(slot, "qd-fast")).unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 3_000,
    })
    .unwrap();
    let x = input(slot, 1, 3);
    let arms: Vec<Arm> = (0..2_000)
        .map(|k| host.decide(k, &x).unwrap().tag.arm)
        .collect();
    let share = arms.iter().filter(|a| **a == Arm::Candidate).count() as f64 / 2_000.0;
    assert!((share - 0.30).abs() < 0.05, "share {share}");
    // The same key lands on the same arm every time.
    for k in 0..200 {
        assert_eq!(host.decide(k, &x).unwrap().tag.arm, arms[k as usize]);
    }
    for k in (0..2_000)
        .filter(|k| arms[*k as usize] == Arm::Candidate)
        .take(5)
    {
        assert_eq!(
            host.decide(k, &x).unwrap().tag.answered_by.name.as_ref(),
            "qd-fast"
        );
    }
    host.rollback("operator test").unwrap();
    for k in 0..2_000 {
        let d = host.decide(k, &x).unwrap();
        assert_eq!(d.tag.arm, Arm::Baseline);
        assert_eq!(d.tag.answered_by.name.as_ref(), "queue-depth");
    }
    let st = host.status();
    assert_eq!(st.mode, Mode::Off);
    assert!(st.candidate.is_none());
    assert!(st.last_rollback.unwrap().contains("operator test"));
}

#[test]
fn promote_makes_the_candidate_the_baseline() {
    let slot = SlotKind::Demand;
    let host = SlotHost::new(slot, relaxed()).unwrap();
    host.load_candidate(variant(slot, "holt-b")).unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 5_000,
    })
    .unwrap();
    host.promote().unwrap();
    let st = host.status();
    assert_eq!(st.baseline.name.as_ref(), "holt-b");
    assert!(st.candidate.is_none());
    let d = host.decide(9, &input(slot, 1, 9)).unwrap();
    assert_eq!(
        (d.tag.arm, d.tag.answered_by.name.as_ref()),
        (Arm::Baseline, "holt-b")
    );
    host.reset_baseline().unwrap();
    let d = host.decide(9, &input(slot, 1, 9)).unwrap();
    assert_eq!(d.tag.answered_by.name.as_ref(), "holt");
}

#[test]
fn the_step_schedule_climbs_while_the_guard_holds() {
    let slot = SlotKind::Ordering;
    let host = SlotHost::new(slot, relaxed()).unwrap();
    host.load_candidate(variant(slot, "fee-b")).unwrap();
    host.start_schedule(StepSchedule::from_percents(&[5.0, 25.0, 50.0, 100.0], 40).unwrap())
        .unwrap();
    let x = input(slot, 8, 4);
    let mut seen = vec![];
    for k in 0..20_000u64 {
        host.decide(k, &x).unwrap();
        let m = host.status().mode;
        if seen.last() != Some(&m) {
            seen.push(m);
        }
        if m == (Mode::Canary {
            basis_points: 10_000,
        }) {
            break;
        }
    }
    let bps: Vec<u32> = seen
        .iter()
        .map(|m| match m {
            Mode::Canary { basis_points } => *basis_points,
            _ => 0,
        })
        .collect();
    assert_eq!(bps, vec![500, 2_500, 5_000, 10_000]);
    let st = host.status();
    assert_eq!(st.schedule.unwrap().step, 3);
    assert!(st.guard.unwrap().alarm.is_none());
}

#[test]
fn the_guard_rolls_back_a_candidate_failing_five_percent_of_decisions() {
    let slot = SlotKind::Anomaly;
    let metrics = EngineMetrics::default();
    let host = SlotHost::builder(slot)
        .config(HostConfig {
            breaker: BreakerConfig {
                failure_threshold: 1_000,
                ..BreakerConfig::default()
            },
            ..relaxed()
        })
        .metrics(metrics.clone())
        .build()
        .unwrap();
    host.load_candidate(flaky(slot, Fault::Error, 0.05))
        .unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let x = input(slot, 4, 5);
    let mut rolled_back_at = None;
    for k in 0..20_000u64 {
        let d = host.decide(k, &x).unwrap();
        if d.tag.arm == Arm::Baseline {
            rolled_back_at = Some(k);
            break;
        }
    }
    let at = rolled_back_at.expect("the guard must roll a 5% failing candidate back");
    let st = host.status();
    assert_eq!(st.mode, Mode::Off);
    assert!(st.candidate.is_none());
    let why = st.last_rollback.unwrap();
    assert!(why.starts_with("guard: failure rate"), "{why}");
    // Before the minimum of decisions only conclusive evidence (e-value >= 1/α²) fires.
    let e_value: f64 = why
        .split("e-value ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|v| v.parse().ok())
        .expect("the alarm names its e-value");
    let alpha = GuardConfig::default().failure_alpha;
    if at < GuardConfig::default().min_decisions {
        assert!(e_value >= 1.0 / (alpha * alpha), "{why} after {at}");
    } else {
        assert!(e_value >= 1.0 / alpha, "{why} after {at}");
    }
    assert!(
        metrics
            .encode_text()
            .contains("aurigraph_policy_rollbacks_total{slot=\"anomaly\"} 1")
    );
}

#[test]
fn the_guard_keeps_a_candidate_failing_well_under_one_percent() {
    let slot = SlotKind::Anomaly;
    let host = SlotHost::new(slot, relaxed()).unwrap();
    host.load_candidate(flaky(slot, Fault::Error, 0.001))
        .unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let x = input(slot, 2, 6);
    for k in 0..10_000u64 {
        host.decide(k, &x).unwrap();
    }
    let st = host.status();
    assert!(
        st.candidate.is_some(),
        "rolled back: {:?}",
        st.last_rollback
    );
    let g = st.guard.unwrap();
    assert_eq!(g.decisions, 10_000);
    assert!(g.failures > 0 && g.failures < 30, "{}", g.failures);
    assert!(st.candidate_totals.fallbacks == g.failures);
}

#[test]
fn the_guard_rolls_back_on_key_metric_regression() {
    let slot = SlotKind::BatchSize;
    let host = SlotHost::new(slot, relaxed()).unwrap();
    host.load_candidate(variant(slot, "qd-b")).unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 5_000,
    })
    .unwrap();
    let mut rng = SmallRng::seed_from_u64(11);
    for i in 0..5_000 {
        host.observe_outcome(Arm::Baseline, 100.0 + rng.random_range(-10.0..10.0));
        host.observe_outcome(Arm::Candidate, 140.0 + rng.random_range(-10.0..10.0));
        if host.status().candidate.is_none() {
            assert!(i >= 99, "needs the minimum samples first");
            let why = host.status().last_rollback.unwrap();
            assert!(why.contains("key metric regressed"), "{why}");
            return;
        }
    }
    panic!("a 40% regression was not rolled back");
}

#[test]
fn the_breaker_opens_cools_down_and_probes() {
    let slot = SlotKind::LeaderHealth;
    let clock = ManualClock::new();
    let host = SlotHost::builder(slot)
        .config(HostConfig {
            deadline: Some(Duration::from_secs(1)),
            breaker: BreakerConfig {
                failure_threshold: 5,
                cooldown: Duration::from_secs(30),
            },
            guard: GuardConfig {
                min_decisions: u64::MAX,
                ..GuardConfig::default()
            },
            ..HostConfig::default()
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    host.load_candidate(flaky(slot, Fault::Error, 1.0)).unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let x = input(slot, 1, 7);
    let reasons: Vec<_> = (0..8)
        .map(|k| host.decide(k, &x).unwrap().tag.fallback)
        .collect();
    assert_eq!(reasons[..5], [Some(FallbackReason::Error); 5]);
    assert_eq!(reasons[5..], [Some(FallbackReason::CircuitOpen); 3]);
    assert!(host.status().circuit_open);
    clock.advance(Duration::from_secs(31));
    // One probe goes through (and fails), then the breaker is open again.
    assert_eq!(
        host.decide(100, &x).unwrap().tag.fallback,
        Some(FallbackReason::Error)
    );
    assert_eq!(
        host.decide(101, &x).unwrap().tag.fallback,
        Some(FallbackReason::CircuitOpen)
    );
    assert_eq!(host.status().circuit_trips, 2);
    // The operator rolls back; the baseline (static) answers without the breaker.
    host.rollback("broken").unwrap();
    assert_eq!(host.decide(102, &x).unwrap().tag.fallback, None);
}

#[test]
fn shadow_runs_the_candidate_off_the_hot_path_and_never_uses_it() {
    let slot = SlotKind::Demand;
    let host = SlotHost::new(slot, relaxed()).unwrap();
    let slow = demand::Holt::with_params(demand::HoltParams {
        alpha: 0.1,
        beta: 0.05,
    })
    .unwrap();
    host.load_candidate(Arc::new(Variant::new(Arc::new(slow), "holt-slow", "1")))
        .unwrap();
    host.set_mode(Mode::Shadow).unwrap();
    let mut rng = SmallRng::seed_from_u64(8);
    for k in 0..300u64 {
        let x = slot.sample_input(1, &mut rng);
        let d = host.decide(k, &x).unwrap();
        assert_eq!(d.tag.arm, Arm::Baseline);
        assert_eq!(d.tag.answered_by.name.as_ref(), "holt");
        // Leave the workers a moment so that most shadows run rather than being skipped.
        thread::sleep(Duration::from_micros(200));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while host.status().shadow.ok + host.status().shadow.skipped < 300 && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(5));
    }
    let st = host.status();
    assert!(st.shadow.ok > 100, "{:?}", st.shadow);
    assert_eq!(st.shadow.failed, 0);
    assert!(
        st.shadow.mean_divergence > 0.0,
        "different smoothing must diverge"
    );
    assert_eq!(st.candidate_totals.decisions, 0);
}

#[test]
fn a_failing_shadow_candidate_is_rolled_back_by_the_guard() {
    let slot = SlotKind::Ordering;
    let host = SlotHost::new(slot, relaxed()).unwrap();
    host.load_candidate(flaky(slot, Fault::NonFinite, 1.0))
        .unwrap();
    host.set_mode(Mode::Shadow).unwrap();
    let x = input(slot, 16, 9);
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.status().candidate.is_some() && Instant::now() < deadline {
        let d = host.decide(1, &x).unwrap();
        assert_eq!(
            d.tag.fallback, None,
            "shadow failures never touch the answer used"
        );
    }
    let st = host.status();
    assert!(st.candidate.is_none(), "{:?}", st.shadow);
    // Every shadow run failed: conclusive evidence, acted on before the guard's minimum.
    assert!(st.shadow.failed >= 1);
    assert!(st.shadow.failed < GuardConfig::default().min_decisions);
}

/// A policy that takes a while, to catch a swap mid-decision.
struct Slow {
    info: PolicyInfo,
    inner: Arc<dyn Policy>,
    started: Arc<AtomicBool>,
}

impl Policy for Slow {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }
    fn evaluate(&self, input: &FeatureMatrix, deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        self.started.store(true, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(30));
        self.inner.evaluate(input, deadline)
    }
}

#[test]
fn an_in_flight_decision_finishes_on_the_version_it_started_with() {
    let slot = SlotKind::Ordering;
    let host = Arc::new(
        SlotHost::new(
            slot,
            HostConfig {
                deadline: Some(Duration::from_secs(2)),
                ..HostConfig::default()
            },
        )
        .unwrap(),
    );
    let started = Arc::new(AtomicBool::new(false));
    let mut info = slot.static_policy().info().clone();
    info.name = "slow".into();
    info.backend = aurigraph_decision::BackendKind::Onnx;
    host.load_candidate(Arc::new(Slow {
        info,
        inner: slot.static_policy(),
        started: started.clone(),
    }))
    .unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    started.store(false, Ordering::SeqCst);
    let gen_before = host.status().generation;
    let h = {
        let host = host.clone();
        thread::spawn(move || host.decide(5, &input(slot, 8, 1)).unwrap())
    };
    while !started.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    host.rollback("swap during a decision").unwrap();
    let d = h.join().unwrap();
    assert_eq!(d.tag.generation, gen_before);
    assert_eq!(d.tag.answered_by.name.as_ref(), "slow");
    assert_eq!(d.tag.fallback, None);
    // New decisions see the new routing.
    let d2 = host.decide(5, &input(slot, 8, 1)).unwrap();
    assert!(d2.tag.generation > gen_before);
    assert_eq!(d2.tag.arm, Arm::Baseline);
}

/// Resolves persisted references to variants of the static policies.
struct Registry;

impl PolicyResolver for Registry {
    fn resolve(&self, slot: SlotKind, r: &PolicyRef) -> Result<Arc<dyn Policy>, ResolveError> {
        match r.name.as_str() {
            "known" => Ok(Arc::new(Variant::new(
                slot.static_policy(),
                "known",
                &r.version,
            ))),
            other => Err(ResolveError::Refused {
                code: "E_TEST_UNKNOWN",
                message: format!("no policy named {other}"),
            }),
        }
    }
}

#[test]
fn rollout_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let slot = SlotKind::Ordering;
    let build = || {
        SlotHost::builder(slot)
            .config(relaxed())
            .store(FileStore::open(dir.path()).unwrap(), Arc::new(Registry))
            .build()
            .unwrap()
    };
    let x = input(slot, 4, 2);
    let arms_before: Vec<Arm>;
    {
        let host = build();
        host.load_candidate(Arc::new(Variant::new(slot.static_policy(), "known", "7")))
            .unwrap();
        host.start_schedule(StepSchedule::from_percents(&[10.0, 40.0, 100.0], 1_000_000).unwrap())
            .unwrap();
        host.set_mode(Mode::Canary {
            basis_points: 4_000,
        })
        .unwrap();
        arms_before = (0..500)
            .map(|k| host.decide(k, &x).unwrap().tag.arm)
            .collect();
    }
    let host = build();
    let st = host.status();
    assert_eq!(
        st.mode,
        Mode::Canary {
            basis_points: 4_000
        }
    );
    assert_eq!(st.candidate.as_ref().unwrap().version.as_ref(), "7");
    let arms_after: Vec<Arm> = (0..500)
        .map(|k| host.decide(k, &x).unwrap().tag.arm)
        .collect();
    assert_eq!(
        arms_before, arms_after,
        "the salt must survive so keys keep their arm"
    );

    // A persisted candidate that cannot be resolved any more is dropped, not fatal.
    host.load_candidate(Arc::new(Variant::new(slot.static_policy(), "gone", "1")))
        .unwrap();
    host.set_mode(Mode::Canary { basis_points: 100 }).unwrap();
    drop(host);
    let host = build();
    let st = host.status();
    assert!(st.candidate.is_none());
    assert_eq!(st.mode, Mode::Off);
    assert!(host.decide(1, &x).is_ok());
}

#[test]
fn metrics_are_exposed_per_slot_and_arm() {
    let metrics = EngineMetrics::default();
    let slot = SlotKind::Anomaly;
    let host = SlotHost::builder(slot)
        .config(relaxed())
        .metrics(metrics.clone())
        .build()
        .unwrap();
    host.load_candidate(flaky(slot, Fault::WrongLength, 1.0))
        .unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let x = input(slot, 3, 1);
    // Two failures: short of the evidence that rolls a candidate back before the minimum.
    for k in 0..2 {
        host.decide(k, &x).unwrap();
    }
    let text = metrics.encode_text();
    assert!(
        text.contains(r#"aurigraph_policy_fallbacks_total{slot="anomaly",arm="candidate",reason="wrong_length"} 2"#),
        "{text}"
    );
    assert!(text.contains(
        r#"aurigraph_policy_decisions_total{slot="anomaly",arm="candidate",backend="static"} 2"#
    ));
    assert!(text.contains(
        r#"aurigraph_policy_decision_latency_seconds_count{slot="anomaly",arm="candidate"} 2"#
    ));
    assert!(text.contains(r#"aurigraph_policy_canary_share_percent{slot="anomaly"} 100"#));
}

#[test]
fn ten_thousand_swaps_race_with_decisions_and_none_is_lost_or_doubled() {
    // Four busy threads on two cores: not while another test measures deadlines.
    let _cores = crate::conformance::CORES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let slot = SlotKind::BatchSize;
    // Timing is not the subject here: a generous deadline keeps an oversubscribed machine
    // (three deciders and a swapper on two cores) from turning preemption into timeouts.
    let host = Arc::new(
        SlotHost::builder(slot)
            .config(HostConfig {
                deadline: Some(Duration::from_secs(2)),
                ..HostConfig::default()
            })
            .store(MemoryStore::new(), Arc::new(Registry))
            .build()
            .unwrap(),
    );
    let calls: Arc<HashMap<&'static str, AtomicU64>> = Arc::new(
        ["a", "b"]
            .into_iter()
            .map(|n| (n, AtomicU64::new(0)))
            .collect(),
    );

    struct Counting {
        info: PolicyInfo,
        inner: Arc<dyn Policy>,
        calls: Arc<HashMap<&'static str, AtomicU64>>,
        name: &'static str,
    }
    impl Policy for Counting {
        fn info(&self) -> &PolicyInfo {
            &self.info
        }
        fn isolation(&self) -> aurigraph_decision::Isolation {
            aurigraph_decision::Isolation::Inline
        }
        fn evaluate(
            &self,
            input: &FeatureMatrix,
            deadline: Instant,
        ) -> Result<Vec<f32>, PolicyError> {
            self.calls[self.name].fetch_add(1, Ordering::Relaxed);
            self.inner.evaluate(input, deadline)
        }
    }
    let make = |name: &'static str| -> Arc<dyn Policy> {
        let mut info = slot.static_policy().info().clone();
        info.name = name.into();
        Arc::new(Counting {
            info,
            inner: slot.static_policy(),
            calls: calls.clone(),
            name,
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let deciders: Vec<_> = (0..3)
        .map(|t| {
            let host = host.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let x = input(slot, 1, t);
                let mut tally: HashMap<String, u64> = HashMap::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) || n < 1_000 {
                    let d = host
                        .decide(t * 1_000_000_000 + n, &x)
                        .expect("every decision answers");
                    assert_eq!(d.values.len(), 1);
                    assert_eq!(d.tag.fallback, None);
                    *tally.entry(d.tag.answered_by.name.to_string()).or_default() += 1;
                    n += 1;
                }
                (n, tally)
            })
        })
        .collect();
    let swaps = 10_000;
    for i in 0..swaps {
        let name = if i % 2 == 0 { "a" } else { "b" };
        host.load_candidate(make(name)).unwrap();
        host.set_mode(Mode::Canary {
            basis_points: 5_000,
        })
        .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut by_name: HashMap<String, u64> = HashMap::new();
    for d in deciders {
        let (n, tally) = d.join().unwrap();
        total += n;
        assert_eq!(
            tally.values().sum::<u64>(),
            n,
            "every decision answered exactly once"
        );
        for (k, v) in tally {
            *by_name.entry(k).or_default() += v;
        }
    }
    // Every call of a candidate was either a warm-up or a decision it answered.
    let warmups = (swaps / 2) as u64 * WARMUP_INPUTS as u64;
    for name in ["a", "b"] {
        let c = calls[name].load(Ordering::Relaxed);
        assert_eq!(
            c,
            warmups + by_name.get(name).copied().unwrap_or(0),
            "{name}"
        );
    }
    assert_eq!(host.status().generation, 2 * swaps as u64);
    assert!(total >= 3_000);
}

/// A candidate that passes warm-up and then fails every call, at canary 100% with the
/// default guard and breaker: rolled back after a handful of decisions, not after the
/// guard's minimum or the breaker's cooldowns.
#[test]
fn a_candidate_failing_every_call_is_rolled_back_at_once() {
    for fault in [
        Fault::Error,
        Fault::NonFinite,
        Fault::WrongLength,
        Fault::OutOfRange,
    ] {
        let slot = SlotKind::Ordering;
        let clock = ManualClock::new();
        let host = SlotHost::builder(slot)
            .config(relaxed())
            .clock(clock.clone())
            .build()
            .unwrap();
        host.load_candidate(flaky(slot, fault, 1.0)).unwrap();
        host.set_mode(Mode::Canary {
            basis_points: 10_000,
        })
        .unwrap();
        let x = input(slot, 8, 3);
        let rolled_back_at = (0..200u64)
            .find(|&k| host.decide(k, &x).unwrap().tag.arm == Arm::Baseline)
            .expect("rolled back");
        assert!(rolled_back_at <= 5, "{fault:?}: after {rolled_back_at}");
        let why = host.status().last_rollback.unwrap();
        assert!(why.starts_with("guard: failure rate"), "{why}");
    }
}

/// While the candidate's failures hold the breaker open, its decisions still count as its
/// failures: the guard rolls it back although the clock never reaches the cooldown's end.
/// The next candidate starts with a closed breaker.
#[test]
fn the_guard_sees_the_decisions_the_open_breaker_answers() {
    let slot = SlotKind::Anomaly;
    let clock = ManualClock::new();
    let host = SlotHost::builder(slot)
        .config(HostConfig {
            breaker: BreakerConfig {
                failure_threshold: 5,
                cooldown: Duration::from_secs(3600),
            },
            // Evidence short of 1/α² never fires before the minimum: the breaker opens
            // first, and only the decisions it answers can reach the minimum.
            guard: GuardConfig {
                failure_alpha: 1e-12,
                min_decisions: 50,
                ..GuardConfig::default()
            },
            ..relaxed()
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    host.load_candidate(flaky(slot, Fault::Error, 1.0)).unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let x = input(slot, 4, 9);
    let mut reasons = Vec::new();
    let mut rolled_back_at = None;
    for k in 0..1_000u64 {
        let d = host.decide(k, &x).unwrap();
        if d.tag.arm == Arm::Baseline {
            rolled_back_at = Some(k);
            break;
        }
        reasons.push(d.tag.fallback);
    }
    let at = rolled_back_at.expect("the guard rolled the candidate back");
    assert!(at <= 50, "rolled back after {at}");
    assert!(reasons.contains(&Some(FallbackReason::CircuitOpen)));
    assert!(
        !host.status().circuit_open,
        "the breaker went with the candidate"
    );

    // A good candidate loaded next is called at once, not held on static by a cooldown.
    host.load_candidate(variant(slot, "good")).unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let d = host.decide(2_000, &x).unwrap();
    assert_eq!(d.tag.fallback, None);
    assert_eq!(d.tag.answered_by.name.as_ref(), "good");
}

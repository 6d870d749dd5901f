//! The slot conformance suite against today's backends: each slot's static policy, and
//! the fault injector in every way it can misbehave. The ONNX and WASM backends run the
//! same `conformance::check` from their own tests.

use std::sync::Arc;
use std::time::Duration;

use aurigraph_decision::conformance::{Expect, SuiteConfig, check};
use aurigraph_decision::fault::{Fault, FaultyPolicy};
use aurigraph_decision::host::WARMUP_INPUTS;
use aurigraph_decision::{FallbackReason, HostConfig, Policy, SlotHost, SlotKind};

fn faulty(slot: SlotKind, fault: Fault) -> Arc<dyn Policy> {
    Arc::new(FaultyPolicy::new(slot.static_policy(), fault).after_calls(WARMUP_INPUTS as u64))
}

#[test]
fn static_policies_pass_the_suite() {
    for slot in SlotKind::ALL {
        let rep = check(
            slot,
            &|| slot.static_policy(),
            &Expect::Answers,
            &SuiteConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{slot}: {e}"));
        assert_eq!(rep.answered_by_policy, rep.decisions, "{slot}");
        assert_eq!(rep.fallbacks, 0);
    }
}

#[test]
fn a_wrapped_healthy_policy_passes_on_the_watchdog_path() {
    for slot in SlotKind::ALL {
        let rep = check(
            slot,
            &|| Arc::new(FaultyPolicy::new(slot.static_policy(), Fault::None)),
            &Expect::Answers,
            &SuiteConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{slot}: {e}"));
        assert_eq!(rep.answered_by_policy, rep.decisions);
    }
}

#[test]
fn misbehaving_policies_fall_back_per_decision() {
    let cases: [(Fault, &[FallbackReason]); 5] = [
        (Fault::Error, &[FallbackReason::Error]),
        (Fault::Panic, &[FallbackReason::Panic]),
        (Fault::NonFinite, &[FallbackReason::NonFinite]),
        (Fault::WrongLength, &[FallbackReason::WrongLength]),
        (Fault::OutOfRange, &[FallbackReason::OutOfRange]),
    ];
    for slot in SlotKind::ALL {
        for (fault, reasons) in cases {
            // A panic runs the panic hook first, which symbolises a backtrace when
            // RUST_BACKTRACE is set: give it time, so the reason seen is the panic itself.
            let cfg = match fault {
                Fault::Panic => SuiteConfig {
                    deadline: Duration::from_secs(10),
                    ..SuiteConfig::default()
                },
                _ => SuiteConfig::default(),
            };
            let rep = check(
                slot,
                &|| faulty(slot, fault),
                &Expect::FallsBack(reasons.to_vec()),
                &cfg,
            )
            .unwrap_or_else(|e| panic!("{slot} {fault:?}: {e}"));
            assert_eq!(rep.fallbacks, rep.decisions, "{slot} {fault:?}");
        }
    }
}

#[test]
fn a_policy_that_sleeps_past_the_deadline_never_holds_a_decision() {
    let cfg = SuiteConfig {
        decisions_per_thread: 8,
        ..SuiteConfig::default()
    };
    for slot in SlotKind::ALL {
        // On the watchdog: the host stops waiting at the deadline, or finds every worker
        // still busy with earlier overruns.
        let rep = check(
            slot,
            &|| faulty(slot, Fault::Sleep(Duration::from_millis(400))),
            &Expect::FallsBack(vec![FallbackReason::Timeout, FallbackReason::Busy]),
            &cfg,
        )
        .unwrap_or_else(|e| panic!("{slot}: {e}"));
        assert!(
            rep.max_latency < Duration::from_millis(400),
            "{slot}: {:?}",
            rep.max_latency
        );
    }
    // Inline (a backend that claims to enforce its own deadline but does not): the late
    // answer is discarded and counted as a timeout.
    let slot = SlotKind::Demand;
    let rep = check(
        slot,
        &|| {
            Arc::new(
                FaultyPolicy::new(
                    slot.static_policy(),
                    Fault::Sleep(Duration::from_millis(80)),
                )
                .after_calls(WARMUP_INPUTS as u64)
                .inline(),
            )
        },
        &Expect::FallsBack(vec![FallbackReason::Timeout]),
        &SuiteConfig {
            threads: 2,
            decisions_per_thread: 4,
            ..SuiteConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rep.fallbacks, 8);
}

#[test]
fn a_policy_that_misbehaves_at_load_is_refused_and_nothing_changes() {
    for slot in SlotKind::ALL {
        let host = SlotHost::new(slot, HostConfig::default()).unwrap();
        let before = host.status().generation;
        for fault in [
            Fault::Error,
            Fault::Panic,
            Fault::NonFinite,
            Fault::WrongLength,
            Fault::OutOfRange,
        ] {
            let p = Arc::new(FaultyPolicy::new(slot.static_policy(), fault));
            let err = host.load_candidate(p).unwrap_err();
            assert_eq!(err.code(), "E_WARMUP_FAILED", "{slot} {fault:?}: {err}");
        }
        let st = host.status();
        assert_eq!(st.generation, before);
        assert!(st.candidate.is_none());
    }
}

#[test]
fn a_policy_for_another_slot_or_schema_is_refused() {
    let host = SlotHost::new(SlotKind::Ordering, HostConfig::default()).unwrap();
    let err = host
        .load_candidate(SlotKind::Anomaly.static_policy())
        .unwrap_err();
    assert_eq!(err.code(), "E_CONTRACT_MISMATCH");
    let p = Arc::new(
        FaultyPolicy::new(SlotKind::Ordering.static_policy(), Fault::None).with_schema_version(9),
    );
    let err = host.load_candidate(p).unwrap_err();
    assert_eq!(err.code(), "E_CONTRACT_MISMATCH");
    assert!(err.to_string().contains("v9"), "{err}");
}

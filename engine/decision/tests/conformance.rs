//! The slot conformance suite against today's backends: each slot's static policy, and
//! the fault injector in every way it can misbehave, each slot at its contract's deadline.
//! The ONNX and WASM backends run the same `conformance::check` from their own tests.

use std::sync::{Arc, Once, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use aurigraph_decision::conformance::{Expect, SuiteConfig, check};
use aurigraph_decision::fault::{Fault, FaultyPolicy};
use aurigraph_decision::host::WARMUP_INPUTS;
use aurigraph_decision::{FallbackReason, HostConfig, Policy, SlotHost, SlotKind};

fn faulty(slot: SlotKind, fault: Fault) -> Arc<dyn Policy> {
    Arc::new(FaultyPolicy::new(slot.static_policy(), fault).after_calls(WARMUP_INPUTS as u64))
}

/// The machine's cores: the tests that measure decisions against a slot's deadline hold it
/// shared ([`deadline_measured`]), a test that keeps more threads busy than there are cores
/// holds it exclusively, so the two never run at the same time.
pub static CORES: RwLock<()> = RwLock::new(());

/// Holds [`CORES`] shared for a test that measures decisions against a deadline.
pub fn deadline_measured() -> RwLockReadGuard<'static, ()> {
    CORES.read().unwrap_or_else(PoisonError::into_inner)
}

/// Injected panics ([`Fault::Panic`]) bypass the panic hook; every other panic goes to the
/// hook that was installed before. With `RUST_BACKTRACE` set the default hook captures and
/// symbolises a backtrace before the panic unwinds, which takes longer than a slot's
/// deadline: the decision would then fall back for `timeout` instead of `panic`.
fn injected_panics_skip_the_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("injected panic") {
                previous(info);
            }
        }));
    });
}

#[test]
fn static_policies_pass_the_suite() {
    let _cores = deadline_measured();
    for slot in SlotKind::ALL {
        let rep = check(
            slot,
            &|| slot.static_policy(),
            &Expect::Answers,
            &SuiteConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{slot}: {e}"));
        assert_eq!(rep.deadline, slot.contract().default_deadline, "{slot}");
        // The static policy runs inline and never times out.
        assert_eq!(rep.answered_by_policy, rep.decisions, "{slot}: {rep:?}");
        assert_eq!(rep.fallbacks + rep.timed_out, 0, "{slot}: {rep:?}");
    }
}

#[test]
fn a_wrapped_healthy_policy_passes_on_the_watchdog_path() {
    let _cores = deadline_measured();
    for slot in SlotKind::ALL {
        let rep = check(
            slot,
            &|| Arc::new(FaultyPolicy::new(slot.static_policy(), Fault::None)),
            &Expect::Answers,
            &SuiteConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{slot}: {e}"));
        assert_eq!(rep.deadline, slot.contract().default_deadline, "{slot}");
        assert_eq!(rep.fallbacks, 0, "{slot}: {rep:?}");
        assert_eq!(
            rep.answered_by_policy + rep.timed_out,
            rep.decisions,
            "{slot}: {rep:?}"
        );
    }
}

#[test]
fn misbehaving_policies_fall_back_per_decision() {
    let _cores = deadline_measured();
    let cases: [(Fault, &[FallbackReason]); 5] = [
        (Fault::Error, &[FallbackReason::Error]),
        (Fault::Panic, &[FallbackReason::Panic]),
        (Fault::NonFinite, &[FallbackReason::NonFinite]),
        (Fault::WrongLength, &[FallbackReason::WrongLength]),
        (Fault::OutOfRange, &[FallbackReason::OutOfRange]),
    ];
    injected_panics_skip_the_hook();
    for slot in SlotKind::ALL {
        for (fault, reasons) in cases {
            let rep = check(
                slot,
                &|| faulty(slot, fault),
                &Expect::FallsBack(reasons.to_vec()),
                &SuiteConfig::default(),
            )
            .unwrap_or_else(|e| panic!("{slot} {fault:?}: {e}"));
            assert_eq!(rep.answered_by_policy, 0, "{slot} {fault:?}: {rep:?}");
            assert_eq!(
                rep.fallbacks + rep.timed_out,
                rep.decisions,
                "{slot} {fault:?}: {rep:?}"
            );
        }
    }
}

#[test]
fn a_policy_that_sleeps_past_the_deadline_never_holds_a_decision() {
    let _cores = deadline_measured();
    // Every decision waits in a timed wait until the host's cut-off, then has the fallback
    // reserve (a tenth of the deadline) to be scheduled again and answer: on a loaded
    // two-core machine that wake-up misses the reserve far more often than a decision that
    // never sleeps, so this run states a lower share on time.
    let cfg = SuiteConfig {
        min_on_time: 0.5,
        decisions_per_thread: 20,
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
        assert_eq!(rep.fallbacks, rep.decisions, "{slot}: {rep:?}");
        // No decision waited for the sleeping policy.
        assert!(
            rep.max_latency < Duration::from_millis(400),
            "{slot}: {rep:?}"
        );
    }
    // Inline (a backend that claims to enforce its own deadline but does not): the host
    // cannot cut the call, so every decision is late, and the late answer is discarded and
    // counted as a timeout.
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
            min_on_time: 0.0,
            threads: 2,
            decisions_per_thread: 4,
            ..SuiteConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rep.fallbacks, 8, "{rep:?}");
    assert_eq!(rep.late, 8, "{rep:?}");
    assert!(rep.max_latency >= Duration::from_millis(80), "{rep:?}");
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

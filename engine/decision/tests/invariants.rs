//! The static policy is never removed (`ARCHITECTURE.md`, invariants): whatever was promoted
//! to baseline, a decision it fails is answered by the slot's static rule, through the
//! breaker opening too, and the baseline can be reset to the static rule.

use std::sync::Arc;
use std::time::Duration;

use aurigraph_decision::fault::{Fault, FaultyPolicy};
use aurigraph_decision::host::WARMUP_INPUTS;
use aurigraph_decision::rollout::Mode;
use aurigraph_decision::{BackendKind, FallbackReason, HostConfig, Policy, SlotHost, SlotKind};
use rand::SeedableRng;
use rand::rngs::SmallRng;

#[test]
fn a_failing_promoted_baseline_is_answered_by_the_static_rule() {
    let config = HostConfig {
        deadline: Some(Duration::from_secs(1)),
        ..HostConfig::default()
    };
    for slot in SlotKind::ALL {
        let host = SlotHost::new(slot, config.clone()).unwrap();
        // Answers correctly through warm-up, then fails every call.
        let faulty: Arc<dyn Policy> = Arc::new(
            FaultyPolicy::new(slot.static_policy(), Fault::Error)
                .with_rate(1.0)
                .after_calls(WARMUP_INPUTS as u64),
        );
        host.load_candidate(faulty).unwrap();
        host.set_mode(Mode::Canary {
            basis_points: 10_000,
        })
        .unwrap();
        host.promote().unwrap();
        assert_eq!(host.status().baseline.backend, BackendKind::Fault, "{slot}");

        let stat = slot.static_policy();
        let mut rng = SmallRng::seed_from_u64(5);
        let mut reasons = Vec::new();
        // Enough decisions for the breaker to open: the static rule answers before and after.
        for key in 0..20u64 {
            let input = slot.sample_input(16, &mut rng);
            let d = host.decide(key, &input).unwrap();
            let expected = stat
                .evaluate(&input, std::time::Instant::now() + Duration::from_secs(1))
                .unwrap();
            assert_eq!(d.values, expected, "{slot} key {key}");
            assert_eq!(d.tag.answered_by.backend, BackendKind::Static, "{slot}");
            reasons.push(d.tag.fallback.expect("a fallback reason"));
        }
        assert_eq!(reasons[0], FallbackReason::Error, "{slot}");
        assert!(
            reasons.contains(&FallbackReason::CircuitOpen),
            "{slot}: the breaker opened: {reasons:?}"
        );

        // The static rule can always be put back as the baseline.
        host.reset_baseline().unwrap();
        assert_eq!(
            host.status().baseline.backend,
            BackendKind::Static,
            "{slot}"
        );
        let input = slot.sample_input(1, &mut rng);
        let d = host.decide(99, &input).unwrap();
        assert_eq!(d.tag.fallback, None, "{slot}");
        assert_eq!(d.tag.answered_by.backend, BackendKind::Static, "{slot}");
    }
}

//! Property tests of canary routing: the share converges to P, keys are sticky, and
//! raising P never moves a key from the candidate back to the baseline.

use std::sync::Arc;

use aurigraph_decision::policy::Variant;
use aurigraph_decision::rollout::{FULL_SHARE_BP, Mode, canary_bucket, routes_to_candidate};
use aurigraph_decision::{Arm, HostConfig, SlotHost, SlotKind};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// Keys drawn per case for the share check.
const KEYS: u64 = 20_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// With 20,000 keys the observed share is within 1.5 percentage points of P
    /// (over four binomial standard deviations at P = 50%).
    #[test]
    fn share_converges_to_p(bp in 0u32..=FULL_SHARE_BP, salt in any::<u64>(), start in any::<u64>()) {
        let hits = (0..KEYS)
            .filter(|i| routes_to_candidate(start.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), salt, bp))
            .count() as f64;
        let share = hits / KEYS as f64;
        prop_assert!((share - f64::from(bp) / 1e4).abs() < 0.015, "share {} for P {}", share, bp);
    }

    /// Raising P only adds keys to the candidate.
    #[test]
    fn raising_p_never_moves_a_key_back(salt in any::<u64>(), a in 0u32..=FULL_SHARE_BP, b in 0u32..=FULL_SHARE_BP, keys in proptest::collection::vec(any::<u64>(), 1..200)) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        for k in keys {
            if routes_to_candidate(k, salt, lo) {
                prop_assert!(routes_to_candidate(k, salt, hi));
            }
            prop_assert_eq!(canary_bucket(k, salt), canary_bucket(k, salt));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// The same through the host: sticky per key, monotone as the operator raises P.
    #[test]
    fn host_routing_is_sticky_and_monotone(steps in proptest::collection::btree_set(1u32..=FULL_SHARE_BP, 1..5)) {
        let slot = SlotKind::Demand;
        let host = SlotHost::new(slot, HostConfig::default()).unwrap();
        host.load_candidate(Arc::new(Variant::new(slot.static_policy(), "holt-b", "1"))).unwrap();
        let x = slot.sample_input(1, &mut SmallRng::seed_from_u64(1));
        let mut on_candidate = vec![false; 400];
        for bp in steps {
            host.set_mode(Mode::Canary { basis_points: bp }).unwrap();
            for (k, was) in on_candidate.iter_mut().enumerate() {
                let arm = host.decide(k as u64, &x).unwrap().tag.arm;
                let again = host.decide(k as u64, &x).unwrap().tag.arm;
                prop_assert_eq!(arm, again);
                if *was {
                    prop_assert_eq!(arm, Arm::Candidate, "key {} moved back at {}bp", k, bp);
                }
                *was = arm == Arm::Candidate;
            }
        }
    }
}

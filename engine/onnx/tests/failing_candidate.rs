//! An ONNX candidate that passes its load and the host's warm-up and then fails every
//! decision is rolled back by the guard within seconds, on a host with the slot's contract
//! deadline and the default breaker and guard (`conformance::check_rollback`).
//!
//! A model is deterministic: it fails after warm-up only on inputs unlike the warm-up's.
//! Both load checks (the backend's golden inputs and timed batch, the host's warm-up) feed
//! the slot's sample inputs. Each model here is valid on every sample input and invalid on
//! a row the samples never hold, and every batch the test sends after warm-up holds one:
//!
//! - `anomaly`, `0.5 + 5e-10 * age * ln(age)` of `sender_age_s`: about 0.5 to 0.76 for the
//!   samples' ages (above 0 and below 3e7 s), NaN for a new sender (`sender_age_s = 0`:
//!   `0 * -inf`).
//! - `ordering`, `fee * fee_per_byte`: below 6.4e8 for the samples' fees (below 200 per byte,
//!   16,000 bytes), above the slot's 1e9 for a transaction paying 5e7 base units at 1e5 per
//!   byte.

use std::sync::Arc;

use crate::onnx_support::{f32_vi, init, manifest, model, node, test_options};
use aurigraph_decision::conformance::{RollbackConfig, RollbackReport, check_rollback};
use aurigraph_decision::{FallbackReason, FeatureMatrix, Policy, SlotKind};
use aurigraph_onnx::OnnxPolicy;
use rand::Rng;
use rand::rngs::SmallRng;

/// Builds the input of a decision after warm-up from its number within its thread.
type Input = dyn Fn(usize, &mut SmallRng) -> FeatureMatrix + Sync;

/// The column of feature `name` in `slot`'s schema.
fn column(slot: SlotKind, name: &str) -> usize {
    slot.contract()
        .features
        .iter()
        .position(|f| f.name == name)
        .unwrap_or_else(|| panic!("{slot} has no feature `{name}`"))
}

/// `[features, 1]` weights selecting column `col`.
fn select(slot: SlotKind, col: usize) -> Vec<f32> {
    let mut w = vec![0.0; slot.contract().feature_count()];
    w[col] = 1.0;
    w
}

/// `anomaly`: `0.5 + 5e-10 * age * ln(age)` of `sender_age_s`.
fn age_log_age() -> Vec<u8> {
    let slot = SlotKind::Anomaly;
    let f = slot.contract().feature_count() as i64;
    model(
        vec![
            node("MatMul", &["x", "w_age"], &["age"]),
            node("Log", &["age"], &["ln_age"]),
            node("Mul", &["age", "ln_age"], &["age_ln_age"]),
            node("Mul", &["age_ln_age", "scale"], &["scaled"]),
            node("Add", &["scaled", "half"], &["y"]),
        ],
        vec![
            init("w_age", &[f, 1], select(slot, column(slot, "sender_age_s"))),
            init("scale", &[1], vec![5e-10]),
            init("half", &[1], vec![0.5]),
        ],
        vec![f32_vi("x", &[None, Some(f)])],
        vec![f32_vi("y", &[None, Some(1)])],
    )
}

/// `ordering`: `fee * fee_per_byte`.
fn fee_times_density() -> Vec<u8> {
    let slot = SlotKind::Ordering;
    let f = slot.contract().feature_count() as i64;
    model(
        vec![
            node("MatMul", &["x", "w_fee"], &["fee"]),
            node("MatMul", &["x", "w_density"], &["density"]),
            node("Mul", &["fee", "density"], &["y"]),
        ],
        vec![
            init("w_fee", &[f, 1], select(slot, column(slot, "fee"))),
            init(
                "w_density",
                &[f, 1],
                select(slot, column(slot, "fee_per_byte")),
            ),
        ],
        vec![f32_vi("x", &[None, Some(f)])],
        vec![f32_vi("y", &[None, Some(1)])],
    )
}

/// A sample batch of 8 to 64 transactions, one of them from a new sender.
fn with_a_new_sender(i: usize, rng: &mut SmallRng) -> FeatureMatrix {
    let slot = SlotKind::Anomaly;
    let rows = rng.random_range(8..=64);
    let x = slot.sample_input(rows, rng);
    let mut data = x.as_slice().to_vec();
    let f = slot.contract().feature_count();
    data[(i % rows) * f + column(slot, "sender_age_s")] = 0.0;
    FeatureMatrix::new(rows, f, data).unwrap()
}

/// A sample batch of 16 to 128 transactions, one of them paying 5e7 at 1e5 per byte.
fn with_a_whale_fee(i: usize, rng: &mut SmallRng) -> FeatureMatrix {
    let slot = SlotKind::Ordering;
    let rows = rng.random_range(16..=128);
    let x = slot.sample_input(rows, rng);
    let mut data = x.as_slice().to_vec();
    let f = slot.contract().feature_count();
    let row = (i % rows) * f;
    data[row + column(slot, "fee")] = 5e7;
    data[row + column(slot, "size_bytes")] = 500.0;
    data[row + column(slot, "fee_per_byte")] = 1e5;
    FeatureMatrix::new(rows, f, data).unwrap()
}

/// Loads of a model [`load`] makes at most.
const LOAD_ATTEMPTS: usize = 3;

/// Loads a model with the tests' load options. A load refused because the timed batch ran
/// over its budget (a stall of the machine: these models take well under a millisecond) is
/// tried again, up to [`LOAD_ATTEMPTS`] loads in all; any other refusal panics.
fn load(slot: SlotKind, bytes: &[u8]) -> OnnxPolicy {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match OnnxPolicy::from_bytes(manifest(slot), bytes, &test_options()) {
            Ok(p) => return p,
            Err(e) if e.code() == "E_ONNX_TOO_SLOW" && attempts < LOAD_ATTEMPTS => {}
            Err(e) => panic!("{slot}: refused at load: [{}] {e}", e.code()),
        }
    }
}

/// Loads the model and runs the rollback scenario.
fn rolled_back(
    slot: SlotKind,
    bytes: &[u8],
    input: &Input,
    reason: FallbackReason,
) -> RollbackReport {
    let policy: Arc<dyn Policy> = Arc::new(load(slot, bytes));
    let rep = check_rollback(
        slot,
        &|| policy.clone(),
        input,
        &[reason],
        &RollbackConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{slot}: {e}"));
    assert_eq!(rep.deadline, slot.contract().default_deadline);
    assert!(rep.reason.ends_with("(onnx:test-model@1)"), "{rep:?}");
    // Conclusive evidence acts before the guard's minimum of decisions.
    assert!(rep.guard_decisions <= 5, "{rep:?}");
    assert!(
        rep.rolled_back_after <= RollbackConfig::default().rolled_back_within,
        "{rep:?}"
    );
    assert!(rep.baseline_decisions > 0, "{rep:?}");
    rep
}

#[test]
fn the_models_answer_the_sample_inputs_and_fail_on_the_rows_they_never_saw() {
    let far = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut rng = <SmallRng as rand::SeedableRng>::seed_from_u64(7);
    let cases: [(SlotKind, Vec<u8>, &Input); 2] = [
        (SlotKind::Anomaly, age_log_age(), &with_a_new_sender),
        (SlotKind::Ordering, fee_times_density(), &with_a_whale_fee),
    ];
    for (slot, bytes, unseen) in cases {
        let p = load(slot, &bytes);
        let c = slot.contract();
        let sample = slot.sample_input(300, &mut rng);
        let out = p.evaluate(&sample, far).unwrap();
        c.validate_output(300, &out).unwrap();
        let x = unseen(3, &mut rng);
        let out = p.evaluate(&x, far).unwrap();
        let bad: Vec<usize> = (0..out.len())
            .filter(|&i| c.validate_output(1, &out[i..=i]).is_err())
            .collect();
        // Exactly the row the samples never hold.
        assert_eq!(bad, vec![3 % x.rows()], "{slot}: {out:?}");
    }
}

#[test]
fn a_model_that_answers_nan_for_new_senders_is_rolled_back() {
    rolled_back(
        SlotKind::Anomaly,
        &age_log_age(),
        &with_a_new_sender,
        FallbackReason::NonFinite,
    );
}

#[test]
fn a_model_that_answers_out_of_range_for_a_whale_fee_is_rolled_back() {
    rolled_back(
        SlotKind::Ordering,
        &fee_times_density(),
        &with_a_whale_fee,
        FallbackReason::OutOfRange,
    );
}

//! A WASM candidate that answers correctly during warm-up and fails every later decision is
//! rolled back by the guard within seconds, on a host with the `ordering` slot's contract
//! deadline and the default breaker and guard (`conformance::check_rollback`).
//!
//! A plugin gets a fresh instance per call and has no clock, so it cannot count its calls:
//! the test plugin answers zeros for batches under 100 rows (the host's warm-up sends 1, 7
//! and 64 rows) and misbehaves on every batch from 100 rows, which is every batch the test
//! sends after warm-up. One test per misbehaviour: a trap, a loop past the deadline, NaN, a
//! list one value too long, a value out of the slot's range.

use std::sync::Arc;

use crate::wasm_support::{BUMP_ALLOCATOR, cores_busy, deadline_measured};
use aurigraph_decision::conformance::{RollbackConfig, RollbackReport, check_rollback};
use aurigraph_decision::{FallbackReason, FeatureMatrix, Policy, SlotKind};
use aurigraph_wasm::{RuntimeConfig, WasmRuntime};
use rand::Rng;
use rand::rngs::SmallRng;

/// Rows from which the plugin misbehaves; larger than every warm-up input.
const BAD_ROWS: usize = 100;

/// `plugin-info`: name `failing` (7 bytes at 64), version `1.0.0` (5 bytes at 80), one slot
/// declaration at 96 (`ordering`, schema v1).
const META: &str = r"\40\00\00\00\07\00\00\00\50\00\00\00\05\00\00\00\60\00\00\00\01\00\00\00";

const TRAP: &str = "unreachable";
const LOOP: &str = "(loop $spin (br $spin))";
const NAN: &str = "(f32.store (local.get $out) (f32.const nan))";
const WRONG_LENGTH: &str = "(i32.store (i32.const 168) (i32.add (local.get $rows) (i32.const 1)))";
/// 2e9: twice the `ordering` slot's largest score.
const OUT_OF_RANGE: &str = "(f32.store (local.get $out) (f32.const 2e9))";

/// A plugin whose `ordering` lays out `ok([0.0; rows])` and, from `BAD_ROWS` rows, then runs
/// `misbehave` (which may overwrite the answer).
fn plugin(misbehave: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
{BUMP_ALLOCATOR}
  (data (i32.const 64) "failing")
  (data (i32.const 80) "1.0.0")
  (data (i32.const 96) "\00\00\00\00\01\00\00\00")
  (data (i32.const 128) "{META}")
  (func (export "metadata") (result i32) (i32.const 128))
  (func (export "ordering") (param $ptr i32) (param $len i32) (param $rows i32) (result i32)
    (local $out i32)
    (local.set $out (call $alloc (i32.shl (local.get $rows) (i32.const 2))))
    (i32.store (i32.const 160) (i32.const 0))
    (i32.store (i32.const 164) (local.get $out))
    (i32.store (i32.const 168) (local.get $rows))
    (if (i32.ge_u (local.get $rows) (i32.const {BAD_ROWS})) (then {misbehave}))
    (i32.const 160)))"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("test WAT does not parse: {e}\n{text}"))
}

/// A batch of 100 to 130 rows: the plugin misbehaves on each.
fn big_batch(_: usize, rng: &mut SmallRng) -> FeatureMatrix {
    let rows = rng.random_range(BAD_ROWS..=BAD_ROWS + 30);
    SlotKind::Ordering.sample_input(rows, rng)
}

/// Loads the plugin with the production runtime settings and runs the rollback scenario.
fn rolled_back(misbehave: &str, reason: FallbackReason) -> RollbackReport {
    let rt = WasmRuntime::new(RuntimeConfig::default()).expect("runtime");
    let plugin = rt
        .load_bytes(&plugin(misbehave), "failing.wat")
        .unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
    let make = || -> Arc<dyn Policy> { Arc::new(plugin.policy(SlotKind::Ordering).unwrap()) };
    let rep = check_rollback(
        SlotKind::Ordering,
        &make,
        &big_batch,
        &[reason],
        &RollbackConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{misbehave}: {e}"));
    assert_eq!(rep.deadline, SlotKind::Ordering.contract().default_deadline);
    assert!(
        rep.reason.ends_with("(wasm:failing@1.0.0)"),
        "{misbehave}: {rep:?}"
    );
    // Conclusive evidence acts before the guard's minimum of decisions.
    assert!(rep.guard_decisions <= 5, "{misbehave}: {rep:?}");
    assert!(
        rep.rolled_back_after <= RollbackConfig::default().rolled_back_within,
        "{misbehave}: {rep:?}"
    );
    assert!(rep.baseline_decisions > 0, "{misbehave}: {rep:?}");
    rep
}

#[test]
fn a_plugin_that_traps_after_warm_up_is_rolled_back() {
    let _cores = deadline_measured();
    rolled_back(TRAP, FallbackReason::Trap);
}

#[test]
fn a_plugin_that_loops_past_the_deadline_after_warm_up_is_rolled_back() {
    // Each candidate decision keeps a core busy up to the host's cut-off.
    let _cores = cores_busy();
    rolled_back(LOOP, FallbackReason::Timeout);
}

#[test]
fn a_plugin_that_answers_nan_after_warm_up_is_rolled_back() {
    let _cores = deadline_measured();
    rolled_back(NAN, FallbackReason::NonFinite);
}

#[test]
fn a_plugin_that_answers_the_wrong_length_after_warm_up_is_rolled_back() {
    let _cores = deadline_measured();
    rolled_back(WRONG_LENGTH, FallbackReason::WrongLength);
}

#[test]
fn a_plugin_that_answers_out_of_range_after_warm_up_is_rolled_back() {
    let _cores = deadline_measured();
    rolled_back(OUT_OF_RANGE, FallbackReason::OutOfRange);
}

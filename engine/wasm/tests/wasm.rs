//! The WASM backend with the example plugins of `plugins/` (built by `scripts/build-plugins`):
//! the slot conformance suite, what each example decides, the plugins folder and its watcher,
//! and the SDK's schema against the engine's contracts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurigraph_decision::conformance::{Expect, SuiteConfig, check};
use aurigraph_decision::rollout::Mode;
use aurigraph_decision::slot::ordering::{
    FeeKey, FeePriority, FeePriorityParams, OrderingFeatures,
};
use aurigraph_decision::slot::{OutputLen, Rows};
use aurigraph_decision::{BackendKind, FeatureMatrix, HostConfig, Policy, SlotHost, SlotKind};
use aurigraph_wasm::{WasmPlugin, WasmRuntime};
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// The SDK's schema constants, compiled here to check them against the engine.
#[allow(dead_code)]
#[path = "../../../plugins/sdk/src/schema.rs"]
mod sdk_schema;

const EXAMPLES: [&str; 4] = [
    "fee-per-byte",
    "conflict-aware",
    "sender-rate",
    "static-mirror",
];

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/dist")
}

/// Loads a built example; fails loudly (never skips) when the examples were not built.
fn example(name: &str) -> WasmPlugin {
    let path = dist().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the example plugins first with ./scripts/build-plugins \
         (it installs the wasm32-unknown-unknown target with rustup; if that target cannot be \
         installed on this machine, the WASM plugin tests cannot run)",
        path.display()
    );
    WasmRuntime::shared()
        .expect("runtime")
        .load(&path)
        .unwrap_or_else(|e| panic!("{name}: [{}] {e}", e.code()))
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[test]
fn the_examples_pass_the_conformance_suite_for_every_slot_they_implement() {
    let _cores = crate::wasm_support::deadline_measured();
    let mut covered: Vec<SlotKind> = Vec::new();
    for name in EXAMPLES {
        let plugin = example(name);
        let slots: Vec<SlotKind> = plugin.slots().collect();
        assert!(!slots.is_empty(), "{name}");
        for slot in slots {
            covered.push(slot);
            let rep = check(
                slot,
                &|| Arc::new(plugin.policy(slot).expect("claimed slot")),
                &Expect::Answers,
                &SuiteConfig::default(),
            )
            .unwrap_or_else(|e| panic!("{name} {slot}: {e}"));
            assert_eq!(
                rep.answered_by_policy + rep.timed_out,
                rep.decisions,
                "{name} {slot}: {rep:?}"
            );
            assert_eq!(rep.fallbacks, 0, "{name} {slot}: {rep:?}");
        }
    }
    // Every slot runs the suite through WASM at least once (`static-mirror` exports all five).
    for slot in SlotKind::ALL {
        assert!(covered.contains(&slot), "no example exports {slot}");
    }
}

#[test]
fn static_mirror_implements_every_slot_and_answers_as_the_static_policies() {
    let plugin = example("static-mirror");
    assert_eq!(plugin.slots().collect::<Vec<_>>(), SlotKind::ALL.to_vec());
    let mut rng = SmallRng::seed_from_u64(0x5747);
    for slot in SlotKind::ALL {
        let mirror = plugin.policy(slot).unwrap();
        let native = slot.static_policy();
        let sizes: &[usize] = match slot.contract().rows {
            Rows::Batch => &[1, 3, 64, 1_000],
            Rows::Single => &[1; 200],
        };
        for &rows in sizes {
            let input = slot.sample_input(rows, &mut rng);
            let got = mirror.evaluate(&input, far()).unwrap();
            let want = native.evaluate(&input, far()).unwrap();
            assert_eq!(got.len(), want.len(), "{slot}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                // `exp` and `ln_1p` in the guest come from a different libm than the
                // host's: the logistic slots may differ in the last bits, nothing more.
                let tol = match slot {
                    SlotKind::LeaderHealth | SlotKind::Anomaly => 1e-6,
                    _ => 0.0,
                };
                assert!(
                    (g - w).abs() <= tol,
                    "{slot} row {i} of {rows}: plugin {g}, static {w}"
                );
            }
        }
    }
}

#[test]
fn metadata_comes_from_the_module() {
    let p = example("fee-per-byte");
    let m = p.meta();
    assert_eq!(m.name, "fee-per-byte");
    assert_eq!(m.version, "1.0.0");
    assert_eq!(m.slots, vec![(SlotKind::Ordering, 1)]);
    assert!(m.module_bytes > 0 && m.source.ends_with("fee-per-byte.wasm"));
    let info = p.policy(SlotKind::Ordering).unwrap().info().clone();
    assert_eq!(info.backend, BackendKind::Wasm);
    assert_eq!(info.label(), "wasm:fee-per-byte@1.0.0");
    let err = p.policy(SlotKind::Anomaly).unwrap_err();
    assert_eq!(err.code(), "E_WASM_NO_SUCH_SLOT");
    assert_eq!(
        example("sender-rate").meta().slots,
        vec![(SlotKind::Anomaly, 1)]
    );
    assert_eq!(p.policies().len(), 1);
}

#[test]
fn fee_per_byte_agrees_with_the_static_rule_keyed_by_fee_density() {
    // Differential oracle: the static rule ranked by fee_per_byte is the same ordering.
    let plugin = example("fee-per-byte").policy(SlotKind::Ordering).unwrap();
    let oracle = FeePriority::with_params(FeePriorityParams {
        key: FeeKey::FeePerByte,
    });
    let mut rng = SmallRng::seed_from_u64(11);
    for rows in [1, 5, 300, 2_000] {
        let input = SlotKind::Ordering.sample_input(rows, &mut rng);
        let got = plugin.evaluate(&input, far()).unwrap();
        let want = oracle.evaluate(&input, far()).unwrap();
        assert_eq!(got, want, "{rows} rows");
    }
}

fn tx(fee_per_byte: f32, seq: f32, touched: f32, hot: f32) -> OrderingFeatures {
    OrderingFeatures {
        fee: fee_per_byte * 100.0,
        fee_per_byte,
        size_bytes: 100.0,
        arrival_seq: seq,
        sender_pending: 1.0,
        nonce_gap: 0.0,
        accounts_touched: touched,
        hot_account_share: hot,
        age_ms: 10.0,
    }
}

#[test]
fn conflict_aware_puts_cold_transactions_first_and_groups_the_hot_ones() {
    let plugin = example("conflict-aware")
        .policy(SlotKind::Ordering)
        .unwrap();
    let batch = [
        tx(50.0, 0.0, 4.0, 0.5), // 2 hot accounts, dearest
        tx(1.0, 1.0, 2.0, 0.0),  // cold, cheap
        tx(9.0, 2.0, 4.0, 0.25), // 1 hot account
        tx(7.0, 3.0, 3.0, 0.0),  // cold, dearer
        tx(20.0, 4.0, 4.0, 0.5), // 2 hot accounts
        tx(9.0, 5.0, 4.0, 0.25), // 1 hot account, same density, later
    ];
    let scores = plugin
        .evaluate(&OrderingFeatures::matrix(&batch), far())
        .unwrap();
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    assert_eq!(order, vec![3, 1, 2, 5, 0, 4], "scores {scores:?}");
}

#[test]
fn sender_rate_flags_bursts_from_young_senders() {
    use aurigraph_decision::slot::anomaly::AnomalyFeatures;
    let plugin = example("sender-rate").policy(SlotKind::Anomaly).unwrap();
    let calm = AnomalyFeatures {
        size_bytes: 200.0,
        sender_rate: 0.5,
        fee_per_byte: 2.0,
        sender_age_s: 3_600.0,
        ..AnomalyFeatures::default()
    };
    let burst = AnomalyFeatures {
        sender_rate: 400.0,
        sender_rate_z: 6.0,
        sender_age_s: 4.0,
        ..calm
    };
    let rows: Vec<[f32; 8]> = [calm, burst].iter().map(|r| r.to_row()).collect();
    let input = FeatureMatrix::from_rows(8, &rows).unwrap();
    let s = plugin.evaluate(&input, far()).unwrap();
    assert!(s[0] < 0.5, "calm sender scored {}", s[0]);
    assert!(s[1] >= 0.8, "burst scored {}", s[1]);
}

#[test]
fn a_plugin_answers_through_the_host_and_the_tag_names_it() {
    let host = SlotHost::new(SlotKind::Ordering, HostConfig::default()).unwrap();
    host.load_candidate(Arc::new(
        example("conflict-aware")
            .policy(SlotKind::Ordering)
            .unwrap(),
    ))
    .unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    let input = SlotKind::Ordering.sample_input(10_000, &mut rng);
    let d = host.decide(1, &input).unwrap();
    assert_eq!(d.tag.fallback, None);
    assert_eq!(d.tag.answered_by.backend, BackendKind::Wasm);
    assert_eq!(d.values.len(), 10_000);
}

/// A slot as the SDK describes it: slot, schema version, feature names, output length and range.
type SdkSlot = (
    SlotKind,
    u32,
    &'static [&'static str],
    sdk_schema::OutputLen,
    f32,
    f32,
);

#[test]
fn the_sdk_schema_matches_the_engine_contracts() {
    macro_rules! sdk {
        ($slot:expr, $m:ident) => {
            (
                $slot,
                sdk_schema::$m::SCHEMA_VERSION,
                &sdk_schema::$m::FEATURES[..],
                sdk_schema::$m::OUTPUT_LEN,
                sdk_schema::$m::OUTPUT_MIN,
                sdk_schema::$m::OUTPUT_MAX,
            )
        };
    }
    let sdk: [SdkSlot; 5] = [
        sdk!(SlotKind::Ordering, ordering),
        sdk!(SlotKind::BatchSize, batch_size),
        sdk!(SlotKind::LeaderHealth, leader_health),
        sdk!(SlotKind::Anomaly, anomaly),
        sdk!(SlotKind::Demand, demand),
    ];
    for (slot, version, names, len, min, max) in sdk {
        let c = slot.contract();
        assert_eq!(version, c.schema_version, "{slot}");
        let engine: Vec<&str> = c.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, engine.as_slice(), "{slot}");
        let engine_len = match c.output.len {
            OutputLen::PerRow => sdk_schema::OutputLen::PerRow,
            OutputLen::Fixed(n) => sdk_schema::OutputLen::Fixed(n),
        };
        assert_eq!(len, engine_len, "{slot}");
        assert_eq!((min, max), (c.output.min, c.output.max), "{slot}");
        assert_eq!(
            matches!(c.rows, Rows::Batch),
            len == sdk_schema::OutputLen::PerRow,
            "{slot}"
        );
    }
}

/// The examples are linked with a 64 KiB shadow stack (`plugins/.cargo/config.toml`), so their
/// memory starts at a few pages and a 10,000-row batch's heap stays inside the first MiB the
/// pooled allocator keeps resident: with Rust's default 1 MiB stack the heap sat above it and
/// every call page-faulted it in again (`docs/PERFORMANCE.md`, WASM section).
#[test]
fn examples_start_with_a_small_memory() {
    let engine = wasmtime::Engine::default();
    for name in EXAMPLES {
        let path = dist().join(format!("{name}.wasm"));
        let module = wasmtime::Module::from_file(&engine, &path)
            .unwrap_or_else(|e| panic!("{}: {e} (run ./scripts/build-plugins)", path.display()));
        let pages: Vec<u64> = module
            .exports()
            .filter_map(|e| e.ty().memory().map(|m| m.minimum()))
            .collect();
        assert_eq!(pages.len(), 1, "{name}: one exported memory");
        assert!(
            pages[0] <= 4,
            "{name}: memory starts at {} pages of 64 KiB; was the plugin linked with \
             -zstack-size=65536?",
            pages[0]
        );
    }
}

//! The ONNX backend: compatibility fixtures against onnxruntime, the conformance suite per
//! slot, every kind of bad model refused with its code, run-time fallback, buckets, and
//! the tree-ensemble regressor this backend adds to tract.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::onnx_support::*;
use aurigraph_decision::conformance::{Expect, SuiteConfig, check};
use aurigraph_decision::rollout::Mode;
use aurigraph_decision::{FallbackReason, FeatureMatrix, HostConfig, Policy, SlotHost, SlotKind};
use aurigraph_onnx::{LoadOptions, Manifest, OnnxError, OnnxPolicy};
use tract_onnx::pb::tensor_proto::DataType;

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn load(manifest: Manifest, bytes: &[u8]) -> Result<OnnxPolicy, OnnxError> {
    OnnxPolicy::from_bytes(manifest, bytes, &LoadOptions::default())
}

fn code_of(r: Result<OnnxPolicy, OnnxError>) -> (&'static str, String) {
    match r {
        Ok(p) => panic!("loaded, expected a refusal: {:?}", p.report()),
        Err(e) => (e.code(), e.one_line()),
    }
}

// ---- compatibility -------------------------------------------------------------------------

#[test]
fn every_fixture_loads_and_matches_onnxruntime() {
    for (name, slot) in FIXTURES {
        let p = OnnxPolicy::load_folder(&fixture(name), &test_options())
            .unwrap_or_else(|e| panic!("{name}: [{}] {e}", e.code()));
        assert_eq!(p.info().slot, slot, "{name}");
        // The ZipMap export is the same classifier on the same probe: onnxruntime's
        // ZipMap output is a list of maps, so compare with the plain export's oracle.
        let exp = expected(if name == "sklearn_logreg_zipmap" {
            "sklearn_logreg"
        } else {
            name
        });
        let input = FeatureMatrix::new(exp.rows, exp.cols, exp.input.clone()).unwrap();
        let got = p.evaluate(&input, far()).unwrap();
        let m = p.manifest();
        let out_name = &p.report().output;
        let out = exp
            .outputs
            .get(out_name)
            .unwrap_or_else(|| panic!("{name}: no oracle for {out_name}"));
        let width = if out.shape.len() == 2 {
            out.shape[1]
        } else {
            1
        };
        let col = m.output_column.unwrap_or(0);
        let want: Vec<f64> = match slot.contract().output.len {
            aurigraph_decision::slot::OutputLen::PerRow => out
                .values
                .iter()
                .skip(col)
                .step_by(width)
                .copied()
                .collect(),
            aurigraph_decision::slot::OutputLen::Fixed(1) => vec![out.values[col]],
            aurigraph_decision::slot::OutputLen::Fixed(_) => out.values.clone(),
        };
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let tol = 1e-4 * (1.0 + w.abs());
            assert!(
                (f64::from(*g) - w).abs() <= tol,
                "{name}: value {i}: tract {g} vs onnxruntime {w}"
            );
        }
    }
}

#[test]
fn the_zipmap_of_a_default_skl2onnx_classifier_is_stripped() {
    let p = OnnxPolicy::load_folder(&fixture("sklearn_logreg_zipmap"), &LoadOptions::default())
        .unwrap();
    assert_eq!(p.report().output, "probabilities");
    assert!(
        p.report()
            .notes
            .iter()
            .any(|n| n.contains("ZipMap stripped")),
        "{:?}",
        p.report().notes
    );
}

#[test]
fn the_conformance_suite_passes_for_every_slot_with_a_fixture() {
    for (name, slot) in FIXTURES {
        let policy: Arc<dyn Policy> =
            Arc::new(OnnxPolicy::load_folder(&fixture(name), &test_options()).unwrap());
        let rep = check(
            slot,
            &|| policy.clone(),
            &Expect::Answers,
            &SuiteConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(rep.fallbacks, 0, "{name}: {rep:?}");
        assert_eq!(
            rep.answered_by_policy + rep.timed_out,
            rep.decisions,
            "{name}: {rep:?}"
        );
    }
}

#[test]
fn a_leader_health_model_on_schema_2_loads_and_passes_the_conformance_suite() {
    let slot = SlotKind::LeaderHealth;
    assert_eq!(slot.contract().schema_version, 2);
    let policy: Arc<dyn Policy> = Arc::new(
        OnnxPolicy::from_bytes(manifest(slot), &leader_health_logistic(), &test_options())
            .unwrap_or_else(|e| panic!("[{}] {e}", e.code())),
    );
    assert_eq!(policy.info().schema_version, 2);
    let rep = check(
        slot,
        &|| policy.clone(),
        &Expect::Answers,
        &SuiteConfig::default(),
    )
    .unwrap();
    assert_eq!(rep.fallbacks, 0, "{rep:?}");
}

#[test]
fn a_schema_1_leader_health_model_is_refused_with_the_schema_version_code() {
    // The committed skl2onnx model of the 9 version-1 columns, `schema = 1`.
    let e = OnnxPolicy::load_folder(
        &fixture(LEADER_HEALTH_SCHEMA_1_FIXTURE),
        &LoadOptions::default(),
    )
    .expect_err("a schema-1 leader_health model loaded");
    assert_eq!(e.code(), "E_SCHEMA_VERSION", "{e}");
    let why = e.one_line();
    assert!(why.contains("leader_health"), "{why}");
    // The manifest alone is refused, before any graph is read.
    let toml = std::fs::read_to_string(fixture(LEADER_HEALTH_SCHEMA_1_FIXTURE).join("model.toml"))
        .unwrap();
    let e = Manifest::parse(&toml, "sklearn_logreg_leader").unwrap_err();
    assert_eq!(e.code(), "E_SCHEMA_VERSION", "{e}");

    // A current graph declared as schema 1: refused for the declaration.
    let mut m = manifest(SlotKind::LeaderHealth);
    m.schema = 1;
    let (code, why) = code_of(load(m, &leader_health_logistic()));
    assert_eq!(code, "E_SCHEMA_VERSION", "{why}");
    // A 9-input graph declared as schema 2: refused for its feature count.
    let mut m = manifest(SlotKind::LeaderHealth);
    m.output = Some("y".into());
    let (code, why) = code_of(load(m, &linear(9, &[Some(1), Some(9)])));
    assert_eq!(code, "E_ONNX_FEATURES", "{why}");
    assert!(why.contains("has 18"), "{why}");
}

#[test]
fn load_reports_what_it_measured() {
    let p = OnnxPolicy::load_folder(&fixture("torch_mlp"), &LoadOptions::default()).unwrap();
    let r = p.report();
    assert_eq!(r.input, "input");
    assert_eq!(r.output, "output");
    assert_eq!(r.timed_rows, 10_000);
    assert!(r.timed_us > 0 && r.timed_us <= r.budget_us, "{r:?}");
    assert_eq!(r.buckets, aurigraph_onnx::DEFAULT_BUCKETS.to_vec());
    assert!(r.producer.starts_with("pytorch"), "{}", r.producer);
    assert_eq!(r.digest.len(), 64);
}

// ---- bad models ----------------------------------------------------------------------------

#[test]
fn truncated_and_random_bytes_are_refused_as_parse_errors() {
    let good = std::fs::read(fixture("torch_mlp").join("model.onnx")).unwrap();
    let m = manifest(SlotKind::Ordering);
    // Empty (decodes to a model without a graph), cut inside a varint, a string, the
    // graph and the opset list: every one is a parse error, named as such.
    for cut in [0, 1, 10, good.len() / 3, good.len() / 2, good.len() - 1] {
        let (code, why) = code_of(load(m.clone(), &good[..cut]));
        assert_eq!(code, "E_ONNX_PARSE", "cut {cut}: {why}");
        assert!(why.contains("not a valid ONNX model"), "cut {cut}: {why}");
    }
    // The same through a folder, as `validate` and the registry read it.
    let dir = tempfile::tempdir().unwrap();
    let folder = write_folder(dir.path(), "cut", &m, &good[..good.len() / 2]);
    let e = OnnxPolicy::load_folder(&folder, &LoadOptions::default()).unwrap_err();
    assert_eq!(e.code(), "E_ONNX_PARSE", "{e}");
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for len in [1usize, 7, 64, 1000, 100_000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (code, why) = code_of(load(m.clone(), &bytes));
        assert_eq!(code, "E_ONNX_PARSE", "{len} random bytes: {why}");
    }
}

#[test]
fn wrong_rank_feature_count_dtype_and_batch_are_refused() {
    let m = manifest(SlotKind::Ordering);
    let (code, why) = code_of(load(m.clone(), &linear(9, &[None, Some(9), Some(1)])));
    assert_eq!(code, "E_ONNX_SHAPE", "{why}");
    assert!(why.contains("rank 3"), "{why}");

    let (code, why) = code_of(load(m.clone(), &linear(8, &[None, Some(8)])));
    assert_eq!(code, "E_ONNX_FEATURES", "{why}");
    assert!(why.contains("8 features") && why.contains("has 9"), "{why}");

    // Undeclared feature count, weights for 8 features: found by shape inference.
    let (code, why) = code_of(load(m.clone(), &linear(8, &[None, None])));
    assert_eq!(code, "E_ONNX_SHAPE", "{why}");

    // A fixed batch (what torch's dynamo exporter writes) for a batched slot.
    let (code, why) = code_of(load(m.clone(), &linear(9, &[Some(5), Some(9)])));
    assert_eq!(code, "E_ONNX_SHAPE", "{why}");
    assert!(why.contains("dynamic_axes"), "{why}");

    let bytes = model(
        vec![node("Cast", &["x"], &["y"])],
        vec![],
        vec![vi("x", DataType::Double, &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(9)])],
    );
    let (code, why) = code_of(load(m.clone(), &bytes));
    assert_eq!(code, "E_ONNX_DTYPE", "{why}");

    // Output [N, 9] without output_column.
    let bytes = model(
        vec![node("Relu", &["x"], &["y"])],
        vec![],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(9)])],
    );
    let (code, why) = code_of(load(m.clone(), &bytes));
    assert_eq!(code, "E_ONNX_SHAPE", "{why}");
    assert!(why.contains("output_column"), "{why}");
    // ... loads with it.
    let mut with_col = m.clone();
    with_col.output_column = Some(2);
    load(with_col, &bytes).unwrap();
}

#[test]
fn names_schema_and_slot_mismatches_are_refused() {
    let bytes = linear(9, &[None, Some(9)]);
    let mut m = manifest(SlotKind::Ordering);
    m.input = Some("features".into());
    let (code, why) = code_of(load(m, &bytes));
    assert_eq!(code, "E_ONNX_TENSOR_NAME", "{why}");
    assert!(why.contains("`x`"), "{why}");

    let mut m = manifest(SlotKind::Ordering);
    m.output = Some("score".into());
    assert_eq!(code_of(load(m, &bytes)).0, "E_ONNX_TENSOR_NAME");

    let mut m = manifest(SlotKind::Ordering);
    m.schema = 7;
    assert_eq!(code_of(load(m, &bytes)).0, "E_SCHEMA_VERSION");

    let dir = tempfile::tempdir().unwrap();
    let folder = write_folder(dir.path(), "m", &manifest(SlotKind::Ordering), &bytes);
    let e = OnnxPolicy::load_folder_for(SlotKind::Anomaly, &folder, &LoadOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), "E_SLOT_MISMATCH", "{e}");
    // An anomaly model whose features do not fit.
    let folder = write_folder(dir.path(), "a", &manifest(SlotKind::Anomaly), &bytes);
    let e = OnnxPolicy::load_folder(&folder, &LoadOptions::default()).unwrap_err();
    assert_eq!(e.code(), "E_ONNX_FEATURES", "{e}");
}

#[test]
fn unsupported_and_custom_operators_are_refused_with_their_names() {
    let mut custom = node("FancyScore", &["x"], &["y"]);
    custom.domain = "com.example".into();
    let bytes = model(
        vec![custom],
        vec![],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    );
    let (code, why) = code_of(load(manifest(SlotKind::Ordering), &bytes));
    assert_eq!(code, "E_ONNX_UNSUPPORTED_OP", "{why}");
    assert!(why.contains("com.example:FancyScore"), "{why}");

    let bytes = model(
        vec![node("NotAnOnnxOp", &["x"], &["y"])],
        vec![],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    );
    let (code, why) = code_of(load(manifest(SlotKind::Ordering), &bytes));
    assert_eq!(code, "E_ONNX_UNSUPPORTED_OP", "{why}");
    assert!(why.contains("ai.onnx:NotAnOnnxOp"), "{why}");

    // An unsupported operator on a branch the chosen output does not need is pruned.
    let bytes = model(
        vec![
            node("MatMul", &["x", "w"], &["y"]),
            node("NotAnOnnxOp", &["x"], &["z"]),
        ],
        vec![init("w", &[9, 1], vec![0.01; 9])],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)]), f32_vi("z", &[None, Some(1)])],
    );
    let mut m = manifest(SlotKind::Ordering);
    m.output = Some("y".into());
    let p = load(m, &bytes).unwrap();
    assert!(
        p.report().notes.iter().any(|n| n.contains("dropped")),
        "{:?}",
        p.report().notes
    );
}

#[test]
fn nan_at_warm_up_is_refused() {
    // y = x[:, 0..1] * NaN
    let bytes = model(
        vec![
            node("MatMul", &["x", "w"], &["xw"]),
            node("Mul", &["xw", "nan"], &["y"]),
        ],
        vec![
            init("w", &[9, 1], vec![1.0; 9]),
            init("nan", &[1], vec![f32::NAN]),
        ],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    );
    let (code, why) = code_of(load(manifest(SlotKind::Ordering), &bytes));
    assert_eq!(code, "E_ONNX_WARMUP_NAN", "{why}");

    // Out of range for anomaly ([0, 1]) is a warm-up failure too.
    let bytes = linear(8, &[None, Some(8)]);
    let (code, why) = code_of(load(manifest(SlotKind::Anomaly), &bytes));
    assert_eq!(code, "E_ONNX_WARMUP", "{why}");
    assert!(why.contains("outside"), "{why}");
}

#[test]
fn a_model_over_60_mb_is_refused_unread() {
    let n = (61 * 1024 * 1024) / 4;
    let bytes = model(
        vec![node("MatMul", &["x", "w"], &["y"])],
        vec![init("w", &[9, (n / 9) as i64], vec![0.0; (n / 9) * 9])],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, None])],
    );
    assert!(bytes.len() as u64 > aurigraph_onnx::MAX_MODEL_BYTES);
    let (code, why) = code_of(load(manifest(SlotKind::Ordering), &bytes));
    assert_eq!(code, "E_ONNX_TOO_LARGE", "{why}");
    let dir = tempfile::tempdir().unwrap();
    let folder = write_folder(dir.path(), "big", &manifest(SlotKind::Ordering), &bytes);
    drop(bytes);
    let e = OnnxPolicy::load_folder(&folder, &LoadOptions::default()).unwrap_err();
    assert_eq!(e.code(), "E_ONNX_TOO_LARGE", "{e}");
}

/// A 9 -> h -> h -> 1 ReLU MLP with constant weights: about `2 * h * h` FLOP per row.
fn wide_mlp(h: i64) -> Vec<u8> {
    model(
        vec![
            node("MatMul", &["x", "w1"], &["h1"]),
            node("Relu", &["h1"], &["r1"]),
            node("MatMul", &["r1", "w2"], &["h2"]),
            node("Relu", &["h2"], &["r2"]),
            node("MatMul", &["r2", "w3"], &["y"]),
        ],
        vec![
            init("w1", &[9, h], vec![0.001; 9 * h as usize]),
            init("w2", &[h, h], vec![0.001; (h * h) as usize]),
            init("w3", &[h, 1], vec![0.001; h as usize]),
        ],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    )
}

#[test]
fn a_model_slower_than_the_deadline_is_refused() {
    // 9 -> 512 -> 512 -> 1: about 5 GFLOP for 10,000 rows, far over 18 ms on one core. Its
    // 16,384-row plan keeps about 64 MiB of tensors alive (the packed matrices' size depends
    // on the CPU's kernels), at the default memory cap (`onnx_memory_cap.rs`): the cap is
    // lifted so that the timing is what refuses it.
    let bytes = wide_mlp(512);
    let uncapped = LoadOptions {
        memory_cap: u64::MAX,
        ..LoadOptions::default()
    };
    let t = Instant::now();
    let (code, why) = code_of(OnnxPolicy::from_bytes(
        manifest(SlotKind::Ordering),
        &bytes,
        &uncapped,
    ));
    assert_eq!(code, "E_ONNX_TOO_SLOW", "{why}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // The same model within a generous deadline and a small timed batch loads.
    let relaxed = LoadOptions {
        deadline: Some(Duration::from_secs(5)),
        timed_rows: 16,
        buckets: vec![],
        ..LoadOptions::default()
    };
    OnnxPolicy::from_bytes(manifest(SlotKind::Ordering), &bytes, &relaxed).unwrap();
}

#[test]
fn external_tensor_data_is_refused() {
    let mut w = init("w", &[9, 1], vec![]);
    w.data_location = Some(1);
    w.external_data = vec![tract_onnx::pb::StringStringEntryProto {
        key: "location".into(),
        value: "../../etc/passwd".into(),
    }];
    let bytes = model(
        vec![node("MatMul", &["x", "w"], &["y"])],
        vec![w],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    );
    let (code, why) = code_of(load(manifest(SlotKind::Ordering), &bytes));
    assert_eq!(code, "E_ONNX_EXTERNAL_DATA", "{why}");
}

#[test]
fn every_refusal_code_is_documented() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/README.md"
    ))
    .unwrap();
    for code in OnnxError::CODES {
        assert!(
            readme.contains(code),
            "{code} missing from models/README.md"
        );
    }
}

// ---- run time ------------------------------------------------------------------------------

/// `y = log(nonce_gap + 1)`: fine on every golden input (nonce gaps are >= 0), NaN when a
/// caller sends a nonce gap below -1.
fn log_nonce_gap() -> Vec<u8> {
    let mut w = vec![0.0; 9];
    w[5] = 1.0;
    model(
        vec![
            node("MatMul", &["x", "w"], &["g"]),
            node("Add", &["g", "one"], &["g1"]),
            node("Log", &["g1"], &["y"]),
        ],
        vec![init("w", &[9, 1], w), init("one", &[1], vec![1.0])],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    )
}

#[test]
fn nan_at_run_time_falls_back_per_decision_and_the_node_keeps_serving() {
    let p = load(manifest(SlotKind::Ordering), &log_nonce_gap()).unwrap();
    let host = SlotHost::new(SlotKind::Ordering, HostConfig::default()).unwrap();
    host.load_candidate(Arc::new(p)).unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(3);
    let good = SlotKind::Ordering.sample_input(32, &mut rng);
    let d = host.decide(1, &good).unwrap();
    assert_eq!(d.tag.answered_by.backend.as_str(), "onnx", "{:?}", d.tag);
    let mut rows: Vec<f32> = good.as_slice().to_vec();
    rows[5] = -3.0; // nonce gap of the first row
    let bad = FeatureMatrix::new(32, 9, rows).unwrap();
    let d = host.decide(2, &bad).unwrap();
    assert_eq!(
        d.tag.fallback,
        Some(FallbackReason::NonFinite),
        "{:?}",
        d.tag
    );
    assert_eq!(d.values.len(), 32);
    let d = host.decide(3, &good).unwrap();
    assert_eq!(d.tag.answered_by.backend.as_str(), "onnx");
}

#[test]
fn a_real_model_past_its_deadline_at_run_time_falls_back_and_the_node_keeps_serving() {
    // Loaded with a generous deadline and a small timed batch, so it passes the load; on
    // a host with a 50 ms deadline it answers small batches (the host's warm-up: 1, 7, 64
    // rows) and misses the deadline on 10,000 rows (9 -> 1024 -> 1024 -> 1: about 21
    // GFLOP, a few hundred ms on one core).
    let relaxed = LoadOptions {
        deadline: Some(Duration::from_secs(5)),
        timed_rows: 16,
        buckets: vec![],
        ..LoadOptions::default()
    };
    let p =
        OnnxPolicy::from_bytes(manifest(SlotKind::Ordering), &wide_mlp(1024), &relaxed).unwrap();
    let deadline = Duration::from_millis(50);
    let host = SlotHost::new(
        SlotKind::Ordering,
        HostConfig {
            deadline: Some(deadline),
            ..HostConfig::default()
        },
    )
    .unwrap();
    host.load_candidate(Arc::new(p)).unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(4);
    let small = SlotKind::Ordering.sample_input(8, &mut rng);
    let big = SlotKind::Ordering.sample_input(10_000, &mut rng);

    let d = host.decide(1, &small).unwrap();
    assert_eq!(d.tag.fallback, None, "{:?}", d.tag);
    assert_eq!(d.tag.answered_by.backend.as_str(), "onnx");

    let t = Instant::now();
    let d = host.decide(2, &big).unwrap();
    let took = t.elapsed();
    assert_eq!(d.tag.fallback, Some(FallbackReason::Timeout), "{:?}", d.tag);
    assert_eq!(d.tag.answered_by.backend.as_str(), "static");
    assert_eq!(d.values.len(), 10_000);
    SlotKind::Ordering
        .contract()
        .validate_output(10_000, &d.values)
        .unwrap();
    // The decision waited for its deadline, not for the model (generous slack for a
    // loaded machine; the model alone takes far longer).
    assert!(took < deadline + Duration::from_millis(500), "{took:?}");

    // The late run finishes on its watchdog worker; the model then answers again.
    let until = Instant::now() + Duration::from_secs(60);
    let mut key = 3;
    loop {
        let d = host.decide(key, &small).unwrap();
        assert_eq!(d.values.len(), 8);
        if d.tag.fallback.is_none() {
            assert_eq!(d.tag.answered_by.backend.as_str(), "onnx");
            break;
        }
        assert!(
            matches!(
                d.tag.fallback,
                Some(FallbackReason::Busy | FallbackReason::Timeout)
            ),
            "{:?}",
            d.tag
        );
        assert!(Instant::now() < until, "the model never answered again");
        std::thread::sleep(Duration::from_millis(20));
        key += 1;
    }
}

#[test]
fn evaluate_refuses_a_wrong_shape_instead_of_panicking() {
    let p = OnnxPolicy::load_folder(&fixture("torch_mlp"), &LoadOptions::default()).unwrap();
    let m = FeatureMatrix::new(2, 8, vec![1.0; 16]).unwrap();
    assert!(p.evaluate(&m, far()).is_err());
    let d = OnnxPolicy::load_folder(&fixture("torch_demand"), &LoadOptions::default()).unwrap();
    let m = FeatureMatrix::new(2, 32, vec![1.0; 64]).unwrap();
    assert!(d.evaluate(&m, far()).is_err());
}

// ---- buckets -------------------------------------------------------------------------------

#[test]
fn specialised_plans_agree_with_the_symbolic_plan() {
    let bucketed = OnnxPolicy::load_folder(&fixture("torch_mlp"), &LoadOptions::default()).unwrap();
    let symbolic = OnnxPolicy::load_folder(
        &fixture("torch_mlp"),
        &LoadOptions {
            buckets: vec![],
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert!(symbolic.report().buckets.is_empty());
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(5);
    for rows in [1, 255, 256, 257, 1000, 4096, 10_000, 16_384, 16_385, 20_000] {
        let input = SlotKind::Ordering.sample_input(rows, &mut rng);
        let a = bucketed.evaluate(&input, far()).unwrap();
        let b = symbolic.evaluate(&input, far()).unwrap();
        assert_eq!(a.len(), rows);
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                "{rows}: {x} vs {y}"
            );
        }
    }
}

#[test]
fn a_model_whose_rows_are_not_independent_gets_no_buckets() {
    // y = x @ w - mean over the batch of (x @ w): padding rows change every answer.
    let mut rm = node("ReduceMean", &["xw"], &["m"]);
    rm.attribute.push(ints("axes", &[0]));
    rm.attribute.push(int("keepdims", 1));
    let bytes = model(
        vec![
            node("MatMul", &["x", "w"], &["xw"]),
            rm,
            node("Sub", &["xw", "m"], &["y"]),
        ],
        vec![init("w", &[9, 1], vec![0.001; 9])],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    );
    let p = load(manifest(SlotKind::Ordering), &bytes).unwrap();
    assert!(p.report().buckets.is_empty(), "{:?}", p.report());
    assert!(
        p.report()
            .notes
            .iter()
            .any(|n| n.contains("not independent")),
        "{:?}",
        p.report().notes
    );
}

// ---- TreeEnsembleRegressor -----------------------------------------------------------------

/// One tree: `x[0] <= t ? 1.0 : 2.0`, plus a base value, with node attributes overridable.
fn stump(mode: &str, true_id: i64, tree_id_of_leaf: i64) -> Vec<u8> {
    let mut n = node("TreeEnsembleRegressor", &["x"], &["y"]);
    n.domain = "ai.onnx.ml".into();
    n.attribute = vec![
        int("n_targets", 1),
        ints("nodes_nodeids", &[0, 1, 2]),
        ints("nodes_treeids", &[0, 0, 0]),
        ints("nodes_featureids", &[0, 0, 0]),
        floats("nodes_values", &[0.5, 0.0, 0.0]),
        strings("nodes_modes", &[mode, "LEAF", "LEAF"]),
        ints("nodes_truenodeids", &[true_id, 0, 0]),
        ints("nodes_falsenodeids", &[2, 0, 0]),
        ints("target_ids", &[0, 0]),
        ints("target_nodeids", &[1, 2]),
        ints("target_treeids", &[0, tree_id_of_leaf]),
        floats("target_weights", &[1.0, 2.0]),
        floats("base_values", &[10.0]),
        string("aggregate_function", "SUM"),
    ];
    model(
        vec![n],
        vec![],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    )
}

#[test]
fn tree_ensemble_regressor_runs_and_malformed_forests_are_refused() {
    let p = load(manifest(SlotKind::Ordering), &stump("BRANCH_LEQ", 1, 0)).unwrap();
    let rows = FeatureMatrix::new(3, 9, {
        let mut v = vec![0.0; 27];
        v[0] = 0.2;
        v[9] = 0.5;
        v[18] = 0.9;
        v
    })
    .unwrap();
    assert_eq!(p.evaluate(&rows, far()).unwrap(), vec![11.0, 11.0, 12.0]);
    // GTE is rewritten as LT with the children swapped: x >= 0.5 ? 1 : 2.
    let p = load(manifest(SlotKind::Ordering), &stump("BRANCH_GTE", 1, 0)).unwrap();
    assert_eq!(p.evaluate(&rows, far()).unwrap(), vec![12.0, 11.0, 11.0]);
    // A child pointing back at its parent (an endless walk), out of the tree, a weight on
    // a node of a tree that does not exist: refused at load, never run.
    for bytes in [
        stump("BRANCH_LEQ", 0, 0),
        stump("BRANCH_LEQ", 7, 0),
        stump("BRANCH_LEQ", 1, 3),
        stump("BRANCH_WHATEVER", 1, 0),
    ] {
        let (code, why) = code_of(load(manifest(SlotKind::Ordering), &bytes));
        assert_eq!(code, "E_ONNX_PARSE", "{why}");
        assert!(why.contains("TreeEnsembleRegressor"), "{why}");
    }
}

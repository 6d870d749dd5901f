//! The memory cap of a model's plans: a model whose intermediate tensors are huge for the
//! largest batch is refused at load with `E_MODEL_MEMORY` (by `OnnxPolicy` and by the
//! registry, which keeps serving the versions that load), and an ordinary model loads under
//! the same cap with its estimate in the load report.

use crate::onnx_support::*;
use aurigraph_decision::SlotKind;
use aurigraph_onnx::{
    DEFAULT_BUCKETS, DEFAULT_MEMORY_CAP, LoadOptions, ModelRegistry, OnnxError, OnnxPolicy,
};
use tract_onnx::pb::TensorProto;
use tract_onnx::pb::tensor_proto::DataType;

/// Columns of the intermediate of [`blow_up`]: 9 features tiled 444,445 times.
const WIDE: i64 = 9 * 444_445;

/// An int64 initializer.
fn init_i64(name: &str, data: Vec<i64>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: data,
        ..Default::default()
    }
}

/// An `ordering` model that tiles its `[N, 9]` input to `[N, 4,000,005]` floats (16 MB per
/// row, 256 GiB for 16,384 rows) and sums it back to `[N, 1]`.
fn blow_up() -> Vec<u8> {
    let mut sum = node("ReduceSum", &["wide", "axes"], &["y"]);
    sum.attribute.push(int("keepdims", 1));
    model(
        vec![node("Tile", &["x", "repeats"], &["wide"]), sum],
        vec![
            init_i64("repeats", vec![1, WIDE / 9]),
            init_i64("axes", vec![1]),
        ],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    )
}

fn options() -> LoadOptions {
    test_options()
}

#[test]
fn a_model_with_huge_intermediates_is_refused_with_its_estimate_and_the_cap() {
    let options = options();
    assert_eq!(options.memory_cap, DEFAULT_MEMORY_CAP);
    assert_eq!(DEFAULT_MEMORY_CAP, 64 << 20);
    let e = OnnxPolicy::from_bytes(manifest(SlotKind::Ordering), &blow_up(), &options)
        .expect_err("a model needing gigabytes per batch loaded");
    assert_eq!(e.code(), "E_MODEL_MEMORY", "{e}");
    let rows = *DEFAULT_BUCKETS.iter().max().unwrap();
    let OnnxError::MemoryCap {
        estimate,
        rows: at,
        cap,
    } = &e
    else {
        panic!("not a cap refusal: {e:?}");
    };
    assert_eq!(*cap, DEFAULT_MEMORY_CAP);
    assert_eq!(*at, rows);
    // At least the tiled tensor itself.
    let wide = rows as u64 * WIDE as u64 * 4;
    assert!(*estimate >= wide, "estimate {estimate} < {wide}");
    let msg = e.one_line();
    assert!(msg.contains(&estimate.to_string()), "{msg}");
    assert!(msg.contains(&DEFAULT_MEMORY_CAP.to_string()), "{msg}");
    assert!(msg.contains(&format!("{rows} rows")), "{msg}");
}

#[test]
fn without_buckets_the_symbolic_plan_is_capped_at_the_timed_batch() {
    let options = LoadOptions {
        buckets: vec![],
        ..options()
    };
    let e = OnnxPolicy::from_bytes(manifest(SlotKind::Ordering), &blow_up(), &options)
        .expect_err("a model needing gigabytes per batch loaded");
    assert_eq!(e.code(), "E_MODEL_MEMORY", "{e}");
    assert!(
        matches!(e, OnnxError::MemoryCap { rows, .. } if rows == options.timed_rows),
        "{e:?}"
    );
}

#[test]
fn an_ordinary_model_loads_under_the_same_cap_and_reports_its_estimate() {
    let options = options();
    let p = OnnxPolicy::from_bytes(
        manifest(SlotKind::Ordering),
        &linear(9, &[None, Some(9)]),
        &options,
    )
    .unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
    let r = p.report();
    let rows = *DEFAULT_BUCKETS.iter().max().unwrap();
    assert_eq!(r.memory_rows, rows);
    // The input batch is alive while the first operator runs.
    let input = rows as u64 * 9 * 4;
    assert!(
        r.memory_bytes >= input && r.memory_bytes <= DEFAULT_MEMORY_CAP,
        "{r:?}"
    );
    for (name, _) in FIXTURES {
        let p = OnnxPolicy::load_folder(&fixture(name), &options)
            .unwrap_or_else(|e| panic!("{name}: [{}] {e}", e.code()));
        assert!(p.report().memory_bytes <= DEFAULT_MEMORY_CAP, "{name}");
    }

    // The cap is the option's: the same model is refused under a cap below its estimate.
    let tight = LoadOptions {
        memory_cap: r.memory_bytes - 1,
        ..options
    };
    let e = OnnxPolicy::from_bytes(
        manifest(SlotKind::Ordering),
        &linear(9, &[None, Some(9)]),
        &tight,
    )
    .expect_err("loaded over its cap");
    assert_eq!(e.code(), "E_MODEL_MEMORY", "{e}");
}

#[test]
fn a_single_row_model_is_estimated_at_one_row() {
    let p = OnnxPolicy::load_folder(&fixture("torch_demand"), &options()).unwrap();
    assert_eq!(p.report().memory_rows, 1);
    assert!(p.report().memory_bytes > 0, "{:?}", p.report());
}

/// An `ordering` model with a tensor whose length depends on the data: `x @ w` plus the
/// number of non-zero features of the batch.
fn data_dependent() -> Vec<u8> {
    let mut cast = node("Cast", &["nz"], &["nzf"]);
    cast.attribute.push(int("to", DataType::Float as i64));
    let mut sum = node("ReduceSum", &["nzf"], &["count"]);
    sum.attribute.push(int("keepdims", 0));
    model(
        vec![
            node("NonZero", &["x"], &["nz"]),
            cast,
            sum,
            node("MatMul", &["x", "w"], &["xw"]),
            node("Add", &["xw", "count"], &["y"]),
        ],
        vec![init("w", &[9, 1], vec![0.1; 9])],
        vec![f32_vi("x", &[None, Some(9)])],
        vec![f32_vi("y", &[None, Some(1)])],
    )
}

#[test]
fn a_model_whose_tensor_sizes_depend_on_the_data_is_refused() {
    let e = OnnxPolicy::from_bytes(manifest(SlotKind::Ordering), &data_dependent(), &options())
        .expect_err("a model of unbounded memory loaded");
    assert_eq!(e.code(), "E_MODEL_MEMORY", "{e}");
    assert!(matches!(e, OnnxError::MemoryUnbounded { .. }), "{e:?}");
    assert!(e.one_line().contains("NonZero"), "{e}");
}

#[test]
fn the_registry_reports_the_refusal_and_keeps_the_models_that_load() {
    let root = tempfile::tempdir().unwrap();
    let reg = ModelRegistry::new(root.path(), options());
    copy_fixture("torch_mlp", root.path(), "mlp");
    let mut m = manifest(SlotKind::Ordering);
    m.name = "blow-up".into();
    let huge = write_folder(root.path(), "blow-up", &m, &blow_up());
    let rep = reg.poll();
    assert_eq!(rep.loaded.len(), 1, "{rep:?}");
    assert_eq!(rep.failed.len(), 1, "{rep:?}");
    assert_eq!(rep.failed[0].code, "E_MODEL_MEMORY");
    assert_eq!(rep.failed[0].folder, huge);
    assert!(
        rep.failed[0].reason.contains("over the memory cap"),
        "{}",
        rep.failed[0].reason
    );
    assert!(reg.get(SlotKind::Ordering, "torch-mlp", "1.0.0").is_some());
    assert!(reg.get(SlotKind::Ordering, "blow-up", "1").is_none());
    let errors = reg.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "E_MODEL_MEMORY");
}

//! Shared by the ONNX backend's tests: the committed fixtures, and tiny ONNX graphs built
//! from tract's protobuf types (`tract_onnx::pb`), so bad models need no committed files.

use std::path::{Path, PathBuf};

use aurigraph_decision::SlotKind;
use aurigraph_onnx::Manifest;
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

/// A fixture model folder.
pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// Every fixture folder that loads today and the slot it is for.
pub const FIXTURES: [(&str, SlotKind); 8] = [
    ("sklearn_ridge", SlotKind::Ordering),
    ("sklearn_mlp", SlotKind::Ordering),
    ("sklearn_gbr", SlotKind::Ordering),
    ("torch_mlp", SlotKind::Ordering),
    ("sklearn_logreg", SlotKind::Anomaly),
    ("sklearn_logreg_zipmap", SlotKind::Anomaly),
    ("sklearn_gbr_batch_size", SlotKind::BatchSize),
    ("torch_demand", SlotKind::Demand),
];

/// A `leader_health` model built for feature schema 1 (skl2onnx `LogisticRegression` on the
/// 9 version-1 columns, `schema = 1`): the slot is on schema 2 now, so it must be refused with
/// `E_SCHEMA_VERSION`.
pub const LEADER_HEALTH_SCHEMA_1_FIXTURE: &str = "sklearn_logreg_leader";

/// A logistic regression for `leader_health` on the current schema: `Sigmoid(x @ w + b)`,
/// input `x` `f32[1, F]`, output `y` `f32[1, 1]`, with small positive weights on the first
/// columns (silence, missed heartbeats, RTT) and on `fsync_ms_mean`.
pub fn leader_health_logistic() -> Vec<u8> {
    let slot = SlotKind::LeaderHealth;
    let c = slot.contract();
    let f = c.feature_count();
    let mut w = vec![0.0f32; f];
    for (name, weight) in [
        ("ms_since_last_heartbeat", 0.004),
        ("missed_heartbeats", 0.2),
        ("rtt_p99_ms", 0.002),
        ("fsync_ms_mean", 0.003),
    ] {
        w[c.feature_index(name).expect("a v2 column")] = weight;
    }
    model(
        vec![
            node("MatMul", &["x", "w"], &["xw"]),
            node("Add", &["xw", "b"], &["z"]),
            node("Sigmoid", &["z"], &["y"]),
        ],
        vec![init("w", &[f as i64, 1], w), init("b", &[1], vec![-4.0])],
        vec![f32_vi("x", &[Some(1), Some(f as i64)])],
        vec![f32_vi("y", &[Some(1), Some(1)])],
    )
}

/// Load options for tests. The warm-up times 1,000 rows instead of 10,000: tests build the
/// workspace code unoptimised (dev profile), and the tree-ensemble kernel is workspace code,
/// so a 20-tree forest is ~10x slower here than in a release build. Everything else about
/// the load is the real path. `benches/benches/onnx.rs` measures release builds.
pub fn test_options() -> aurigraph_onnx::LoadOptions {
    aurigraph_onnx::LoadOptions {
        timed_rows: 1_000,
        ..Default::default()
    }
}

/// A declared dimension: `Some(n)` fixed, `None` the symbol `N`.
pub type D = Option<i64>;

/// A tensor value-info of `elem` type and `dims`.
pub fn vi(name: &str, elem: DataType, dims: &[D]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            denotation: String::new(),
                            value: Some(match d {
                                Some(v) => dimension::Value::DimValue(*v),
                                None => dimension::Value::DimParam("N".into()),
                            }),
                        })
                        .collect(),
                }),
            })),
        }),
        doc_string: String::new(),
    }
}

/// An f32 input or output.
pub fn f32_vi(name: &str, dims: &[D]) -> ValueInfoProto {
    vi(name, DataType::Float, dims)
}

/// An f32 initializer.
pub fn init(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: data,
        ..Default::default()
    }
}

/// A node of `op` in the default domain.
pub fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_{}", outputs.first().copied().unwrap_or("")),
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A float-list attribute.
pub fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 6,
        floats: v.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2,
        i: v,
        ..Default::default()
    }
}

/// A string attribute.
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 3,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A string-list attribute.
pub fn strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 8,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

/// A model of one graph, opset 17 (+ ai.onnx.ml 3), serialised.
pub fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        producer_name: "aurigraph-tests".into(),
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(GraphProto {
            node: nodes,
            name: "g".into(),
            initializer: inits,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `y = x @ w + b` with `w` of `[w_rows, 1]`, the input declared as `input_dims` and the
/// output as `[N, 1]`.
pub fn linear(w_rows: usize, input_dims: &[D]) -> Vec<u8> {
    let w: Vec<f32> = (0..w_rows).map(|i| 0.01 * (i as f32 + 1.0)).collect();
    model(
        vec![
            node("MatMul", &["x", "w"], &["xw"]),
            node("Add", &["xw", "b"], &["y"]),
        ],
        vec![
            init("w", &[w_rows as i64, 1], w),
            init("b", &[1], vec![0.5]),
        ],
        vec![f32_vi("x", input_dims)],
        vec![f32_vi("y", &[None, Some(1)])],
    )
}

/// A manifest for `slot`.
pub fn manifest(slot: SlotKind) -> Manifest {
    Manifest::new("test-model", slot, "1")
}

/// Writes a model folder (`model.onnx` + `model.toml`) under `parent/name`.
pub fn write_folder(parent: &Path, name: &str, manifest: &Manifest, bytes: &[u8]) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.toml"), manifest.to_toml().unwrap()).unwrap();
    std::fs::write(dir.join(manifest.model_file()), bytes).unwrap();
    dir
}

/// Copies a fixture folder to `parent/name`.
pub fn copy_fixture(fixture_name: &str, parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.onnx", "model.toml"] {
        std::fs::copy(fixture(fixture_name).join(f), dir.join(f)).unwrap();
    }
    dir
}

/// The oracle a fixture carries: inputs and onnxruntime's outputs.
#[derive(serde::Deserialize)]
pub struct Expected {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row-major input.
    pub input: Vec<f32>,
    /// Float outputs by name.
    pub outputs: std::collections::BTreeMap<String, ExpectedOutput>,
}

/// One output of the oracle.
#[derive(serde::Deserialize)]
pub struct ExpectedOutput {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f64>,
}

/// Reads a fixture's `expected.json`.
pub fn expected(name: &str) -> Expected {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

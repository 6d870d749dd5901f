//! Output layouts of single-row slots: skl2onnx exports a multi-output regressor (a `demand`
//! forecaster, `MLPRegressor` on 8 targets) with its output reshaped to `[N*H, 1]`: for the
//! one row the slot runs, the H values in order. Such an output loads and answers the same
//! values as `[1, H]`; an output whose element count is not the slot's is still refused with
//! `E_ONNX_SHAPE`.

use aurigraph_decision::SlotKind;
use aurigraph_decision::features::FeatureMatrix;
use aurigraph_decision::policy::Policy;
use aurigraph_decision::slot::demand::{HORIZON, WINDOW};
use aurigraph_onnx::OnnxPolicy;
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, type_proto};

use crate::onnx_support::*;

/// An f32 value-info whose dimensions are a fixed size or a named symbol.
fn shaped(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            denotation: String::new(),
                            value: Some(match d {
                                Ok(v) => dimension::Value::DimValue(*v),
                                Err(p) => dimension::Value::DimParam((*p).into()),
                            }),
                        })
                        .collect(),
                }),
            })),
        }),
        doc_string: String::new(),
    }
}

/// `y = reshape(x @ w, [-1, 1])` with `w` of `[WINDOW, outputs]`: `[N, outputs]` laid out as
/// `[N*outputs, 1]`, as skl2onnx writes a multi-output regressor. `flat = false` keeps
/// `[N, outputs]`.
fn forecaster(outputs: usize, flat: bool, out_dims: &[Result<i64, &str>]) -> Vec<u8> {
    let w: Vec<f32> = (0..WINDOW * outputs)
        .map(|i| 0.001 * ((i % 17) as f32 + 1.0))
        .collect();
    let mut nodes = vec![node(
        "MatMul",
        &["x", "w"],
        &[if flat { "xw" } else { "y" }],
    )];
    let mut inits = vec![init("w", &[WINDOW as i64, outputs as i64], w)];
    if flat {
        nodes.push(node("Reshape", &["xw", "shape"], &["y"]));
        inits.push(TensorProto {
            name: "shape".into(),
            dims: vec![2],
            data_type: DataType::Int64 as i32,
            int64_data: vec![-1, 1],
            ..Default::default()
        });
    }
    let mut m = tract_onnx::pb::ModelProto::decode(
        model(
            nodes,
            inits,
            vec![shaped("x", &[Err("N"), Ok(WINDOW as i64)])],
            vec![shaped("y", out_dims)],
        )
        .as_slice(),
    )
    .unwrap();
    m.producer_name = "skl2onnx-like".into();
    m.encode_to_vec()
}

fn row() -> FeatureMatrix {
    FeatureMatrix::new(1, WINDOW, (0..WINDOW).map(|i| 100.0 + i as f32).collect()).unwrap()
}

fn far() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(10)
}

#[test]
fn a_multi_output_regressor_laid_out_as_a_column_loads_and_answers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(SlotKind::Demand);
    let column = write_folder(
        dir.path(),
        "column",
        &m,
        &forecaster(HORIZON, true, &[Err("M"), Ok(1)]),
    );
    let wide = write_folder(
        dir.path(),
        "wide",
        &m,
        &forecaster(HORIZON, false, &[Err("N"), Ok(HORIZON as i64)]),
    );
    let column = OnnxPolicy::load_folder(&column, &test_options())
        .unwrap_or_else(|e| panic!("[N*H, 1] loads: {e}"));
    let wide = OnnxPolicy::load_folder(&wide, &test_options()).unwrap();
    let a = column.evaluate(&row(), far()).unwrap();
    let b = wide.evaluate(&row(), far()).unwrap();
    assert_eq!(a.len(), HORIZON);
    assert_eq!(a, b, "the same values in the same order");
}

#[test]
fn an_output_with_another_element_count_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(SlotKind::Demand);
    for (name, outputs) in [("short", HORIZON - 1), ("long", HORIZON * 2)] {
        let folder = write_folder(
            dir.path(),
            name,
            &m,
            &forecaster(outputs, true, &[Err("M"), Ok(1)]),
        );
        let e = OnnxPolicy::load_folder(&folder, &test_options()).unwrap_err();
        assert_eq!(e.code(), "E_ONNX_SHAPE", "{name}: {e}");
    }
}

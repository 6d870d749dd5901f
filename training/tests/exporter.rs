//! The ONNX exporter, checked by decoding its bytes and running them with the reference
//! evaluator against the network's native prediction.

use aurigraph_training::TrainingError;
use aurigraph_training::onnx::eval::{Tensor, run};
use aurigraph_training::onnx::proto::{ModelProto, tensor_shape_proto::dimension, type_proto};
use aurigraph_training::onnx::{
    Activation, BatchAxis, Dense, ExportSpec, Network, OPSET, OutputShape, Standardizer,
};
use prost::Message;

fn spec(batch: BatchAxis, output_shape: OutputShape) -> ExportSpec {
    ExportSpec {
        graph_name: "test".into(),
        input: "features".into(),
        output: "score".into(),
        batch,
        output_shape,
        doc: "test".into(),
        metadata: vec![("k".into(), "v".into())],
    }
}

/// Deterministic pseudo-random values in -scale..scale.
fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn standardizer(f: usize) -> Standardizer {
    Standardizer {
        mean: values(f, 1, 100.0).iter().map(|&v| v as f32).collect(),
        std: values(f, 2, 50.0)
            .iter()
            .map(|&v| (v.abs() + 1.0) as f32)
            .collect(),
    }
}

fn check(net: &Network, spec: &ExportSpec, rows: usize) -> Vec<f32> {
    let f = net.inputs();
    let x = values(rows * f, 9, 300.0);
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let bytes = net.to_onnx(spec).unwrap();
    let out = run(
        &bytes,
        &Tensor {
            shape: vec![rows, f],
            data: x32.clone(),
        },
    )
    .unwrap();
    let expected_shape = match spec.output_shape {
        OutputShape::PerRow => vec![rows],
        OutputShape::Row => vec![rows, net.outputs()],
    };
    assert_eq!(out.shape, expected_shape);
    let x_rounded: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
    let native = net.predict(&x_rounded);
    assert_eq!(native.len(), out.data.len());
    for (a, b) in out.data.iter().zip(&native) {
        let tol = 1e-5 * b.abs().max(1.0);
        assert!((f64::from(*a) - b).abs() <= tol, "onnx {a} vs native {b}");
    }
    out.data
}

#[test]
fn linear_regression_round_trips() {
    let f = 9;
    let net = Network {
        standardizer: Some(standardizer(f)),
        layers: vec![Dense::new(f, 1, &values(f, 3, 2.0), &[0.5], Activation::Identity).unwrap()],
    };
    for rows in [1, 2, 17] {
        check(&net, &spec(BatchAxis::Symbolic, OutputShape::PerRow), rows);
    }
}

#[test]
fn logistic_regression_is_a_probability() {
    let f = 8;
    let net = Network {
        standardizer: Some(standardizer(f)),
        layers: vec![Dense::new(f, 1, &values(f, 4, 3.0), &[-1.0], Activation::Sigmoid).unwrap()],
    };
    let out = check(&net, &spec(BatchAxis::Symbolic, OutputShape::PerRow), 64);
    assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(
        out.iter().any(|&v| v < 0.3) && out.iter().any(|&v| v > 0.7),
        "{out:?}"
    );
}

#[test]
fn mlp_with_relu_round_trips() {
    let (f, h) = (8, 16);
    let net = Network {
        standardizer: Some(standardizer(f)),
        layers: vec![
            Dense::new(
                f,
                h,
                &values(f * h, 5, 1.0),
                &values(h, 6, 0.5),
                Activation::Relu,
            )
            .unwrap(),
            Dense::new(h, 1, &values(h, 7, 1.0), &[0.1], Activation::Identity).unwrap(),
        ],
    };
    check(&net, &spec(BatchAxis::Symbolic, OutputShape::PerRow), 33);
}

#[test]
fn multi_output_row_is_clipped() {
    let (w, hz) = (32, 8);
    let net = Network {
        standardizer: Some(standardizer(w)),
        layers: vec![
            Dense::new(
                w,
                hz,
                &values(w * hz, 8, 50.0),
                &values(hz, 9, 10.0),
                Activation::Clip {
                    min: 0.0,
                    max: 40.0,
                },
            )
            .unwrap(),
        ],
    };
    let out = check(&net, &spec(BatchAxis::One, OutputShape::Row), 1);
    assert!(out.iter().all(|v| (0.0..=40.0).contains(v)));
    assert!(
        out.contains(&0.0) || out.contains(&40.0),
        "the clip should bite: {out:?}"
    );
}

#[test]
fn graph_declares_the_contract_shapes() {
    let f = 9;
    let net = Network {
        standardizer: None,
        layers: vec![Dense::new(f, 1, &values(f, 3, 2.0), &[0.5], Activation::Identity).unwrap()],
    };
    let bytes = net
        .to_onnx(&spec(BatchAxis::Symbolic, OutputShape::PerRow))
        .unwrap();
    let model = ModelProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(model.opset_import[0].version, OPSET);
    assert_eq!(model.opset_import[0].domain, "");
    assert_eq!(model.metadata_props[0].key, "k");
    let g = model.graph.unwrap();
    let dims = |v: &aurigraph_training::onnx::proto::ValueInfoProto| {
        let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().unwrap().value.clone()
        else {
            panic!("not a tensor")
        };
        assert_eq!(t.elem_type, 1, "f32");
        t.shape
            .unwrap()
            .dim
            .into_iter()
            .map(|d| match d.value.unwrap() {
                dimension::Value::DimValue(v) => v.to_string(),
                dimension::Value::DimParam(p) => p,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name, "features");
    assert_eq!(dims(&g.input[0]), ["N", "9"]);
    assert_eq!(g.output[0].name, "score");
    assert_eq!(dims(&g.output[0]), ["N"]);
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Gemm", "Reshape"]);

    let single = net
        .to_onnx(&spec(BatchAxis::One, OutputShape::PerRow))
        .unwrap();
    let g = ModelProto::decode(single.as_slice())
        .unwrap()
        .graph
        .unwrap();
    assert_eq!(dims(&g.input[0]), ["1", "9"]);
    assert_eq!(dims(&g.output[0]), ["1"]);
}

#[test]
fn encoding_is_deterministic() {
    let f = 8;
    let net = Network {
        standardizer: Some(standardizer(f)),
        layers: vec![Dense::new(f, 1, &values(f, 4, 3.0), &[-1.0], Activation::Sigmoid).unwrap()],
    };
    let s = spec(BatchAxis::Symbolic, OutputShape::PerRow);
    assert_eq!(net.to_onnx(&s).unwrap(), net.clone().to_onnx(&s).unwrap());
}

#[test]
fn malformed_networks_and_files_are_refused() {
    assert!(matches!(
        Dense::new(3, 2, &[1.0; 5], &[0.0; 2], Activation::Identity),
        Err(TrainingError::Shape(_))
    ));
    assert!(matches!(
        Dense::new(1, 1, &[f64::NAN], &[0.0], Activation::Identity),
        Err(TrainingError::NonFinite(_))
    ));
    let chained_wrong = Network {
        standardizer: None,
        layers: vec![
            Dense::new(2, 3, &[0.0; 6], &[0.0; 3], Activation::Relu).unwrap(),
            Dense::new(4, 1, &[0.0; 4], &[0.0], Activation::Identity).unwrap(),
        ],
    };
    assert!(matches!(
        chained_wrong.to_onnx(&spec(BatchAxis::Symbolic, OutputShape::PerRow)),
        Err(TrainingError::Shape(_))
    ));
    let bad_std = Network {
        standardizer: Some(Standardizer {
            mean: vec![0.0; 2],
            std: vec![0.0; 2],
        }),
        layers: vec![Dense::new(2, 1, &[0.0; 2], &[0.0], Activation::Identity).unwrap()],
    };
    assert!(bad_std.validate().is_err());
    let input = Tensor {
        shape: vec![1, 2],
        data: vec![0.0; 2],
    };
    assert!(matches!(
        run(b"\xff\xff\xff", &input),
        Err(TrainingError::Onnx(_))
    ));
}

#[test]
fn standardizer_centres_and_scales() {
    let x = [1.0, 10.0, 3.0, 10.0, 5.0, 10.0];
    let s = Standardizer::fit(&x, 2);
    assert_eq!(s.mean, vec![3.0, 10.0]);
    assert!((f64::from(s.std[0]) - (8.0f64 / 3.0).sqrt()).abs() < 1e-6);
    assert_eq!(s.std[1], 1.0, "a constant column is only centred");
    let z = s.apply(&x);
    assert!((z[0] + z[4]).abs() < 1e-6 && z[1] == 0.0);
}

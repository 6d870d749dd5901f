//! [`Network::to_onnx`]: a [`Network`] as an ONNX graph (opset 13).
//!
//! The graph, for a network with a standardiser and layers `L1 .. Lk`:
//!
//! ```text
//! features f32[N, F]
//!   -> Sub(mean f32[F]) -> Div(std f32[F])                 standardisation
//!   -> Gemm(W1 f32[F, H], b1 f32[H]) -> Relu | Sigmoid | Clip(min, max)
//!   -> ...
//!   -> Gemm(Wk f32[H, O], bk f32[O]) -> activation          f32[N, O]
//!   -> Reshape([-1])                                        f32[N]   (per-row outputs)
//! ```
//!
//! The batch axis is symbolic (`dim_param "N"`) or fixed to 1, as the slot contract says; a
//! per-row output ([`OutputShape::PerRow`]) is flattened to `f32[N]` with a `Reshape`, a
//! single-row output ([`OutputShape::Row`]) stays `f32[1, O]`. Every node and initializer
//! gets a stable name and nothing depends on time or on the host, so the same network always
//! encodes to the same bytes.

use prost::Message;

use super::network::{Activation, BatchAxis, Network, OutputShape};
use super::proto::{
    DATA_TYPE_FLOAT, DATA_TYPE_INT64, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    tensor_shape_proto::{Dimension, dimension},
    type_proto,
};
use crate::error::Result;

/// The opset the exporter writes.
pub const OPSET: i64 = 13;
/// The ONNX IR version the exporter writes (IR 7 goes with opset 13).
pub const IR_VERSION: i64 = 7;
/// Name of the symbolic batch axis.
pub const BATCH_PARAM: &str = "N";

/// How to name and shape the exported graph.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSpec {
    /// Graph name.
    pub graph_name: String,
    /// Input tensor name (the node's ONNX backend maps it to the slot's features).
    pub input: String,
    /// Output tensor name (the slot contract's output name).
    pub output: String,
    /// The batch axis.
    pub batch: BatchAxis,
    /// The output's shape.
    pub output_shape: OutputShape,
    /// Model doc string.
    pub doc: String,
    /// Metadata key/value pairs, in the order given.
    pub metadata: Vec<(String, String)>,
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: DATA_TYPE_FLOAT,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn int64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: DATA_TYPE_INT64,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: name.to_string(),
        op_type: op.to_string(),
        ..Default::default()
    }
}

fn dim_of(d: Option<i64>) -> Dimension {
    Dimension {
        value: Some(match d {
            Some(v) => dimension::Value::DimValue(v),
            None => dimension::Value::DimParam(BATCH_PARAM.to_string()),
        }),
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DATA_TYPE_FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| dim_of(d)).collect(),
                }),
            })),
        }),
        ..Default::default()
    }
}

impl Network {
    /// The ONNX model of this network. Fails when the network does not chain
    /// ([`Network::validate`]).
    pub fn to_model_proto(&self, spec: &ExportSpec) -> Result<ModelProto> {
        self.validate()?;
        let mut nodes = Vec::new();
        let mut inits = Vec::new();
        let mut current = spec.input.clone();
        let features = self.inputs() as i64;

        if let Some(s) = &self.standardizer {
            inits.push(float_tensor("feature_mean", &[features], &s.mean));
            inits.push(float_tensor("feature_std", &[features], &s.std));
            nodes.push(node(
                "Sub",
                "center",
                &[&current, "feature_mean"],
                "centered",
            ));
            nodes.push(node("Div", "scale", &["centered", "feature_std"], "scaled"));
            current = "scaled".to_string();
        }

        let reshape = spec.output_shape == OutputShape::PerRow;
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter().enumerate() {
            let w = format!("W{k}");
            let b = format!("b{k}");
            inits.push(float_tensor(
                &w,
                &[layer.inputs as i64, layer.outputs as i64],
                &layer.weights,
            ));
            inits.push(float_tensor(&b, &[layer.outputs as i64], &layer.bias));
            let is_final = k == last;
            let gemm_out = if is_final && layer.activation == Activation::Identity && !reshape {
                spec.output.clone()
            } else {
                format!("dense{k}")
            };
            nodes.push(node(
                "Gemm",
                &format!("gemm{k}"),
                &[&current, &w, &b],
                &gemm_out,
            ));
            current = gemm_out;
            let act_out = if is_final && !reshape {
                spec.output.clone()
            } else {
                format!("act{k}")
            };
            match layer.activation {
                Activation::Identity => {}
                Activation::Relu => {
                    nodes.push(node("Relu", &format!("relu{k}"), &[&current], &act_out));
                    current = act_out;
                }
                Activation::Sigmoid => {
                    nodes.push(node(
                        "Sigmoid",
                        &format!("sigmoid{k}"),
                        &[&current],
                        &act_out,
                    ));
                    current = act_out;
                }
                Activation::Clip { min, max } => {
                    let (lo, hi) = (format!("clip{k}_min"), format!("clip{k}_max"));
                    inits.push(float_tensor(&lo, &[], &[min]));
                    inits.push(float_tensor(&hi, &[], &[max]));
                    nodes.push(node(
                        "Clip",
                        &format!("clip{k}"),
                        &[&current, &lo, &hi],
                        &act_out,
                    ));
                    current = act_out;
                }
            }
        }
        let batch = match spec.batch {
            BatchAxis::Symbolic => None,
            BatchAxis::One => Some(1),
        };
        let output_dims = if reshape {
            inits.push(int64_tensor("flat_shape", &[1], &[-1]));
            nodes.push(node(
                "Reshape",
                "flatten",
                &[&current, "flat_shape"],
                &spec.output,
            ));
            vec![batch]
        } else {
            vec![batch, Some(self.outputs() as i64)]
        };

        let graph = GraphProto {
            node: nodes,
            name: spec.graph_name.clone(),
            initializer: inits,
            input: vec![value_info(&spec.input, &[batch, Some(features)])],
            output: vec![value_info(&spec.output, &output_dims)],
            ..Default::default()
        };
        Ok(ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "aurigraph-training".to_string(),
            producer_version: env!("CARGO_PKG_VERSION").to_string(),
            domain: "ai.aurigraph".to_string(),
            model_version: 1,
            doc_string: spec.doc.clone(),
            graph: Some(graph),
            metadata_props: spec
                .metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        })
    }

    /// The encoded ONNX file of this network; see [`Network::to_model_proto`].
    pub fn to_onnx(&self, spec: &ExportSpec) -> Result<Vec<u8>> {
        Ok(self.to_model_proto(spec)?.encode_to_vec())
    }
}

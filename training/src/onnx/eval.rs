//! A tiny reference evaluator for the graphs the exporter writes: decodes an ONNX file and
//! runs `Sub`, `Div`, `Gemm`, `Relu`, `Sigmoid`, `Clip` and `Reshape` on `f32` tensors,
//! following the ONNX operator definitions (numpy broadcasting of a trailing vector, `Gemm`
//! with its `alpha`, `beta`, `transA`, `transB` attributes).
//!
//! It exists to test the exporter independently of any inference engine: a test encodes a
//! network, decodes the bytes here and compares the result with
//! [`Network::predict`](crate::onnx::Network::predict). It refuses anything else with
//! [`TrainingError::Onnx`].

use std::collections::HashMap;

use prost::Message;

use super::proto::{DATA_TYPE_FLOAT, DATA_TYPE_INT64, ModelProto, NodeProto, TensorProto};
use crate::error::{Result, TrainingError};

/// A dense `f32` tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

fn bad(m: impl Into<String>) -> TrainingError {
    TrainingError::Onnx(m.into())
}

fn from_proto(t: &TensorProto) -> Result<Tensor> {
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dim in `{}`", t.name))))
        .collect::<Result<_>>()?;
    let n: usize = shape.iter().product();
    let data: Vec<f32> = match t.data_type {
        DATA_TYPE_FLOAT if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DATA_TYPE_FLOAT => t.float_data.clone(),
        DATA_TYPE_INT64 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                i64::from_le_bytes(b) as f32
            })
            .collect(),
        DATA_TYPE_INT64 => t.int64_data.iter().map(|&v| v as f32).collect(),
        other => return Err(bad(format!("data type {other} of `{}`", t.name))),
    };
    if data.len() != n {
        return Err(bad(format!(
            "`{}` holds {} values for shape {shape:?}",
            t.name,
            data.len()
        )));
    }
    Ok(Tensor { shape, data })
}

/// Elementwise `a op b` where `b` has the shape of `a`, of its last axis, or is a scalar.
fn broadcast(a: &Tensor, b: &Tensor, op: impl Fn(f32, f32) -> f32) -> Result<Tensor> {
    let bn = b.data.len();
    let ok = b.shape == a.shape
        || bn == 1
        || (a.shape.last() == Some(&bn) && b.shape.iter().rev().skip(1).all(|&d| d == 1));
    if !ok || bn == 0 {
        return Err(bad(format!(
            "cannot broadcast {:?} onto {:?}",
            b.shape, a.shape
        )));
    }
    let data = a
        .data
        .iter()
        .enumerate()
        .map(|(i, &x)| op(x, b.data[i % bn]))
        .collect();
    Ok(Tensor {
        shape: a.shape.clone(),
        data,
    })
}

fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.f)
}

fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.i)
}

fn gemm(n: &NodeProto, a: &Tensor, b: &Tensor, c: Option<&Tensor>) -> Result<Tensor> {
    let (alpha, beta) = (attr_f(n, "alpha", 1.0), attr_f(n, "beta", 1.0));
    let (ta, tb) = (attr_i(n, "transA", 0) != 0, attr_i(n, "transB", 0) != 0);
    let [ar, ac] = a.shape[..] else {
        return Err(bad("Gemm A must be rank 2"));
    };
    let [br, bc] = b.shape[..] else {
        return Err(bad("Gemm B must be rank 2"));
    };
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let (k2, nn) = if tb { (bc, br) } else { (br, bc) };
    if k != k2 {
        return Err(bad(format!("Gemm inner dims {k} and {k2}")));
    }
    let at = |i: usize, j: usize| {
        if ta {
            a.data[j * ac + i]
        } else {
            a.data[i * ac + j]
        }
    };
    let bt = |i: usize, j: usize| {
        if tb {
            b.data[j * bc + i]
        } else {
            b.data[i * bc + j]
        }
    };
    let mut out = Tensor {
        shape: vec![m, nn],
        data: vec![0.0; m * nn],
    };
    for i in 0..m {
        for j in 0..nn {
            // Accumulate in f64: the reference should be at least as exact as any runtime.
            let mut acc = 0.0f64;
            for p in 0..k {
                acc += f64::from(at(i, p)) * f64::from(bt(p, j));
            }
            out.data[i * nn + j] = (f64::from(alpha) * acc) as f32;
        }
    }
    match c {
        Some(c) => broadcast(&out, c, |x, y| x + beta * y),
        None => Ok(out),
    }
}

/// Decodes `bytes` and runs the graph on `input` (fed to the graph's first input); returns
/// the graph's first output.
pub fn run(bytes: &[u8], input: &Tensor) -> Result<Tensor> {
    let model = ModelProto::decode(bytes).map_err(|e| bad(format!("decode: {e}")))?;
    let graph = model.graph.ok_or_else(|| bad("no graph"))?;
    let mut values: HashMap<String, Tensor> = HashMap::new();
    for t in &graph.initializer {
        values.insert(t.name.clone(), from_proto(t)?);
    }
    let input_name = &graph.input.first().ok_or_else(|| bad("no input"))?.name;
    values.insert(input_name.clone(), input.clone());
    for n in &graph.node {
        let get = |i: usize| -> Result<&Tensor> {
            let name = n
                .input
                .get(i)
                .ok_or_else(|| bad(format!("{} lacks input {i}", n.op_type)))?;
            values
                .get(name)
                .ok_or_else(|| bad(format!("`{name}` is not computed yet")))
        };
        let out = match n.op_type.as_str() {
            "Sub" => broadcast(get(0)?, get(1)?, |x, y| x - y)?,
            "Div" => broadcast(get(0)?, get(1)?, |x, y| x / y)?,
            "Relu" => {
                let x = get(0)?;
                Tensor {
                    shape: x.shape.clone(),
                    data: x.data.iter().map(|v| v.max(0.0)).collect(),
                }
            }
            "Sigmoid" => {
                let x = get(0)?;
                Tensor {
                    shape: x.shape.clone(),
                    data: x.data.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
                }
            }
            "Clip" => {
                let x = get(0)?;
                let lo = if n.input.len() > 1 {
                    get(1)?.data[0]
                } else {
                    f32::MIN
                };
                let hi = if n.input.len() > 2 {
                    get(2)?.data[0]
                } else {
                    f32::MAX
                };
                Tensor {
                    shape: x.shape.clone(),
                    data: x.data.iter().map(|v| v.max(lo).min(hi)).collect(),
                }
            }
            "Gemm" => {
                let c = if n.input.len() > 2 {
                    Some(get(2)?)
                } else {
                    None
                };
                gemm(n, get(0)?, get(1)?, c)?
            }
            "Reshape" => {
                let x = get(0)?;
                let spec: Vec<i64> = get(1)?.data.iter().map(|&v| v as i64).collect();
                let known: i64 = spec.iter().filter(|&&d| d > 0).product();
                let total = x.data.len() as i64;
                let shape = spec
                    .iter()
                    .map(|&d| match d {
                        -1 if known > 0 => Ok((total / known) as usize),
                        d if d > 0 => Ok(d as usize),
                        d => Err(bad(format!("Reshape dim {d}"))),
                    })
                    .collect::<Result<Vec<usize>>>()?;
                if shape.iter().product::<usize>() != x.data.len() {
                    return Err(bad(format!("cannot reshape {:?} to {spec:?}", x.shape)));
                }
                Tensor {
                    shape,
                    data: x.data.clone(),
                }
            }
            other => return Err(bad(format!("operator {other} is not supported"))),
        };
        let name = n.output.first().ok_or_else(|| bad("node without output"))?;
        values.insert(name.clone(), out);
    }
    let out_name = &graph.output.first().ok_or_else(|| bad("no output"))?.name;
    values
        .remove(out_name)
        .ok_or_else(|| bad(format!("output `{out_name}` is never computed")))
}

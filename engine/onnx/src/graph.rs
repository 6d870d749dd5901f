//! Reading an ONNX `ModelProto` before tract sees it: the checks that give an ML engineer a
//! precise reason (tensor names, rank, feature count, dtype, batch axis, operators, external
//! data), the choice of the input and output tensors, and the pruning of everything the
//! chosen output does not need (a classifier's `label` branch, a `ZipMap`).

use std::collections::{BTreeSet, HashMap, HashSet};

use prost::Message;
use tract_onnx::pb::tensor_proto::{DataLocation, DataType};
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{GraphProto, ModelProto, ValueInfoProto};

use super::error::{OnnxError, OnnxResult};
use super::manifest::Manifest;
use aurigraph_decision::slot::{Rows, SlotContract};

/// The domains whose operators tract knows.
const KNOWN_DOMAINS: [&str; 3] = ["", "ai.onnx", "ai.onnx.ml"];

/// A declared dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dim {
    /// A number (> 0).
    Fixed(i64),
    /// A named symbol (`batch`, `N`) or nothing: free.
    Free,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Free => f.write_str("N"),
        }
    }
}

fn dims_str(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// The graph after the checks: what to feed, what to read, and the pruned proto.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The proto with only the chosen output and the nodes it needs.
    pub proto: ModelProto,
    /// The input fed with the features.
    pub input: String,
    /// The output read.
    pub output: String,
    /// What was changed on the way (for the load report).
    pub notes: Vec<String>,
}

/// Decodes the bytes of an ONNX model.
pub(crate) fn decode(bytes: &[u8]) -> OnnxResult<ModelProto> {
    let proto = ModelProto::decode(bytes).map_err(|e| OnnxError::Parse(e.to_string()))?;
    match &proto.graph {
        Some(g) if !g.output.is_empty() => Ok(proto),
        Some(_) => Err(OnnxError::Parse("the graph has no output".into())),
        None => Err(OnnxError::Parse(
            "no graph (is this an ONNX model file?)".into(),
        )),
    }
}

fn elem_type(v: &ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        TypeValue::TensorType(t) => Some(t.elem_type),
    }
}

fn declared_dims(v: &ValueInfoProto) -> Option<Vec<Dim>> {
    let TypeValue::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(DimValue::DimValue(v)) if v > 0 => Dim::Fixed(v),
                _ => Dim::Free,
            })
            .collect(),
    )
}

fn type_name(t: i32) -> String {
    DataType::try_from(t)
        .map(|d| d.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| format!("type {t}"))
}

/// Checks `proto` against the slot's contract and the manifest, and prunes it to the chosen
/// output. `supported` tells whether tract (with this backend's own operators) runs an
/// operator type.
pub(crate) fn prepare(
    mut proto: ModelProto,
    manifest: &Manifest,
    contract: &SlotContract,
    supported: &dyn Fn(&str) -> bool,
) -> OnnxResult<Prepared> {
    let mut notes = Vec::new();
    let Some(graph) = proto.graph.as_mut() else {
        return Err(OnnxError::Parse("no graph".into()));
    };
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let names = |v: &[&ValueInfoProto]| {
        v.iter()
            .map(|i| format!("`{}`", i.name))
            .collect::<Vec<_>>()
            .join(", ")
    };

    // ---- input ----------------------------------------------------------------------------
    let input = match (&manifest.input, inputs.as_slice()) {
        (_, []) => return Err(OnnxError::Shape("the graph has no input".into())),
        (Some(name), _) => inputs
            .iter()
            .find(|i| &i.name == name)
            .copied()
            .ok_or_else(|| {
                OnnxError::TensorName(format!(
                    "model.toml names input `{name}`, the graph's inputs are {}",
                    names(&inputs)
                ))
            })?,
        (None, [one]) => one,
        (None, many) => {
            return Err(OnnxError::Shape(format!(
                "the graph has {} inputs ({}); the slot feeds exactly one, f32{:?}",
                many.len(),
                names(many),
                contract.input_shape()
            )));
        }
    };
    if inputs.len() > 1 {
        return Err(OnnxError::Shape(format!(
            "the graph has {} inputs ({}); the slot feeds exactly one, f32{:?}",
            inputs.len(),
            names(&inputs),
            contract.input_shape()
        )));
    }
    let input_name = input.name.clone();
    match elem_type(input) {
        Some(t) if t == DataType::Float as i32 || t == DataType::Undefined as i32 => {}
        Some(t) => {
            return Err(OnnxError::Dtype(format!(
                "input `{input_name}` is {}, the slot feeds float (f32); export with \
                 FloatTensorType / float32 inputs",
                type_name(t)
            )));
        }
        None => {}
    }
    let f = contract.feature_count();
    if let Some(dims) = declared_dims(input) {
        if dims.len() != 2 {
            return Err(OnnxError::Shape(format!(
                "input `{input_name}` has rank {} {}; the `{}` slot feeds rank 2, f32{:?}",
                dims.len(),
                dims_str(&dims),
                contract.slot,
                contract.input_shape()
            )));
        }
        if let Dim::Fixed(got) = dims[1]
            && got != f as i64
        {
            return Err(OnnxError::Features {
                slot: contract.slot,
                expected: f,
                got,
            });
        }
        match (contract.rows, &dims[0]) {
            (Rows::Batch, Dim::Fixed(b)) => {
                return Err(OnnxError::Shape(format!(
                    "input `{input_name}` has a fixed batch of {b} {}; the `{}` slot needs a \
                     symbolic batch axis [N, {f}]: skl2onnx FloatTensorType([None, {f}]), \
                     torch.onnx.export(..., dynamic_axes={{'{input_name}': {{0: 'batch'}}}}) \
                     with the legacy exporter (dynamo=False)",
                    dims_str(&dims),
                    contract.slot
                )));
            }
            (Rows::Single, Dim::Fixed(b)) if *b != 1 => {
                return Err(OnnxError::Shape(format!(
                    "input `{input_name}` has a fixed batch of {b}; the `{}` slot feeds one row [1, {f}]",
                    contract.slot
                )));
            }
            _ => {}
        }
    }

    // ---- output ---------------------------------------------------------------------------
    let outputs: Vec<&ValueInfoProto> = graph.output.iter().collect();
    let float_outputs: Vec<&ValueInfoProto> = outputs
        .iter()
        .copied()
        .filter(|o| elem_type(o) == Some(DataType::Float as i32))
        .collect();
    let chosen = match (
        &manifest.output,
        outputs.as_slice(),
        float_outputs.as_slice(),
    ) {
        (Some(name), _, _) => outputs
            .iter()
            .find(|o| &o.name == name)
            .copied()
            .ok_or_else(|| {
                OnnxError::TensorName(format!(
                    "model.toml names output `{name}`, the graph's outputs are {}",
                    names(&outputs)
                ))
            })?,
        (None, [one], _) => one,
        (None, _, [one]) => one,
        (None, many, _) => {
            return Err(OnnxError::TensorName(format!(
                "the graph has {} outputs ({}); name the one to read in model.toml \
                 (`output = \"...\"`, and `output_column` for an [N, K] output)",
                many.len(),
                names(many)
            )));
        }
    };
    let mut output_name = chosen.name.clone();
    let mut output_info = chosen.clone();
    // A ZipMap (skl2onnx's default classifier export) turns probabilities into a list of
    // maps, which tract does not run: read its input instead.
    if let Some(zip) = graph
        .node
        .iter()
        .find(|n| n.op_type == "ZipMap" && n.output.contains(&output_name))
    {
        let Some(src) = zip.input.first().cloned() else {
            return Err(OnnxError::Parse("a ZipMap node without input".into()));
        };
        notes.push(format!(
            "ZipMap stripped: reading `{src}` (the probabilities before ZipMap) instead of \
             `{output_name}`; export with options={{id(model): {{'zipmap': False}}}} to avoid it"
        ));
        output_name = src.clone();
        output_info = ValueInfoProto {
            name: src,
            ..Default::default()
        };
    } else {
        match output_info.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(TypeValue::TensorType(t))
                if t.elem_type != DataType::Float as i32
                    && t.elem_type != DataType::Undefined as i32 =>
            {
                return Err(OnnxError::Dtype(format!(
                    "output `{output_name}` is {}, the slot reads float (f32){}",
                    type_name(t.elem_type),
                    if float_outputs.is_empty() {
                        String::new()
                    } else {
                        format!("; the float outputs are {}", names(&float_outputs))
                    }
                )));
            }
            Some(TypeValue::TensorType(_)) => {}
            None if output_info.r#type.is_some() => {
                return Err(OnnxError::Dtype(format!(
                    "output `{output_name}` is not a tensor (a sequence or a map); the slot \
                     reads a float tensor"
                )));
            }
            None => {}
        }
    }
    graph.output = vec![output_info];

    // ---- prune to what the output needs ---------------------------------------------------
    let kept = needed_nodes(graph, &output_name);
    let before = graph.node.len();
    let mut i = 0;
    graph.node.retain(|_| {
        let keep = kept.contains(&i);
        i += 1;
        keep
    });
    if graph.node.len() < before {
        notes.push(format!(
            "{} node(s) that `{output_name}` does not need were dropped",
            before - graph.node.len()
        ));
    }
    let produced: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .chain(std::iter::once(input_name.as_str()))
        .collect();
    if !produced.contains(output_name.as_str()) {
        return Err(OnnxError::Parse(format!(
            "no node produces the output `{output_name}`"
        )));
    }
    // Keep only the input we feed and the initializers.
    graph
        .input
        .retain(|i| i.name == input_name || initializers_contains(&graph.initializer, &i.name));

    // ---- operators and external data ------------------------------------------------------
    let mut unsupported = BTreeSet::new();
    let mut external = None;
    visit(graph, &mut |g| {
        for n in &g.node {
            let known_domain = KNOWN_DOMAINS.contains(&n.domain.as_str());
            if !known_domain || !supported(&n.op_type) {
                let d = if n.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &n.domain
                };
                unsupported.insert(format!("{d}:{}", n.op_type));
            }
        }
        for t in g.initializer.iter().chain(
            g.node
                .iter()
                .flat_map(|n| n.attribute.iter().filter_map(|a| a.t.as_ref())),
        ) {
            if t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty()
            {
                external.get_or_insert_with(|| t.name.clone());
            }
        }
    });
    if let Some(name) = external {
        return Err(OnnxError::ExternalData(name));
    }
    if !unsupported.is_empty() {
        let ops: Vec<String> = unsupported.into_iter().collect();
        return Err(OnnxError::UnsupportedOp {
            hint: hint(&ops),
            ops,
        });
    }
    Ok(Prepared {
        proto,
        input: input_name,
        output: output_name,
        notes,
    })
}

fn initializers_contains(init: &[tract_onnx::pb::TensorProto], name: &str) -> bool {
    init.iter().any(|t| t.name == name)
}

/// Indices of the nodes `output` depends on (subgraph captures included).
fn needed_nodes(graph: &GraphProto, output: &str) -> HashSet<usize> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            producer.insert(o.as_str(), i);
        }
    }
    let mut kept = HashSet::new();
    let mut stack: Vec<String> = vec![output.to_string()];
    while let Some(name) = stack.pop() {
        let Some(&i) = producer.get(name.as_str()) else {
            continue;
        };
        if !kept.insert(i) {
            continue;
        }
        let n = &graph.node[i];
        stack.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        // Names a subgraph (If, Loop, Scan) reads from the enclosing graph.
        for a in &n.attribute {
            for g in a.g.iter().chain(a.graphs.iter()) {
                visit(g, &mut |sub: &GraphProto| {
                    for sn in &sub.node {
                        stack.extend(sn.input.iter().filter(|s| !s.is_empty()).cloned());
                    }
                });
            }
        }
    }
    kept
}

/// Calls `f` on `graph` and every subgraph in its nodes' attributes.
fn visit(graph: &GraphProto, f: &mut dyn FnMut(&GraphProto)) {
    f(graph);
    for n in &graph.node {
        for a in &n.attribute {
            for g in a.g.iter().chain(a.graphs.iter()) {
                visit(g, f);
            }
        }
    }
}

fn hint(ops: &[String]) -> String {
    let has = |name: &str| ops.iter().any(|o| o.ends_with(&format!(":{name}")));
    if has("ZipMap") {
        "export the classifier with options={id(model): {'zipmap': False}} (skl2onnx) and read \
         the probabilities output with output_column = 1"
            .into()
    } else if has("TreeEnsemble") {
        "ai.onnx.ml TreeEnsemble (opset 5) is not supported: convert with target_opset \
         {'ai.onnx.ml': 3} so skl2onnx writes TreeEnsembleRegressor/Classifier, or convert the \
         trees to tensor operators (hummingbird, GEMM strategy)"
            .into()
    } else if ops.iter().any(|o| o.starts_with("ai.onnx.ml:Tree")) {
        "convert the trees to tensor operators (hummingbird, GEMM strategy), which tract runs"
            .into()
    } else {
        "tract 0.23 does not run it; re-export with standard ONNX operators (opset 9 to 18), \
         for trees via hummingbird's GEMM conversion, or check the list in models/README.md"
            .into()
    }
}
